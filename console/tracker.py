"""Reading Rasa's SQL tracker store (table `events`, as Rasa 3.6 writes it).

The console reads the store Rasa already keeps instead of an event broker: no extra service
(RabbitMQ/Kafka) on a fresh machine, the history is complete from the first message, and
erasure and retention delete from the very table the console shows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.core.tracker_store import ensure_events_table, events, has_events_table

__all__ = ["Entry", "ensure_events_table", "events", "has_events_table", "load_transcript"]

FALLBACK_INTENT = "nlu_fallback"
HIDDEN_ACTIONS = frozenset({"action_listen", "action_session_start"})
MAX_EVENTS = 5000


def to_datetime(timestamp: float | None) -> dt.datetime:
    """Rasa's Unix timestamps as naive UTC, like every timestamp of the app database."""
    return dt.datetime.fromtimestamp(timestamp or 0, dt.timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Entry:
    """One event of a conversation, as the console shows it."""

    event_id: int
    kind: str  # user, bot, action, slot, session, pause, resume, other
    at: dt.datetime
    text: str | None = None
    intent: str | None = None
    confidence: float | None = None
    entities: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    value: str | None = None
    channel: str | None = None
    officer: str | None = None
    buttons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_citizen(self) -> bool:
        """A message the citizen typed (not a system-triggered EXTERNAL_ intent)."""
        return self.kind == "user" and not (self.intent or "").startswith("EXTERNAL_")

    def low_confidence(self, threshold: float) -> bool:
        if not self.is_citizen:
            return False
        if self.intent == FALLBACK_INTENT:
            return True
        return self.confidence is not None and self.confidence < threshold


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def parse_event(event_id: int, type_name: str, timestamp: float | None, data: str | None) -> Entry:
    """An `events` row as an Entry; unknown or broken rows become `other` (never an error)."""
    try:
        body: dict[str, Any] = json.loads(data or "{}")
    except ValueError:
        body = {}
    at = to_datetime(timestamp if timestamp is not None else body.get("timestamp"))
    if type_name == "user":
        parse = body.get("parse_data") or {}
        intent = parse.get("intent") or {}
        entities = tuple(
            (str(e.get("entity")), _str(e.get("value")))
            for e in parse.get("entities") or []
            if isinstance(e, dict)
        )
        confidence = intent.get("confidence")
        return Entry(
            event_id,
            "user",
            at,
            text=body.get("text"),
            intent=intent.get("name"),
            confidence=float(confidence) if confidence is not None else None,
            entities=entities,
            channel=body.get("input_channel"),
        )
    if type_name == "bot":
        meta = body.get("metadata") or {}
        buttons = (body.get("data") or {}).get("buttons") or []
        return Entry(
            event_id,
            "bot",
            at,
            text=body.get("text"),
            officer=meta.get("officer") if isinstance(meta, dict) else None,
            buttons=tuple(str(b.get("title", "")) for b in buttons if isinstance(b, dict)),
        )
    if type_name == "action":
        return Entry(event_id, "action", at, name=body.get("name"))
    if type_name == "slot":
        shown = None if (value := body.get("value")) is None else _str(value)
        return Entry(event_id, "slot", at, name=body.get("name"), value=shown)
    if type_name in ("session_started", "pause", "resume"):
        return Entry(event_id, {"session_started": "session"}.get(type_name, type_name), at)
    return Entry(event_id, "other", at, name=type_name)


def rows_to_entries(rows: Iterable[Any]) -> list[Entry]:
    return [parse_event(r.id, r.type_name, r.timestamp, r.data) for r in rows]


def load_transcript(engine: Engine, sender_id: str, limit: int = MAX_EVENTS) -> list[Entry]:
    """The conversation's events in order (all sessions), at most `limit` of the latest."""
    query = (
        select(events.c.id, events.c.type_name, events.c.timestamp, events.c.data)
        .where(events.c.sender_id == sender_id)
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    return rows_to_entries(reversed(rows))
