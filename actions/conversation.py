"""Turn-level routing: reminders arriving, yes/no replies, ratings, hand-off and erasure."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import AllSlotsReset, ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.account import OFFER, OFFER_DECLINED, ActionCheckStatus, ActionPostponeReminder
from actions.base import AWAITING_REMINDER, CitizenAction, Named, entity, sender_of
from actions.dossiers import prepare, submit_and_report
from actions.identity import ActionLinkAccount
from actions.procedures import ActionAnswerProcedure
from bot.core.clock import today, utcnow
from bot.core.config import var_dir
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Dossier, DossierDraft, Reminder
from bot.dossiers.drafts import abandon, missing_fields, open_draft
from bot.dossiers.messages import RATING_QUESTION, already_submitted_text, rating_buttons
from bot.dossiers.workdays import next_office_opening, officers_available
from bot.governance.erasure import erase_sender, purge_tracker
from bot.reminders.texts import owns_reminder, render_reminder
from bot.service.handoffs import open_handoff
from bot.service.replies import Reply, read_reply
from bot.service.satisfaction import add_comment, parse_rating, record_rating

log = logging.getLogger(__name__)


class ActionInform(Named, Action):
    """A value on its own: a dossier code (alone, or with the last four digits or a whole
    number typed next to it) → status, by code for an unlinked sender; an ID number or a
    one-time code → linking."""

    action_name = "action_inform"

    def run(self, dispatcher, tracker, domain):
        if entity(tracker, "dossier_code") and not entity(tracker, "otp"):
            return ActionCheckStatus().run(dispatcher, tracker, domain)
        if entity(tracker, "cccd") or entity(tracker, "otp"):
            return ActionLinkAccount().run(dispatcher, tracker, domain)
        return ActionAnswerProcedure().run(dispatcher, tracker, domain)


class ActionReminder(CitizenAction):
    """EXTERNAL_reminder: show the reminder in the conversation and wait for 1 / 2."""

    action_name = "action_reminder"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        reminder_id = entity(tracker, "reminder_id")
        reminder = (
            session.get(Reminder, int(reminder_id)) if (reminder_id or "").isdigit() else None
        )
        if reminder is None or not owns_reminder(session, citizen, reminder):
            log.warning("reminder %s is not for this conversation's citizen", reminder_id)
            return []
        dispatcher.utter_message(
            text=render_reminder(session, catalogue, reminder, today()),
            buttons=[
                {"title": "1. Đồng ý", "payload": "/affirm"},
                {"title": "2. Nhắc lại sau", "payload": "/deny"},
            ],
        )
        return [
            SlotSet("awaiting", f"{AWAITING_REMINDER}{reminder.id}"),
            SlotSet("reminder_service", reminder.service_code),
        ]


_RECENT = dt.timedelta(minutes=30)


def _recent_submission(session, citizen_id: int, channel: str, sender_id: str):
    return session.scalar(
        select(Dossier)
        .join(DossierDraft, DossierDraft.dossier_id == Dossier.id)
        .where(
            DossierDraft.channel == channel,
            DossierDraft.channel_user_id == sender_id,
            Dossier.citizen_id == citizen_id,
            DossierDraft.updated_at > utcnow().replace(microsecond=0) - _RECENT,
        )
        .order_by(Dossier.id.desc())
        .limit(1)
    )


class ActionYesNo(CitizenAction):
    """affirm / deny: answers whatever question is pending (slot `awaiting`)."""

    requires_identity = False

    action_name = "action_yes_no"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        intent = tracker.latest_message.get("intent", {}).get("name")
        reply = read_reply(tracker.latest_message.get("text") or "", intent)
        yes = reply is Reply.YES or (reply is Reply.OTHER and intent == "affirm")
        awaiting = tracker.get_slot("awaiting") or ""
        channel, sender_id = sender_of(tracker)
        if awaiting == "erase":
            if yes:
                return erase(dispatcher, tracker, session)
            dispatcher.utter_message(text="Dạ, dữ liệu của Ông/Bà được giữ nguyên.")
            return [SlotSet("awaiting", None)]
        if citizen is not None and awaiting.startswith(AWAITING_REMINDER):
            if not yes:
                return ActionPostponeReminder().handle(
                    dispatcher, tracker, session, citizen, catalogue
                )
            service_code = tracker.get_slot("reminder_service")
            events = prepare(
                dispatcher, session, citizen, catalogue, service_code, channel, sender_id
            )
            return [SlotSet("awaiting", None), *events]
        if citizen is not None and awaiting.startswith(OFFER):
            # "Ông/Bà có muốn hệ thống chuẩn bị sẵn hồ sơ …?" after a due date (list_due).
            if not yes:
                dispatcher.utter_message(text=OFFER_DECLINED)
                return [SlotSet("awaiting", None)]
            code = awaiting.removeprefix(OFFER)
            events = prepare(dispatcher, session, citizen, catalogue, code, channel, sender_id)
            return [SlotSet("awaiting", None), *events]
        if citizen is not None and awaiting == "submit":
            draft = open_draft(session, channel, sender_id)
            if yes and draft and not missing_fields(catalogue.service(draft.service_code), draft):
                return submit_and_report(dispatcher, session, catalogue, draft)
            if draft is not None:
                abandon(draft)
            dispatcher.utter_message(text="Đã hủy hồ sơ nháp.")
            return [SlotSet("awaiting", None)]
        if yes and citizen is not None:
            dossier = _recent_submission(session, citizen.id, channel, sender_id)
            if dossier is not None:
                dispatcher.utter_message(text=already_submitted_text(dossier))
                return []
        dispatcher.utter_message(response="utter_anything_else")
        return []


class ActionRate(CitizenAction):
    requires_identity = False

    action_name = "action_rate"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        rating = parse_rating(entity(tracker, "rating"))
        if rating is None:
            dispatcher.utter_message(text=RATING_QUESTION, buttons=rating_buttons())
            return []
        channel, _ = sender_of(tracker)
        row = record_rating(
            session,
            rating,
            citizen_id=citizen.id if citizen else None,
            dossier_code=tracker.get_slot("last_dossier"),
            service_code=tracker.get_slot("service"),
            channel=channel,
        )
        dispatcher.utter_message(text="Cảm ơn Ông/Bà đã đánh giá chất lượng phục vụ.")
        return [
            SlotSet("rating_id", str(row.id)),
            SlotSet("feedback_comment", None),
            FollowupAction("feedback_form"),
        ]


class ValidateFeedbackForm(Named, FormValidationAction):
    action_name = "validate_feedback_form"

    def validate_feedback_comment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:
            # ActionRate's reset of the slot, seen by the form it activates: not an answer.
            return {"feedback_comment": None}
        text = str(value)
        if read_reply(text) is Reply.NO:
            return {"feedback_comment": "none"}
        rating_id = tracker.get_slot("rating_id")
        if rating_id and rating_id.isdigit():
            with unit_of_work() as session:
                add_comment(session, int(rating_id), text)
        dispatcher.utter_message(text="Cảm ơn góp ý của Ông/Bà; cán bộ sẽ xem xét để cải thiện.")
        return {"feedback_comment": "given"}


class ActionAskFeedbackComment(Named, Action):
    action_name = "action_ask_feedback_comment"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(
            text="Ông/Bà có góp ý gì thêm không? Xin gõ nội dung góp ý, hoặc gõ “không”."
        )
        return []


class ActionHandoff(CitizenAction):
    """Queue the conversation for officers and pause the bot until an officer closes it."""

    requires_identity = False

    action_name = "action_handoff"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        channel, sender_id = sender_of(tracker)
        _, created = open_handoff(
            session,
            sender_id,
            channel,
            citizen.id if citizen else None,
            tracker.latest_message.get("text"),
        )
        now = utcnow()
        if officers_available(now):
            when = "Cán bộ sẽ trả lời Ông/Bà ngay tại đây trong ít phút."
        else:
            opening = next_office_opening(now)
            when = (
                "Hiện ngoài giờ làm việc; cán bộ sẽ trả lời Ông/Bà tại đây từ "
                f"{opening:%H:%M} ngày {opening:%d/%m/%Y}."
            )
        intro = (
            "Tôi đã chuyển yêu cầu của Ông/Bà tới cán bộ."
            if created
            else "Yêu cầu của Ông/Bà đã có trong hàng chờ."
        )
        dispatcher.utter_message(text=f"{intro} {when}")
        return [ConversationPaused()]


class ActionAskErasure(CitizenAction):
    requires_identity = False

    action_name = "action_ask_erasure"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        dispatcher.utter_message(
            text="Ông/Bà có chắc muốn xóa liên kết tài khoản và lịch sử trò chuyện trên kênh "
            "này? Hồ sơ đã nộp, văn bản đồng ý và nhật ký truy cập vẫn được lưu theo quy định "
            "pháp luật. Trả lời 1 để xóa, 2 để giữ lại.",
            buttons=[{"title": "1. Xóa", "payload": "1"}, {"title": "2. Giữ lại", "payload": "2"}],
        )
        return [SlotSet("awaiting", "erase")]


def tracker_db_url() -> str:
    return os.environ.get("TRACKER_DB_URL", f"sqlite:///{var_dir() / 'tracker.db'}")


def _purge_later(sender_id: str) -> None:
    """Rasa stores this turn's events after the action returns: purge after that, twice."""
    up_to = time.time() + 1
    delay = float(os.environ.get("ERASURE_DELAY_SECONDS", "3"))

    def purge() -> None:
        try:
            engine = make_engine(tracker_db_url())
            purge_tracker(engine, sender_id, up_to)
            engine.dispose()
        except Exception:
            log.exception("could not purge the tracker events of an erased conversation")

    for seconds in (delay, delay + 10):
        timer = threading.Timer(seconds, purge)
        timer.daemon = True
        timer.start()


def erase(
    dispatcher: CollectingDispatcher, tracker: Tracker, session: Session
) -> list[dict[str, Any]]:
    """In the action's own unit of work (a second one would wait for the first's lock)."""
    channel, sender_id = sender_of(tracker)
    erase_sender(session, channel, sender_id)
    _purge_later(sender_id)
    dispatcher.utter_message(
        text="Đã xóa liên kết tài khoản và lịch sử trò chuyện của Ông/Bà trên kênh này. Hồ sơ "
        "đã nộp, văn bản đồng ý và nhật ký truy cập được lưu giữ theo quy định pháp luật."
    )
    return [AllSlotsReset()]
