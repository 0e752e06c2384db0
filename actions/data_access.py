""" "Who has used my data?": the linked citizen's data uses, newest first.

Anonymous senders get the link request from `CitizenAction`, whatever the message carries
(an ID number in an entity names nobody: identity comes from the channel binding only).
"""

from __future__ import annotations

from actions.base import CitizenAction
from bot.governance.data_access import CHAT_LIMIT, data_uses, data_uses_text


class ActionShowDataAccess(CitizenAction):
    action_name = "action_show_data_access"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        uses = data_uses(session, citizen.id, CHAT_LIMIT + 1)
        more = len(uses) > CHAT_LIMIT
        dispatcher.utter_message(text=data_uses_text(uses[:CHAT_LIMIT], more=more))
        return []
