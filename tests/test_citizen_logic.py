"""Reminder preferences, hand-offs, erasure, ratings, short replies and office hours."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import make_engine, unit_of_work
from bot.core.models import AuditEntry, Consent, Dossier, DossierDraft
from bot.dossiers.drafts import start_draft
from bot.dossiers.gateway import EmbeddedGateway
from bot.dossiers.submission import submit_draft
from bot.dossiers.workdays import (
    add_working_days,
    appointment_slots,
    next_office_opening,
    officers_available,
)
from bot.governance.erasure import erase_sender, purge_tracker
from bot.identity.linking import bind, bound_citizen
from bot.reminders.due import due_sentence, dues_of_citizen, service_due
from bot.reminders.preferences import is_silenced, postpone, postpone_until, stop
from bot.service.handoffs import active_handoff, close_handoff, open_handoff
from bot.service.replies import Reply, read_reply
from bot.service.satisfaction import add_comment, parse_rating, record_rating
from tests import factories

TODAY = dt.date(2026, 11, 23)


def test_stop_and_postpone_silence_the_right_services(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        postpone(s, person.id, "gplx_doi", TODAY + dt.timedelta(days=7))
        assert is_silenced(s, person.id, "gplx_doi", TODAY)
        assert not is_silenced(s, person.id, "gplx_doi", TODAY + dt.timedelta(days=7))
        assert not is_silenced(s, person.id, "khai_sinh", TODAY)
        stop(s, person.id, None)
        assert is_silenced(s, person.id, "khai_sinh", TODAY + dt.timedelta(days=400))


def test_postpone_reads_days_or_a_date() -> None:
    assert postpone_until(TODAY, None, 7) == dt.date(2026, 11, 30)
    assert postpone_until(TODAY, "2026-12-15", None) == dt.date(2026, 12, 15)
    assert postpone_until(TODAY, "2026-01-01", None) == dt.date(2026, 11, 30)  # past date ignored


def test_dues_include_businesses_the_citizen_represents(
    engine: Engine, catalogue: Catalogue
) -> None:
    from bot.core.models import Business

    with unit_of_work(engine) as s:
        owner = factories.citizen(s)
        shop = Business(tax_code="6000123456", name="Tạp hóa An", representative_id=owner.id)
        s.add(shop)
        s.flush()
        factories.record(
            s,
            shop,
            "gp_ban_le_ruou",
            issued_on=dt.date(2021, 12, 1),
            valid_until=TODAY + dt.timedelta(days=50),
        )
        factories.record(
            s,
            owner,
            "gplx",
            issued_on=dt.date(2016, 12, 1),
            valid_until=TODAY + dt.timedelta(days=20),
        )
        codes = [i.service.code for i in dues_of_citizen(s, catalogue, owner, TODAY)]
    assert codes == ["gplx_doi", "gp_ban_le_ruou"]


def test_a_named_service_has_its_deadline_however_far_or_recently_missed(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        owner = factories.citizen(s)
        factories.record(
            s, owner, "ho_chieu", issued_on=dt.date(2020, 1, 1), valid_until=dt.date(2030, 1, 1)
        )
        factories.record(
            s,
            owner,
            "gplx",
            issued_on=dt.date(2016, 1, 1),
            valid_until=TODAY - dt.timedelta(days=9),
        )
        passport = service_due(s, catalogue, owner, "ho_chieu_cap_lai", TODAY)
        licence = service_due(s, catalogue, owner, "gplx_doi", TODAY)
        assert service_due(s, catalogue, owner, "gp_buc_xa", TODAY) is None
    assert passport is not None and passport.due.deadline == dt.date(2030, 1, 1)
    assert "là ngày 01/01/2030 (còn 1135 ngày)" in due_sentence(passport, TODAY)
    assert licence is not None
    assert due_sentence(licence, TODAY).endswith("đã qua từ ngày 14/11/2026.")


def test_one_open_handoff_per_conversation(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        first, created = open_handoff(s, "u1", "rest", None, "cho tôi gặp cán bộ")
        again, created_again = open_handoff(s, "u1", "rest", None, "alo")
        assert created and not created_again and first.id == again.id
        close_handoff(s, first, "canbo1")
        assert active_handoff(s, "u1") is None


def test_erasure_keeps_dossiers_consents_and_audit(
    engine: Engine, catalogue: Catalogue, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        factories.record(
            s,
            person,
            "tam_tru",
            valid_until=TODAY + dt.timedelta(days=20),
            issued_on=dt.date(2024, 1, 1),
            attributes={"dia_chi_tam_tru": "x"},
        )
        bind(s, "rest", "u1", person, "otp")
        draft = start_draft(s, catalogue, person, "tam_tru_gia_han", "rest", "u1")
        submit_draft(s, catalogue, draft, EmbeddedGateway(), shown="")
        start_draft(s, catalogue, person, "tam_tru_gia_han", "rest", "u1")
    with unit_of_work(engine) as s:
        erase_sender(s, "rest", "u1")
    with unit_of_work(engine) as s:
        assert bound_citizen(s, "rest", "u1") is None
        assert s.scalar(select(func.count(DossierDraft.id))) == 0
        assert s.scalar(select(func.count(Dossier.id))) == 1
        assert s.scalar(select(func.count(Consent.id))) == 1
        assert "erasure" in s.scalars(select(AuditEntry.action)).all()  # kept with the others
    tracker = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    with tracker.begin() as conn:
        conn.execute(
            text("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, timestamp REAL)")
        )
        conn.execute(
            text("INSERT INTO events (sender_id, timestamp) VALUES ('u1', 1), ('u1', 5), ('u2', 1)")
        )
    assert purge_tracker(tracker, "u1", up_to=2) == 1  # later turns are not touched
    assert purge_tracker(tracker, "u1", up_to=9) == 1
    tracker.dispose()


def test_ratings_attach_only_to_own_dossiers(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        row = record_rating(
            s,
            5,
            citizen_id=person.id,
            dossier_code="DLK-X",
            service_code="khai_sinh",
            channel="rest",
        )
        add_comment(s, row.id, "  nhanh   gọn ")
        assert (
            row.dossier_id is None
            and row.service_code == "khai_sinh"
            and row.comment == "nhanh gọn"
        )
    assert parse_rating("5") == 5 and parse_rating("6") is None and parse_rating(None) is None


@pytest.mark.parametrize(
    ("text", "intent", "expected"),
    [
        ("1", None, Reply.YES),
        ("Đồng ý nộp!", None, Reply.YES),
        ("dong y", None, Reply.YES),
        ("2", None, Reply.NO),
        ("ko", None, Reply.NO),
        ("sửa địa chỉ", None, Reply.CORRECT),
        ("tự khai", None, Reply.SELF_SERVICE),
        ("chắc vậy đi", "affirm", Reply.YES),
        ("trời mưa", "out_of_scope", Reply.OTHER),
    ],
)
def test_short_replies(text: str, intent: str | None, expected: Reply) -> None:
    assert read_reply(text, intent) is expected


def test_working_days_hours_and_slots() -> None:
    assert add_working_days(dt.date(2026, 11, 20), 3) == dt.date(2026, 11, 25)  # Fri → Wed
    monday_9am_local = dt.datetime(2026, 11, 23, 2, 0)  # UTC
    assert officers_available(monday_9am_local)
    saturday = dt.datetime(2026, 11, 28, 2, 0)
    assert not officers_available(saturday)
    assert next_office_opening(saturday).strftime("%a %H:%M") == "Mon 07:30"
    slots = appointment_slots(dt.datetime(2026, 11, 27, 2, 0))  # Friday → Monday, Monday, Tuesday
    assert [s.strftime("%a %H") for s in slots] == ["Mon 08", "Mon 14", "Tue 08"]
