"""Answers to procedure questions (documents, fee, time), written from the catalogue."""

from __future__ import annotations

from bot.catalogue.model import Catalogue, Service

TOPIC_OF_INTENT = {
    "ask_requirements": "requirements",
    "ask_fee": "fee",
    "ask_processing_time": "processing_time",
    "request_service": "overview",
}
QUESTION = {
    "requirements": "cần chuẩn bị giấy tờ gì",
    "fee": "lệ phí bao nhiêu",
    "processing_time": "mất bao lâu",
    "overview": "cần biết những gì",
}
# Offered as buttons when the citizen did not name a service: the most asked-for ones.
COMMON_SERVICES = ("cccd_doi_the", "tam_tru_gia_han", "khai_sinh", "gplx_doi", "ho_chieu_cap_lai")


def _requirements(service: Service) -> str:
    items = "\n".join(f"• {doc}" for doc in service.documents)
    return f"Hồ sơ {service.short_name} cần:\n{items}"


def _fee(service: Service) -> str:
    return f"Lệ phí {service.short_name}: {service.fee.text}."


def _processing_time(service: Service) -> str:
    return f"Thời gian giải quyết {service.short_name}: {service.processing_time.text}."


def answer(service: Service, topic: str) -> str:
    """Short enough for a phone screen; the overview gathers all three facts."""
    if topic == "requirements":
        return _requirements(service)
    if topic == "fee":
        return _fee(service)
    if topic == "processing_time":
        return _processing_time(service)
    return "\n".join(
        [
            f"{service.name}. Nơi giải quyết: {service.agency}.",
            _requirements(service),
            _fee(service),
            _processing_time(service),
        ]
    )


def which_service_prompt(topic: str) -> str:
    return f"Ông/Bà muốn hỏi thủ tục nào {QUESTION[topic]}? Ông/Bà có thể nhắn tên thủ tục."


def service_buttons(catalogue: Catalogue) -> list[dict[str, str]]:
    return [
        {
            "title": catalogue.service(code).short_name.capitalize(),
            "payload": f'/inform{{"service":"{code}"}}',
        }
        for code in COMMON_SERVICES
    ]
