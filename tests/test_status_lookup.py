"""Status by dossier code for a sender who is not linked (bot.dossiers.lookup): what the answer
may say, that a wrong pair reads like an unknown code, the per-sender and per-code limits on
both engines, and the actions (real Tracker, real SQLite, no Rasa)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from actions.account import ActionCheckStatus
from actions.conversation import ActionInform
from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.lifecycles import DossierStatus
from bot.core.models import Business, Citizen, Dossier, DossierStatusChange, LookupAttempt
from bot.dossiers.lookup import (
    LookupAnswer,
    LookupLimits,
    LookupOutcome,
    last_four_in,
    last_four_matches,
    lookup_by_code,
)
from tests import factories
from tests.test_citizen_actions import ent, link, run, texts, tracker

CODE = "DLK-261120-00042"
OTHER = "DLK-261120-00043"
CCCD, PHONE = "066190007788", "0905115678"
NAME, ADDRESS = "Nguyễn Văn An", "12 Lê Duẩn, Buôn Ma Thuột"
NOW = dt.datetime(2026, 11, 25, 3, 0)  # naive UTC, as stored
LIMITS = LookupLimits()
# What an unlinked sender must never read, whatever they send.
PERSONAL = (NAME, "Nguyễn", "Lê Duẩn", "Buôn Ma Thuột", CCCD, PHONE, "***", "bổ sung ảnh")


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_SECRET_KEY", "test")
    for name in (
        "STATUS_LOOKUP_SENDER_FAILURES",
        "STATUS_LOOKUP_SENDER_WINDOW_MINUTES",
        "STATUS_LOOKUP_CODE_FAILURES",
        "STATUS_LOOKUP_CODE_WINDOW_HOURS",
    ):
        monkeypatch.delenv(name, raising=False)


def dossier(
    s: Session,
    owner: Citizen,
    code: str = CODE,
    status: str = DossierStatus.PROCESSING,
    business: Business | None = None,
) -> Dossier:
    row = Dossier(
        code=code,
        service_code="tam_tru_gia_han",
        citizen_id=owner.id,
        business_id=business.id if business else None,
        status=status,
        fields={"ho_ten": owner.full_name, "dia_chi": owner.permanent_address},
        channel="rest",
        submitted_at=dt.datetime(2026, 11, 20, 2, 0),
        expected_on=dt.date(2026, 11, 27),
    )
    s.add(row)
    s.flush()
    return row


def seed(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        owner = factories.citizen(s, cccd=CCCD, phone=PHONE, full_name=NAME)
        dossier(s, owner)


def ask(
    engine: Engine,
    catalogue: Catalogue,
    code: str,
    digits: str | None,
    sender: str = "rest:s1",
    now: dt.datetime = NOW,
    limits: LookupLimits = LIMITS,
) -> LookupAnswer:
    with unit_of_work(engine) as s:
        return lookup_by_code(s, code, digits, sender, now, limits, catalogue)


def attempts(engine: Engine) -> list[LookupAttempt]:
    with unit_of_work(engine) as s:
        return list(s.scalars(select(LookupAttempt)))


# --- the digits in a message ------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, digits",
    [
        ("DLK-261120-00042 5678", "5678"),
        ("tra cứu hồ sơ DLK-261120-00042, 4 số cuối sđt 5678", "5678"),
        ("dlk-261120-00042  5678.", "5678"),
        ("5678 DLK-261120-00042", "5678"),
        ("hồ sơ DLK-261120-00042 số cuối: 7788, sđt cuối 7788", "7788"),
        ("DLK-261120-00042", None),
        ("DLK-261120-00042 567", None),  # three digits
        ("DLK-261120-00042 56789", None),  # five digits
        ("DLK-261120-00042 066190007788", None),  # a whole ID number
        ("DLK-261120-00042 0905 115 678", None),  # a phone typed in groups
        ("DLK-261120-00042 0905.115.678", None),
        ("DLK-261120-00042-5678", None),  # stuck to the code
        ("DLK-261120-000425678", None),  # one longer number
        ("DLK-261120-0042 5678", None),  # not a code: its digits join the number
        ("DLK-261120-00042 sdt5678", None),  # stuck to a word
        ("DLK-261120-00042 5678 hay 1234", None),  # two different answers
        ("DLK-261120-00042 ５６７８", None),  # full-width digits are not ASCII
        ('/check_status{"dossier_code": "DLK-261120-00042", "digits": "5678"}', None),
        ('/inform{"dossier_code": "DLK-261120-00042", "cccd": "066190007788"}', None),
    ],
)
def test_last_four_are_read_strictly(message: str, digits: str | None) -> None:
    assert last_four_in(message) == digits


def test_last_four_of_the_phone_or_the_id_number() -> None:
    person = Citizen(cccd=CCCD, phone=PHONE, full_name=NAME)
    assert last_four_matches(person, "5678") and last_four_matches(person, "7788")
    assert not last_four_matches(person, "1234")
    assert not last_four_matches(person, "678") and not last_four_matches(person, "05678")
    assert not last_four_matches(Citizen(cccd=CCCD, phone=None), "5678")
    assert last_four_matches(Citizen(cccd=CCCD, phone=None), "7788")
    assert not last_four_matches(None, "7788")


def test_limits_come_from_the_environment() -> None:
    assert LookupLimits.from_env({}) == LookupLimits()
    limits = LookupLimits.from_env(
        {
            "STATUS_LOOKUP_SENDER_FAILURES": "3",
            "STATUS_LOOKUP_SENDER_WINDOW_MINUTES": "30",
            "STATUS_LOOKUP_CODE_FAILURES": "0",
            "STATUS_LOOKUP_CODE_WINDOW_HOURS": "48",
        }
    )
    assert limits == LookupLimits(3, dt.timedelta(minutes=30), 0, dt.timedelta(hours=48))


# --- the rules, on SQLite and PostgreSQL ------------------------------------------------------


def test_the_right_pair_gives_status_service_and_dates_only(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    for digits in ("5678", "7788"):  # phone, ID number
        answer = ask(engine, catalogue, CODE.lower(), digits)
        assert answer.outcome is LookupOutcome.FOUND
        assert answer.text == (
            f"Hồ sơ {CODE}:\n"
            "• Thủ tục: Gia hạn tạm trú\n"
            "• Tình trạng: Đang xử lý\n"
            "• Ngày tiếp nhận: 20/11/2026\n"
            "• Ngày hẹn trả kết quả: 27/11/2026"
        )
        assert not any(p in answer.text for p in PERSONAL)
    assert attempts(engine) == []  # successes are not recorded


def test_a_wrong_pair_reads_exactly_like_an_unknown_code(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    wrong = ask(engine, catalogue, CODE, "1234", sender="rest:a")
    unknown = ask(engine, catalogue, "DLK-261120-09999", "5678", sender="rest:b")
    foreign_prefix = ask(engine, catalogue, "ABC-261120-00042", "5678", sender="rest:c")
    assert wrong.outcome is unknown.outcome is foreign_prefix.outcome is LookupOutcome.NOT_FOUND
    assert (
        wrong.text.replace(CODE, "X")
        == unknown.text.replace("DLK-261120-09999", "X")
        == foreign_prefix.text.replace("ABC-261120-00042", "X")
    )
    for answer in (wrong, unknown, foreign_prefix):
        assert not any(p in answer.text for p in PERSONAL) and "Đang xử lý" not in answer.text


def test_no_answer_names_the_person_whatever_the_status(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        owner = factories.citizen(s, cccd=CCCD, phone=PHONE, full_name=NAME)
        for n, status in enumerate(DossierStatus):
            row = dossier(s, owner, f"DLK-261120-{n:05d}", status)
            note = f"Nguyễn Văn An cần bổ sung ảnh ({status})"
            s.add(DossierStatusChange(dossier_id=row.id, status=status, note=note, changed_by="x"))
    for n, status in enumerate(DossierStatus):
        answer = ask(engine, catalogue, f"DLK-261120-{n:05d}", "5678")
        assert answer.outcome is LookupOutcome.FOUND, status
        assert not any(p in answer.text for p in PERSONAL), answer.text
        assert len(answer.text.splitlines()) == 5
    prepared = ask(engine, catalogue, "DLK-261120-00000", "5678").text
    assert "Ngày tiếp nhận: chưa tiếp nhận" in prepared
    completed = ask(engine, catalogue, "DLK-261120-00004", "5678").text
    assert "Đã có kết quả" in completed and "Ngày hẹn trả kết quả: —" in completed


def test_a_business_dossier_opens_with_its_representatives_digits(
    engine: Engine, catalogue: Catalogue
) -> None:
    with unit_of_work(engine) as s:
        submitter = factories.citizen(s, cccd="066190001111", phone="0905001111")
        representative = factories.citizen(s, cccd=CCCD, phone=PHONE, full_name=NAME)
        business = Business(
            tax_code="6000123456",
            name="Công ty TNHH Cà phê Ban Mê",
            address="9 Lý Thường Kiệt",
            phone="0262000999",
            representative_id=representative.id,
        )
        s.add(business)
        s.flush()
        dossier(s, submitter, business=business)
    found = ask(engine, catalogue, CODE, "5678")
    assert found.outcome is LookupOutcome.FOUND
    assert "Cà phê" not in found.text and "Lý Thường Kiệt" not in found.text
    assert ask(engine, catalogue, CODE, "1111").outcome is LookupOutcome.NOT_FOUND
    assert ask(engine, catalogue, CODE, "0999").outcome is LookupOutcome.NOT_FOUND


def test_a_code_without_digits_or_a_malformed_code_is_not_looked_up(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    need = ask(engine, catalogue, CODE, None)
    assert need.outcome is LookupOutcome.NEED_DIGITS and CODE in need.text
    assert "mã hồ sơ kèm 4 số cuối số điện thoại hoặc số định danh" in need.text
    bad = ask(engine, catalogue, "' OR 1=1 --", "5678")
    assert bad.outcome is LookupOutcome.INVALID_CODE and "OR 1=1" not in bad.text
    assert ask(engine, catalogue, CODE, "56789").outcome is LookupOutcome.NEED_DIGITS
    assert attempts(engine) == []


def test_failures_are_limited_per_sender_and_the_window_expires(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    for n in range(LIMITS.sender_failures):
        guess = ask(engine, catalogue, f"DLK-261120-{n + 100:05d}", "5678", now=NOW)
        assert guess.outcome is LookupOutcome.NOT_FOUND
    # Cut off: even the right pair is not checked, and nothing more is recorded.
    later = NOW + LIMITS.sender_window - dt.timedelta(minutes=1)
    limited = ask(engine, catalogue, CODE, "5678", now=later)
    assert limited.outcome is LookupOutcome.LIMITED and "thử lại sau" in limited.text
    assert not any(p in limited.text for p in PERSONAL) and "Đang xử lý" not in limited.text
    assert len(attempts(engine)) == LIMITS.sender_failures
    # Another sender is not affected; after the window this one may try again.
    assert ask(engine, catalogue, CODE, "5678", sender="rest:s2").outcome is LookupOutcome.FOUND
    after = NOW + LIMITS.sender_window + dt.timedelta(seconds=1)
    assert ask(engine, catalogue, CODE, "5678", now=after).outcome is LookupOutcome.FOUND


def test_failures_are_limited_per_code_across_senders(engine: Engine, catalogue: Catalogue) -> None:
    seed(engine)
    for n in range(LIMITS.code_failures):
        wrong = ask(engine, catalogue, CODE, f"{n:04d}", sender=f"rest:guesser-{n}")
        assert wrong.outcome is LookupOutcome.NOT_FOUND
    fresh = ask(engine, catalogue, CODE, "5678", sender="rest:owner")
    assert fresh.outcome is LookupOutcome.LIMITED  # the right pair waits too: nothing checked
    assert ask(engine, catalogue, OTHER, "5678", sender="rest:owner").outcome is (
        LookupOutcome.NOT_FOUND
    )  # other codes are not affected
    almost = NOW + LIMITS.code_window - dt.timedelta(minutes=1)
    assert ask(engine, catalogue, CODE, "5678", "rest:x", almost).outcome is LookupOutcome.LIMITED
    after = NOW + LIMITS.code_window + dt.timedelta(seconds=1)
    assert ask(engine, catalogue, CODE, "5678", "rest:x", after).outcome is LookupOutcome.FOUND


def test_unknown_codes_are_limited_like_real_ones(engine: Engine, catalogue: Catalogue) -> None:
    """The per-code limit counts guesses at any code, so being limited says nothing about
    whether the code exists."""
    seed(engine)
    codes = (CODE, "DLK-261120-09999")
    for code in codes:
        for n in range(LIMITS.code_failures):
            ask(engine, catalogue, code, "0000", sender=f"rest:{code}-{n}")
    real, unknown = (ask(engine, catalogue, code, "5678", sender="rest:new") for code in codes)
    assert real.outcome is unknown.outcome is LookupOutcome.LIMITED
    assert real.text == unknown.text


def test_successes_are_never_limited_and_do_not_reset_failures(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    for _ in range(3 * LIMITS.sender_failures):
        assert ask(engine, catalogue, CODE, "5678").outcome is LookupOutcome.FOUND
    for n in range(LIMITS.sender_failures - 1):
        ask(engine, catalogue, f"DLK-261120-{n + 100:05d}", "5678")
        assert ask(engine, catalogue, CODE, "5678").outcome is LookupOutcome.FOUND
    ask(engine, catalogue, "DLK-261120-00999", "5678")
    assert ask(engine, catalogue, CODE, "5678").outcome is LookupOutcome.LIMITED


def test_the_digits_are_not_stored_and_old_rows_expire(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    ask(engine, catalogue, CODE, "4321", sender="rest:s1")
    (row,) = attempts(engine)
    assert row.code == CODE and len(row.sender_digest) == 64
    assert "4321" not in row.sender_digest and "rest:s1" not in row.sender_digest
    assert row.created_at == NOW
    later = NOW + LIMITS.longest_window + dt.timedelta(minutes=1)
    ask(engine, catalogue, OTHER, "4321", sender="rest:s1", now=later)
    assert [(r.code, r.created_at) for r in attempts(engine)] == [(OTHER, later)]


def test_concurrent_guesses_cannot_pass_the_limit_together(
    engine: Engine, catalogue: Catalogue
) -> None:
    seed(engine)
    outcomes: list[LookupOutcome] = []
    barrier = threading.Barrier(12)

    def guess(n: int) -> None:
        barrier.wait()
        outcomes.append(ask(engine, catalogue, f"DLK-261120-{n + 200:05d}", "5678").outcome)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(LookupOutcome.NOT_FOUND) == LIMITS.sender_failures
    assert outcomes.count(LookupOutcome.LIMITED) == 12 - LIMITS.sender_failures
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(LookupAttempt)) == 5


# --- the actions --------------------------------------------------------------------------------


@pytest.fixture
def app(actions_db: Path) -> Path:
    with unit_of_work() as s:
        owner = factories.citizen(s, cccd=CCCD, phone=PHONE, full_name=NAME)
        dossier(s, owner)
        factories.citizen(s, cccd="066190005678", phone="0912345678", full_name="Lê Thị Cúc")
    return actions_db


def status(text: str, entities: list[dict[str, Any]], sender: str = "u1", intent: str = "") -> str:
    action = ActionInform() if intent == "inform" else ActionCheckStatus()
    messages, events = run(action, tracker(text, intent or "check_status", entities, sender=sender))
    assert events == []
    said = texts(messages)
    assert not any(p in said for p in PERSONAL), said
    return said


def test_an_unlinked_sender_looks_a_dossier_up_by_code_and_digits(app: Path) -> None:
    code = [ent("dossier_code", CODE)]
    for text in (f"{CODE} 5678", f"tra cứu hồ sơ {CODE}, 4 số cuối sđt 5678", f"{CODE} 7788"):
        said = status(text, code)
        assert "Thủ tục: Gia hạn tạm trú" in said and "Tình trạng: Đang xử lý" in said
        assert "Ngày tiếp nhận: 20/11/2026" in said and "27/11/2026" in said
    # A message of only the code and the digits may be classified `inform`.
    said = status(f"{CODE} 5678", code, intent="inform")
    assert "Tình trạng: Đang xử lý" in said


def test_wrong_digits_and_unknown_codes_read_alike_in_the_conversation(app: Path) -> None:
    wrong = status(f"{CODE} 1234", [ent("dossier_code", CODE)], sender="u7")
    unknown_code = "DLK-200101-00999"
    unknown = status(f"{unknown_code} 5678", [ent("dossier_code", unknown_code)], sender="u8")
    assert "Không tìm thấy" in wrong
    assert wrong.replace(CODE, "X") == unknown.replace(unknown_code, "X")


def test_a_code_alone_asks_for_the_digits_and_no_code_asks_to_link(app: Path) -> None:
    said = status(CODE, [ent("dossier_code", CODE)], intent="inform")
    assert "mã hồ sơ kèm 4 số cuối số điện thoại hoặc số định danh" in said
    said = status("hồ sơ của tôi đến đâu rồi", [])
    assert "xác thực danh tính" in said and "4 số cuối" in said


def test_crafted_payloads_learn_nothing(app: Path) -> None:
    for intent in ("check_status", "inform"):
        for payload, entities in [
            (
                f'/{intent}{{"dossier_code": "{CODE}", "cccd": "{CCCD}"}}',
                [ent("dossier_code", CODE), ent("cccd", CCCD)],
            ),
            (
                f'/{intent}{{"dossier_code": "{CODE}", "phone": "{PHONE}", "otp": "5678"}}',
                [ent("dossier_code", CODE), ent("phone", PHONE)],
            ),
            (f'/{intent}{{"dossier_code": "{CODE} 5678"}}', [ent("dossier_code", f"{CODE} 5678")]),
            (f'/{intent}{{"dossier_code": "%"}}', [ent("dossier_code", "%")]),
        ]:
            said = status(payload, entities, sender="crafty", intent=intent)
            assert "Đang xử lý" not in said and "Gia hạn" not in said, said


def test_a_burst_of_guesses_is_cut_off(app: Path) -> None:
    answers = []
    for n in range(8):
        code = f"DLK-261120-{n + 100:05d}"
        answers.append(status(f"{code} 5678", [ent("dossier_code", code)], sender="burst"))
    assert all("Không tìm thấy" in a for a in answers[:5])
    assert all("thử lại sau" in a for a in answers[5:])
    late = status(f"{CODE} 5678", [ent("dossier_code", CODE)], sender="burst")
    assert "thử lại sau" in late and "Đang xử lý" not in late


def test_a_linked_citizen_keeps_seeing_only_their_own_dossiers(app: Path) -> None:
    link("u2", "066190005678")
    messages, _ = run(
        ActionCheckStatus(),
        tracker(f"{CODE} 5678", "check_status", [ent("dossier_code", CODE)], sender="u2"),
    )
    said = texts(messages)
    assert "trong các hồ sơ của Ông/Bà" in said and "Đang xử lý" not in said
    link("u3", CCCD)
    messages, _ = run(
        ActionCheckStatus(), tracker(CODE, "check_status", [ent("dossier_code", CODE)], sender="u3")
    )
    assert f"Hồ sơ {CODE} – Gia hạn tạm trú" in texts(messages)
    with unit_of_work() as s:
        assert s.scalar(select(func.count()).select_from(LookupAttempt)) == 0
