"""What every action that touches citizen data shares: the sender, the identity, failures.

Identity comes from the stored channel binding of (input channel, sender id), never from a
slot or an entity. Any error ends with a friendly message and an id operators can grep for.
"""

from __future__ import annotations

import abc
import datetime as dt
import logging
import uuid
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from bot.catalogue import Catalogue, get_catalogue
from bot.db import unit_of_work
from bot.identity import bound_citizen, link_by_verified_phone
from bot.models import Citizen

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


PREFIXED_CHANNELS = ("zalo", "telegram", "sms")


def sender_of(tracker: Tracker) -> tuple[str, str]:
    """(channel, sender id): the key of the channel binding.

    The channel is the one the last message arrived on. A conversation that only the system
    has spoken in so far (a reminder through `trigger_intent`, which needs the API token) has
    none yet; there the id's prefix (`zalo:…`) names it. Typed messages always carry their
    channel, so a REST client choosing the id `zalo:…` is still `rest`, and unbound.
    """
    channel = tracker.get_latest_input_channel()
    if not channel:
        prefix = tracker.sender_id.split(":", 1)[0]
        channel = prefix if prefix in PREFIXED_CHANNELS else "rest"
    return channel, tracker.sender_id


def entity(tracker: Tracker, name: str) -> str | None:
    return next(
        (
            str(e["value"])
            for e in tracker.latest_message.get("entities", [])
            if e["entity"] == name
        ),
        None,
    )


def today() -> dt.date:
    return dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).date()


class CitizenAction(Action, abc.ABC):
    """Runs `handle` in one unit of work with the bound citizen (None when anonymous)."""

    requires_identity = True

    def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        channel, sender_id = sender_of(tracker)
        try:
            with unit_of_work() as session:
                citizen = bound_citizen(session, channel, sender_id)
                if citizen is None and channel == "sms" and sender_id.startswith("sms:"):
                    # The carrier authenticates the sending number: an SMS from the registry
                    # phone proves possession just as a one-time code to that phone does.
                    citizen = link_by_verified_phone(session, channel, sender_id, sender_id[4:])
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
