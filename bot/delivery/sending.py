"""What every outbound channel shares: how a failed send is classified, backoff, token buckets.

A channel adapter turns its API's answer into a `SendError` of one of three kinds, and the
delivery pipeline (`bot/delivery/deliverer.py`) decides from the kind alone: retry later, give
up on this channel, or move on to the next channel at once.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeGuard, TypeVar, get_args

T = TypeVar("T")
Kind = Literal["retry", "permanent", "fallback"]

_MARKER = re.compile(r"channel-send-failed kind=(retry|permanent|fallback) channel=(\S+)")


def _is_kind(value: str) -> TypeGuard[Kind]:
    return value in get_args(Kind)


class SendError(Exception):
    """A send that did not go through.

    kind: `retry` (5xx, timeout, rate limit: try again later), `permanent` (4xx: never retry on
    this channel), `fallback` (the channel cannot reach this person now, e.g. outside Zalo's
    reply window or no template: try the next channel without waiting).
    The text form carries a marker so the kind survives Rasa's HTTP 500 answer to trigger_intent.
    """

    def __init__(
        self,
        channel: str,
        kind: Kind,
        reason: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.channel, self.kind, self.reason = channel, kind, reason
        self.status, self.retry_after = status, retry_after
        super().__init__(
            f"channel-send-failed kind={kind} channel={channel} status={status} reason={reason}"
        )

    @classmethod
    def from_text(cls, text: str, status: int | None = None) -> SendError | None:
        """Recover a SendError from its text form inside another error message."""
        match = _MARKER.search(text)
        if not match or not _is_kind(kind := match.group(1)):  # the pattern allows only kinds
            return None
        return cls(match.group(2), kind, text[match.end() :].strip()[:200], status)


def http_kind(status: int) -> Kind:
    """5xx and 429 are worth retrying; any other 4xx will fail the same way again."""
    return "retry" if status >= 500 or status in (408, 429) else "permanent"


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.cap, self.base * self.factor ** max(attempt - 1, 0))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        return max(delay, retry_after or 0.0)


async def with_retries(
    send: Callable[[], Awaitable[T]], attempts: int = 3, backoff: Backoff | None = None
) -> T:
    """Run `send`, retrying only SendErrors of kind `retry`; used for in-conversation replies."""
    backoff = backoff or Backoff(base=0.3, cap=3.0)
    for attempt in range(1, attempts + 1):
        try:
            return await send()
        except SendError as exc:
            if exc.kind != "retry" or attempt == attempts:
                raise
            await asyncio.sleep(backoff.delay(attempt, exc.retry_after))
    raise AssertionError("unreachable")


class TokenBucket:
    """`rate` sends per second with bursts of at most `burst`.

    With burst 1 the sends are spaced 1/rate apart, so no one-second window ever holds more
    than `rate` of them: that is what the providers' "N per second" limits mean.
    """

    def __init__(
        self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst, self._clock = rate, max(burst, 1.0), clock
        self._tokens = self.burst
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None

    def take(self) -> float:
        """Take a token if one is there (returns 0), else the seconds until one will be."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def pause(self, seconds: float) -> None:
        """The provider said 'too many requests, wait': nobody sends on this bucket until then."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self._tokens = 0.0
        self._stamp = max(self._stamp, self._paused_until)

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while (wait := self.take()) > 0:
                await asyncio.sleep(wait)


class KeyedBuckets:
    """One bucket per key (e.g. per Telegram chat), keeping only the most recent keys."""

    def __init__(self, rate: float, burst: float = 1.0, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def get(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket
