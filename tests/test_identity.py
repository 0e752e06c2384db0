"""Account linking by one-time code: expiry, lock, rate limit, no enumeration."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.engine import Engine

from bot.core.db import unit_of_work
from bot.identity.linking import (
    LinkOutcome,
    OtpIdentityProvider,
    bound_citizen,
    link_by_verified_phone,
    unbind,
)
from tests import factories


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, text: str) -> None:
        self.sent.append((to, text))

    def last_code(self) -> str:
        return re.search(r"\b(\d{6})\b", self.sent[-1][1]).group(1)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 23, 3, 0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def setup(engine: Engine, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("APP_SECRET_KEY", "test-secret")
    with unit_of_work(engine) as session:
        factories.citizen(session)
    outbox, clock = Outbox(), Clock()
    return engine, OtpIdentityProvider(outbox, clock), outbox, clock


def test_right_code_links_and_identity_comes_from_the_binding(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, outbox, _ = setup
    with unit_of_work(engine) as s:
        started = provider.start(s, "rest", "u1", "066190001234")
    assert started.outcome is LinkOutcome.CODE_SENT and started.masked_phone == "09******56"
    assert outbox.sent[0][0] == "0905123456"
    with unit_of_work(engine) as s:
        assert bound_citizen(s, "rest", "u1") is None
        assert provider.verify(s, "rest", "u1", outbox.last_code()).outcome is LinkOutcome.LINKED
    with unit_of_work(engine) as s:
        assert bound_citizen(s, "rest", "u1").cccd == "066190001234"
        assert bound_citizen(s, "telegram", "u1") is None
        assert unbind(s, "rest", "u1")
        assert bound_citizen(s, "rest", "u1") is None


def test_unknown_id_gets_the_same_answer_and_no_sms(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, outbox, _ = setup
    with unit_of_work(engine) as s:
        unknown = provider.start(s, "rest", "u2", "066190009999")
        again = provider.start(s, "rest", "u3", "066190009999")
    assert unknown.outcome is LinkOutcome.CODE_SENT
    assert re.fullmatch(r"0\d\*{6}\d\d", unknown.masked_phone)
    assert unknown.masked_phone == again.masked_phone  # stable, so retrying reveals nothing
    assert outbox.sent == []
    with unit_of_work(engine) as s:
        assert provider.verify(s, "rest", "u2", "123456").outcome is LinkOutcome.WRONG_CODE


def test_five_wrong_codes_lock_for_fifteen_minutes(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, outbox, clock = setup
    with unit_of_work(engine) as s:
        provider.start(s, "rest", "u1", "066190001234")
    wrong = "000000" if outbox.last_code() != "000000" else "111111"
    outcomes = []
    for _ in range(5):
        with unit_of_work(engine) as s:
            outcomes.append(provider.verify(s, "rest", "u1", wrong).outcome)
    assert outcomes[:4] == [LinkOutcome.WRONG_CODE] * 4 and outcomes[4] is LinkOutcome.LOCKED
    with unit_of_work(engine) as s:  # even the right code is refused while locked
        assert provider.verify(s, "rest", "u1", outbox.last_code()).outcome is LinkOutcome.LOCKED
        assert provider.start(s, "rest", "u1", "066190001234").outcome is LinkOutcome.LOCKED
    clock.now += dt.timedelta(minutes=16)
    with unit_of_work(engine) as s:
        assert provider.start(s, "rest", "u1", "066190001234").outcome is LinkOutcome.CODE_SENT
    with unit_of_work(engine) as s:
        assert provider.verify(s, "rest", "u1", outbox.last_code()).outcome is LinkOutcome.LINKED


def test_code_expires_after_five_minutes(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, outbox, clock = setup
    with unit_of_work(engine) as s:
        provider.start(s, "rest", "u1", "066190001234")
    clock.now += dt.timedelta(minutes=5, seconds=1)
    with unit_of_work(engine) as s:
        assert provider.verify(s, "rest", "u1", outbox.last_code()).outcome is LinkOutcome.EXPIRED


def test_at_most_three_codes_per_id_per_hour(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, outbox, clock = setup
    results = []
    for sender in ("a", "b", "c", "d"):
        with unit_of_work(engine) as s:
            results.append(provider.start(s, "rest", sender, "066190001234").outcome)
    assert results == [LinkOutcome.CODE_SENT] * 3 + [LinkOutcome.TOO_MANY_CODES]
    assert len(outbox.sent) == 3
    clock.now += dt.timedelta(minutes=61)
    with unit_of_work(engine) as s:
        assert provider.start(s, "rest", "e", "066190001234").outcome is LinkOutcome.CODE_SENT


def test_malformed_id_is_rejected_before_anything_is_stored(setup) -> None:  # type: ignore[no-untyped-def]
    engine, provider, _, _ = setup
    with unit_of_work(engine) as s:
        assert provider.start(s, "rest", "u1", "12345").outcome is LinkOutcome.INVALID_ID


def test_shared_contact_links_only_the_registry_phone(setup) -> None:  # type: ignore[no-untyped-def]
    engine, *_ = setup
    with unit_of_work(engine) as s:
        assert link_by_verified_phone(s, "telegram", "telegram:7", "+84905123456") is not None
        assert link_by_verified_phone(s, "telegram", "telegram:8", "0912000000") is None
    with unit_of_work(engine) as s:
        assert bound_citizen(s, "telegram", "telegram:7").phone == "0905123456"
