"""The help menu, built from the catalogue so it always lists the services we really know."""

from __future__ import annotations

from collections import OrderedDict

from bot.catalogue.model import Catalogue


def help_text(catalogue: Catalogue) -> str:
    """Short enough for a phone screen: one line per sector with its services' short names."""
    by_sector: OrderedDict[str, list[str]] = OrderedDict()
    for service in catalogue.services:
        by_sector.setdefault(service.sector, []).append(service.short_name)
    lines = [f"Tôi có thông tin về {len(catalogue.services)} thủ tục hành chính:"]
    lines += [f"• {sector}: {', '.join(names)}" for sector, names in by_sector.items()]
    lines.append(
        "Ông/Bà có thể hỏi giấy tờ cần chuẩn bị, lệ phí hoặc thời gian giải quyết, "
        'ví dụ: "gia hạn tạm trú cần giấy tờ gì".'
    )
    return "\n".join(lines)
