"""How many messages one sender may send: a token bucket per sender id, in memory.

Every inbound channel asks `SenderRateLimit.check` before a message reaches the NLU or the
database, so one sender (a script, a stuck client, a flood) cannot take the assistant from
everyone else. A refused sender is told once per burst (`Verdict.TELL`), then refused silently
(`Verdict.DROP`) until tokens come back: answering every flooded message would send the flood
back out, and SMS answers cost money.

The buckets live in one process: behind a load balancer with N Rasa servers a sender gets at
most N times the rate, which still bounds a flood (README, "Inbound limits").
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

RATE_LIMITED = (
    "Ông/Bà đang gửi tin nhắn quá nhanh nên các tin vừa rồi chưa được xử lý. "
    "Ông/Bà vui lòng chờ khoảng một phút rồi gửi lại nội dung cần hỗ trợ."
)


class Verdict(str, Enum):
    ALLOW = "allow"
    TELL = "tell"  # refused; say RATE_LIMITED once
    DROP = "drop"  # refused; already told


@dataclass
class _Bucket:
    tokens: float
    at: float
    told: bool = False


class SenderRateLimit:
    """`burst` messages at once, then `per_minute` a minute; `per_minute <= 0` allows all."""

    def __init__(
        self,
        per_minute: float = 20,
        burst: int = 8,
        max_senders: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_minute / 60
        self.burst = max(burst, 1)
        self.max_senders = max_senders
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> SenderRateLimit:
        """INBOUND_RATE_PER_MINUTE (default 20; 0 turns the limit off), INBOUND_BURST (8)."""
        return cls(
            per_minute=float(env.get("INBOUND_RATE_PER_MINUTE", 20)),
            burst=int(env.get("INBOUND_BURST", 8)),
        )

    @property
    def retry_after(self) -> int:
        """Seconds until a refused sender has one message again."""
        return max(1, round(1 / self.per_second)) if self.per_second > 0 else 0

    def check(self, sender: str) -> Verdict:
        if self.per_second <= 0:
            return Verdict.ALLOW
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(sender, None) or _Bucket(float(self.burst), now)
            self._buckets[sender] = bucket  # most recently seen last
            while len(self._buckets) > self.max_senders:
                self._buckets.popitem(last=False)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                bucket.told = False
                return Verdict.ALLOW
            if bucket.told:
                return Verdict.DROP
            bucket.told = True
            return Verdict.TELL
