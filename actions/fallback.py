"""Two-stage fallback for messages the model is not confident about."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import entity
from actions.conversation import ActionInform
from bot.fallback import clarify

# A message that is only a value the regex extractors recognised (a one-time code, an ID
# number, a dossier code) means what `inform` means, however unsure the classifier is about
# six bare digits: under load a code typed after "nhập mã" must not get "did you mean…?".
BARE_VALUE = re.compile(r"\s*(\d{6}|\d{12}|[A-Za-z]{2,4}-\d{6}-\d{5})\s*[.!]?\s*")
VALUE_ENTITIES = ("otp", "cccd", "dossier_code")


def _previous_bot_action(tracker: Tracker) -> str | None:
    """The last action run before the current user message (ignoring action_listen)."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return None
            seen_user = True
        elif seen_user and event.get("event") == "action" and event.get("name") != "action_listen":
            return event.get("name")
    return None


class ActionClarify(Action):
    def name(self) -> str:
        return "action_clarify"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text = tracker.latest_message.get("text") or ""
        if BARE_VALUE.fullmatch(text) and any(entity(tracker, e) for e in VALUE_ENTITIES):
            return ActionInform().run(dispatcher, tracker, domain)
        ranking = tracker.latest_message.get("intent_ranking", [])
        second_miss = _previous_bot_action(tracker) == self.name()
        reply = clarify(ranking, second_miss)
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons)
        return []
