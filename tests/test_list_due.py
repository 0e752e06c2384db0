"""list_due answers with the same due rules as the scan (a registered birth is not due)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.account import ActionListDue
from bot.core.db import unit_of_work
from bot.identity.linking import bind
from bot.vietnamese.vn import add_years
from tests import factories

KHAI_SINH = "Đăng ký khai sinh"


def _parent_with_a_newborn(registered: bool) -> None:
    """A mother whose child was born 10 days ago; optionally the birth is registered since.
    (Ten days: whichever clock the action reads, the first reminder day has passed and the
    60-day deadline has not.)"""
    born = dt.date.today() - dt.timedelta(days=10)
    with unit_of_work() as s:
        mother = factories.citizen(s, sex="F", date_of_birth=dt.date(1995, 3, 2))
        factories.record(s, mother, "birth_notice", number="GCS-1", event_date=born)
        if registered:
            factories.record(
                s,
                mother,
                "birth_registration",
                number="KS-1",
                event_date=born + dt.timedelta(days=3),
            )
        bind(s, "rest", "u1", mother, "otp")


def _list_due() -> str:
    message = {"text": "tôi có giấy tờ nào sắp hết hạn", "intent": {"name": "list_due"}}
    events = [{"event": "user", "text": message["text"], "input_channel": "rest"}]
    t = Tracker("u1", {}, {**message, "entities": []}, events, False, None, None, "action_listen")
    dispatcher = CollectingDispatcher()
    result = ActionListDue().run(dispatcher, t, {})
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return "\n".join(m.get("text") or "" for m in dispatcher.messages)


def test_an_unregistered_birth_is_due(actions_db: Path) -> None:
    _parent_with_a_newborn(registered=False)
    assert KHAI_SINH in _list_due()


def test_a_registered_birth_is_not_due(actions_db: Path) -> None:
    """The scan sends no khai_sinh reminder once the birth is registered; list_due agrees."""
    _parent_with_a_newborn(registered=True)
    answer = _list_due()
    assert KHAI_SINH not in answer and "khai_sinh" not in answer


def test_only_the_newest_identity_card_counts(actions_db: Path) -> None:
    """An old card due for renewal at 25 no longer counts once a new card was issued."""
    turning_25 = dt.date.today() + dt.timedelta(days=40)
    born = add_years(turning_25, -25)
    with unit_of_work() as s:
        person = factories.citizen(s, date_of_birth=born)
        factories.record(s, person, "cccd", number="C-OLD", issued_on=add_years(born, 15))
        bind(s, "rest", "u1", person, "otp")
    assert "thẻ căn cước" in _list_due()
    with unit_of_work() as s:
        renewed = dt.date.today() - dt.timedelta(days=20)
        factories.record(s, person, "cccd", number="C-NEW", issued_on=renewed)
    assert "thẻ căn cước" not in _list_due()
