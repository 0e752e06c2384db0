"""Procedure questions answered from the catalogue (documents, fee, processing time)."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import NEED_LINK_TEXT, Named, service_in_context
from bot.catalogue.model import get_catalogue
from bot.catalogue.procedures import TOPIC_OF_INTENT, answer, service_buttons, which_service_prompt

PERSONAL_ENTITIES = {"cccd", "phone", "otp", "dossier_code"}


class ActionAnswerProcedure(Named, Action):
    """Handles ask_requirements, ask_fee, ask_processing_time, request_service and inform.

    A question without a service remembers its topic in `pending_question`, so the next
    message naming a service ("khai sinh") gets that answer.
    """

    action_name = "action_answer_procedure"

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = tracker.latest_message.get("intent", {}).get("name")
        entities = tracker.latest_message.get("entities", [])
        mentioned = next((e["value"] for e in entities if e["entity"] == "service"), None)
        if intent == "inform" and mentioned is None:
            if any(e["entity"] in PERSONAL_ENTITIES for e in entities):
                dispatcher.utter_message(text=NEED_LINK_TEXT)
            else:
                dispatcher.utter_message(response="utter_default")
            return []
        pending = tracker.get_slot("pending_question")
        topic = TOPIC_OF_INTENT.get(intent) or pending or "overview"
        catalogue = get_catalogue()
        # A follow-up question ("còn lệ phí?") keeps the service talked about last.
        code = mentioned or (service_in_context(tracker) if intent in TOPIC_OF_INTENT else None)
        if code is None or code not in catalogue.codes:
            dispatcher.utter_message(
                text=which_service_prompt(topic), buttons=service_buttons(catalogue)
            )
            return [SlotSet("pending_question", topic)]
        dispatcher.utter_message(text=answer(catalogue.service(code), topic))
        return [SlotSet("service", code), SlotSet("pending_question", None)]
