"""One delivery API for proactive messages (used by the scheduler and the officer console).

`Deliverer.deliver(citizen_id, notice, key)` picks the channels (Zalo chat if the citizen wrote
to the OA within the window, else a Zalo template (ZBS; by user id to a follower, else by
phone), Telegram if linked, else SMS to the registry phone, e-mail last), records each
attempt in the outbox before sending, retries 5xx and timeouts with exponential backoff and
jitter, never retries a 4xx, moves to the next channel after the configured attempts, paces
each channel with a token bucket, and never delivers the same key twice. A notice is a text,
or an intent that Rasa turns into the conversation's next turn
(`trigger_intent?output_channel=<channel>`). The channel senders live in
`connectors/senders.py`; this module knows only the `ChannelSender` protocol.

When our own side of the path is down (`ServiceUnavailable`: the Rasa server every
conversation channel goes through, or what it depends on), the delivery stops after the
channel's retries and reports `deferred` instead of falling back: the next channel would go
through the same server, and the citizen's reply needs the conversation anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.db import unit_of_work
from bot.core.lifecycles import AttemptOutcome, DeliveryStatus
from bot.core.models import ChannelBinding, Citizen
from bot.delivery import outbox
from bot.delivery.channel_state import last_inbound
from bot.delivery.sending import Backoff, KeyedBuckets, SendError, TokenBucket

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_ORDER = ("zalo", "zns", "telegram", "sms", "email")


@dataclass(frozen=True)
class Notice:
    """What to say: a text, or an intent (with entities) for Rasa to answer in the conversation.

    `kind` names the ZNS template (defaults to the intent); `values` fill its parameters
    (defaults to the entities); `subject` is the e-mail subject; `only_channels` keeps a
    notice that makes sense on one channel only (a template's star rating) off the others.
    """

    text: str | None = None
    intent: str | None = None
    entities: Mapping[str, Any] = field(default_factory=dict)
    kind: str | None = None
    values: Mapping[str, Any] | None = None
    subject: str | None = None
    only_channels: tuple[str, ...] = ()  # may go on these channels and no other

    @property
    def template_key(self) -> str:
        return self.kind or self.intent or "text"

    @property
    def template_values(self) -> Mapping[str, Any]:
        return self.values if self.values is not None else self.entities


class ServiceUnavailable(SendError):
    """Our own service in front of the channel (the Rasa server, its action server or tracker
    store) did not answer. Retried on the channel like any `retry`, then the delivery waits
    (`deferred`) instead of trying the next channel."""

    def __init__(self, channel: str, reason: str, status: int | None = None) -> None:
        super().__init__(channel, "retry", reason, status)


@dataclass(frozen=True)
class Route:
    """A channel and the address on it: a conversation id, a phone (ZNS) or an e-mail."""

    channel: str
    recipient: str


class ChannelSender(Protocol):
    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        """Deliver or raise SendError; returns the provider's message id when known."""


@dataclass(frozen=True)
class Contacts:
    citizen_id: int
    phone: str | None
    email: str | None
    zalo: dict[str, dt.datetime | None]  # conversation id → when the user last wrote
    telegram: list[str]


def load_contacts(session: Session, citizen_id: int) -> Contacts | None:
    citizen = session.get(Citizen, citizen_id)
    if citizen is None:
        return None
    bindings = session.execute(
        select(ChannelBinding.channel, ChannelBinding.channel_user_id)
        .where(ChannelBinding.citizen_id == citizen_id)
        .order_by(ChannelBinding.updated_at.desc())
    ).all()
    zalo = [s for c, s in bindings if c == "zalo"]
    seen = last_inbound(session, zalo)
    return Contacts(
        citizen_id,
        citizen.phone,
        citizen.email,
        {s: seen.get(s) for s in zalo},
        [s for c, s in bindings if c == "telegram"],
    )


def plan_routes(
    contacts: Contacts,
    notice: Notice,
    available: Collection[str],
    zns_kinds: Collection[str],
    now: dt.datetime,
    zalo_window: dt.timedelta,
    preferred: Sequence[str] = (),
    only: bool = False,
) -> list[Route]:
    """Channels to try, in order: preferred ones first, then the default order (unless only)."""
    candidates: dict[str, Route] = {}
    open_chats = [(at, s) for s, at in contacts.zalo.items() if at and now - at <= zalo_window]
    if open_chats:
        candidates["zalo"] = Route("zalo", max(open_chats)[1])
    if notice.template_key in zns_kinds:
        # A template goes to an OA follower by user id (cheaper), else by phone number.
        seen = contacts.zalo
        follower = max(seen, key=lambda s: seen[s] or dt.datetime.min, default=None)
        if follower or contacts.phone:
            candidates["zns"] = Route("zns", follower or contacts.phone or "")
    if contacts.telegram:
        candidates["telegram"] = Route("telegram", contacts.telegram[0])
    if contacts.phone:
        candidates["sms"] = Route("sms", f"sms:{contacts.phone}")
    if contacts.email and notice.text:
        candidates["email"] = Route("email", contacts.email)
    order = list(dict.fromkeys([*preferred, *([] if only else DEFAULT_ORDER)]))
    return [candidates[c] for c in order if c in candidates and c in available]


@dataclass(frozen=True)
class ChannelLimit:
    rate: float
    burst: float = 1.0
    per_recipient: float | None = None


DEFAULT_LIMITS = {
    "telegram": ChannelLimit(25, per_recipient=1),
    "zalo": ChannelLimit(10),
    "zns": ChannelLimit(10),
    "sms": ChannelLimit(1),
    "email": ChannelLimit(5),
}


@dataclass(frozen=True)
class DeliveryConfig:
    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    limits: Mapping[str, ChannelLimit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    zalo_window: dt.timedelta = dt.timedelta(hours=48)
    stale_claim: dt.timedelta = dt.timedelta(minutes=10)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DeliveryConfig:
        """DELIVERY_MAX_ATTEMPTS, DELIVERY_RATE_<CHANNEL> (per second), ZALO_CS_WINDOW_HOURS,
        DELIVERY_STALE_SECONDS (a claim older than this, from a worker that died, is taken
        over; 600)."""
        limits = {}
        for name, default in DEFAULT_LIMITS.items():
            rate = float(env.get(f"DELIVERY_RATE_{name.upper()}", default.rate))
            limits[name] = ChannelLimit(rate, default.burst, default.per_recipient)
        if env.get("DELIVERY_RATE_TELEGRAM_PER_CHAT"):
            per_chat = float(env["DELIVERY_RATE_TELEGRAM_PER_CHAT"])
            limits["telegram"] = ChannelLimit(limits["telegram"].rate, 1.0, per_chat)
        return cls(
            max_attempts=int(env.get("DELIVERY_MAX_ATTEMPTS", cls.max_attempts)),
            limits=limits,
            zalo_window=dt.timedelta(hours=float(env.get("ZALO_CS_WINDOW_HOURS", 48))),
            stale_claim=stale_after(env),
        )


def stale_after(env: Mapping[str, str] = os.environ) -> dt.timedelta:
    """DELIVERY_STALE_SECONDS (600): when a delivery claimed by a worker that stopped
    mid-send may be taken over (the outbox's and the reminder rows' claims alike)."""
    return dt.timedelta(seconds=float(env.get("DELIVERY_STALE_SECONDS", 600)))


class RateLimits:
    """A token bucket per channel, plus one per recipient where the channel asks for it.

    The buckets run HEADROOM below the configured rates: a send paced at exactly 1/rate can
    reach the provider a few milliseconds early after a late one, and the provider counts what
    arrives in its one-second windows.
    """

    HEADROOM = 0.95

    def __init__(self, limits: Mapping[str, ChannelLimit]) -> None:
        h = self.HEADROOM
        self.channel = {c: TokenBucket(lim.rate * h, lim.burst) for c, lim in limits.items()}
        self.recipient = {
            c: KeyedBuckets(lim.per_recipient * h) for c, lim in limits.items() if lim.per_recipient
        }

    async def acquire(self, route: Route) -> None:
        if route.channel in self.recipient:
            await self.recipient[route.channel].get(route.recipient).acquire()
        if route.channel in self.channel:
            await self.channel[route.channel].acquire()

    def pause(self, route: Route, seconds: float) -> None:
        if route.channel in self.channel:
            self.channel[route.channel].pause(seconds)


@dataclass
class DeliveryResult:
    key: str
    status: str  # sent | duplicate | deferred | failed | unreachable
    channel: str | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        engine: Engine,
        senders: Mapping[str, ChannelSender],
        config: DeliveryConfig | None = None,
        zns_kinds: Collection[str] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine, self.senders = engine, dict(senders)
        self.config = config or DeliveryConfig()
        self.zns_kinds = frozenset(zns_kinds)
        self.limits = RateLimits(self.config.limits)
        self._sleep = sleep
        self._write_lock: asyncio.Lock | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._anchor: Connection | None = None

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run outbox work on the Deliverer's own threads, so sends keep flowing (and the
        default thread pool stays free for SMS and e-mail) while a commit waits on disk.

        SQLite has one writer at a time: there the calls take turns in the event loop instead
        of sleeping in SQLite's busy handler, and one idle connection stays open so that each
        commit does not checkpoint and delete the WAL file (it would with SQLAlchemy 1.4's
        NullPool for SQLite files). PostgreSQL commits them in parallel.
        """
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(4, thread_name_prefix="outbox")
        if self.engine.dialect.name != "sqlite":
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
            self._anchor = self.engine.connect()
        async with self._write_lock:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def aclose(self) -> None:
        """Release the outbox threads and the SQLite connection held open."""
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def deliver(
        self,
        citizen_id: int,
        notice: Notice,
        key: str,
        preferred: Sequence[str] = (),
        only: bool = False,
    ) -> DeliveryResult:
        """Deliver once per key: the first channel that succeeds wins; later calls are no-ops."""
        done, contacts = await self._db(self._lookup, citizen_id, key)
        if done:
            return DeliveryResult(key, "duplicate", done)
        if contacts is None:
            return DeliveryResult(key, "unreachable", errors=["unknown citizen"])
        routes = plan_routes(
            contacts,
            notice,
            self.senders.keys(),
            self.zns_kinds,
            utcnow(),
            self.config.zalo_window,
            preferred or notice.only_channels,
            only or bool(notice.only_channels),
        )
        if not routes:
            return DeliveryResult(key, "unreachable", errors=["no channel reaches this citizen"])
        result = DeliveryResult(key, "failed")
        for route in routes:
            claimed = await self._db(
                outbox.claim,
                self.engine,
                key,
                route.channel,
                route.recipient,
                notice.template_key,
                citizen_id,
                self.config.stale_claim,
            )
            if claimed is None:  # sent, or being sent by another worker (see outbox.claim)
                return DeliveryResult(key, "duplicate", route.channel, result.attempts)
            outcome = await self._try(*claimed, route, notice, key, result)
            if outcome == "sent":
                result.status, result.channel = "sent", route.channel
                return result
            if outcome == "wait":
                result.status = "deferred"
                logger.warning("delivery %s waits, %s", key, result.errors[-1])
                return result
        logger.warning("delivery %s failed on every channel: %s", key, "; ".join(result.errors))
        return result

    def _lookup(self, citizen_id: int, key: str) -> tuple[str | None, Contacts | None]:
        with unit_of_work(self.engine) as session:
            done = outbox.sent_channel(session, key)
            return done, None if done else load_contacts(session, citizen_id)

    async def _try(
        self,
        delivery_id: int,
        attempt_id: int,
        route: Route,
        notice: Notice,
        key: str,
        result: DeliveryResult,
    ) -> str:
        """Attempts on one channel (the first attempt row was written by the claim): `sent`,
        `next` (try the next channel) or `wait` (our own service is down: stop here)."""
        sender = self.senders[route.channel]
        for number in range(1, self.config.max_attempts + 1):
            if number > 1:
                attempt_id = await self._db(outbox.start_attempt, self.engine, delivery_id)
            result.attempts += 1
            await self.limits.acquire(route)  # last step before the request: pacing holds
            try:
                provider_id = await sender.send(route, notice, key)
            except SendError as exc:
                error = exc
            except Exception as exc:  # a bug in a sender must not stop the other channels
                logger.exception("sender %s crashed", route.channel)
                error = SendError(route.channel, "permanent", f"{type(exc).__name__}: {exc}")
            else:
                await self._db(
                    outbox.finish_attempt,
                    self.engine,
                    delivery_id,
                    attempt_id,
                    AttemptOutcome.SENT,
                    DeliveryStatus.SENT,
                    None,
                    None,
                    provider_id,
                )
                return "sent"
            final = error.kind != "retry" or number == self.config.max_attempts
            await self._db(
                outbox.finish_attempt,
                self.engine,
                delivery_id,
                attempt_id,
                AttemptOutcome(error.kind),
                DeliveryStatus.FAILED if final else DeliveryStatus.SENDING,
                error.status,
                error.reason[:500],
            )
            result.errors.append(f"{route.channel}: {error.reason[:120]}")
            if final:
                return "wait" if isinstance(error, ServiceUnavailable) else "next"
            delay = self.config.backoff.delay(number, error.retry_after)
            if error.status == 429 or error.retry_after:
                self.limits.pause(route, delay)
            await self._sleep(delay)
        return "next"
