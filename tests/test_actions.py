"""Custom actions run with a real Tracker and CollectingDispatcher."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.help import ActionHelp
from bot.catalogue import Catalogue


def tracker(text: str, intent: str) -> Tracker:
    message = {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []}
    return Tracker("test-user", {}, message, [], False, None, {}, "action_listen")


def test_help_lists_the_catalogue_services(catalogue: Catalogue) -> None:
    dispatcher = CollectingDispatcher()
    events = ActionHelp().run(dispatcher, tracker("hướng dẫn", "help"), {})
    assert events == []
    (message,) = dispatcher.messages
    assert message["text"].startswith("Tôi có thông tin về 16 thủ tục")
    assert "gia hạn tạm trú" in message["text"]
