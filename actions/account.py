"""The linked citizen's own things: dossiers and status, due dates, reminder preferences."""

from __future__ import annotations

import re

from rasa_sdk.events import SlotSet

from actions.base import (
    AWAITING_REMINDER,
    NEED_LINK_TEXT,
    CitizenAction,
    entity,
    link_buttons,
    sender_of,
)
from actions.dossiers import child_payload
from actions.identity import unlinked_on_request
from bot.core.clock import today, utcnow
from bot.core.lifecycles import DOSSIER_CANCELLABLE, DossierStatus
from bot.dossiers.lookup import LOOKUP_HINT, LookupLimits, last_four_in, lookup_by_code
from bot.dossiers.messages import RATING_QUESTION, dossier_line, rating_buttons, timeline_text
from bot.dossiers.notices import status_text
from bot.dossiers.submission import cancel, dossiers_of, own_dossier
from bot.identity.family import parent_files
from bot.reminders.due import (
    due_sentence,
    dues_of_citizen,
    dues_of_family,
    family_due_text,
    service_due,
)
from bot.reminders.preferences import postpone, postpone_until, stop
from bot.service.satisfaction import survey_after
from bot.vietnamese.vn import fold, format_date

NOT_FOUND = (
    "Không tìm thấy hồ sơ mã {code} trong các hồ sơ của Ông/Bà. Ông/Bà kiểm tra lại mã "
    "(dạng DLK-261120-00042) hoặc gõ “hồ sơ của tôi” để xem danh sách."
)


def _service_name(catalogue, code: str) -> str:
    return catalogue.service(code).name if code in catalogue.codes else code


class ActionCheckStatus(CitizenAction):
    """A linked citizen's own dossiers; an unlinked sender may look one dossier up by its code
    and the last four digits of the applicant's phone or ID number (`bot.dossiers.lookup`)."""

    requires_identity = False

    action_name = "action_check_status"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        code = entity(tracker, "dossier_code")
        if citizen is None:
            channel, sender_id = sender_of(tracker)
            if not code:
                dispatcher.utter_message(
                    text=f"{NEED_LINK_TEXT} {LOOKUP_HINT}", buttons=link_buttons(channel)
                )
                return []
            digits = last_four_in(tracker.latest_message.get("text") or "")
            answer = lookup_by_code(
                session, code, digits, sender_id, utcnow(), LookupLimits.from_env(), catalogue
            )
            dispatcher.utter_message(text=answer.text)
            return []
        if code:
            dossier = own_dossier(session, citizen.id, code)
            if dossier is None:
                dispatcher.utter_message(text=NOT_FOUND.format(code=code.upper()))
            else:
                name = _service_name(catalogue, dossier.service_code)
                dispatcher.utter_message(text=timeline_text(dossier, name))
            return []
        dossiers = dossiers_of(session, citizen.id)
        if not dossiers:
            dispatcher.utter_message(text="Ông/Bà chưa có hồ sơ nào nộp qua hệ thống.")
            return []
        lines = [dossier_line(d, _service_name(catalogue, d.service_code)) for d in dossiers]
        dispatcher.utter_message(
            text="Hồ sơ của Ông/Bà:\n" + "\n".join(lines) + "\nGõ mã hồ sơ để xem chi tiết."
        )
        return []


class ActionCancelDossier(CitizenAction):
    """Withdraws a dossier before processing starts; "hủy liên kết" unlinks the channel."""

    action_name = "action_cancel_dossier"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        if unlinked_on_request(dispatcher, tracker, session):
            return []
        code = entity(tracker, "dossier_code")
        if not code:
            candidates = [
                d for d in dossiers_of(session, citizen.id) if d.status in DOSSIER_CANCELLABLE
            ]
            if not candidates:
                dispatcher.utter_message(text="Ông/Bà không có hồ sơ nào còn hủy được.")
                return []
            dispatcher.utter_message(
                text="Ông/Bà muốn hủy hồ sơ nào?",
                buttons=[
                    {"title": d.code, "payload": f'/cancel_dossier{{"dossier_code":"{d.code}"}}'}
                    for d in candidates
                ],
            )
            return []
        dossier = own_dossier(session, citizen.id, code)
        if dossier is None:
            dispatcher.utter_message(text=NOT_FOUND.format(code=code.upper()))
        elif cancel(session, dossier):
            dispatcher.utter_message(text=f"Đã hủy hồ sơ {dossier.code}.")
        else:
            dispatcher.utter_message(
                text=f"Hồ sơ {dossier.code} đã được cán bộ xử lý nên không hủy trực tuyến được. "
                "Ông/Bà vui lòng liên hệ bộ phận một cửa."
            )
        return []


# `awaiting` after a due date with an offer to prepare that service's dossier.
OFFER = "offer:"
OFFER_DECLINED = "Dạ. Khi cần, Ông/Bà chỉ cần nhắn tên thủ tục để hệ thống chuẩn bị hồ sơ."


class ActionListDue(CitizenAction):
    action_name = "action_list_due"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        named = entity(tracker, "service")
        if named in catalogue.codes:
            return self._one_service(dispatcher, session, citizen, catalogue, named)
        items = dues_of_citizen(session, catalogue, citizen, today())
        family = dues_of_family(session, catalogue, citizen, today())
        # The soonest deadlines get the (at most 5) buttons: own items, and the children's
        # that a parent files for them, each child named by an opaque id (`child_payload`).
        offers = [
            (i.due.deadline, f"Làm hồ sơ {i.service.short_name}", i.service.code, None)
            for i in items
            if i.service.level in (2, 3)
        ] + [
            (
                i.due.deadline,
                f"Làm hồ sơ {i.service.short_name} cho con {entry.child.full_name.split()[-1]}",
                i.service.code,
                entry.child.id,
            )
            for entry in family
            for i in entry.items
            if parent_files(i.service)
        ]
        buttons = [
            {
                "title": title,
                "payload": f'/request_service{{"service":"{code}"}}'
                if child_id is None
                else child_payload(code, child_id),
            }
            for _, title, code, child_id in sorted(offers, key=lambda offer: offer[0])[:5]
        ]
        dispatcher.utter_message(text=family_due_text(items, family), buttons=buttons)
        return []

    def _one_service(self, dispatcher, session, citizen, catalogue, code):
        """Answers "when does my passport expire?" with that deadline and offers to prepare it."""
        service = catalogue.service(code)
        item = service_due(session, catalogue, citizen, code, today())
        if item is None:
            text = (
                f"Hệ thống chưa có dữ liệu về hạn {service.short_name} của Ông/Bà, nên chưa "
                "có nhắc hạn nào cho thủ tục này."
            )
        else:
            text = due_sentence(item, today())
        if service.level not in (2, 3):
            dispatcher.utter_message(text=text)
            return [SlotSet("service", code), SlotSet("awaiting", None)]
        dispatcher.utter_message(
            text=f"{text} Ông/Bà có muốn hệ thống chuẩn bị sẵn hồ sơ {service.short_name} không?",
            buttons=[
                {"title": "Chuẩn bị hồ sơ", "payload": f'/request_service{{"service":"{code}"}}'},
                {"title": "Để sau", "payload": "/deny"},
            ],
        )
        return [SlotSet("service", code), SlotSet("awaiting", f"{OFFER}{code}")]


def _days_in(text: str) -> int | None:
    match = re.search(r"(\d{1,3})\s*(ngay|tuan|thang)", fold(text))
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return number * {"ngay": 1, "tuan": 7, "thang": 30}[unit]


def _reminder_service(tracker) -> str | None:
    awaiting = tracker.get_slot("awaiting") or ""
    return entity(tracker, "service") or (
        tracker.get_slot("reminder_service") if awaiting.startswith(AWAITING_REMINDER) else None
    )


class ActionPostponeReminder(CitizenAction):
    action_name = "action_postpone_reminder"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        service_code = _reminder_service(tracker)
        text = tracker.latest_message.get("text") or ""
        until = postpone_until(today(), entity(tracker, "date"), _days_in(text))
        postpone(session, citizen.id, service_code, until)
        what = _service_name(catalogue, service_code).lower() if service_code else "mọi thủ tục"
        dispatcher.utter_message(
            text=f"Dạ, hệ thống sẽ nhắc lại Ông/Bà về {what} từ ngày {format_date(until)}."
        )
        return [SlotSet("awaiting", None)]


class ActionStopReminders(CitizenAction):
    action_name = "action_stop_reminders"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        service_code = entity(tracker, "service")
        stop(session, citizen.id, service_code)
        what = f"về {_service_name(catalogue, service_code).lower()}" if service_code else "nào nữa"
        dispatcher.utter_message(
            text=f"Dạ, hệ thống sẽ không gửi nhắc hạn {what}. Ông/Bà vẫn có thể hỏi “giấy tờ "
            "sắp hết hạn” bất cứ lúc nào."
        )
        return [SlotSet("awaiting", None)]


class ActionDossierStatus(CitizenAction):
    """EXTERNAL_dossier_status: an officer changed a dossier; tell its owner (and survey)."""

    action_name = "action_dossier_status"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        code = entity(tracker, "dossier_code")
        dossier = own_dossier(session, citizen.id, code) if code else None
        if dossier is None:
            return []
        last = dossier.history[-1] if dossier.history else None
        dispatcher.utter_message(text=status_text(dossier.code, dossier.status, last and last.note))
        if dossier.status == DossierStatus.COMPLETED and survey_after() == "completion":
            dispatcher.utter_message(text=RATING_QUESTION, buttons=rating_buttons())
        return [SlotSet("last_dossier", dossier.code), SlotSet("service", dossier.service_code)]
