"""The HTTP failures of a provider's API (eSMS, Zalo) as SendErrors, for sync and async calls.

with provider_errors(NAME, "esms"):
    answer = client.post(...)
check_status(answer, NAME, "esms")
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from bot.delivery.sending import SendError, http_kind


@contextlib.contextmanager
def provider_errors(channel: str, provider: str) -> Iterator[None]:
    """A timeout or transport failure in the block becomes a SendError to retry
    (`<provider> timeout`, `<provider> ConnectError`, …)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise SendError(channel, "retry", f"{provider} timeout") from exc
    except httpx.TransportError as exc:
        raise SendError(channel, "retry", f"{provider} {type(exc).__name__}") from exc


def check_status(answer: httpx.Response, channel: str, provider: str) -> None:
    """An HTTP error status (300 and up) as a SendError, retry or permanent by `http_kind`."""
    if answer.status_code >= 300:
        kind = http_kind(answer.status_code)
        raise SendError(channel, kind, f"{provider} http error", answer.status_code)
