"""Who is talking: channel bindings and account linking by a one-time code.

Identity is read only from `channel_bindings`. Linking proves possession of the phone the
registry holds for an ID number; the answers never reveal whether that number exists.
`IdentityProvider` lets a VNeID login replace the code flow later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.core.clock import utcnow
from bot.core.config import secret
from bot.core.models import ChannelBinding, Citizen, LinkChallenge, LinkGuard
from bot.delivery.sms import SmsGateway, to_sms_text
from bot.governance.pii import mask_phone
from bot.vietnamese.vn import normalize_phone, validate_cccd

log = logging.getLogger(__name__)

CODE_TTL = dt.timedelta(minutes=5)
LOCK_AFTER_FAILURES = 5
LOCK_FOR = dt.timedelta(minutes=15)
CODES_PER_ID_PER_HOUR = 3


def secret_key() -> bytes:
    """Key for code and ID digests: APP_SECRET_KEY, or one generated once under var/."""
    return secret("APP_SECRET_KEY", "app_secret_key")


def keyed_digest(kind: str, value: str) -> str:
    """An HMAC of a value we must recognise without keeping it (ID numbers, codes, senders)."""
    return hmac.new(secret_key(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def bound_citizen(session: Session, channel: str, sender_id: str) -> Citizen | None:
    """The citizen proven to be behind this sender, or None for an anonymous conversation."""
    citizen: Citizen | None = session.scalar(
        select(Citizen)
        .join(ChannelBinding, ChannelBinding.citizen_id == Citizen.id)
        .where(ChannelBinding.channel == channel, ChannelBinding.channel_user_id == sender_id)
    )
    return citizen


def bind(session: Session, channel: str, sender_id: str, citizen: Citizen, method: str) -> None:
    binding = session.scalar(
        select(ChannelBinding).where(
            ChannelBinding.channel == channel, ChannelBinding.channel_user_id == sender_id
        )
    )
    if binding is None:
        session.add(
            ChannelBinding(
                channel=channel, channel_user_id=sender_id, citizen_id=citizen.id, method=method
            )
        )
    else:
        binding.citizen_id, binding.method = citizen.id, method
    log.info("linked %s sender to citizen #%s by %s", channel, citizen.id, method)


def unbind(session: Session, channel: str, sender_id: str) -> bool:
    result = session.execute(
        delete(ChannelBinding).where(
            ChannelBinding.channel == channel, ChannelBinding.channel_user_id == sender_id
        )
    )
    unbound: bool = result.rowcount > 0
    return unbound


class LinkOutcome(str, Enum):
    CODE_SENT = "code_sent"
    INVALID_ID = "invalid_id"
    TOO_MANY_CODES = "too_many_codes"
    LOCKED = "locked"
    LINKED = "linked"
    WRONG_CODE = "wrong_code"
    EXPIRED = "expired"
    NO_CHALLENGE = "no_challenge"


@dataclass(frozen=True)
class LinkResult:
    outcome: LinkOutcome
    masked_phone: str = ""
    citizen_name: str = ""
    attempts_left: int = 0
    locked_until: dt.datetime | None = None


class IdentityProvider(Protocol):
    def start(self, session: Session, channel: str, sender_id: str, id_number: str) -> LinkResult:
        """Begin proving that the sender is the holder of `id_number`."""

    def verify(self, session: Session, channel: str, sender_id: str, answer: str) -> LinkResult:
        """Check the sender's answer; on success the binding is stored."""


class OtpIdentityProvider:
    """A 6-digit code by SMS to the registry phone, with expiry, rate limit and lock."""

    def __init__(self, sms: SmsGateway, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.sms = sms
        self.clock = clock

    def _guard(self, session: Session, channel: str, sender_id: str) -> LinkGuard:
        guard: LinkGuard | None = session.scalar(
            select(LinkGuard).where(
                LinkGuard.channel == channel, LinkGuard.channel_user_id == sender_id
            )
        )
        if guard is None:
            guard = LinkGuard(channel=channel, channel_user_id=sender_id, failures=0)
            session.add(guard)
        return guard

    def _locked(self, guard: LinkGuard) -> bool:
        return guard.locked_until is not None and guard.locked_until > self.clock()

    def start(self, session: Session, channel: str, sender_id: str, id_number: str) -> LinkResult:
        try:
            cccd = validate_cccd(id_number.strip())
        except ValueError:
            return LinkResult(LinkOutcome.INVALID_ID)
        guard = self._guard(session, channel, sender_id)
        if self._locked(guard):
            return LinkResult(LinkOutcome.LOCKED, locked_until=guard.locked_until)
        now = self.clock()
        id_digest = keyed_digest("cccd", cccd)
        recent = session.scalar(
            select(func.count(LinkChallenge.id)).where(
                LinkChallenge.id_digest == id_digest,
                LinkChallenge.created_at > now - dt.timedelta(hours=1),
            )
        )
        if recent >= CODES_PER_ID_PER_HOUR:
            return LinkResult(LinkOutcome.TOO_MANY_CODES)
        citizen = session.scalar(select(Citizen).where(Citizen.cccd == cccd))
        code = f"{secrets.randbelow(10**6):06d}"
        session.add(
            LinkChallenge(
                channel=channel,
                channel_user_id=sender_id,
                id_digest=id_digest,
                citizen_id=citizen.id if citizen and citizen.phone else None,
                code_digest=keyed_digest("code", code),
                expires_at=now + CODE_TTL,
                created_at=now,
            )
        )
        if citizen is not None and citizen.phone:
            text = (
                f"Mã xác thực của Ông/Bà là {code}, có hiệu lực 5 phút. "
                "Không chia sẻ mã này cho bất kỳ ai."
            )
            self.sms.send(citizen.phone, to_sms_text(text))
            return LinkResult(LinkOutcome.CODE_SENT, masked_phone=mask_phone(citizen.phone))
        # Same answer as for a real number: a stable, plausible masked phone.
        log.info("link requested for an ID without a registry phone (%s)", channel)
        number = int(id_digest[:8], 16)
        fake = f"0{'35789'[number % 5]}******{number % 100:02d}"
        return LinkResult(LinkOutcome.CODE_SENT, masked_phone=fake)

    def verify(self, session: Session, channel: str, sender_id: str, answer: str) -> LinkResult:
        guard = self._guard(session, channel, sender_id)
        now = self.clock()
        if self._locked(guard):
            return LinkResult(LinkOutcome.LOCKED, locked_until=guard.locked_until)
        challenge = session.scalar(
            select(LinkChallenge)
            .where(
                LinkChallenge.channel == channel,
                LinkChallenge.channel_user_id == sender_id,
                LinkChallenge.consumed_at.is_(None),
            )
            .order_by(LinkChallenge.created_at.desc(), LinkChallenge.id.desc())
            .limit(1)
        )
        if challenge is None:
            return LinkResult(LinkOutcome.NO_CHALLENGE)
        if challenge.expires_at <= now:
            return LinkResult(LinkOutcome.EXPIRED)
        right = hmac.compare_digest(challenge.code_digest, keyed_digest("code", answer.strip()))
        if not right or challenge.citizen_id is None:
            guard.failures += 1
            if guard.failures >= LOCK_AFTER_FAILURES:
                guard.failures, guard.locked_until = 0, now + LOCK_FOR
                log.warning("linking locked for a %s sender after repeated wrong codes", channel)
                return LinkResult(LinkOutcome.LOCKED, locked_until=guard.locked_until)
            return LinkResult(
                LinkOutcome.WRONG_CODE, attempts_left=LOCK_AFTER_FAILURES - guard.failures
            )
        challenge.consumed_at = now
        guard.failures, guard.locked_until = 0, None
        citizen = session.get(Citizen, challenge.citizen_id)
        bind(session, channel, sender_id, citizen, method="otp")
        return LinkResult(LinkOutcome.LINKED, citizen_name=citizen.full_name)


def link_by_verified_phone(
    session: Session, channel: str, sender_id: str, phone: str
) -> Citizen | None:
    """Telegram's shared own contact: link when it equals the registry phone of one citizen."""
    try:
        phone = normalize_phone(phone)
    except ValueError:
        return None
    matches: list[Citizen] = list(
        session.scalars(select(Citizen).where(Citizen.phone == phone).limit(2))
    )
    if len(matches) != 1:
        return None
    bind(session, channel, sender_id, matches[0], method="contact")
    return matches[0]
