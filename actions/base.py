"""What every action that touches citizen data shares: the sender, the identity, failures.

Identity comes from the stored channel binding of (channel, sender id), never from a slot, an
entity or metadata a sender can set: the channel is the conversation id's prefix, which only
the connector that authenticated the sender can produce, and verified facts (a phone number)
come only from that connector's sealed envelope (`bot.identity.speaker`). Any error ends with a
friendly message and an id operators can grep for.
"""

from __future__ import annotations

import abc
import logging
import uuid
from typing import Any, ClassVar

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from bot.catalogue.model import Catalogue, get_catalogue
from bot.core.db import unit_of_work
from bot.core.models import Citizen
from bot.delivery.channel_state import native_id
from bot.identity.linking import bound_citizen, link_by_verified_phone
from bot.identity.speaker import VERIFIED_PHONE, channel_of, verified_facts

log = logging.getLogger(__name__)

ERROR_TEXT = (
    "Xin lỗi Ông/Bà, hệ thống đang gặp sự cố nên chưa xử lý được yêu cầu. Dữ liệu của Ông/Bà "
    "không bị mất; Ông/Bà vui lòng thử lại sau ít phút. Mã sự cố: {ref}."
)
NEED_LINK_TEXT = (
    "Để bảo vệ thông tin cá nhân, tôi chỉ cho xem hồ sơ, lịch nhắc và dữ liệu của Ông/Bà sau "
    "khi xác thực danh tính. Ông/Bà vui lòng nhập số định danh cá nhân (12 số trên thẻ căn "
    "cước) để nhận mã xác thực qua tin nhắn."
)


def sender_of(tracker: Tracker) -> tuple[str, str]:
    """(channel, sender id): the key of the channel binding (`bot.identity.speaker.channel_of`)."""
    return channel_of(tracker.sender_id), tracker.sender_id


def verified_phone(tracker: Tracker) -> str | None:
    """The phone number the sender's own connector proved for this message, if any."""
    metadata = tracker.latest_message.get("metadata")
    return verified_facts(metadata, tracker.sender_id).get(VERIFIED_PHONE)


def sms_phone(tracker: Tracker) -> str | None:
    """The number an SMS conversation belongs to: sealed by the SMS connector for a message the
    carrier brought, or, for a turn our own services triggered (`EXTERNAL_` intents need the
    Rasa API token), the registry phone they addressed as `sms:<phone>`. No one else can open
    an `sms:` conversation (docs/security.md)."""
    intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
    if intent.startswith("EXTERNAL_"):
        return native_id(tracker.sender_id)
    return verified_phone(tracker)


def entity(tracker: Tracker, name: str) -> str | None:
    return next(
        (
            str(e["value"])
            for e in tracker.latest_message.get("entities", [])
            if e["entity"] == name
        ),
        None,
    )


# `awaiting` while the citizen is answering a reminder: AWAITING_REMINDER + the reminder's id.
AWAITING_REMINDER = "reminder:"


def service_in_context(tracker: Tracker) -> str | None:
    """The service a message without a name means: the one of the reminder the citizen is
    answering, else the one talked about last ("còn lệ phí?")."""
    if (tracker.get_slot("awaiting") or "").startswith(AWAITING_REMINDER):
        return tracker.get_slot("reminder_service") or tracker.get_slot("service")
    return tracker.get_slot("service")


class Named:
    """Rasa asks every action its name; each class states it once, as `action_name`."""

    action_name: ClassVar[str]

    def name(self) -> str:
        return self.action_name


class CitizenAction(Named, Action, abc.ABC):
    """Runs `handle` in one unit of work with the bound citizen (None when anonymous)."""

    requires_identity = True

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = sender_of(tracker)
        try:
            with unit_of_work() as session:
                citizen = bound_citizen(session, channel, sender_id)
                phone = sms_phone(tracker) if channel == "sms" else None
                if citizen is None and phone:
                    # The carrier authenticates the sending number: an SMS from the registry
                    # phone proves possession just as a one-time code to that phone does.
                    citizen = link_by_verified_phone(session, channel, sender_id, phone)
                if citizen is None and self.requires_identity:
                    dispatcher.utter_message(text=NEED_LINK_TEXT, buttons=link_buttons(channel))
                    return []
                return self.handle(dispatcher, tracker, session, citizen, get_catalogue())
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("action %s failed (ref %s)", self.name(), ref)
            intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
            if intent.startswith("EXTERNAL_"):
                # A reminder or notice turn: fail it (HTTP 500 to the Rasa server, which fails
                # the trigger) so the delivery pipeline retries, instead of counting as sent.
                raise
            dispatcher.utter_message(text=ERROR_TEXT.format(ref=ref))
            return []

    @abc.abstractmethod
    def handle(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        session: Session,
        citizen: Citizen | None,
        catalogue: Catalogue,
    ) -> list[dict[str, Any]]:
        """The action's work inside the transaction."""


def link_buttons(channel: str) -> list[dict[str, str]]:
    """On Telegram the citizen can share their own phone instead of typing a code."""
    if channel == "telegram":
        return [{"title": "Chia sẻ số điện thoại của tôi", "payload": "/share_contact"}]
    return []
