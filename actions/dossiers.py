"""Pre-filled dossiers: prepare, ask what is missing (form), consent, submit, appointment."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from actions.base import CitizenAction, Named, entity, sender_of, service_in_context
from actions.payments import show_request
from actions.procedures import ActionAnswerProcedure
from bot.catalogue.fields import FieldError, prompt_of
from bot.catalogue.model import Catalogue, get_catalogue
from bot.catalogue.procedures import answer, service_buttons, which_service_prompt
from bot.core.clock import today, utcnow
from bot.core.db import unit_of_work
from bot.core.models import Citizen, DossierDraft
from bot.dossiers.drafts import (
    abandon,
    find_field_to_correct,
    missing_fields,
    open_draft,
    set_value,
    start_draft,
    summary,
)
from bot.dossiers.gateway import GatewayError
from bot.dossiers.messages import (
    RATING_QUESTION,
    consent_buttons,
    consent_question,
    rating_buttons,
    slot_label,
    submitted_text,
)
from bot.dossiers.submission import own_dossier, submit_draft
from bot.dossiers.workdays import appointment_slots
from bot.identity.family import child_of, may_act_for, parent_files
from bot.identity.linking import bound_citizen
from bot.reminders.due import due_sentence, service_due
from bot.service.replies import Reply, read_reply
from bot.service.satisfaction import survey_after
from connectors.dossier_gateway import gateway_from_env
from connectors.payment_platform import payment_platform_from_env

FORM_RESET = [SlotSet("field_value", None), SlotSet("confirmation", None)]
GATEWAY_DOWN = (
    "Hệ thống tiếp nhận hồ sơ của tỉnh đang bận nên chưa nộp được. Thông tin Ông/Bà đã xác "
    "nhận vẫn được giữ; Ông/Bà trả lời “đồng ý nộp” sau ít phút để thử lại."
)
NOT_ONE_OF_YOUR_CHILDREN = (
    "Hệ thống không tìm thấy người con này trong dữ liệu dân cư gắn với Ông/Bà (chỉ con dưới 18 "
    "tuổi có tên cha, mẹ hoặc người giám hộ là Ông/Bà), nên không chuẩn bị được hồ sơ thay."
)

# A button's choice of a child: the child's row id, resolved only against the linked parent's
# own minor children (`bot.identity.family.child_of`), never an ID number.
CHILD = "child"


def child_payload(service_code: str, child_id: int) -> str:
    """The button that prepares `service_code` for one of the parent's children."""
    entities = {"service": service_code, CHILD: str(child_id)}
    return "/request_service" + json.dumps(entities, separators=(",", ":"))


def chosen_child(tracker: Tracker) -> int | None:
    """The child a button chose, if any. Rasa drops payload entities its model's domain does
    not declare, so the payload's own JSON is read too (the text of a button message is its
    payload); either way the value is only a key to look up among the sender's children."""
    value = entity(tracker, CHILD)
    text = tracker.latest_message.get("text") or ""
    if value is None and text.startswith("/") and "{" in text:
        try:
            entities = json.loads(text[text.index("{") :])
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            entities = None
        if isinstance(entities, dict):
            value = str(entities.get(CHILD) or "") or None
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def prepare(
    dispatcher: CollectingDispatcher,
    session: Session,
    citizen: Citizen,
    catalogue: Catalogue,
    service_code: str,
    channel: str,
    sender_id: str,
    child: Citizen | None = None,
) -> list[dict[str, Any]]:
    """Start a pre-filled draft and hand over to the form; level 1 and 4 only explain.
    With `child` (resolved by `child_of`), the draft is the child's, filled from the child's
    data, and the parent consents for the child."""
    service = catalogue.service(service_code)
    if service.level == 1:
        dispatcher.utter_message(text=answer(service, "overview"))
        return [SlotSet("service", service_code)]
    if service.level == 4:
        dispatcher.utter_message(
            text=f"Thủ tục {service.short_name} được thực hiện tự động từ dữ liệu liên thông "
            "ngay khi hồ sơ liên quan được giải quyết; Ông/Bà không cần nộp hồ sơ riêng."
        )
        return [SlotSet("service", service_code)]
    draft = start_draft(session, catalogue, child or citizen, service_code, channel, sender_id)
    missing = missing_fields(service, draft)
    intro = "Hệ thống đã điền sẵn hồ sơ từ dữ liệu của Ông/Bà."
    if child is not None:
        intro = (
            f"Hệ thống đã điền sẵn hồ sơ của con {child.full_name} từ dữ liệu dân cư; Ông/Bà "
            "nộp thay cho con."
        )
    if missing:
        intro += f" Còn {len(missing)} thông tin cần Ông/Bà bổ sung."
    dispatcher.utter_message(text=intro)
    return [
        SlotSet("service", service_code),
        SlotSet("editing_field", None),
        *FORM_RESET,
        FollowupAction("dossier_form"),
    ]


class ActionRequestService(CitizenAction):
    """A citizen who wants a procedure: linked → pre-filled draft; anonymous → guidance."""

    requires_identity = False

    action_name = "action_request_service"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        if tracker.get_slot("pending_question") not in (None, "overview"):
            # "cần giấy tờ gì?" … "khai sinh": a bare name answers the question still pending.
            return ActionAnswerProcedure().run(dispatcher, tracker, {})
        code = entity(tracker, "service") or service_in_context(tracker)
        if code not in catalogue.codes:
            dispatcher.utter_message(
                text=which_service_prompt("overview"), buttons=service_buttons(catalogue)
            )
            return [SlotSet("pending_question", "overview")]
        if citizen is None:
            dispatcher.utter_message(text=answer(catalogue.service(code), "overview"))
            dispatcher.utter_message(
                text="Để hệ thống điền sẵn và nộp hồ sơ giúp Ông/Bà, Ông/Bà vui lòng xác thực "
                "danh tính: nhập số định danh cá nhân (12 số trên thẻ căn cước)."
            )
            return [SlotSet("service", code)]
        child_id = chosen_child(tracker)
        if child_id is not None:
            return self._for_child(dispatcher, tracker, session, citizen, catalogue, code, child_id)
        held = service_due(session, catalogue, citizen, code, today())
        if held is not None:
            # "Bằng lái sắp hết hạn, cần đổi": the deadline first, then the prepared draft.
            dispatcher.utter_message(text=due_sentence(held, today()))
        channel, sender_id = sender_of(tracker)
        return prepare(dispatcher, session, citizen, catalogue, code, channel, sender_id)

    def _for_child(self, dispatcher, tracker, session, citizen, catalogue, code, child_id):
        """A button of list_due for one of the parent's children (never an ID number)."""
        child = child_of(session, citizen, child_id, today())
        if child is None:
            dispatcher.utter_message(text=NOT_ONE_OF_YOUR_CHILDREN)
            return []
        service = catalogue.service(code)
        if not parent_files(service):
            dispatcher.utter_message(
                text=f"Thủ tục {service.short_name} chưa nộp thay cho con qua trợ lý được; "
                f"Ông/Bà vui lòng liên hệ {service.agency}."
            )
            return [SlotSet("service", code)]
        held = service_due(session, catalogue, child, code, today())
        if held is not None:
            dispatcher.utter_message(
                text=due_sentence(held, today(), whose=f"con {child.full_name}")
            )
        channel, sender_id = sender_of(tracker)
        return prepare(dispatcher, session, citizen, catalogue, code, channel, sender_id, child)


def _draft_for(session: Session, tracker: Tracker) -> DossierDraft | None:
    channel, sender_id = sender_of(tracker)
    return open_draft(session, channel, sender_id)


def _current_field(catalogue: Catalogue, draft: DossierDraft, editing: str | None):
    service = catalogue.service(draft.service_code)
    if editing:
        return next((f for f in service.fields if f.key == editing), None)
    missing = missing_fields(service, draft)
    return missing[0] if missing else None


class ValidateDossierForm(Named, FormValidationAction):
    action_name = "validate_dossier_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        with unit_of_work() as session:
            draft = _draft_for(session, tracker)
            if draft is None:
                return []
            field = _current_field(get_catalogue(), draft, tracker.get_slot("editing_field"))
        return ["field_value"] if field is not None else ["confirmation"]

    def validate_field_value(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        catalogue = get_catalogue()
        with unit_of_work() as session:
            draft = _draft_for(session, tracker)
            if draft is None:
                return {"field_value": None}
            field = _current_field(catalogue, draft, tracker.get_slot("editing_field"))
            if field is None:
                return {"field_value": None}
            try:
                set_value(
                    catalogue.service(draft.service_code), draft, field.key, str(value), today()
                )
            except FieldError as error:
                dispatcher.utter_message(text=str(error))
                return {"field_value": None}
        return {"field_value": None, "editing_field": None, "confirmation": None}

    def validate_confirmation(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reply = read_reply(str(value), tracker.latest_message.get("intent", {}).get("name"))
        if reply is Reply.YES:
            return {"confirmation": "yes"}
        if reply is Reply.NO:
            return {"confirmation": "no"}
        if reply is Reply.SELF_SERVICE:
            return {"confirmation": "self"}
        if reply is Reply.CORRECT:
            with unit_of_work() as session:
                draft = _draft_for(session, tracker)
                service = get_catalogue().service(draft.service_code) if draft else None
            if service is None:
                return {"confirmation": "no"}
            target = find_field_to_correct(service, str(value))
            if target.field is None:
                labels = ", ".join(f.label.lower() for f in service.fields)
                dispatcher.utter_message(text=f"Ông/Bà muốn sửa thông tin nào? ({labels})")
            elif target.locked:
                dispatcher.utter_message(
                    text=f"{target.field.label} lấy từ Cơ sở dữ liệu quốc gia về dân cư; muốn "
                    "điều chỉnh, Ông/Bà vui lòng liên hệ Công an cấp xã nơi cư trú."
                )
            else:
                return {"confirmation": None, "editing_field": target.field.key}
            return {"confirmation": None}
        dispatcher.utter_message(
            text="Xin Ông/Bà trả lời 1 để đồng ý, 2 để hủy, hoặc gõ “sửa …” để sửa một thông tin."
        )
        return {"confirmation": None}


class ActionAskFieldValue(CitizenAction):
    action_name = "action_ask_field_value"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        draft = _draft_for(session, tracker)
        field = draft and _current_field(catalogue, draft, tracker.get_slot("editing_field"))
        if field is None:
            return []
        text = prompt_of(field)
        if tracker.get_slot("editing_field"):
            text = f"Xin Ông/Bà nhập {field.label[0].lower() + field.label[1:]} mới."
        buttons = [
            {"title": f"{i}. {o}", "payload": str(i)} for i, o in enumerate(field.options, 1)
        ]
        dispatcher.utter_message(text=text, buttons=buttons)
        return []


class ActionAskConfirmation(CitizenAction):
    action_name = "action_ask_confirmation"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        draft = _draft_for(session, tracker)
        if draft is None:
            return []
        service = catalogue.service(draft.service_code)
        dispatcher.utter_message(text=summary(service, draft))
        question = consent_question(service)
        if draft.citizen_id != citizen.id:
            child = session.get(Citizen, draft.citizen_id)
            question = f"Ông/Bà nộp hồ sơ này thay cho con {child.full_name}. {question}"
        dispatcher.utter_message(text=question, buttons=consent_buttons())
        return []


def submit_and_report(
    dispatcher: CollectingDispatcher,
    session: Session,
    catalogue: Catalogue,
    draft: DossierDraft,
) -> list[dict[str, Any]]:
    """Submit the draft (once), tell the citizen the code, then appointment or rating.
    The consent is given by whoever this conversation is linked to: a parent, for a child's
    draft (`submit_draft(filed_by=…)`)."""
    service = catalogue.service(draft.service_code)
    filer = bound_citizen(session, draft.channel, draft.channel_user_id)
    try:
        with session.begin_nested():
            result = submit_draft(
                session,
                catalogue,
                draft,
                gateway_from_env(),
                shown=summary(service, draft),
                platform=payment_platform_from_env(),
                filed_by=filer.id if filer is not None else None,
            )
    except GatewayError:
        dispatcher.utter_message(text=GATEWAY_DOWN)
        return [SlotSet("awaiting", "submit")]
    joined = [(catalogue.service(d.service_code).name, d.code) for d in result.joined]
    dispatcher.utter_message(text=submitted_text(service, result.dossier, joined))
    if result.payment is not None:
        show_request(dispatcher, draft.channel, service, result.payment)
    events: list[dict[str, Any]] = [
        SlotSet("last_dossier", result.dossier.code),
        SlotSet("awaiting", None),
        SlotSet("editing_field", None),
    ]
    if service.level == 2:
        return [*events, SlotSet("appointment", None), FollowupAction("appointment_form")]
    if survey_after() == "submission":
        dispatcher.utter_message(text=RATING_QUESTION, buttons=rating_buttons())
    return events


class ActionFinishDossier(CitizenAction):
    """After the form: submit on consent, drop the draft on refusal, guide a self-service filer."""

    action_name = "action_finish_dossier"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        draft = _draft_for(session, tracker)
        choice = tracker.get_slot("confirmation")
        if draft is None or not may_act_for(session, citizen, draft.citizen_id, today()):
            dispatcher.utter_message(text="Không còn hồ sơ nháp nào đang chờ xác nhận.")
            return FORM_RESET
        service = catalogue.service(draft.service_code)
        if choice == "yes":
            return [*FORM_RESET, *submit_and_report(dispatcher, session, catalogue, draft)]
        abandon(draft)
        if choice == "self":
            dispatcher.utter_message(
                text=f"Ông/Bà có thể tự khai hồ sơ {service.short_name} trên Cổng Dịch vụ công "
                "quốc gia (dichvucong.gov.vn) hoặc tại bộ phận một cửa.\n"
                + answer(service, "requirements")
            )
        else:
            dispatcher.utter_message(
                text="Đã hủy hồ sơ nháp. Khi cần, Ông/Bà chỉ cần nhắn tên thủ tục để làm lại."
            )
        return FORM_RESET


class ValidateAppointmentForm(Named, FormValidationAction):
    action_name = "validate_appointment_form"

    def validate_appointment(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        slots = appointment_slots(utcnow())
        text = str(value).strip()
        if text.isdigit() and 1 <= int(text) <= len(slots):
            return {"appointment": slots[int(text) - 1].isoformat()}
        if read_reply(text) is Reply.NO or text == str(len(slots) + 1):
            return {"appointment": "none"}
        dispatcher.utter_message(text="Xin Ông/Bà chọn số thứ tự của lịch hẹn trong danh sách.")
        return {"appointment": None}


class ActionAskAppointment(CitizenAction):
    action_name = "action_ask_appointment"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        slots = appointment_slots(utcnow())
        buttons = [
            {"title": f"{i}. {slot_label(s)}", "payload": str(i)} for i, s in enumerate(slots, 1)
        ]
        buttons.append({"title": f"{len(slots) + 1}. Không cần hẹn", "payload": "không cần"})
        dispatcher.utter_message(
            text="Ông/Bà có muốn đặt lịch hẹn để không phải chờ? Xin chọn một khung giờ:",
            buttons=buttons,
        )
        return []


class ActionFinishAppointment(CitizenAction):
    action_name = "action_finish_appointment"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        chosen, code = tracker.get_slot("appointment"), tracker.get_slot("last_dossier")
        dossier = own_dossier(session, citizen.id, code) if code else None
        if chosen and chosen != "none" and dossier is not None:
            dossier.fields = {**dossier.fields, "appointment": chosen}
            label = slot_label(dt.datetime.fromisoformat(chosen))
            dispatcher.utter_message(text=f"Đã đặt lịch hẹn lúc {label} cho hồ sơ {code}.")
        else:
            dispatcher.utter_message(text="Dạ, Ông/Bà có thể đến trong giờ hành chính.")
        if survey_after() == "submission":
            dispatcher.utter_message(text=RATING_QUESTION, buttons=rating_buttons())
        return []
