"""The provincial payment platform (national public-service payment platform style), as seen
by the domain: it turns a payment request into a pay link. The HTTP client lives with the other
outbound clients (`connectors/payment_platform.py`); without configuration there is no platform
and the request carries the VietQR code only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol


class PlatformError(RuntimeError):
    """The platform gave no pay link; the request stands with its VietQR code alone."""


@dataclass(frozen=True)
class PayLinkRequest:
    reference: str  # the dossier code: the idempotency key and the transfer reference
    amount: int  # VND
    description: str  # unaccented, what the fee is for
    expires_at: dt.datetime  # naive UTC, the payment deadline


@dataclass(frozen=True)
class PayLink:
    url: str
    platform_id: str


class PaymentPlatform(Protocol):
    def create_link(self, request: PayLinkRequest) -> PayLink:
        """A pay link for the request; the same reference always gives the same link."""
