"""Who is speaking: the one rule for the channel of a conversation and the facts proven about
its sender.

Conversation ids carry their channel as a prefix (`zalo:…`, `telegram:…`, `sms:…`, `rest:…`).
Only the connector that authenticated a request (Zalo's signature, Telegram's secret token,
the SMS gateway's secret) creates ids with its own prefix; the REST channel puts every sender
it is given under `rest:` (`rest_sender`), and the Rasa HTTP API needs the server's token. So
the prefix names the channel, and nothing a request body says can change it.

Facts a connector verified beyond the sender id (the phone number Telegram says is the
sender's own, the number an SMS arrived from) travel in the message metadata as a sealed
envelope (`seal`): an HMAC under a key only our processes hold, bound to the channel, the
sender id and the time. `verified_facts` returns the facts of a valid envelope for this very
sender, and nothing otherwise, so no request body, metadata or slot can assert them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.identity.linking import secret_key

log = logging.getLogger(__name__)

VERIFIED_CHANNELS = ("zalo", "telegram", "sms")
REST = "rest"
ENVELOPE = "verified_sender"  # the metadata key of the sealed envelope
MAX_AGE_SECONDS = 600  # a turn runs its actions seconds after the connector sealed it
# Fact names; a connector may assert only these.
VERIFIED_PHONE = "verified_phone"
FACTS = frozenset({VERIFIED_PHONE})


def channel_of(sender_id: str) -> str:
    """The channel a conversation belongs to, from its id's prefix; `rest` for anything else."""
    prefix = sender_id.split(":", 1)[0] if ":" in sender_id else ""
    return prefix if prefix in VERIFIED_CHANNELS else REST


def rest_sender(given: str | None) -> str:
    """The REST channel's namespace: `telegram:123` from a REST client is `rest:telegram:123`."""
    given = given or "default"
    return given if given.startswith(REST + ":") else f"{REST}:{given}"


def _key() -> bytes:
    return hmac.new(secret_key(), b"sender-envelope", hashlib.sha256).digest()


def _mac(body: bytes) -> str:
    return hmac.new(_key(), body, hashlib.sha256).hexdigest()


def seal(
    channel: str,
    sender_id: str,
    facts: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> str:
    """The envelope a connector attaches to a message it authenticated (metadata[ENVELOPE])."""
    if channel not in VERIFIED_CHANNELS or channel_of(sender_id) != channel:
        raise ValueError(f"{channel} cannot vouch for sender {sender_id[:12]}")
    unknown = set(facts) - FACTS
    if unknown:
        raise ValueError(f"unknown facts {sorted(unknown)}")
    body = json.dumps(
        {"c": channel, "s": sender_id, "f": dict(facts), "t": int(clock())},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return base64.urlsafe_b64encode(body).decode() + "." + _mac(body)


def verified_facts(
    metadata: Mapping[str, Any] | None,
    sender_id: str,
    clock: Callable[[], float] = time.time,
) -> dict[str, str]:
    """The facts the connector of this sender's channel sealed for it; {} for anything else."""
    token = (metadata or {}).get(ENVELOPE)
    if not isinstance(token, str) or "." not in token or len(token) > 2048:
        return {}
    encoded, _, mac = token.rpartition(".")
    try:
        body = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return {}
    if not hmac.compare_digest(_mac(body), mac):
        log.warning("sender envelope with a wrong seal ignored")
        return {}
    data = json.loads(body)
    channel, facts, at = data.get("c"), data.get("f"), data.get("t")
    if data.get("s") != sender_id or channel != channel_of(sender_id):
        log.warning("sender envelope of another conversation ignored")
        return {}
    if not isinstance(at, int) or abs(clock() - at) > MAX_AGE_SECONDS:
        log.info("stale sender envelope ignored")
        return {}
    if not isinstance(facts, dict):
        return {}
    return {k: str(v) for k, v in facts.items() if k in FACTS}
