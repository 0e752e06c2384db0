"""Custom actions run with a real Tracker and CollectingDispatcher."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionClarify
from actions.help import ActionHelp
from actions.procedures import ActionAnswerProcedure
from bot.catalogue.model import Catalogue


def tracker(
    text: str,
    intent: str,
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    ranking: list[dict[str, Any]] | None = None,
) -> Tracker:
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.99},
        "entities": entities or [],
        "intent_ranking": ranking or [],
    }
    return Tracker("u1", slots or {}, message, events or [], False, None, {}, "action_listen")


def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[Any]]:  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, t, {})
    return dispatcher.messages, events


def service(code: str) -> dict[str, Any]:
    return {"entity": "service", "value": code, "start": 0, "end": 1}


def test_help_lists_the_catalogue_services(catalogue: Catalogue) -> None:
    (message,), events = run(ActionHelp(), tracker("hướng dẫn", "help"))
    assert events == []
    assert message["text"].startswith("Tôi có thông tin về 16 thủ tục")
    assert "gia hạn tạm trú" in message["text"]
    assert {b["payload"] for b in message["buttons"]} >= {'/inform{"service":"khai_sinh"}'}


def test_fee_question_answers_from_the_catalogue(catalogue: Catalogue) -> None:
    (message,), events = run(
        ActionAnswerProcedure(),
        tracker("đổi bằng lái bao nhiêu tiền", "ask_fee", [service("gplx_doi")]),
    )
    assert catalogue.service("gplx_doi").fee.text in message["text"]
    assert events == [SlotSet("service", "gplx_doi"), SlotSet("pending_question", None)]


def test_question_without_service_is_remembered_until_the_service_comes(
    catalogue: Catalogue,
) -> None:
    (message,), events = run(ActionAnswerProcedure(), tracker("cần giấy tờ gì", "ask_requirements"))
    assert "thủ tục nào cần chuẩn bị giấy tờ gì" in message["text"] and message["buttons"]
    assert events == [SlotSet("pending_question", "requirements")]

    follow = tracker(
        "khai sinh", "inform", [service("khai_sinh")], {"pending_question": "requirements"}
    )
    (message,), events = run(ActionAnswerProcedure(), follow)
    assert message["text"].startswith("Hồ sơ khai sinh cần:")
    assert catalogue.service("khai_sinh").documents[0] in message["text"]
    assert SlotSet("pending_question", None) in events


def test_follow_up_question_reuses_the_service_in_the_slot(catalogue: Catalogue) -> None:
    (message,), _ = run(
        ActionAnswerProcedure(),
        tracker("mất mấy ngày", "ask_processing_time", slots={"service": "khai_tu"}),
    )
    assert catalogue.service("khai_tu").processing_time.text in message["text"]


def test_request_service_gives_an_overview(catalogue: Catalogue) -> None:
    (message,), _ = run(
        ActionAnswerProcedure(),
        tracker("gia hạn tạm trú", "request_service", [service("tam_tru_gia_han")]),
    )
    svc = catalogue.service("tam_tru_gia_han")
    assert all(part in message["text"] for part in (svc.name, svc.fee.text, svc.agency))


def test_personal_values_from_an_unidentified_sender_get_no_data() -> None:
    cccd = {"entity": "cccd", "value": "066190001234", "start": 0, "end": 12}
    (message,), events = run(ActionAnswerProcedure(), tracker("066190001234", "inform", [cccd]))
    assert "xác thực danh tính" in message["text"] and events == []


def test_first_miss_offers_top_intents_second_miss_offers_an_officer() -> None:
    ranking = [
        {"name": "nlu_fallback"},
        {"name": "ask_fee"},
        {"name": "out_of_scope"},
        {"name": "ask_requirements"},
    ]
    (message,), _ = run(ActionClarify(), tracker("xyz", "nlu_fallback", ranking=ranking))
    assert message["text"].startswith("Xin lỗi, tôi chưa chắc")
    assert [b["payload"] for b in message["buttons"]] == ["/ask_fee", "/ask_requirements", "/help"]

    history = [
        {"event": "user", "text": "xyz"},
        {"event": "action", "name": "action_clarify"},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": "abc"},
    ]
    (message,), _ = run(
        ActionClarify(), tracker("abc", "nlu_fallback", events=history, ranking=ranking)
    )
    assert "gặp cán bộ" in message["text"]
    assert message["buttons"][0]["payload"] == "/request_human"
