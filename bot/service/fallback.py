"""Two-stage fallback: first ask "did you mean …?", on a second miss offer an officer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# How each intent is offered as a button when the assistant is unsure.
INTENT_LABELS = {
    "greet": "Chào hỏi",
    "help": "Xem hướng dẫn",
    "link_account": "Xác thực tài khoản",
    "request_service": "Làm thủ tục",
    "ask_requirements": "Hỏi giấy tờ cần chuẩn bị",
    "ask_fee": "Hỏi lệ phí",
    "ask_processing_time": "Hỏi thời gian giải quyết",
    "check_status": "Tra cứu hồ sơ",
    "list_due": "Giấy tờ sắp hết hạn",
    "postpone_reminder": "Nhắc lại sau",
    "stop_reminders": "Ngừng nhận nhắc",
    "rate_service": "Đánh giá dịch vụ",
    "request_human": "Gặp cán bộ",
    "delete_my_data": "Xóa dữ liệu của tôi",
    "cancel_dossier": "Hủy hồ sơ",
}
MAX_OPTIONS = 3


@dataclass
class Reply:
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)


def clarify(intent_ranking: list[dict[str, Any]], second_miss: bool) -> Reply:
    """The reply to a message the model was not confident about."""
    if second_miss:
        return Reply(
            "Xin lỗi, tôi vẫn chưa hiểu ý Ông/Bà. Ông/Bà có muốn gặp cán bộ không?",
            [
                {"title": "Gặp cán bộ", "payload": "/request_human"},
                {"title": "Xem hướng dẫn", "payload": "/help"},
            ],
        )
    options = [r["name"] for r in intent_ranking if r.get("name") in INTENT_LABELS][:MAX_OPTIONS]
    buttons = [{"title": INTENT_LABELS[name], "payload": f"/{name}"} for name in options]
    buttons.append({"title": "Không phải, ý khác", "payload": "/help"})
    return Reply("Xin lỗi, tôi chưa chắc đã hiểu đúng. Ý Ông/Bà là:", buttons)
