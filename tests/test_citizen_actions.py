"""Citizen actions with a real Tracker and a real SQLite database (no Rasa server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.account import ActionCheckStatus, ActionListDue, ActionPostponeReminder
from actions.conversation import ActionInform, ActionYesNo
from actions.dossiers import ActionFinishDossier, ActionRequestService, ValidateDossierForm
from bot.core.db import unit_of_work
from bot.core.models import Citizen, Dossier, ReminderPreference
from bot.identity.linking import bind
from tests import factories


@pytest.fixture
def app(actions_db: Path) -> Path:
    with unit_of_work() as s:
        owner = factories.citizen(s)
        factories.record(
            s,
            owner,
            "tam_tru",
            issued_on=dt.date(2024, 12, 1),
            valid_until=dt.date(2026, 12, 20),
            attributes={"dia_chi_tam_tru": "45 Phan Bội Châu"},
        )
        factories.citizen(s, cccd="066190005678", phone="0912345678", full_name="Lê Thị Cúc")
    return actions_db


def link(sender: str = "u1", cccd: str = "066190001234") -> None:
    with unit_of_work() as s:
        bind(s, "rest", sender, s.scalar(select(Citizen).where(Citizen.cccd == cccd)), "otp")


def tracker(text: str, intent: str, entities=None, slots=None, sender="u1") -> Tracker:  # type: ignore[no-untyped-def]
    message = {"text": text, "intent": {"name": intent}, "entities": entities or []}
    events = [{"event": "user", "text": text, "input_channel": "rest", "parse_data": message}]
    return Tracker(sender, slots or {}, message, events, False, None, None, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    result = action.run(dispatcher, t, {})
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return dispatcher.messages, result


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text") or "" for m in messages)


def ent(name: str, value: str) -> dict[str, Any]:
    return {"entity": name, "value": value}


def test_anonymous_sender_gets_no_personal_data(app: Path) -> None:
    for action, t in [
        (ActionCheckStatus(), tracker("hồ sơ của tôi", "check_status")),
        (ActionListDue(), tracker("sắp hết hạn", "list_due")),
        (
            ActionCheckStatus(),
            tracker(
                '/check_status{"cccd":"066190001234"}',
                "check_status",
                [ent("cccd", "066190001234")],
            ),
        ),
    ]:
        messages, events = run(action, t)
        assert "xác thực danh tính" in texts(messages) and events == []
        assert "Nguyễn" not in texts(messages) and "tạm trú" not in texts(messages)


def test_typing_an_id_only_sends_a_code_to_the_registry_phone(app: Path) -> None:
    messages, _ = run(
        ActionInform(), tracker("066190005678", "inform", [ent("cccd", "066190005678")])
    )
    assert "09******78" in texts(messages) and "Lê" not in texts(messages)
    outbox = [json.loads(x) for x in (app / "sms_outbox.jsonl").read_text().splitlines()]
    assert outbox[-1]["to"] == "0912345678" and re.search(r"\d{6}", outbox[-1]["text"])
    messages, _ = run(ActionCheckStatus(), tracker("hồ sơ", "check_status"))
    assert "xác thực danh tính" in texts(messages)  # a sent code is not an identity


def test_someone_elses_dossier_code_reads_like_a_wrong_code(app: Path) -> None:
    link("u1")
    link("u2", "066190005678")
    run(
        ActionRequestService(),
        tracker("gia hạn tạm trú", "request_service", [ent("service", "tam_tru_gia_han")]),
    )
    run(ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}))
    with unit_of_work() as s:
        code = s.scalar(select(Dossier.code))
    own, _ = run(ActionCheckStatus(), tracker(code, "inform", [ent("dossier_code", code)]))
    assert code in texts(own) and "Đã tiếp nhận" in texts(own)
    other, _ = run(
        ActionCheckStatus(), tracker(code, "inform", [ent("dossier_code", code)], sender="u2")
    )
    wrong, _ = run(
        ActionCheckStatus(),
        tracker(
            "DLK-000000-00000", "inform", [ent("dossier_code", "DLK-000000-00000")], sender="u2"
        ),
    )
    assert texts(other).replace(code, "X") == texts(wrong).replace("DLK-000000-00000", "X")


FORM_DOMAIN = {"forms": {"dossier_form": {"required_slots": ["field_value", "confirmation"]}}}


def form_turn(text: str, requested: str, slots: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """One citizen reply while the form asks `requested`; returns (bot text, slots, next slot)."""
    slots = {**slots, "requested_slot": requested, requested: text}
    t = tracker(text, "inform", slots=slots)
    t.events.append({"event": "slot", "name": requested, "value": text})
    dispatcher = CollectingDispatcher()
    events = asyncio.run(ValidateDossierForm().run(dispatcher, t, FORM_DOMAIN))
    new = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    slots.update(new)
    return texts(dispatcher.messages), slots, slots.get("requested_slot")


def draft_values() -> dict[str, Any]:
    from bot.core.models import DossierDraft

    with unit_of_work() as s:
        return s.scalar(select(DossierDraft).where(DossierDraft.state == "open")).values


def test_form_asks_only_missing_fields_validates_and_corrects(app: Path) -> None:
    link()
    messages, events = run(
        ActionRequestService(),
        tracker("lý lịch tư pháp", "request_service", [ent("service", "ly_lich_tu_phap")]),
    )
    assert "Còn 3 thông tin" in texts(messages)
    assert FollowupAction("dossier_form") in events
    slots: dict[str, Any] = {"editing_field": None}
    _, slots, asked = form_turn("1", "field_value", slots)
    assert asked == "field_value" and draft_values()["loai_phieu"] == "Phiếu lý lịch tư pháp số 1"
    _, slots, asked = form_turn("bổ sung hồ sơ xin việc", "field_value", slots)
    said, slots, asked = form_turn("vài bản", "field_value", slots)
    assert "số nguyên" in said and asked == "field_value"
    _, slots, asked = form_turn("2", "field_value", slots)
    assert asked == "confirmation" and draft_values()["so_luong_phieu"] == "2"
    _, slots, asked = form_turn("sửa mục đích", "confirmation", slots)
    assert asked == "field_value" and slots["editing_field"] == "muc_dich"
    _, slots, asked = form_turn("đi du học", "field_value", slots)
    assert asked == "confirmation" and draft_values()["muc_dich"] == "đi du học"
    said, slots, asked = form_turn("sửa họ tên", "confirmation", slots)
    assert "Cơ sở dữ liệu quốc gia về dân cư" in said and asked == "confirmation"
    _, slots, asked = form_turn("đồng ý", "confirmation", slots)
    assert slots["confirmation"] == "yes" and asked is None


def test_double_confirmation_creates_one_dossier(app: Path) -> None:
    link()
    run(
        ActionRequestService(),
        tracker("gia hạn tạm trú", "request_service", [ent("service", "tam_tru_gia_han")]),
    )
    first, _ = run(ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}))
    again, _ = run(ActionYesNo(), tracker("đồng ý nộp", "affirm"))
    with unit_of_work() as s:
        assert s.scalar(select(func.count(Dossier.id))) == 1
        code = s.scalar(select(Dossier.code))
    assert f"Mã hồ sơ: {code}" in texts(first) and "đã được nộp trước đó" in texts(again)


def test_postpone_and_stop_are_stored(app: Path) -> None:
    link()
    messages, _ = run(
        ActionPostponeReminder(),
        tracker("nhắc lại sau 7 ngày", "postpone_reminder", [ent("service", "tam_tru_gia_han")]),
    )
    with unit_of_work() as s:
        pref = s.scalar(select(ReminderPreference))
        assert pref.service_code == "tam_tru_gia_han"
        assert (pref.postponed_until - dt.date.today()).days in (6, 7, 8)
    assert "nhắc lại" in texts(messages)


def test_gateway_down_keeps_the_draft_and_writes_no_dossier(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link()
    monkeypatch.setenv("DOSSIER_GATEWAY_URL", "http://127.0.0.1:9/unreachable")
    monkeypatch.setenv("DOSSIER_GATEWAY_SECRET", "s")
    monkeypatch.setattr("connectors.signed_http.time.sleep", lambda _: None)
    run(
        ActionRequestService(),
        tracker("gia hạn tạm trú", "request_service", [ent("service", "tam_tru_gia_han")]),
    )
    messages, _ = run(ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}))
    assert "đang bận" in texts(messages)
    with unit_of_work() as s:
        assert s.scalar(select(func.count(Dossier.id))) == 0
    monkeypatch.delenv("DOSSIER_GATEWAY_URL")
    retry, _ = run(ActionYesNo(), tracker("đồng ý nộp", "affirm", slots={"awaiting": "submit"}))
    assert "Mã hồ sơ: DLK-" in texts(retry)


def test_an_unexpected_error_gives_a_reference_and_rolls_back(
    app: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    link()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("actions.account.postpone", broken)
    messages, events = run(ActionPostponeReminder(), tracker("nhắc lại sau", "postpone_reminder"))
    ref = re.search(r"Mã sự cố: ([0-9a-f]{8})", texts(messages)).group(1)
    assert events == [] and ref in caplog.text and "disk full" in caplog.text


def test_a_failing_reminder_turn_raises_so_the_delivery_retries(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A citizen's turn apologises; a system turn (EXTERNAL_*) must fail, or the reminder
    would count as delivered while the citizen only saw an error message."""
    from actions.account import ActionDossierStatus

    link()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr("actions.base.bound_citizen", broken)
    notice = tracker("", "EXTERNAL_dossier_status", [ent("dossier_code", "DLK-261123-00001")])
    with pytest.raises(RuntimeError, match="database gone"):
        run(ActionDossierStatus(), notice)
    messages, _ = run(ActionCheckStatus(), tracker("hồ sơ đến đâu rồi", "check_status"))
    assert "Mã sự cố" in texts(messages)


def test_status_notice_goes_to_the_owner_with_the_survey(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actions.account import ActionDossierStatus
    from bot.core.models import DossierStatusChange

    monkeypatch.setenv("SURVEY_AFTER", "completion")
    link()
    link("u2", "066190005678")
    run(
        ActionRequestService(),
        tracker("gia hạn tạm trú", "request_service", [ent("service", "tam_tru_gia_han")]),
    )
    run(ActionFinishDossier(), tracker("1", "affirm", slots={"confirmation": "yes"}))
    with unit_of_work() as s:
        dossier = s.scalar(select(Dossier))
        dossier.status = "completed"
        s.add(
            DossierStatusChange(
                dossier_id=dossier.id,
                status="completed",
                changed_by="canbo1",
                note="Mời nhận kết quả",
            )
        )
        code = dossier.code
    notice = tracker("", "EXTERNAL_dossier_status", [ent("dossier_code", code)])
    messages, _ = run(ActionDossierStatus(), notice)
    assert "Đã có kết quả" in texts(messages) and "Mời nhận kết quả" in texts(messages)
    assert any(m.get("buttons") for m in messages)  # the 1–5 rating question
    other = tracker("", "EXTERNAL_dossier_status", [ent("dossier_code", code)], sender="u2")
    assert run(ActionDossierStatus(), other)[0] == []


def test_a_bare_service_name_answers_the_pending_question(app: Path) -> None:
    t = tracker(
        "khai sinh",
        "request_service",
        [ent("service", "khai_sinh")],
        slots={"pending_question": "fee"},
    )
    messages, events = run(ActionRequestService(), t)
    assert "Lệ phí" in texts(messages) or "lệ phí" in texts(messages)
    assert {"event": "slot", "timestamp": None, "name": "pending_question", "value": None} in events


def test_the_rating_form_asks_for_a_comment_instead_of_saving_none(app: Path) -> None:
    """ActionRate resets `feedback_comment` to None in the turn that activates the form, and
    the form validates that reset: it must leave the slot empty (so the form asks)."""
    from actions.conversation import ActionRate, ValidateFeedbackForm
    from bot.core.models import SatisfactionRating

    _, events = run(ActionRate(), tracker("5 sao", "rate_service", [ent("rating", "5")]))
    rating_id = next(e["value"] for e in events if e.get("name") == "rating_id")
    dispatcher = CollectingDispatcher()
    validated = ValidateFeedbackForm().validate_feedback_comment(
        None, dispatcher, tracker("5 sao", "rate_service", slots={"rating_id": rating_id}), {}
    )
    assert validated == {"feedback_comment": None} and dispatcher.messages == []
    with unit_of_work() as s:
        assert s.get(SatisfactionRating, int(rating_id)).comment is None


def test_a_reminder_by_sms_reaches_a_phone_that_never_wrote_in(app: Path) -> None:
    """The scheduler addresses an SMS reminder to `sms:<registry phone>`; that conversation is
    the citizen's (no one else can open an sms: conversation), so the reminder shows instead
    of a request to link. A text typed on another channel proves nothing."""
    from actions.conversation import ActionReminder
    from bot.core.models import Reminder

    with unit_of_work() as s:
        owner = s.scalar(select(Citizen).where(Citizen.cccd == "066190001234"))
        reminder = Reminder(
            subject_type="citizen",
            subject_id=owner.id,
            service_code="tam_tru_gia_han",
            event_key="t",
            stage=1,
            due_on=dt.date(2026, 12, 20),
            state="sent",
        )
        s.add(reminder)
        s.flush()
        entities = [{"entity": "reminder_id", "value": str(reminder.id)}]
    turn = tracker(
        "EXTERNAL: EXTERNAL_reminder", "EXTERNAL_reminder", entities, sender="sms:0905123456"
    )
    said, events = run(ActionReminder(), turn)
    assert "tạm trú" in said[0]["text"] and events
    elsewhere = tracker(
        "EXTERNAL: EXTERNAL_reminder", "EXTERNAL_reminder", entities, sender="zalo:1"
    )
    said, events = run(ActionReminder(), elsewhere)
    assert "tạm trú" not in " ".join(m.get("text") or "" for m in said) and not events
