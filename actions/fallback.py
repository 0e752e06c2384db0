"""Two-stage fallback for messages the model is not confident about."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import Named
from bot.service.fallback import clarify


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


class ActionClarify(Named, Action):
    action_name = "action_clarify"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ranking = tracker.latest_message.get("intent_ranking", [])
        second_miss = _previous_bot_action(tracker) == self.name()
        reply = clarify(ranking, second_miss)
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons)
        return []
