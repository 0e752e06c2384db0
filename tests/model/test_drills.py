"""Failure drills (issue 8, item 3): real processes, real PostgreSQL, faults injected on the wire.

One Rasa server and one action server serve the module; their tracker store and application
database are throw-away PostgreSQL databases reached through a TCP fault proxy, and the fake
Zalo API sits behind another. The drills:

- the action server killed mid-conversation: TRY_AGAIN once per turn, a reminder trigger fails
  (retried later) instead of being counted as delivered, and after a restart the same
  conversation goes on to a single dossier;
- PostgreSQL unreachable for 10 s: every message during the outage gets TRY_AGAIN at once, no
  stored event is lost, and afterwards the same conversation submits exactly one dossier; a cut
  of every pooled connection (a database restart) goes unnoticed;
- the Zalo API answering 503 for a minute while reminders are dispatched: attempts recorded
  in the outbox and retried with backoff, then SMS, each reminder once; Zalo again after;
- Rasa restarted (SIGTERM) while reminders are delivered: the turn in flight completes, the
  others wait for Rasa (no SMS fallback, no attempts used up) and each is delivered once;
- `python -m scheduler run` SIGKILLed twice mid-dispatch: once before its ZNS request reached
  the provider (delivered once after the restart), once while the provider had it and the
  answer had not come back (that one reminder is sent twice: the window no outbox can close
  without an idempotency key at the provider); every other reminder exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine, make_url

from bot.catalogue.model import get_catalogue
from bot.core.clock import utcnow
from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Delivery, DeliveryAttempt, Dossier, Reminder, ScanRun
from bot.delivery.channel_state import touch_activity
from bot.identity.linking import bind
from bot.identity.speaker import rest_sender
from connectors.common import SERVICE_UNAVAILABLE, TRY_AGAIN
from connectors.senders import open_deliverer
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from scheduler.dispatch import DispatchConfig, dispatch, local
from tests import factories
from tests.fakes import FakeZalo
from tests.faults import FaultProxy, LoopThread, pg_database, via, wait_until
from tests.model.server import TOKEN, Servers

pytestmark = [pytest.mark.model, pytest.mark.postgres, pytest.mark.filterwarnings("ignore")]

APP_ID, APP_SECRET, OA_SECRET = "2553928453557884079", "app-secret", "oa-secret"
ALWAYS = DispatchConfig(
    start=dt.time(0, 0),
    end=dt.time(23, 59, 59),
    per_citizen_per_day=5,
    defer_after=dt.timedelta(0),  # the drill's own loop paces the rounds
)
_numbers = itertools.count(1)


@dataclass
class Person:
    id: int
    phone: str
    zalo_user: str
    record_id: int


@dataclass
class World:
    workdir: Path
    servers: Servers
    app: Engine  # the application database, directly (not through the proxy)
    tracker: Engine  # Rasa's tracker store, directly
    db_proxy: FaultProxy  # between both servers and PostgreSQL
    zalo_proxy: FaultProxy  # between Rasa and the fake Zalo API
    zalo: FakeZalo
    env: dict[str, str]

    def say_all(self, sender: str, message: str) -> list[str]:
        answer = self.servers.client.post(
            "/webhooks/rest/webhook", json={"sender": sender, "message": message}
        )
        assert answer.status_code == 200, answer.text
        return [m.get("text", "") for m in answer.json()]

    def say(self, sender: str, message: str) -> str:
        return "\n".join(self.say_all(sender, message))

    def deliver_env(self) -> dict[str, str]:
        return {
            **self.env,
            "RASA_URL": self.servers.rasa_server.url,
            "RASA_AUTH_TOKEN": TOKEN,
            "APP_VAR_DIR": str(self.workdir),
        }

    def zalo_messages(self, user: str) -> list[str]:
        return [
            m["message"].get("text", "")
            for m in list(self.zalo.sent)
            if m.get("recipient", {}).get("user_id") == user
        ]

    def sms_to(self, phone: str) -> list[str]:
        path = self.workdir / "sms_outbox.jsonl"
        if not path.exists():
            return []
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        return [x["text"] for x in lines if x["to"] == phone]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
            for p in sorted(self.workdir.glob("*.log"))
        )


def zalo_env(api_url: str, oauth_url: str) -> dict[str, str]:
    return {
        "ZALO_APP_ID": APP_ID,
        "ZALO_APP_SECRET": APP_SECRET,
        "ZALO_OA_SECRET": OA_SECRET,
        "ZALO_API_URL": api_url,
        "ZALO_ZNS_URL": api_url,
        "ZALO_OAUTH_URL": oauth_url,
    }


def save_zalo_token(engine: Engine, env: dict[str, str]) -> None:
    config = ZaloConfig.from_env(env)
    assert config is not None
    ZaloTokenStore(engine, config).save("access-0", "refresh-0", 90000)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def world(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not list((PROJECT_ROOT / "models").glob("*.tar.gz")):
        pytest.fail("no trained model: run `make train` (make test does)")
    workdir = tmp_path_factory.mktemp("drills")
    server = make_url(postgres_url)
    with ExitStack() as stack:
        app_url = stack.enter_context(pg_database(postgres_url))
        tracker_url = stack.enter_context(pg_database(postgres_url, migrate=False))
        db_proxy = FaultProxy(server.port or 5432, server.host or "127.0.0.1").start()
        stack.callback(db_proxy.stop)
        fakes = LoopThread()
        stack.callback(fakes.close)
        zalo = fakes.run(FakeZalo(APP_SECRET).start())
        stack.callback(lambda: fakes.run(zalo.stop()))
        zalo_proxy = FaultProxy(port_of(zalo.url)).start()
        stack.callback(zalo_proxy.stop)
        app, tracker = make_engine(app_url), make_engine(tracker_url)
        stack.callback(app.dispose)
        stack.callback(tracker.dispose)
        env = {**zalo_env(zalo_proxy.url, zalo.url), "ZALO_TIMEOUT": "5"}
        save_zalo_token(app, env)
        servers = Servers(
            workdir, via(app_url, db_proxy), env, tracker_url=via(tracker_url, db_proxy)
        )
        stack.callback(servers.stop)
        yield World(workdir, servers, app, tracker, db_proxy, zalo_proxy, zalo, env)


def person(
    engine: Engine, *, zalo: bool = False, rest_name: str | None = None, due_in: int = 30
) -> Person:
    """A citizen with a temporary-residence record ending in `due_in` days; optionally bound
    to a Zalo user (who wrote recently: the chat window is open) and to a REST sender."""
    n = next(_numbers)
    phone, user = f"0905{n:06d}", f"70000{n:05d}"
    with unit_of_work(engine) as s:
        citizen = factories.citizen(
            s, cccd=f"0661900{n:05d}", phone=phone, full_name=f"Nguyễn Văn Diễn Tập {n}"
        )
        record = factories.record(
            s,
            citizen,
            "tam_tru",
            issued_on=dt.date(2024, 12, 1),
            valid_until=dt.date.today() + dt.timedelta(days=due_in),
            attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
        )
        if zalo:
            bind(s, "zalo", f"zalo:{user}", citizen, "otp")
        if rest_name:
            bind(s, "rest", rest_sender(rest_name), citizen, "otp")
        found = Person(citizen.id, phone, user, record.id)
    if zalo:
        touch_activity(engine, f"zalo:{user}", "zalo")
    return found


def reminder(engine: Engine, who: Person, state: str = "pending") -> int:
    with unit_of_work(engine) as s:
        row = Reminder(
            subject_type="citizen",
            subject_id=who.id,
            service_code="tam_tru_gia_han",
            event_key=f"record:{who.record_id}",
            stage=30,
            record_id=who.record_id,
            due_on=local(utcnow()).date(),
            state=state,
        )
        s.add(row)
        s.flush()
        return row.id


def states(engine: Engine, ids: list[int]) -> dict[int, tuple[str, int]]:
    with unit_of_work(engine) as s:
        rows = s.scalars(select(Reminder).where(Reminder.id.in_(ids))).all()
        return {r.id: (r.state, r.attempts) for r in rows}


def deliveries(engine: Engine, key: str) -> list[tuple[str, str, list[tuple[str, int | None]]]]:
    """(channel, status, [(outcome, HTTP status) per attempt]) of a key, oldest first."""
    with unit_of_work(engine) as s:
        rows = s.scalars(
            select(Delivery).where(Delivery.idempotency_key == key).order_by(Delivery.id)
        ).all()
        return [
            (
                d.channel,
                d.status,
                [
                    (a.outcome, a.status_code)
                    for a in s.scalars(
                        select(DeliveryAttempt)
                        .where(DeliveryAttempt.delivery_id == d.id)
                        .order_by(DeliveryAttempt.number)
                    )
                ],
            )
            for d in rows
        ]


def dossiers_of(engine: Engine, who: Person) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count(Dossier.id)).where(Dossier.citizen_id == who.id))


def stored_events(engine: Engine, sender: str) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, type_name, data FROM events WHERE sender_id = :s ORDER BY id"),
            {"s": sender},
        )
        return [tuple(r) for r in rows]


def said(events: list[tuple[int, str, str]]) -> list[str]:
    return [json.loads(data).get("text", "") for _, kind, data in events if kind == "bot"]


async def dispatch_until(world: World, ids: list[int], seconds: float, deliverer: Any) -> None:
    """Dispatch rounds (as the scheduler's deliver job does) until the reminders are sent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await dispatch(world.app, get_catalogue(), deliverer.deliver, config=ALWAYS)
        if all(state == "sent" for state, _ in states(world.app, ids).values()):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"not all sent in {seconds:.0f} s: {states(world.app, ids)}")


# --- 1. the action server killed in the middle of a conversation ---------------------------


def test_action_server_killed_mid_conversation(world: World) -> None:
    an = person(world.app, zalo=True, rest_name="drill-a")
    shown = reminder(world.app, an, state="skipped")  # triggered by hand below, not dispatched
    assert "đồng ý nộp" in world.say("drill-a", "tôi muốn gia hạn tạm trú")
    trigger = {
        "params": {"token": TOKEN, "output_channel": "zalo"},
        "json": {"name": "EXTERNAL_reminder", "entities": {"reminder_id": str(shown)}},
    }
    url = f"/conversations/zalo:{an.zalo_user}/trigger_intent"

    world.servers.action_server.kill()
    started = time.monotonic()
    # Inside the form (its validation runs on the action server) and an ordinary action.
    assert world.say_all("drill-a", "đồng ý nộp") == [TRY_AGAIN]
    assert world.say_all("drill-a-anon", "hồ sơ của tôi đến đâu rồi") == [TRY_AGAIN]
    assert time.monotonic() - started < 10, "the citizen waited for the dead action server"
    # A reminder is not said, and the trigger fails so the delivery pipeline retries it.
    failed = world.servers.client.post(url, **trigger)
    assert failed.status_code == 500 and SERVICE_UNAVAILABLE in failed.json()["message"]
    assert world.zalo_messages(an.zalo_user) == []
    assert dossiers_of(world.app, an) == 0
    rasa_log = world.servers.rasa_server.log_path.read_text()
    assert "action server unavailable: " in rasa_log  # the cause, for operators

    world.servers.action_server.start()
    done = world.say("drill-a", "đồng ý nộp")
    assert "Mã hồ sơ: DLK-" in done, done
    assert dossiers_of(world.app, an) == 1
    assert world.say_all("drill-a-anon", "hồ sơ của tôi đến đâu rồi") != [TRY_AGAIN]
    assert world.servers.client.post(url, **trigger).status_code == 200
    assert len(world.zalo_messages(an.zalo_user)) == 1
    # The conversation kept one apology for the failed turn, then went on.
    texts = said(stored_events(world.tracker, rest_sender("drill-a")))
    assert texts.count(TRY_AGAIN) == 1, texts
    assert any("Mã hồ sơ" in t for t in texts[texts.index(TRY_AGAIN) :]), texts


# --- 2. the database unreachable for 10 seconds --------------------------------------------


def test_database_unreachable_for_ten_seconds(world: World) -> None:
    binh = person(world.app, rest_name="drill-b")
    assert "đồng ý nộp" in world.say("drill-b", "tôi muốn gia hạn tạm trú")
    before = stored_events(world.tracker, rest_sender("drill-b"))
    assert before

    world.db_proxy.down()
    outage = time.monotonic()
    answers, slowest = 0, 0.0
    try:
        while time.monotonic() - outage < 10:
            for sender, message in (("drill-b", "đồng ý nộp"), ("drill-b-new", "xin chào")):
                started = time.monotonic()
                assert world.say_all(sender, message) == [TRY_AGAIN]
                slowest = max(slowest, time.monotonic() - started)
                answers += 1
            time.sleep(1)
    finally:
        world.db_proxy.up()
    assert answers >= 10 and slowest < 3, (answers, slowest)
    assert dossiers_of(world.app, binh) == 0

    assert (
        stored_events(world.tracker, rest_sender("drill-b")) == before
    )  # nothing lost, nothing half-written
    done = world.say("drill-b", "đồng ý nộp")  # the same conversation, where it was
    assert "Mã hồ sơ: DLK-" in done, done
    world.say("drill-b", "đồng ý nộp")
    assert dossiers_of(world.app, binh) == 1
    assert stored_events(world.tracker, rest_sender("drill-b"))[: len(before)] == before

    world.db_proxy.cut()  # a database restart: every pooled connection dies while idle
    assert world.say_all("drill-b-new", "xin chào") != [TRY_AGAIN]
    assert "DLK-" in world.say("drill-b", "hồ sơ của tôi đến đâu rồi")
    rasa_log = world.servers.rasa_server.log_path.read_text()
    assert "tracker store unavailable" in rasa_log


# --- 3. a channel API down for a minute ----------------------------------------------------


async def test_zalo_api_down_for_a_minute(world: World) -> None:
    during = [person(world.app, zalo=True) for _ in range(5)]
    after = [person(world.app, zalo=True) for _ in range(2)]
    first = [reminder(world.app, p) for p in during]
    async with open_deliverer(world.app, world.deliver_env()) as deliverer:
        world.zalo_proxy.set_mode("http_503")
        outage = time.monotonic()
        try:
            await dispatch_until(world, first, 55, deliverer)
            await asyncio.sleep(max(0.0, 60 - (time.monotonic() - outage)))
        finally:
            world.zalo_proxy.up()
        second = [reminder(world.app, p) for p in after]
        await dispatch_until(world, second, 30, deliverer)

    for who, reminder_id in zip(during, first, strict=True):
        rows = deliveries(world.app, f"reminder:{reminder_id}")
        assert rows == [
            ("zalo", "failed", [("retry", 500)] * 3),  # recorded, retried, given up on Zalo
            ("sms", "sent", [("sent", None)]),
        ], rows
        assert world.zalo_messages(who.zalo_user) == []
        assert len(world.sms_to(who.phone)) == 1, world.sms_to(who.phone)
    with unit_of_work(world.app) as s:
        timings = s.execute(
            select(DeliveryAttempt.started_at, DeliveryAttempt.finished_at)
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(Delivery.idempotency_key == f"reminder:{first[0]}", Delivery.channel == "zalo")
            .order_by(DeliveryAttempt.number)
        ).all()
    waits = [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(timings)]
    assert 0.25 <= waits[0] <= 1.0 and 0.5 <= waits[1] <= 1.5, waits  # backoff with jitter
    assert world.zalo_proxy.answered_503 >= 3 * len(during)
    for who, reminder_id in zip(after, second, strict=True):
        assert deliveries(world.app, f"reminder:{reminder_id}") == [
            ("zalo", "sent", [("sent", None)])
        ]
        assert len(world.zalo_messages(who.zalo_user)) == 1
        assert world.sms_to(who.phone) == []


# --- 4. Rasa restarted while reminders are being delivered ---------------------------------


async def test_rasa_restarted_while_reminders_are_delivered(world: World) -> None:
    people = [person(world.app, zalo=True) for _ in range(6)]
    ids = [reminder(world.app, p) for p in people]
    users = {p.zalo_user for p in people}

    def arrived() -> int:
        return sum(len(world.zalo_messages(u)) for u in users)

    world.zalo_proxy.delay = 1.0  # Zalo answers slowly: a turn is in flight when Rasa stops
    try:
        async with open_deliverer(world.app, world.deliver_env()) as deliverer:
            run = asyncio.create_task(dispatch_until(world, ids, 150, deliverer))
            while arrived() < 2:
                assert not run.done(), run
                await asyncio.sleep(0.05)
            await asyncio.to_thread(world.servers.rasa_server.stop)  # SIGTERM: a restart
            await asyncio.sleep(3)  # reminders keep coming due while Rasa is away
            await asyncio.to_thread(world.servers.rasa_server.start)
            await run
    finally:
        world.zalo_proxy.delay = 0.0

    for who in people:
        assert len(world.zalo_messages(who.zalo_user)) == 1, who  # none twice, none lost
        assert world.sms_to(who.phone) == []  # no fallback while our own Rasa was away
    assert all(v == ("sent", 1) for v in states(world.app, ids).values()), states(world.app, ids)
    with unit_of_work(world.app) as s:
        waited = s.scalar(
            select(func.count(DeliveryAttempt.id))
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(
                Delivery.idempotency_key.in_([f"reminder:{i}" for i in ids]),
                DeliveryAttempt.error.like("rasa unreachable%"),
            )
        )
    assert waited >= 3, "the drill did not deliver while Rasa was down"


# --- 5. the scheduler killed during dispatch -----------------------------------------------


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scheduler", "run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_scheduler_killed_during_dispatch(postgres_url: str, tmp_path: Path) -> None:
    fakes = LoopThread()
    zalo = fakes.run(FakeZalo(APP_SECRET).start())
    proxy = FaultProxy(port_of(zalo.url), delay=1.0).start()  # a slow provider
    log = tmp_path / "scheduler.log"
    proc: subprocess.Popen | None = None
    try:
        with pg_database(postgres_url) as url:
            engine = make_engine(url)
            env = zalo_env(proxy.url, zalo.url)
            save_zalo_token(engine, env)
            templates = tmp_path / "zns.yml"
            templates.write_text(
                "tam_tru_gia_han:\n  template_id: '7895417a'\n"
                "  params: {ma_nhac: reminder_id, thu_tuc: service}\n"
            )
            people = [person(engine, due_in=200) for _ in range(9)]  # no Zalo chat: ZNS
            ids = [reminder(engine, p) for p in people]
            keys = {f"reminder:{i}" for i in ids}
            with unit_of_work(engine) as s:  # today is scanned: the start-up scan adds nothing
                s.add(ScanRun(day=local(utcnow()).date(), created={}))
            env = {
                **os.environ,
                **env,
                "DATABASE_URL": url,
                "APP_VAR_DIR": str(tmp_path),
                "APP_SECRET_KEY": "integration",
                "ZALO_ZNS_TEMPLATES": str(templates),
                "RASA_URL": "http://127.0.0.1:9",
                "RASA_AUTH_TOKEN": TOKEN,
                "REMINDER_HOURS": "00:00-23:59:59",
                "REMINDERS_PER_CITIZEN_PER_DAY": "5",
                "DELIVER_EVERY_SECONDS": "1",
                "DELIVERY_STALE_SECONDS": "3",
            }

            def arrived() -> list[str]:
                return [z["tracking_id"] for z in list(zalo.zns) if z["tracking_id"] in keys]

            def sent_keys() -> set[str]:
                with unit_of_work(engine) as s:
                    return set(
                        s.scalars(select(Delivery.idempotency_key).where(Delivery.status == "sent"))
                    )

            def attempted(key: str) -> bool:
                return any(o == "started" for _, _, a in deliveries(engine, key) for o, _ in a)

            def logs() -> str:
                return log.read_text(errors="replace")[-3000:]

            # Kill 1: the outbox has claimed a reminder and recorded its attempt, and the
            # request never reached the provider (it hangs on the way).
            proxy.set_mode("blackhole")
            proc = start_scheduler(env, log)
            wait_until(lambda: any(attempted(k) for k in keys), 60, "an attempt started")
            time.sleep(0.5)
            proc.kill()
            proc.wait()
            (lost_request,) = [k for k in keys if attempted(k)]
            assert arrived() == [] and sent_keys() == set()
            proxy.up()

            # Kill 2: the provider has the message; its answer has not come back.
            proc = start_scheduler(env, log)
            wait_until(
                lambda: len(arrived()) >= 5 and set(arrived()) - sent_keys(),
                60,
                "a fifth ZNS at the provider, unanswered",
            )
            proc.kill()
            proc.wait()
            in_flight = set(arrived()) - sent_keys()
            assert len(in_flight) == 1, (in_flight, logs())
            (key,) = in_flight
            assert key != lost_request and arrived().count(lost_request) == 1
            with unit_of_work(engine) as s:
                stuck = s.get(Reminder, int(key.split(":")[1]))
                assert stuck.state == "attempting"  # the trace a crash leaves
            assert attempted(key)

            proc = start_scheduler(env, log)
            wait_until(
                lambda: all(st == "sent" for st, _ in states(engine, ids).values()),
                90,
                "every reminder sent",
            )
            counts = Counter(arrived())
            assert set(counts) == keys, logs()  # none lost
            assert counts[lost_request] == 1  # the request that never arrived: sent once
            assert {k for k, c in counts.items() if c > 1} == {key}, (counts, logs())
            assert counts[key] == 2  # measured: the one the provider had when we died
            for k in keys:
                assert [d[:2] for d in deliveries(engine, k)] == [("zns", "sent")], k
            engine.dispose()
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
        proxy.stop()
        fakes.run(zalo.stop())
        fakes.close()
