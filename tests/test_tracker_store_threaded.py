"""The threaded SQL tracker store stores and reads exactly what Rasa's own does."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from bot.core.config import PROJECT_ROOT
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


def next_turn(tracker: DialogueStateTracker, n: int) -> None:
    tracker.update(UserUttered(f"tiếp {n}", {"name": "affirm", "confidence": 0.8}))
    tracker.update(BotUttered(f"vâng {n}"))
    tracker.update(ActionExecuted("action_listen"))


async def test_a_saved_conversation_is_kept_for_its_next_turn(tmp_path: Path) -> None:
    db = str(tmp_path / "tracker.db")
    ours = ThreadedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    rasa = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    await ours.save(conversation("zalo:2", 2))
    tracker = await ours.retrieve("zalo:2")  # read from the database, then kept after its turns
    assert tracker is not None
    for n in range(3):
        next_turn(tracker, n)
        await ours.save(tracker)
        again = await ours.retrieve("zalo:2")
        assert again is tracker  # no read, no replay
        read_by_rasa = await rasa.retrieve("zalo:2")
        assert read_by_rasa is not None
        assert read_by_rasa.current_state() == tracker.current_state()  # every event stored once
    assert await ours.retrieve("zalo:2") is not tracker  # handed out: a second taker reads afresh


async def test_another_writer_or_an_erasure_makes_it_read_afresh(tmp_path: Path) -> None:
    db = str(tmp_path / "tracker.db")
    ours = ThreadedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    other_process = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    await ours.save(conversation("zalo:3", 2))
    kept = await ours.retrieve("zalo:3")
    assert kept is not None
    await ours.save(kept)
    elsewhere = await other_process.retrieve("zalo:3")
    assert elsewhere is not None
    next_turn(elsewhere, 7)
    await other_process.save(elsewhere)
    fresh = await ours.retrieve("zalo:3")
    assert fresh is not None and fresh is not kept
    assert fresh.current_state() == elsewhere.current_state()
    await ours.save(fresh)
    with ours.session_scope() as session:  # what erasure does to a conversation
        session.query(ours.SQLEvent).filter(ours.SQLEvent.sender_id == "zalo:3").delete()
        session.commit()
    assert await ours.retrieve("zalo:3") is None


async def test_a_new_session_and_the_size_bound_are_not_kept(tmp_path: Path) -> None:
    store = ThreadedSQLTrackerStore(
        DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"), cache_size=2
    )
    await store.save(conversation("sms:1", 1))
    tracker = await store.retrieve("sms:1")
    assert tracker is not None
    tracker.update(SessionStarted())  # Rasa reads only the latest session: read it afresh
    next_turn(tracker, 1)
    await store.save(tracker)
    fresh = await store.retrieve("sms:1")
    assert fresh is not None and fresh is not tracker
    assert len(fresh.events) == 4  # the new session's events only, as Rasa's store reads them
    trackers = []
    for n in range(3):
        await store.save(conversation(f"sms:{n + 10}", 1))
        trackers.append(await store.retrieve(f"sms:{n + 10}"))
    for t in trackers:
        await store.save(t)
    assert await store.retrieve("sms:10") is not trackers[0]  # the oldest was dropped
    assert await store.retrieve("sms:12") is trackers[2]
