"""Rasa's SQL tracker store, off the event loop and without re-reading a conversation each turn.

Rasa 3.6's `SQLTrackerStore` is async in name only: reading a conversation (the SQL query, the
JSON of every event, replaying them into a tracker) and saving it (which first counts the stored
events again) run synchronously inside the Rasa server's single event loop, about a quarter of
its time under load (py-spy, bench/README.md "Conversations under load"). Here:

- on SQLite, the project's engine (bot/core/db.py: WAL, pooled connections) replaces Rasa's; on
  PostgreSQL, dropped connections are found without a `SELECT 1` before every query;
- the same SQL runs on a worker thread, so the loop keeps parsing other messages meanwhile (the
  e5 encoder and the database drivers release the GIL); a save's new events go in one
  multi-row INSERT, and on SQLite this process's saves take turns on a lock rather than in
  SQLite's busy handler;
- the tracker saved at the end of a turn is kept in memory (a bounded LRU, `cache_size`), with
  the id and timestamp of the conversation's last stored event. The next turn checks that one
  row (an indexed lookup) and, when it is unchanged, takes the kept tracker instead of reading
  and replaying the conversation; any other writer (a second Rasa process, erasure by the action
  server, the console) changes that row and the conversation is read afresh. A kept tracker is
  handed to one caller at a time (taken out of the cache until it is saved again), and only the
  latest conversation session is kept, as Rasa reads it.

Same tables and rows as Rasa's store. Configured as

    tracker_store:
      type: connectors.tracker_store.ThreadedSQLTrackerStore
      dialect: ...           # the options of Rasa's `type: SQL`
      cache_size: 256        # conversations kept between turns (0: none)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import OrderedDict
from typing import Any

from rasa.core import tracker_store as rasa_tracker_store
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.core.db import SQLITE_WRITE_LOCK, make_engine, replace_dropped_connections
from connectors.rasa_speedups import run_to_end

STORED = "_dvc_stored_events"  # attributes this store sets on the trackers it reads or saves
HEAD = "_dvc_last_stored_event"


class ThreadedSQLTrackerStore(SQLTrackerStore):
    engine: Engine  # set by Rasa's __init__, replaced in _replace_engine

    def __init__(self, *args: Any, cache_size: int = 256, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._replace_engine()
        # Saves read the count, then write: on SQLite they take the write lock first (see
        # bot/core/db.py), or a save racing another fails at once with "database is locked".
        self._write_sessions = sessionmaker(
            bind=self.engine.execution_options(**{SQLITE_WRITE_LOCK: True})
        )
        # SQLite has one writer at a time, and a writer that finds the file locked polls
        # (sleeps of 1, 2, 5, 10… ms): this process's saves queue on a lock instead, woken
        # as soon as the previous save commits.
        sqlite = self.engine.dialect.name == "sqlite"
        self._one_writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if sqlite else contextlib.nullcontext()
        )
        self.cache_size = int(cache_size)
        self._kept: OrderedDict[str, DialogueStateTracker] = OrderedDict()

    def _replace_engine(self) -> None:
        """SQLite: Rasa's engine commits with a rollback journal and a full sync, several disk
        flushes per turn, and opens a connection per query; the project's engine (WAL,
        synchronous=NORMAL, pooled connections, a 30 s busy timeout) instead. PostgreSQL:
        Rasa's settings (pool size, schema; the guard's connect timeout), with dropped
        connections found without a round trip per query (`replace_dropped_connections`)."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            engine = make_engine(url.render_as_string(hide_password=False))
        elif url.get_backend_name() == "postgresql":
            options = rasa_tracker_store.create_engine_kwargs(url)  # with the guard's
            options.pop("pool_pre_ping", None)
            engine = create_engine(url, **options)
            replace_dropped_connections(engine)
        else:
            return
        self.engine.dispose()
        self.engine = engine
        self.sessionmaker = sessionmaker(bind=self.engine)

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        if fetch_events_from_all_sessions:
            parent = super()._retrieve
            return await asyncio.to_thread(lambda: run_to_end(parent(sender_id, True)))
        kept = self._kept.pop(sender_id, None)  # on the loop: one taker per kept tracker
        return await asyncio.to_thread(self._read_latest_session, sender_id, kept)

    def _read_latest_session(
        self, sender_id: str, kept: DialogueStateTracker | None
    ) -> DialogueStateTracker | None:
        with self.session_scope() as session:
            if kept is not None and len(kept.events) == getattr(kept, STORED, -1):
                head = self._last_row(session, sender_id)
                if head is not None and head == getattr(kept, HEAD, None):
                    return kept
            rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
            rows = rows.all()
            if not self.domain or not rows:
                return None
            tracker = DialogueStateTracker.from_dict(
                sender_id, [json.loads(row.data) for row in rows], self.domain.slots
            )
            setattr(tracker, STORED, len(tracker.events))
            setattr(tracker, HEAD, (rows[-1].id, rows[-1].timestamp))
            return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)  # the event broker's own (async) client
        new_session = await asyncio.to_thread(self._store_new_events, tracker)
        self._kept.pop(tracker.sender_id, None)
        if self.cache_size > 0 and not new_session:
            self._kept[tracker.sender_id] = tracker
            while len(self._kept) > self.cache_size:
                self._kept.popitem(last=False)

    def _store_new_events(self, tracker: DialogueStateTracker) -> bool:
        """Add the events not stored yet: the rows of Rasa 3.6's `SQLTrackerStore.save`, in one
        multi-row INSERT instead of one per event, counted with a query only for a tracker this
        store did not read or save. True when a conversation session started in them: Rasa
        reads only the latest session, so such a tracker is not kept."""
        stored: int | None = getattr(tracker, STORED, None)
        known = stored is not None
        new_events, rows = (
            self._new_rows(tracker, stored) if stored is not None else ([], [])  # unlocked
        )
        with self._one_writer, self._write_sessions() as session:
            if not known:
                stored = self._event_query(
                    session, tracker.sender_id, fetch_events_from_all_sessions=False
                ).count()
                new_events, rows = self._new_rows(tracker, stored)
            if rows:
                session.execute(insert(self.SQLEvent.__table__), rows)
                setattr(tracker, HEAD, self._last_row(session, tracker.sender_id))
            session.commit()
        setattr(tracker, STORED, len(tracker.events))
        return not known or any(isinstance(e, SessionStarted) for e in new_events)

    def _new_rows(
        self, tracker: DialogueStateTracker, stored: int
    ) -> tuple[list[Event], list[dict[str, Any]]]:
        new_events = list(tracker.events)[stored:]
        return new_events, [self._row(tracker.sender_id, event) for event in new_events]

    @staticmethod
    def _row(sender_id: str, event: Event) -> dict[str, Any]:
        data = event.as_dict()
        return {
            "sender_id": sender_id,
            "type_name": event.type_name,
            "timestamp": data.get("timestamp"),
            "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
            "action_name": data.get("name"),
            "data": json.dumps(data),
        }

    def _last_row(self, session: Session, sender_id: str) -> tuple[int, float] | None:
        """(id, timestamp) of the conversation's last stored event: what a kept tracker is
        checked against."""
        row = session.execute(
            select(self.SQLEvent.id, self.SQLEvent.timestamp)
            .where(self.SQLEvent.sender_id == sender_id)
            .order_by(self.SQLEvent.id.desc())
            .limit(1)
        ).first()
        return None if row is None else (row[0], row[1])
