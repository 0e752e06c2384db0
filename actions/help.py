"""Help menu action."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import Named
from bot.catalogue.help import help_text
from bot.catalogue.model import get_catalogue
from bot.catalogue.procedures import service_buttons


class ActionHelp(Named, Action):
    action_name = "action_help"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        catalogue = get_catalogue()
        dispatcher.utter_message(text=help_text(catalogue), buttons=service_buttons(catalogue))
        return []
