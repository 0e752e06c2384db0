"""Answers to procedure questions (documents, fee, time), written from the catalogue.

Every answer ends with where it comes from (`source_line`): the national procedure code and the
portal page when the catalogue has them, and always the legal basis. The source comes last so
that an answer cut to one SMS segment keeps its essential part.
"""

from __future__ import annotations

from urllib.parse import urlsplit

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
# Hosts of the National Public Service Portal; another official portal is named generically.
NATIONAL_PORTAL_HOSTS = frozenset(
    {"dichvucong.gov.vn", "csdl.dichvucong.gov.vn", "thutuc.dichvucong.gov.vn"}
)
NATIONAL_PORTAL = "Cổng Dịch vụ công quốc gia"


def _requirements(service: Service) -> str:
    items = "\n".join(f"• {doc}" for doc in service.documents)
    return f"Hồ sơ {service.short_name} cần:\n{items}"


def _fee(service: Service) -> str:
    return f"Lệ phí {service.short_name}: {service.fee.text}."


def _processing_time(service: Service) -> str:
    return f"Thời gian giải quyết {service.short_name}: {service.processing_time.text}."


def _portal_name(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return NATIONAL_PORTAL if host in NATIONAL_PORTAL_HOSTS else "cổng dịch vụ công"


def source_line(service: Service) -> str:
    """Where the answer comes from; says only what the catalogue knows, never a made-up code."""
    basis = "; ".join(service.legal_basis)
    code, url = service.procedure_code, service.portal_url
    if code and url:
        return f"Nguồn: thủ tục {code} trên {_portal_name(url)}: {url}; căn cứ: {basis}."
    if code:
        return f"Nguồn: thủ tục {code} trên {NATIONAL_PORTAL}; căn cứ: {basis}."
    if url:
        return f"Nguồn: {_portal_name(url)}: {url}; căn cứ: {basis}."
    return f"Căn cứ pháp lý: {basis}."


def answer_body(service: Service, topic: str) -> str:
    """The answer without its source line; the overview gathers all three facts."""
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


def answer(service: Service, topic: str) -> str:
    """Short enough for a phone screen, ending with its source (kept last for SMS cuts)."""
    return f"{answer_body(service, topic)}\n{source_line(service)}"


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
