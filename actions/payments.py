"""Fees in the conversation: the payment request after submission, and "nộp phí" /
"đã chuyển khoản rồi" / "phí hồ sơ DLK-… bao nhiêu" answered from the dossier's payment."""

from __future__ import annotations

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.base import CitizenAction, entity, sender_of
from bot.catalogue.model import Service
from bot.core.lifecycles import PaymentStatus
from bot.core.models import Payment
from bot.dossiers.submission import own_dossier
from bot.payments.requests import payment_of, payments_of
from bot.payments.settings import PaymentSettings
from bot.payments.texts import (
    ALREADY_TRANSFERRED,
    NOTHING_OWED,
    qr_image,
    request_text,
    sms_request_text,
    state_text,
)


def show_request(
    dispatcher: CollectingDispatcher, channel: str, service: Service, payment: Payment
) -> None:
    """The request as the channel can carry it: the QR picture and text, or one SMS."""
    settings = PaymentSettings.from_env()
    if channel == "sms":
        dispatcher.utter_message(text=sms_request_text(payment, settings))
        return
    dispatcher.utter_message(text=request_text(service, payment, settings))
    dispatcher.utter_message(image=qr_image(payment, settings))


class ActionPayFee(CitizenAction):
    """Only the dossier's owner sees its payment: the dossier is looked up among the bound
    citizen's own (`own_dossier`), and a code of someone else's reads as unknown."""

    action_name = "action_pay_fee"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):
        channel, _ = sender_of(tracker)
        code = entity(tracker, "dossier_code")
        if code:
            dossier = own_dossier(session, citizen.id, code)
            if dossier is None:
                dispatcher.utter_message(
                    text=f"Không tìm thấy hồ sơ {code.upper()} trong các hồ sơ của Ông/Bà. "
                    "Ông/Bà kiểm tra lại mã trên biên nhận giúp tôi."
                )
                return []
            pairs = [(payment_of(session, dossier.id), dossier)]
        else:
            pairs = list(payments_of(session, citizen.id))
        if not pairs:
            dispatcher.utter_message(text=NOTHING_OWED)
            return []
        unpaid = [(p, d) for p, d in pairs if p is not None and p.status == PaymentStatus.REQUESTED]
        for payment, dossier in unpaid[:2]:
            show_request(dispatcher, channel, catalogue.service(dossier.service_code), payment)
        if unpaid:
            dispatcher.utter_message(text=ALREADY_TRANSFERRED)
            return [SlotSet("last_dossier", unpaid[0][1].code)]
        payment, dossier = pairs[0]
        dispatcher.utter_message(text=state_text(dossier, payment))
        return [SlotSet("last_dossier", dossier.code)]
