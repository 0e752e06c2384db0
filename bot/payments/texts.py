"""What the citizen reads about a fee: the request, its SMS form, the receipt, the reminder,
and the answers to "nộp phí" (Vietnamese, polite address; SMS without diacritics)."""

from __future__ import annotations

import base64

from bot.catalogue.model import Service
from bot.core.clock import to_local
from bot.core.lifecycles import DossierStatus, PaymentStatus
from bot.core.models import Dossier, Payment
from bot.delivery.sms import to_sms_text
from bot.payments.settings import PaymentSettings
from bot.payments.vietqr import VietQR
from bot.vietnamese.numbers import amount_in_words, format_vnd
from bot.vietnamese.vn import format_date

# One per PaymentStatus, for officers' lists and the citizen's status answer.
PAYMENT_LABELS: dict[str, str] = {
    PaymentStatus.REQUESTED: "Chưa nộp lệ phí",
    PaymentStatus.PAID: "Đã nộp lệ phí",
    PaymentStatus.VOID: "Không còn phải nộp",
}
ALREADY_TRANSFERRED = (
    "Nếu Ông/Bà đã chuyển khoản, biên lai sẽ được gửi ngay khi ngân hàng xác nhận (thường "
    "trong vài phút). Quá 24 giờ chưa nhận được biên lai, Ông/Bà nhắn “gặp cán bộ” để được hỗ trợ."
)
NOTHING_OWED = "Hiện Ông/Bà không có khoản lệ phí nào cần nộp trực tuyến."


def vietqr_of(payment: Payment, settings: PaymentSettings) -> VietQR:
    return VietQR(
        bin=settings.bank_bin,
        account=settings.account,
        amount=payment.amount,
        reference=payment.reference,
        name=settings.account_name,
    )


def qr_image(payment: Payment, settings: PaymentSettings) -> str:
    """The VietQR code as a PNG data URL: self-contained, so every channel can show it (the
    channels that send pictures upload the bytes; the REST answer carries the URL)."""
    png = vietqr_of(payment, settings).png()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def due_day(payment: Payment) -> str:
    return format_date(to_local(payment.due_at).date())


def request_text(service: Service, payment: Payment, settings: PaymentSettings) -> str:
    """The payment request: amount in figures and words, what for, the reference, the deadline
    and both ways to pay."""
    text = (
        f"Lệ phí hồ sơ {payment.reference} ({service.short_name}): {format_vnd(payment.amount)} "
        f"({amount_in_words(payment.amount)}). Hạn nộp: hết ngày {due_day(payment)}.\n"
        "Ông/Bà quét mã VietQR bằng ứng dụng ngân hàng, hoặc chuyển khoản: ngân hàng "
        f"{settings.bank_name}, số tài khoản {settings.account} ({settings.account_name}), "
        f"số tiền {format_vnd(payment.amount)}, nội dung ghi đúng mã hồ sơ {payment.reference}."
    )
    if payment.pay_url:
        text += f"\nHoặc thanh toán trực tuyến tại: {payment.pay_url}"
    return text


def sms_request_text(payment: Payment, settings: PaymentSettings) -> str:
    """One unaccented segment: account, amount and reference are what a transfer needs."""
    day = to_local(payment.due_at).strftime("%d/%m")
    return to_sms_text(
        f"Le phi ho so {payment.reference}: {payment.amount}d. CK {settings.bank_name} "
        f"STK {settings.account} ND {payment.reference}. Han {day}"
    )


def receipt_text(payment: Payment) -> str:
    paid = to_local(payment.paid_at).strftime("%H:%M %d/%m/%Y") if payment.paid_at else ""
    return (
        f"Đã nhận lệ phí hồ sơ {payment.reference}: {format_vnd(payment.amount)}, lúc {paid}. "
        f"Số biên lai: {payment.receipt_no}. Cảm ơn Ông/Bà."
    )


def reminder_text(payment: Payment) -> str:
    return (
        f"Lệ phí hồ sơ {payment.reference} ({format_vnd(payment.amount)}) chưa được thanh toán; "
        f"hạn nộp đến hết ngày {due_day(payment)}. Ông/Bà nhắn “nộp phí” để nhận lại mã QR và "
        "thông tin chuyển khoản."
    )


def state_text(dossier: Dossier, payment: Payment | None) -> str:
    """Where one dossier's fee stands, for "phí hồ sơ DLK-… bao nhiêu" and "đã chuyển khoản"."""
    if payment is None:
        if dossier.status == DossierStatus.PREPARED:
            return (
                f"Lệ phí hồ sơ {dossier.code} được nộp tại nơi tiếp nhận khi Ông/Bà đến nộp "
                "hồ sơ trực tiếp."
            )
        return f"Hồ sơ {dossier.code} không phải nộp lệ phí trực tuyến."
    if payment.status == PaymentStatus.PAID:
        return receipt_text(payment)
    if payment.status == PaymentStatus.VOID:
        return f"Hồ sơ {dossier.code} đã hủy hoặc bị từ chối nên không cần nộp lệ phí."
    return ""  # requested: the caller shows the request itself
