"""Rasa's SQL tracker store with its blocking work on a worker thread.

Rasa 3.6's `SQLTrackerStore` is async in name only: reading a conversation (the SQL query, the
JSON of every event, replaying them into a tracker) and saving it run synchronously inside the
Rasa server's single event loop, about a quarter of its time under load (py-spy, bench/README.md
"Conversations under load"), during which no other citizen's message is understood. Here the
same code runs on a thread, so the loop keeps parsing other messages meanwhile (the e5 encoder
and the database drivers release the GIL). Same tables, options and behaviour; configured as

    tracker_store:
      type: connectors.tracker_store.ThreadedSQLTrackerStore
      dialect: ...           # the options of Rasa's `type: SQL`
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

T = TypeVar("T")


def _finish(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never awaits (Rasa's SQL methods) to its end, synchronously."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the tracker store's method awaited something; run it on the loop")


class ThreadedSQLTrackerStore(SQLTrackerStore):
    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        parent = super()._retrieve
        return await asyncio.to_thread(
            lambda: _finish(parent(sender_id, fetch_events_from_all_sessions))
        )

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)  # the event broker's own (async) client
        await asyncio.to_thread(self._store_new_events, tracker)

    def _store_new_events(self, tracker: DialogueStateTracker) -> None:
        """The storing half of `SQLTrackerStore.save` (Rasa 3.6), unchanged."""
        with self.session_scope() as session:
            for event in self._additional_events(session, tracker):
                data = event.as_dict()
                intent = data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY)
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=intent,
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()
