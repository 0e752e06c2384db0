"""Dispatch, status notices, catch-up and leadership with a frozen clock and real databases."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Dossier, DossierStatusChange, Reminder, ScanRun
from bot.delivery.deliverer import Deliverer, DeliveryResult, Notice, Route
from bot.reminders.preferences import stop
from scheduler.dispatch import DispatchConfig, batch_size, dispatch, local
from scheduler.jobs import days_to_scan, last_scanned_day, scan_due_days
from scheduler.leader import Leadership
from scheduler.notices import send_status_notices
from tests import factories

# 09:00 in Đắk Lắk (UTC+7) on Monday 23 November 2026.
MORNING = dt.datetime(2026, 11, 23, 2, 0)
NIGHT = dt.datetime(2026, 11, 23, 15, 0)  # 22:00 local
CONFIG = DispatchConfig(per_citizen_per_day=2)


class Recorder:
    """Stands in for the delivery API: records calls, answers with the scripted status."""

    def __init__(self, status: str = "sent") -> None:
        self.calls: list[tuple[int, Notice, str]] = []
        self.status = status

    async def __call__(self, citizen_id: int, notice: Notice, key: str) -> DeliveryResult:
        self.calls.append((citizen_id, notice, key))
        return DeliveryResult(key, self.status, "sms" if self.status == "sent" else None)


def _reminders(engine: Engine, count: int, service: str = "tam_tru_gia_han") -> list[int]:
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        record = factories.record(
            s,
            person,
            "tam_tru",
            issued_on=dt.date(2024, 1, 1),
            valid_until=dt.date(2026, 12, 23),
            attributes={"dia_chi_tam_tru": "x"},
        )
        rows = [
            Reminder(
                subject_type="citizen",
                subject_id=person.id,
                service_code=service,
                event_key=f"record:{record.id}:{n}",
                stage=30,
                record_id=record.id,
                due_on=dt.date(2026, 11, 23),
                state="pending",
            )
            for n in range(count)
        ]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _states(engine: Engine) -> list[str]:
    with unit_of_work(engine) as s:
        return [r.state for r in s.scalars(select(Reminder).order_by(Reminder.id))]


async def test_dispatch_renders_the_reminder_into_the_conversation(
    engine: Engine, catalogue: Catalogue
) -> None:
    (reminder_id,) = _reminders(engine, 1)
    deliver = Recorder()
    report = await dispatch(engine, catalogue, deliver, MORNING, CONFIG)
    assert report.sent == 1 and _states(engine) == ["sent"]
    _, notice, key = deliver.calls[0]
    assert key == f"reminder:{reminder_id}" and notice.intent == "EXTERNAL_reminder"
    assert notice.entities == {"reminder_id": str(reminder_id)}
    assert "Nguyễn Văn An" in notice.text and "23/12/2026" in notice.text


async def test_nothing_at_night_and_a_daily_cap_per_citizen(
    engine: Engine, catalogue: Catalogue
) -> None:
    _reminders(engine, 3)
    deliver = Recorder()
    assert (await dispatch(engine, catalogue, deliver, NIGHT, CONFIG)).outside_hours
    assert deliver.calls == []
    rounds = [
        await dispatch(engine, catalogue, deliver, MORNING + dt.timedelta(minutes=n), CONFIG)
        for n in range(4)
    ]
    assert [r.sent for r in rounds] == [1, 1, 0, 0] and rounds[2].deferred == 1
    tomorrow = MORNING + dt.timedelta(days=1)
    assert (await dispatch(engine, catalogue, deliver, tomorrow, CONFIG)).sent == 1


def test_a_large_batch_is_spread_over_the_window() -> None:
    nine = local(MORNING)
    assert batch_size(720, nine, CONFIG) == 1  # 720 rows over the 720 minutes to 21:00
    assert batch_size(7200, nine, CONFIG) == 10


async def test_opt_out_after_the_scan_is_honoured_at_dispatch(
    engine: Engine, catalogue: Catalogue
) -> None:
    _reminders(engine, 1)
    with unit_of_work(engine) as s:
        stop(s, 1, None)
    report = await dispatch(engine, catalogue, Recorder(), MORNING, CONFIG)
    assert report.skipped == 1 and _states(engine) == ["skipped"]


class CountingSender:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        self.sent.append(key)
        return "id"


async def test_crash_between_attempting_and_sent_delivers_exactly_once(
    engine: Engine, catalogue: Catalogue
) -> None:
    (reminder_id,) = _reminders(engine, 1)
    sender = CountingSender()
    deliverer = Deliverer(engine, {"sms": sender})

    async def crash_after_sending(citizen_id: int, notice: Notice, key: str) -> DeliveryResult:
        await deliverer.deliver(citizen_id, notice, key)
        raise KeyboardInterrupt  # the process dies before marking the row 'sent'

    with pytest.raises(KeyboardInterrupt):
        await dispatch(engine, catalogue, crash_after_sending, MORNING, CONFIG)
    assert _states(engine) == ["attempting"]
    later = MORNING + dt.timedelta(minutes=15)  # after restart the stale claim is retried
    report = await dispatch(engine, catalogue, deliverer.deliver, later, CONFIG)
    await deliverer.aclose()
    assert report.sent == 1 and _states(engine) == ["sent"]
    assert sender.sent == [f"reminder:{reminder_id}"]


async def test_status_changes_are_notified_once(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        dossier = Dossier(
            code="DLK-261123-00001",
            service_code="tam_tru_gia_han",
            citizen_id=person.id,
            status="completed",
            fields={},
        )
        s.add(dossier)
        s.flush()
        s.add_all(
            [
                DossierStatusChange(
                    dossier_id=dossier.id,
                    status="received",
                    changed_by="citizen",
                    created_at=MORNING,
                ),
                DossierStatusChange(
                    dossier_id=dossier.id,
                    status="completed",
                    changed_by="canbo1",
                    note="Mời nhận kết quả",
                    created_at=MORNING,
                ),
            ]
        )
    sender = CountingSender()
    deliverer = Deliverer(engine, {"sms": sender})
    assert await send_status_notices(engine, deliverer.deliver, MORNING) == 1
    assert await send_status_notices(engine, deliverer.deliver, MORNING) == 0
    await deliverer.aclose()
    assert len(sender.sent) == 1 and sender.sent[0].startswith("status:")


def test_catch_up_scans_every_missed_day_once(engine: Engine, catalogue: Catalogue) -> None:
    assert days_to_scan(None, dt.date(2026, 11, 23)) == [dt.date(2026, 11, 23)]
    assert len(days_to_scan(dt.date(2026, 1, 1), dt.date(2026, 11, 23))) == 32
    scan_due_days(engine, catalogue, dt.date(2026, 11, 20))
    assert list(scan_due_days(engine, catalogue, dt.date(2026, 11, 23))) == [
        dt.date(2026, 11, 21),
        dt.date(2026, 11, 22),
        dt.date(2026, 11, 23),
    ]
    assert scan_due_days(engine, catalogue, dt.date(2026, 11, 23)) == {}
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).select_from(ScanRun)) == 4


def test_two_schedulers_one_leader(db_url: str, engine: Engine, tmp_path: Path) -> None:
    first = Leadership(engine, tmp_path / "scheduler.lock")
    assert first.try_acquire()
    script = textwrap.dedent(f"""
        from pathlib import Path
        from bot.core.db import make_engine
        from scheduler.leader import Leadership
        lock = Path({str(tmp_path / "scheduler.lock")!r})
        print(Leadership(make_engine({db_url!r}), lock).try_acquire())
    """)

    def other() -> str:
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        return run.stdout.strip()

    assert other() == "False"
    first.release()  # the leader dies or stops: the next one takes over
    assert other() == "True"


def test_scan_progress_moves_from_the_audit_log_to_its_own_table(
    db_url: str, engine: Engine, catalogue: Catalogue
) -> None:
    """Migration 0006: days the audit log says were scanned stay scanned (no second scan)."""
    from alembic import command
    from sqlalchemy import text

    from bot.core.migrate import alembic_config, upgrade

    command.downgrade(alembic_config(db_url), "0005")
    with engine.begin() as conn:
        for day in ("2026-11-20", "2026-11-21", "2026-11-21"):
            conn.execute(
                text(
                    "INSERT INTO audit_log (actor, action, target_type, target_id, detail, "
                    "created_at) VALUES ('scheduler', 'scan', 'day', :day, '{}', :at)"
                ),
                {"day": day, "at": dt.datetime(2026, 11, 22)},
            )
    upgrade(db_url)
    assert last_scanned_day(engine) == dt.date(2026, 11, 21)
    assert list(scan_due_days(engine, catalogue, dt.date(2026, 11, 22))) == [dt.date(2026, 11, 22)]
