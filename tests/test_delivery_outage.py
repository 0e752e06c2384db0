"""Deliveries when our own side is down or a worker died mid-send: the delivery waits instead of
falling back, the reminder keeps its attempts, a claim held by a dead worker is not mistaken
for a sent reminder, and the knobs the drills turn (stale claims, deliver interval)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import Delivery, DeliveryAttempt, Reminder
from bot.delivery import outbox
from bot.delivery.channel_state import touch_activity
from bot.delivery.deliverer import (
    ChannelLimit,
    Deliverer,
    DeliveryConfig,
    DeliveryResult,
    Notice,
    Route,
    ServiceUnavailable,
)
from bot.delivery.sending import Backoff, SendError
from bot.identity.linking import bind
from connectors.senders import RasaTrigger
from scheduler.dispatch import DispatchConfig, dispatch
from tests import factories
from tests.model.server import free_port

MORNING = dt.datetime(2026, 11, 23, 2, 0)  # 09:00 in Đắk Lắk
CONFIG = DispatchConfig(per_citizen_per_day=5, defer_after=dt.timedelta(minutes=1))
FAST = DeliveryConfig(
    max_attempts=3,
    backoff=Backoff(base=0.01, cap=0.02),
    limits={c: ChannelLimit(1000) for c in ("zalo", "sms")},
)
NOTICE = Notice(text="Nhắc hạn", intent="EXTERNAL_reminder", entities={"reminder_id": "1"})


class Sender:
    """Scripted channel: raises `error` while set, else records the key."""

    def __init__(self, error: SendError | None = None) -> None:
        self.error, self.sent, self.calls = error, [], 0

    async def send(self, route: Route, notice: Notice, key: str) -> str | None:
        self.calls += 1
        if self.error is not None:
            raise self.error
        self.sent.append(key)
        return None


def zalo_citizen(engine: Engine) -> int:
    with unit_of_work(engine) as s:
        person = factories.citizen(s)
        bind(s, "zalo", "zalo:1", person, "otp")
        citizen_id = person.id
    touch_activity(engine, "zalo:1", "zalo")
    return citizen_id


def attempts(engine: Engine, key: str) -> list[tuple[str, str, list[str]]]:
    with unit_of_work(engine) as s:
        rows = s.scalars(select(Delivery).where(Delivery.idempotency_key == key)).all()
        return [
            (
                d.channel,
                d.status,
                list(
                    s.scalars(
                        select(DeliveryAttempt.outcome)
                        .where(DeliveryAttempt.delivery_id == d.id)
                        .order_by(DeliveryAttempt.number)
                    )
                ),
            )
            for d in rows
        ]


async def test_our_service_down_waits_instead_of_falling_back(engine: Engine) -> None:
    citizen_id = zalo_citizen(engine)
    zalo = Sender(ServiceUnavailable("zalo", "rasa unreachable: ConnectError"))
    sms = Sender()
    deliverer = Deliverer(engine, {"zalo": zalo, "sms": sms}, FAST)
    result = await deliverer.deliver(citizen_id, NOTICE, "reminder:1")
    assert (result.status, zalo.calls, sms.calls) == ("deferred", 3, 0)
    assert attempts(engine, "reminder:1") == [("zalo", "failed", ["retry"] * 3)]
    zalo.error = None  # Rasa is back: the same key goes to Zalo, once
    result = await deliverer.deliver(citizen_id, NOTICE, "reminder:1")
    assert (result.status, result.channel, zalo.sent, sms.sent) == (
        "sent",
        "zalo",
        ["reminder:1"],
        [],
    )
    await deliverer.aclose()


async def test_a_channel_error_still_falls_back(engine: Engine) -> None:
    citizen_id = zalo_citizen(engine)
    zalo, sms = Sender(SendError("zalo", "retry", "zalo http error", 500)), Sender()
    deliverer = Deliverer(engine, {"zalo": zalo, "sms": sms}, FAST)
    result = await deliverer.deliver(citizen_id, NOTICE, "reminder:2")
    await deliverer.aclose()
    assert (result.status, result.channel, zalo.calls, sms.sent) == (
        "sent",
        "sms",
        3,
        ["reminder:2"],
    )


def _reminders(engine: Engine, count: int) -> list[int]:
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
                service_code="tam_tru_gia_han",
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


def _rows(engine: Engine) -> list[tuple[str, int, dt.datetime | None]]:
    with unit_of_work(engine) as s:
        return [
            (r.state, r.attempts, r.send_after)
            for r in s.scalars(select(Reminder).order_by(Reminder.id))
        ]


async def test_a_deferred_round_stops_and_keeps_every_reminders_attempts(
    engine: Engine, catalogue: Catalogue
) -> None:
    _reminders(engine, 2)
    calls: list[str] = []

    async def down(citizen_id: int, notice: Notice, key: str) -> DeliveryResult:
        calls.append(key)
        return DeliveryResult(key, "deferred", errors=["zalo: rasa unreachable: ConnectError"])

    config = DispatchConfig(per_citizen_per_day=5, defer_after=dt.timedelta(minutes=1))
    for minute in range(8):  # longer than the 5 attempts a reminder has
        now = MORNING + dt.timedelta(minutes=minute)
        report = await dispatch(engine, catalogue, down, now, config)
        assert report.waiting == 1 and report.failed == 0
    assert len(calls) == 8  # one per round: the round stops at the first wait
    assert [(state, tries) for state, tries, _ in _rows(engine)] == [("pending", 0)] * 2


async def test_a_claim_left_by_a_dead_worker_is_not_taken_for_a_sent_reminder(
    engine: Engine, catalogue: Catalogue
) -> None:
    (reminder_id,) = _reminders(engine, 1)
    key = f"reminder:{reminder_id}"
    with unit_of_work(engine) as s:
        citizen_id = s.get(Reminder, reminder_id).subject_id
    # A worker claimed the key and died before sending (its claim is not stale yet).
    assert outbox.claim(engine, key, "sms", "sms:0905123456", "tam_tru_gia_han", citizen_id)
    sms = Sender()
    deliverer = Deliverer(engine, {"sms": sms}, FAST)
    report = await dispatch(engine, catalogue, deliverer.deliver, MORNING, CONFIG)
    await deliverer.aclose()
    assert (report.sent, report.waiting, sms.sent) == (0, 1, [])
    assert _rows(engine)[0][:2] == ("pending", 0)  # before the fix: 'sent', never delivered
    # The claim goes stale; the next round delivers it, once.
    stale = Deliverer(engine, {"sms": sms}, DeliveryConfig(stale_claim=dt.timedelta(0)))
    later = MORNING + dt.timedelta(minutes=2)
    report = await dispatch(engine, catalogue, stale.deliver, later, CONFIG)
    await stale.aclose()
    assert (report.sent, sms.sent, _rows(engine)[0][0]) == (1, [key], "sent")


class Rasa:
    """What the Rasa HTTP API answers to trigger_intent: a scripted status and message."""

    def __init__(self) -> None:
        self.status, self.message = 200, ""
        self.peers: list[tuple[str, int]] = []

    async def handle(self, request: web.Request) -> web.Response:
        assert request.transport is not None
        self.peers.append(request.transport.get_extra_info("peername"))
        if self.status == 200:
            return web.json_response({"tracker": {}})
        return web.json_response({"message": self.message}, status=self.status)


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[Rasa, str]]:
    fake = Rasa()
    app = web.Application()
    app.router.add_post("/conversations/{id}/trigger_intent", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_rasa_trigger_tells_our_outage_from_a_channel_failure(
    rasa: tuple[Rasa, str],
) -> None:
    fake, url = rasa

    async def outcome() -> SendError | None:
        trigger = RasaTrigger(url, "t", timeout=2)
        try:
            await trigger.trigger("zalo:1", "zalo", "EXTERNAL_reminder", {})
        except SendError as exc:
            return exc
        finally:
            await trigger.close()
        return None

    assert await outcome() is None
    fake.status = 500
    fake.message = (
        "An unexpected error occurred. Error: service-unavailable: action server could not run "
        "action_reminder (ClientConnectorError)"
    )
    error = await outcome()
    assert isinstance(error, ServiceUnavailable) and "action_reminder" in error.reason
    fake.status = 503
    assert isinstance(await outcome(), ServiceUnavailable)
    fake.status = 500
    fake.message = "Error: channel-send-failed kind=retry channel=zalo status=500 reason=zalo"
    error = await outcome()
    assert not isinstance(error, ServiceUnavailable) and error.kind == "retry"
    fake.message = "Error: KeyError 'x'"
    error = await outcome()
    assert not isinstance(error, ServiceUnavailable) and error.kind == "retry"
    closed = RasaTrigger(f"http://127.0.0.1:{free_port()}", "t", timeout=2)
    with pytest.raises(ServiceUnavailable):
        await closed.trigger("zalo:1", "zalo", "EXTERNAL_reminder", {})
    await closed.close()


def test_stale_claims_and_the_deliver_interval_are_configurable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scheduler.runner import build_scheduler

    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    assert DispatchConfig.from_env().stale_after == dt.timedelta(minutes=10)
    assert DeliveryConfig.from_env({}).stale_claim == dt.timedelta(minutes=10)
    deliver = next(j for j in build_scheduler(url).get_jobs() if j.id == "deliver")
    assert deliver.trigger.interval == dt.timedelta(minutes=1)
    monkeypatch.setenv("DELIVERY_STALE_SECONDS", "3")
    monkeypatch.setenv("DELIVER_EVERY_SECONDS", "2")
    assert DispatchConfig.from_env().stale_after == dt.timedelta(seconds=3)
    assert DeliveryConfig.from_env({"DELIVERY_STALE_SECONDS": "3"}).stale_claim.seconds == 3
    deliver = next(j for j in build_scheduler(url).get_jobs() if j.id == "deliver")
    assert deliver.trigger.interval == dt.timedelta(seconds=2)


async def test_each_trigger_opens_its_own_connection(rasa: tuple[Rasa, str]) -> None:
    """So that a Rasa server being restarted refuses new reminders instead of taking them on a
    kept-alive connection and aborting them at its graceful-shutdown timeout."""
    fake, url = rasa
    trigger = RasaTrigger(url, "t", timeout=2)
    for _ in range(3):
        await trigger.trigger("zalo:1", "zalo", "EXTERNAL_reminder", {})
    await trigger.close()
    assert len(set(fake.peers)) == 3
