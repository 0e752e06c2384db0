"""The `events` table of Rasa's SQL tracker store, as Rasa 3.6 creates it (read-only for us,
except erasure and retention). Kept apart from `bot.core.models.Base`: Rasa owns this schema."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text, inspect
from sqlalchemy.engine import Engine

tracker_metadata = MetaData()
events = Table(
    "events",
    tracker_metadata,
    Column("id", Integer, primary_key=True),
    Column("sender_id", String(255), nullable=False),
    Column("type_name", String(255), nullable=False),
    Column("timestamp", Float),
    Column("intent_name", String(255)),
    Column("action_name", String(255)),
    Column("data", Text),
    Index("ix_events_sender_id", "sender_id"),
)


def ensure_events_table(engine: Engine) -> None:
    """Create the table as Rasa would (tests, benchmarks, a console started before Rasa)."""
    tracker_metadata.create_all(engine)


def has_events_table(engine: Engine) -> bool:
    found: bool = inspect(engine).has_table("events")
    return found
