"""Parents acting for their minor children: the imported relation, who counts as a child, what
is due for the family, reminders to the parent, and consent given on a child's behalf."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Citizen, Consent, Dossier, ParentChild, Reminder
from bot.data.importer import import_file
from bot.data.seed import seed
from bot.delivery.deliverer import DeliveryResult, Notice
from bot.dossiers.drafts import set_value, start_draft, summary
from bot.dossiers.gateway import EmbeddedGateway
from bot.dossiers.submission import dossiers_of, own_dossier, submit_draft
from bot.identity.family import (
    child_of,
    children_of,
    guardian_relation,
    may_act_for,
    parent_files,
    parent_sees,
    relation_problem,
    reminder_recipient,
)
from bot.identity.linking import bind
from bot.reminders.due import dues_of_citizen, dues_of_family, family_due_text
from scheduler.dispatch import DispatchConfig, dispatch
from tests import factories

TODAY = dt.date(2026, 11, 23)
NOW = MORNING = dt.datetime(2026, 11, 23, 2, 0)  # 09:00 on TODAY in Đắk Lắk
MOTHER, FATHER, CHILD = "066185001111", "066083002222", "066212001234"
ADULT_CHILD, STRANGER, INFANT = "066300005555", "066090003333", "066326007777"


def _people(s: Session) -> dict[str, Citizen]:
    """A mother and a father of a 14-year-old (passport to renew, a temporary residence) and of
    an adult daughter, a stranger, and an infant nobody imported a relation for."""
    people = {
        MOTHER: factories.citizen(
            s, MOTHER, "0905111111", full_name="Trần Thị Mai", sex="F",
            date_of_birth=dt.date(1985, 3, 2),
        ),
        FATHER: factories.citizen(
            s, FATHER, "0905222222", full_name="Nguyễn Văn Hùng",
            date_of_birth=dt.date(1983, 7, 9),
        ),
        CHILD: factories.citizen(
            s, CHILD, None, full_name="Nguyễn Văn Bé", date_of_birth=dt.date(2012, 5, 10)
        ),
        ADULT_CHILD: factories.citizen(
            s, ADULT_CHILD, "0905555555", full_name="Nguyễn Thị Lớn", sex="F",
            date_of_birth=dt.date(2000, 1, 1),
        ),
        STRANGER: factories.citizen(s, STRANGER, "0905333333", full_name="Lê Văn Khách"),
        INFANT: factories.citizen(
            s, INFANT, None, full_name="Nguyễn Thị Nhỏ", sex="F",
            date_of_birth=dt.date(2026, 10, 1),
        ),
    }  # fmt: skip
    for cccd in (CHILD, ADULT_CHILD):
        factories.record(
            s,
            people[cccd],
            "ho_chieu",
            number=f"P-{cccd}",
            issued_on=dt.date(2021, 12, 3),
            valid_until=TODAY + dt.timedelta(days=40),
        )
    factories.record(
        s,
        people[CHILD],
        "tam_tru",
        issued_on=dt.date(2025, 1, 1),
        valid_until=TODAY + dt.timedelta(days=20),
        attributes={"dia_chi_tam_tru": "45 Phan Bội Châu"},
    )
    factories.record(
        s, people[MOTHER], "gplx", issued_on=dt.date(2017, 1, 5),
        valid_until=TODAY + dt.timedelta(days=50), attributes={"hang": "B"},
    )  # fmt: skip
    return people


def _relate(s: Session, people: dict[str, Citizen], *pairs: tuple[str, str, str]) -> None:
    for parent, child, relation in pairs:
        s.add(
            ParentChild(parent_id=people[parent].id, child_id=people[child].id, relation=relation)
        )
    s.flush()


FAMILY = ((MOTHER, CHILD, "me"), (FATHER, CHILD, "cha"), (MOTHER, ADULT_CHILD, "me"))

RELATIONS_CSV = f"""Số định danh cha mẹ,Số định danh con,Quan hệ
{MOTHER},{CHILD},Mẹ
{FATHER},{CHILD},bố
{MOTHER},{ADULT_CHILD},me
{MOTHER},{CHILD},mẹ
{MOTHER},{MOTHER},mẹ
{MOTHER},066099009999,mẹ
{MOTHER},{CHILD},cô
{FATHER},{INFANT},mẹ
{CHILD},{FATHER},cha
06618500111,{CHILD},mẹ
"""


def test_the_relation_is_imported_checked_and_upserted(
    engine: Engine, catalogue: Catalogue, tmp_path: Path
) -> None:
    with unit_of_work(engine) as s:
        people = {cccd: person.id for cccd, person in _people(s).items()}
    path = tmp_path / "cha_me_con.csv"
    path.write_text(RELATIONS_CSV, encoding="utf-8")
    report = import_file(engine, catalogue, "parent_child", path)
    assert (report.rows, report.inserted, report.updated) == (10, 3, 0)
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
    assert "trùng với dòng 2" in reasons[5]
    assert "trùng nhau" in reasons[6]
    assert "không tìm thấy công dân có số định danh 066099009999" in reasons[7]
    assert "quan hệ 'cô' không hợp lệ" in reasons[8]
    assert "cần người là nữ" in reasons[9]
    assert "không lớn tuổi hơn" in reasons[10]
    assert "12 chữ số" in reasons[11]
    with engine.connect() as conn:
        rows = set(
            conn.execute(select(ParentChild.parent_id, ParentChild.child_id, ParentChild.relation))
        )
    assert rows == {
        (people[MOTHER], people[CHILD], "me"),
        (people[FATHER], people[CHILD], "cha"),
        (people[MOTHER], people[ADULT_CHILD], "me"),
    }

    again = import_file(engine, catalogue, "parent_child", path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)

    ended = tmp_path / "cham_dut.csv"
    ended.write_text(
        f"so_dinh_danh_cha_me,so_dinh_danh_con,quan_he,ngay_cham_dut\n{FATHER},{CHILD},cha,"
        "01/11/2026\n",
        encoding="utf-8",
    )
    report = import_file(engine, catalogue, "parent_child", ended)
    assert (report.inserted, report.updated, report.rejected) == (0, 1, [])
    with unit_of_work(engine) as s:
        father, child = s.get(Citizen, people[FATHER]), s.get(Citizen, people[CHILD])
        assert children_of(s, father, TODAY) == []  # the relation ended on 1 November
        assert children_of(s, father, dt.date(2026, 10, 31)) == [child]
        assert s.scalar(select(func.count()).select_from(ParentChild)) == 3


def test_only_minors_the_data_names_are_ones_children(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        people = _people(s)
        _relate(s, people, *FAMILY)
        mother, child, adult = people[MOTHER], people[CHILD], people[ADULT_CHILD]
        assert children_of(s, mother, TODAY) == [child]  # the daughter of 26 is not shown
        assert children_of(s, people[STRANGER], TODAY) == []
        assert children_of(s, child, TODAY) == []
        # Born 10 May 2012: a minor on the eve of 10 May 2030, an adult that day.
        assert children_of(s, mother, dt.date(2030, 5, 9)) == [child]
        assert children_of(s, mother, dt.date(2030, 5, 10)) == []
        assert child_of(s, mother, child.id, TODAY) == child
        for someone in (people[STRANGER], people[INFANT]):
            assert child_of(s, someone, child.id, TODAY) is None
        assert child_of(s, mother, adult.id, TODAY) is None
        assert child_of(s, mother, people[INFANT].id, TODAY) is None
        assert guardian_relation(s, mother.id, child.id, TODAY) == "me"
        assert guardian_relation(s, people[FATHER].id, child.id, TODAY) == "cha"
        assert guardian_relation(s, mother.id, adult.id, TODAY) is None
        assert guardian_relation(s, people[STRANGER].id, child.id, TODAY) is None
        assert may_act_for(s, mother, mother.id, TODAY) and may_act_for(s, mother, child.id, TODAY)
        assert not may_act_for(s, people[STRANGER], child.id, TODAY)
        assert not may_act_for(s, mother, adult.id, TODAY)


def test_services_a_parent_sees_and_files_for_a_child(catalogue: Catalogue) -> None:
    seen = {s.code for s in catalogue.services if parent_sees(s)}
    filed = {s.code for s in catalogue.services if parent_files(s)}
    assert filed == {"ho_chieu_cap_lai", "cccd_doi_the"}
    assert seen == filed | {"khai_sinh", "thuong_tru_tre_em"}
    for code in seen:
        assert catalogue.service(code).subject == "citizen"
    for code in filed:
        assert catalogue.service(code).level in (2, 3)


def test_a_parent_sees_their_own_dues_then_their_minor_childrens(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        people = _people(s)
        _relate(s, people, *FAMILY)
        mother = people[MOTHER]
        own = dues_of_citizen(s, catalogue, mother, TODAY)
        family = dues_of_family(s, catalogue, mother, TODAY)
        assert [i.service.code for i in own] == ["gplx_doi"]
        assert [(f.child.full_name, [i.service.code for i in f.items]) for f in family] == [
            ("Nguyễn Văn Bé", ["ho_chieu_cap_lai"])  # not the temporary residence
        ]
        text = family_due_text(own, family)
        assert text.index("Ông/Bà:") < text.index("Con Nguyễn Văn Bé (sinh 2012):")
        assert "Cấp lại hộ chiếu phổ thông" in text and "Nguyễn Thị Lớn" not in text
        for someone in (STRANGER, ADULT_CHILD, CHILD):
            assert dues_of_family(s, catalogue, people[someone], TODAY) == []
        # Nothing due for the father himself: the answer says so, then names the child.
        text = family_due_text([], dues_of_family(s, catalogue, people[FATHER], TODAY))
        assert text.startswith("Trong 12 tháng tới Ông/Bà không có") and "Nguyễn Văn Bé" in text


class Recorder:
    """Stands in for the delivery API: records whom each notice went to."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, Notice, str]] = []

    async def __call__(self, citizen_id: int, notice: Notice, key: str) -> DeliveryResult:
        self.calls.append((citizen_id, notice, key))
        return DeliveryResult(key, "sent", "sms")


def _passport_reminders(s: Session, people: dict[str, Citizen]) -> list[int]:
    rows = []
    for cccd in (CHILD, ADULT_CHILD, INFANT):
        rows.append(
            Reminder(
                subject_type="citizen",
                subject_id=people[cccd].id,
                service_code="ho_chieu_cap_lai",
                event_key=f"test:{cccd}",
                stage=90,
                record_id=None,
                due_on=TODAY,
                state="pending",
            )
        )
    s.add_all(rows)
    s.flush()
    return [r.id for r in rows]


async def test_a_minors_reminders_reach_a_named_parent(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        people = _people(s)
        _relate(s, people, *FAMILY)
        ids = {cccd: person.id for cccd, person in people.items()}
        child_reminder, adult_reminder, infant_reminder = _passport_reminders(s, people)
        # The father is linked to a channel, the mother not: he is the one told.
        bind(s, "rest", "father", people[FATHER], "otp")
        assert reminder_recipient(s, people[CHILD], TODAY) == people[FATHER]
        assert reminder_recipient(s, people[ADULT_CHILD], TODAY) is None
    deliver = Recorder()
    for minute in range(3):  # one a minute: the batch is spread over the day
        now = MORNING + dt.timedelta(minutes=minute)
        assert (await dispatch(engine, catalogue, deliver, now, DispatchConfig())).sent == 1
    calls = {key: (citizen_id, notice) for citizen_id, notice, key in deliver.calls}
    to, notice = calls[f"reminder:{child_reminder}"]
    assert to == ids[FATHER] and notice.intent is None
    assert notice.text is not None and "Nguyễn Văn Hùng" in notice.text
    assert "con Nguyễn Văn Bé (sinh 2012)" in notice.text and "giấy tờ sắp hết hạn" in notice.text
    # An adult is reminded in person; so is a child the data names no parent for.
    to, notice = calls[f"reminder:{adult_reminder}"]
    assert to == ids[ADULT_CHILD] and notice.intent == "EXTERNAL_reminder"
    assert calls[f"reminder:{infant_reminder}"][0] == ids[INFANT]


def _child_passport_draft(s: Session, catalogue: Catalogue, child: Citizen, sender: str):  # type: ignore[no-untyped-def]
    service = catalogue.service("ho_chieu_cap_lai")
    draft = start_draft(s, catalogue, child, service.code, "rest", sender)
    set_value(service, draft, "so_dien_thoai", "0905111111")
    set_value(service, draft, "nghe_nghiep", "học sinh")
    set_value(service, draft, "loai_ho_chieu", "1")
    return service, draft


def test_a_parent_files_for_a_child_and_consents_on_their_behalf(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        people = _people(s)
        _relate(s, people, *FAMILY)
        mother, child = people[MOTHER], people[CHILD]
        service, draft = _child_passport_draft(s, catalogue, child, "mother")
        assert draft.citizen_id == child.id and draft.values["ho_ten"] == "Nguyễn Văn Bé"
        assert draft.values["so_ho_chieu_cu"] == f"P-{CHILD}"
        result = submit_draft(
            s, catalogue, draft, EmbeddedGateway(), summary(service, draft), NOW,
            filed_by=mother.id,
        )  # fmt: skip
        code, mother_id, child_id = result.dossier.code, mother.id, child.id
    with unit_of_work(engine) as s:
        dossier = s.scalar(select(Dossier).where(Dossier.code == code))
        consent = s.scalar(select(Consent).where(Consent.dossier_id == dossier.id))
        assert dossier.citizen_id == child_id and dossier.status == "prepared"
        assert (consent.citizen_id, consent.acting_for_citizen_id) == (mother_id, child_id)
        assert consent.shown["acting_as"] == "me" and "Nguyễn Văn Bé" in consent.shown["summary"]
        # The mother who filed it and the child whose dossier it is see it; nobody else.
        assert [d.code for d in dossiers_of(s, mother_id)] == [code]
        assert own_dossier(s, mother_id, code) is not None
        assert own_dossier(s, child_id, code) is not None
        assert own_dossier(s, people_id(s, FATHER), code) is None
        assert own_dossier(s, people_id(s, STRANGER), code) is None
        assert dossiers_of(s, people_id(s, STRANGER)) == []


def people_id(s: Session, cccd: str) -> int:
    return s.scalar(select(Citizen.id).where(Citizen.cccd == cccd))


@pytest.mark.parametrize("filer", [STRANGER, MOTHER])
def test_nobody_else_files_for_a_child(engine: Engine, catalogue: Catalogue, filer: str) -> None:
    """A stranger never; the mother not for her adult daughter."""
    subject = CHILD if filer == STRANGER else ADULT_CHILD
    with unit_of_work(engine) as s:
        people = _people(s)
        _relate(s, people, *FAMILY)
        service, draft = _child_passport_draft(s, catalogue, people[subject], "someone")
        with pytest.raises(PermissionError):
            submit_draft(
                s, catalogue, draft, EmbeddedGateway(), summary(service, draft), NOW,
                filed_by=people[filer].id,
            )  # fmt: skip
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(Dossier)) == 0
        assert s.scalar(select(func.count()).select_from(Consent)) == 0


def test_demo_data_has_parents_whose_minor_child_has_something_due(
    engine: Engine, catalogue: Catalogue
) -> None:
    report = seed(engine, catalogue, 200, seed_value=1, today=TODAY)
    assert report.families == 4
    with unit_of_work(engine) as s:
        due = set()
        for link in s.scalars(select(ParentChild)):
            parent, child = s.get(Citizen, link.parent_id), s.get(Citizen, link.child_id)
            assert (
                relation_problem(
                    link.relation, parent.sex, parent.date_of_birth, child.date_of_birth
                )
                is None
            )  # the rows an import of the same data would accept
            assert parent.full_name.split()[0] == child.full_name.split()[0] or (
                parent.full_name.split()[-1] == child.full_name.split()[-1]
            )
            (family,) = dues_of_family(s, catalogue, parent, TODAY, horizon_days=60)
            assert family.child == child
            due |= {item.service.code for item in family.items}
    assert due == {s.code for s in catalogue.services if parent_files(s)}
