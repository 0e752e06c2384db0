"""The threaded SQL tracker store stores and reads exactly what Rasa's own does."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.config import PROJECT_ROOT
from connectors.tracker_store import ThreadedSQLTrackerStore

with warnings.catch_warnings():  # Rasa warns about slot mappings of the project's domain
    warnings.simplefilter("ignore")
    DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))


def conversation(sender: str, turns: int) -> DialogueStateTracker:
    tracker = DialogueStateTracker(sender, DOMAIN.slots)
    for n in range(turns):
        tracker.update(UserUttered(f"tin nhắn {n}", {"name": "greet", "confidence": 0.9}))
        tracker.update(SlotSet("awaiting", f"lượt {n}"))
        tracker.update(BotUttered(f"trả lời {n}"))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


async def test_same_rows_and_trackers_as_rasas_store(tmp_path: Path) -> None:
    db = str(tmp_path / "tracker.db")
    ours = ThreadedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    rasa = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    first = conversation("zalo:1", 3)
    await ours.save(first)
    read_by_rasa = await rasa.retrieve("zalo:1")
    assert read_by_rasa is not None and read_by_rasa.current_state() == first.current_state()
    longer = conversation("zalo:1", 5)  # two more turns: only the new events are added
    await ours.save(longer)
    read_back = await ours.retrieve("zalo:1")
    assert read_back is not None and read_back.current_state() == longer.current_state()
    assert read_back.get_slot("awaiting") == "lượt 4"
    assert await ours.retrieve("nobody") is None


async def test_conversations_read_and_written_at_once(tmp_path: Path) -> None:
    store = ThreadedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    trackers = [conversation(f"telegram:{n}", 4) for n in range(8)]
    await asyncio.gather(*(store.save(t) for t in trackers))
    read = await asyncio.gather(*(store.retrieve(t.sender_id) for t in trackers))
    assert [r.current_state() for r in read] == [t.current_state() for t in trackers]
