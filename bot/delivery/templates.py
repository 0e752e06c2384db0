"""Zalo template messages (ZBS Template Message, which replaced ZNS on 1 January 2026): when
one may be sent at all. The channel key stays `zns` in our tables.

Templates are approved by Zalo in advance and carry a tag: 1 transaction (any hour), 2 customer
care (07:00–22:00 local only), 3 promotional (never used by a public service: refused when the
configuration is loaded). A message is at most 400 characters, fixed text and values together.
The OA has a daily quota: once today's sends reach it, the delivery moves on to the next channel
(SMS) instead of asking Zalo; Zalo's own out-of-quota answer does the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum


class TemplateTag(IntEnum):
    TRANSACTION = 1
    CUSTOMER_CARE = 2
    PROMOTION = 3


MAX_CHARS = 400
CARE_HOURS = (dt.time(7, 0), dt.time(22, 0))


def parse_tag(value: object) -> TemplateTag:
    """A configured tag; a promotional template is refused outright."""
    try:
        tag = TemplateTag(int(str(value)))
    except ValueError as exc:
        raise ValueError(f"template tag must be 1 or 2, not {value!r}") from exc
    if tag is TemplateTag.PROMOTION:
        raise ValueError("promotional (tag 3) templates are never used by the assistant")
    return tag


@dataclass(frozen=True)
class TemplateRules:
    daily_quota: int | None = None  # None: no known cap (Zalo's answer still decides)
    care_hours: tuple[dt.time, dt.time] = CARE_HOURS

    def refusal(
        self,
        tag: TemplateTag,
        fixed_chars: int,
        values: Mapping[str, str],
        local_now: dt.datetime,
        sent_today: int,
    ) -> str | None:
        """Why this template may not go now (the delivery then tries the next channel)."""
        if tag is TemplateTag.PROMOTION:
            return "promotional templates are never sent"
        start, end = self.care_hours
        if tag is TemplateTag.CUSTOMER_CARE and not start <= local_now.time() < end:
            return f"customer-care template outside {start:%H:%M}–{end:%H:%M}"
        length = fixed_chars + sum(len(v) for v in values.values())
        if length > MAX_CHARS:
            return f"template message of {length} characters (Zalo allows {MAX_CHARS})"
        if self.daily_quota is not None and sent_today >= self.daily_quota:
            return f"the OA's daily template quota ({self.daily_quota}) is spent"
        return None
