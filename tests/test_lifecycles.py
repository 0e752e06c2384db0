"""Lifecycles: every allowed move, forbidden moves refused, named sets, and the database's CHECK
constraints (from the real migrations) refusing values outside the enums on both engines."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, get_args

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bot.core.db import unit_of_work
from bot.core.lifecycles import (
    ATTEMPT,
    DELIVERY,
    DELIVERY_CLAIMABLE,
    DOSSIER,
    DOSSIER_AWAITING_OFFICER,
    DOSSIER_CANCELLABLE,
    DOSSIER_FINISHED,
    DOSSIER_IN_PROGRESS,
    DRAFT,
    HANDOFF,
    HANDOFF_ACTIVE,
    HANDOFF_REPLY,
    LIFECYCLES,
    REMINDER,
    REMINDER_CONVERTIBLE,
    Actor,
    AttemptOutcome,
    DossierStatus,
    ForbiddenTransition,
    Lifecycle,
    ReminderState,
)
from bot.core.migrate import alembic_config, upgrade
from bot.core.models import (
    Citizen,
    Consent,
    Delivery,
    DeliveryAttempt,
    Dossier,
    DossierDraft,
    DossierStatusChange,
    Handoff,
    HandoffReply,
    Reminder,
)
from bot.delivery.sending import Kind
from bot.dossiers.submission import STATUS_LABELS
from tests import factories

MOVES = [pytest.param(lc, a, b, id=f"{lc.name}:{a}->{b}") for lc in LIFECYCLES for a, b in lc.moves]


@pytest.mark.parametrize(("lifecycle", "current", "target"), MOVES)
def test_every_allowed_move(lifecycle: Lifecycle, current: str, target: str) -> None:
    by = lifecycle.reserved.get((current, target))
    row = SimpleNamespace(**{lifecycle.attribute: current.value})  # as read from the database
    assert lifecycle.can_move(current.value, target.value, by)
    assert lifecycle.move(row, target.value, by) == current
    assert getattr(row, lifecycle.attribute) is target
    assert target in lifecycle.targets(current, by) and current in lifecycle.sources(target, by)


@pytest.mark.parametrize("lifecycle", LIFECYCLES, ids=lambda lc: lc.name)
def test_every_other_move_is_forbidden(lifecycle: Lifecycle) -> None:
    allowed = set(lifecycle.moves)
    for current, target in itertools.product(lifecycle.states, repeat=2):
        if (current, target) in allowed:
            continue
        row = SimpleNamespace(**{lifecycle.attribute: current.value})
        assert not lifecycle.can_move(current, target)
        with pytest.raises(ForbiddenTransition, match=lifecycle.name):
            lifecycle.move(row, target)
        assert getattr(row, lifecycle.attribute) == current  # unchanged
    first = next(iter(lifecycle.states))
    assert not lifecycle.can_move(first, "bogus") and not lifecycle.can_move("bogus", first)
    with pytest.raises(ForbiddenTransition):
        lifecycle.check("bogus", first)


def test_reserved_moves_need_their_actor() -> None:
    received, cancelled = DossierStatus.RECEIVED, DossierStatus.CANCELLED
    assert DOSSIER.can_move(received, cancelled, by=Actor.CITIZEN)
    for by in (Actor.OFFICER, None):
        assert not DOSSIER.can_move(received, cancelled, by=by)
        with pytest.raises(ForbiddenTransition, match="from 'received' to 'cancelled'"):
            DOSSIER.check(received, cancelled, by=by)


def test_officer_moves_are_the_consoles_former_table() -> None:
    """The console offered exactly these, in this order, before the lifecycle existed."""
    former = {
        "prepared": ("received", "cancelled"),
        "received": ("processing", "needs_info", "rejected"),
        "processing": ("needs_info", "completed", "rejected"),
        "needs_info": ("processing", "completed", "rejected"),
    }
    for status in DossierStatus:
        assert DOSSIER.targets(status, by=Actor.OFFICER) == former.get(status, ())


def test_named_sets() -> None:
    assert DOSSIER_IN_PROGRESS == ("prepared", "received", "processing", "needs_info")
    assert DOSSIER_AWAITING_OFFICER == ("received", "processing", "needs_info")
    assert DOSSIER_CANCELLABLE == ("prepared", "received")
    assert DOSSIER_FINISHED == ("completed", "rejected", "cancelled")
    assert REMINDER_CONVERTIBLE == ("pending", "attempting", "sent")
    assert HANDOFF_ACTIVE == ("open", "taken")
    assert DELIVERY_CLAIMABLE == ("pending", "failed")
    named = [
        (DOSSIER, DOSSIER_IN_PROGRESS),
        (DOSSIER, DOSSIER_AWAITING_OFFICER),
        (DOSSIER, DOSSIER_CANCELLABLE),
        (DOSSIER, DOSSIER_FINISHED),
        (REMINDER, REMINDER_CONVERTIBLE),
        (HANDOFF, HANDOFF_ACTIVE),
        (DELIVERY, DELIVERY_CLAIMABLE),
    ]
    for lifecycle, states in named:
        assert states and all(isinstance(s, lifecycle.states) for s in states)
    assert set(DOSSIER_AWAITING_OFFICER) <= set(DOSSIER_IN_PROGRESS)
    assert not set(DOSSIER_IN_PROGRESS) & set(DOSSIER_FINISHED)


def test_every_state_is_reachable_or_initial_and_labelled() -> None:
    for lifecycle in LIFECYCLES:
        reached = set(lifecycle.initial) | {b for _, b in lifecycle.moves}
        unreachable = set(lifecycle.states) - reached
        assert unreachable <= {ReminderState.DELIVERED}, lifecycle.name  # nothing writes it
    assert list(STATUS_LABELS) == list(DossierStatus)
    assert set(AttemptOutcome) == {"started", "sent", *get_args(Kind)}


def test_values_render_as_stored() -> None:
    assert str(DossierStatus.NEEDS_INFO) == f"{DossierStatus.NEEDS_INFO}" == "needs_info"
    assert HANDOFF.check_sql() == "status IN ('open', 'taken', 'closed')"


# --- the database ------------------------------------------------------------------------

NOW = dt.datetime(2026, 12, 6, 2, 0)
_serial = itertools.count()


def _parents(conn: Connection) -> dict[str, int]:
    citizen = conn.execute(
        insert(Citizen).values(
            cccd="066190009999", full_name="A", date_of_birth=dt.date(1990, 1, 1), sex="F"
        )
    ).inserted_primary_key[0]
    dossier = conn.execute(
        insert(Dossier).values(code="DLK-X", service_code="x", status="received")
    ).inserted_primary_key[0]
    handoff = conn.execute(
        insert(Handoff).values(sender_id="s", channel="rest", status="open")
    ).inserted_primary_key[0]
    delivery = conn.execute(
        insert(Delivery).values(
            idempotency_key="k", channel="sms", recipient="r", kind="x", status="sent"
        )
    ).inserted_primary_key[0]
    return {"citizen": citizen, "dossier": dossier, "handoff": handoff, "delivery": delivery}


def _row(model: type, ids: dict[str, int], value: str) -> dict[str, Any]:
    n = next(_serial)
    return {
        Dossier: {"code": f"DLK-{n}", "service_code": "x", "status": value},
        DossierStatusChange: {"dossier_id": ids["dossier"], "status": value, "changed_by": "t"},
        Reminder: {
            "subject_type": "citizen",
            "subject_id": ids["citizen"],
            "service_code": "x",
            "event_key": f"e{n}",
            "stage": 1,
            "due_on": NOW.date(),
            "state": value,
        },
        Handoff: {"sender_id": f"s{n}", "channel": "rest", "status": value},
        HandoffReply: {
            "handoff_id": ids["handoff"],
            "key": f"k{n}",
            "officer": "o",
            "status": value,
        },
        Delivery: {
            "idempotency_key": f"k{n}",
            "channel": "sms",
            "recipient": "r",
            "kind": "x",
            "status": value,
        },
        DeliveryAttempt: {"delivery_id": ids["delivery"], "number": n, "outcome": value},
        DossierDraft: {
            "channel": "rest",
            "channel_user_id": f"u{n}",
            "citizen_id": ids["citizen"],
            "service_code": "x",
            "state": value,
        },
    }[model]


CONSTRAINED = [
    (Dossier, DOSSIER),
    (DossierStatusChange, DOSSIER),
    (Reminder, REMINDER),
    (Handoff, HANDOFF),
    (HandoffReply, HANDOFF_REPLY),
    (Delivery, DELIVERY),
    (DeliveryAttempt, ATTEMPT),
    (DossierDraft, DRAFT),
]


@pytest.mark.parametrize(
    ("model", "lifecycle"), CONSTRAINED, ids=[m.__tablename__ for m, _ in CONSTRAINED]
)
def test_the_database_refuses_an_unknown_status(
    engine: Engine, model: type, lifecycle: Lifecycle
) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    name = f"ck_{table.name}_{lifecycle.attribute}"
    assert name in {ck["name"] for ck in inspect(engine).get_check_constraints(table.name)}
    with engine.begin() as conn:
        ids = _parents(conn)
        for state in lifecycle.states:  # every value of the enum is accepted
            conn.execute(insert(table).values(**_row(model, ids, state)))
    with pytest.raises(IntegrityError, match=name), engine.begin() as conn:
        conn.execute(insert(table).values(**_row(model, ids, "bogus")))


# --- the migration on existing data ------------------------------------------------------


@pytest.fixture
def at_0004(db_url: str, engine: Engine) -> Iterator[Engine]:
    """The database one revision back, brought to head again afterwards."""
    cfg = alembic_config(db_url)
    command.downgrade(cfg, "0004")
    yield engine
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM reminders WHERE state = 'queued'"))
    upgrade(db_url)


def test_upgrade_keeps_rows_that_reference_the_rebuilt_tables(db_url: str, at_0004: Engine) -> None:
    """SQLite copies `dossiers` to add the check; its history and consents must survive."""
    with unit_of_work(at_0004) as s:
        citizen = factories.citizen(s)
        dossier = Dossier(code="DLK-1", service_code="x", citizen_id=citizen.id, status="received")
        s.add(dossier)
        s.flush()
        s.add(DossierStatusChange(dossier_id=dossier.id, status="received", changed_by="citizen"))
        # Core insert of the columns revision 0004 has (later ones add columns to consents).
        consent = {"citizen_id": citizen.id, "dossier_id": dossier.id}
        s.execute(Consent.__table__.insert().values(service_code="x", channel="t", **consent))
    upgrade(db_url)
    with unit_of_work(at_0004) as s:
        dossier_id = s.scalar(select(Dossier.id))
        assert s.scalar(select(DossierStatusChange.dossier_id)) == dossier_id
        assert s.scalar(select(Consent.dossier_id)) == dossier_id
    if at_0004.dialect.name == "sqlite":
        with at_0004.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []


def test_upgrade_names_the_rows_outside_their_lifecycle(db_url: str, at_0004: Engine) -> None:
    with at_0004.begin() as conn:
        ids = _parents(conn)
        conn.execute(insert(Reminder.__table__).values(**_row(Reminder, ids, "queued")))
    with pytest.raises(RuntimeError, match=r"reminders\.state = 'queued'"):
        upgrade(db_url)
