"""Account linking: ID number → one-time code by SMS → binding; and unlinking."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.orm import Session

from actions.base import CitizenAction, entity, link_buttons, sender_of, verified_phone
from bot.core.clock import to_local
from bot.governance.pii import mask_name
from bot.identity.linking import LinkOutcome, OtpIdentityProvider, link_by_verified_phone, unbind
from bot.vietnamese.vn import fold
from connectors.sms_providers import default_gateway

ASK_ID = (
    "Xin Ông/Bà nhập số định danh cá nhân (12 số trên thẻ căn cước). Hệ thống sẽ gửi mã xác "
    "thực tới số điện thoại Ông/Bà đã đăng ký với cơ quan công an."
)
TEXTS = {
    LinkOutcome.CODE_SENT: (
        "Nếu số định danh này có trong hệ thống, mã xác thực gồm 6 chữ số đã được gửi tới số "
        "{phone}. Mã có hiệu lực 5 phút; Ông/Bà vui lòng nhập mã tại đây."
    ),
    LinkOutcome.INVALID_ID: (
        "Số định danh cá nhân chưa đúng: cần đủ 12 chữ số như trên thẻ căn cước, ví dụ "
        "066190001234. Ông/Bà vui lòng nhập lại."
    ),
    LinkOutcome.TOO_MANY_CODES: (
        "Số định danh này đã được yêu cầu mã quá nhiều lần. Ông/Bà vui lòng thử lại sau một giờ."
    ),
    LinkOutcome.LOCKED: (
        "Ông/Bà đã nhập sai mã quá 5 lần nên việc xác thực tạm khóa đến {until}. "
        "Ông/Bà vui lòng thử lại sau."
    ),
    LinkOutcome.WRONG_CODE: "Mã xác thực không đúng. Ông/Bà còn {left} lần thử.",
    LinkOutcome.EXPIRED: (
        "Mã xác thực đã hết hạn. Ông/Bà vui lòng nhập lại số định danh để nhận mã mới."
    ),
    LinkOutcome.NO_CHALLENGE: "Ông/Bà vui lòng nhập số định danh trước để nhận mã xác thực.",
    LinkOutcome.LINKED: (
        "Xác thực thành công. Xin chào Ông/Bà {name}! Từ nay Ông/Bà có thể xem hồ sơ, lịch "
        "nhắc hạn và nộp hồ sơ trực tuyến tại đây."
    ),
}
UNLINK_WORDS = ("huy lien ket", "ngat lien ket", "dang xuat", "bo lien ket")


def unlinked_on_request(
    dispatcher: CollectingDispatcher, tracker: Tracker, session: Session
) -> bool:
    """ "Hủy liên kết" (whatever intent the NLU gave it): unbind this channel sender."""
    if not any(w in fold(tracker.latest_message.get("text") or "") for w in UNLINK_WORDS):
        return False
    removed = unbind(session, *sender_of(tracker))
    dispatcher.utter_message(
        text="Đã hủy liên kết tài khoản trên kênh này."
        if removed
        else "Kênh này chưa liên kết với tài khoản nào."
    )
    return True


class ActionLinkAccount(CitizenAction):
    """Handles link_account, and inform carrying an ID number or a one-time code."""

    requires_identity = False

    action_name = "action_link_account"

    def handle(self, dispatcher, tracker, session, citizen, catalogue):  # see CitizenAction
        channel, sender_id = sender_of(tracker)
        if unlinked_on_request(dispatcher, tracker, session):
            return []
        if citizen is not None:
            dispatcher.utter_message(
                text=f"Ông/Bà đã xác thực với tên {mask_name(citizen.full_name)}. "
                "Gõ “hủy liên kết” nếu muốn ngắt liên kết trên kênh này."
            )
            return []
        phone = verified_phone(tracker) if channel == "telegram" else None
        if phone:
            linked = link_by_verified_phone(session, channel, sender_id, phone)
            if linked is not None:
                dispatcher.utter_message(
                    text=TEXTS[LinkOutcome.LINKED].format(name=linked.full_name)
                )
                return []
            dispatcher.utter_message(
                text="Số điện thoại này không khớp với số đăng ký trong hệ thống. " + ASK_ID
            )
            return []
        provider = OtpIdentityProvider(default_gateway())
        code, id_number = entity(tracker, "otp"), entity(tracker, "cccd")
        if id_number:
            result = provider.start(session, channel, sender_id, id_number)
        elif code:
            result = provider.verify(session, channel, sender_id, code)
        else:
            dispatcher.utter_message(text=ASK_ID, buttons=link_buttons(channel))
            return []
        until = to_local(result.locked_until).strftime("%H:%M") if result.locked_until else ""
        dispatcher.utter_message(
            text=TEXTS[result.outcome].format(
                phone=result.masked_phone,
                until=until,
                left=result.attempts_left,
                name=result.citizen_name,
            )
        )
        return []
