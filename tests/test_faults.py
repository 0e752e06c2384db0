"""The fault proxy of the drills (tests/faults.py) and what the engines do behind it: PostgreSQL
refused, cut and hanging, a provider answering 503 or slowly; the dropped-connection check and
connect timeout of bot/core/db.py, and those of the SQL tracker stores (connectors/guard.py for
Rasa's, connectors/tracker_store.py for ours)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.core.db import make_engine
from tests.faults import FaultProxy, LoopThread, pg_database, via

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[FaultProxy, str]]:
    parsed = make_url(postgres_url)
    proxy = FaultProxy(parsed.port or 5432, parsed.host or "127.0.0.1").start()
    yield proxy, via(postgres_url, proxy)
    proxy.stop()


def select_one(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1")).scalar()


def test_refused_fails_at_once_and_the_pool_recovers(pg_proxy: tuple[FaultProxy, str]) -> None:
    proxy, url = pg_proxy
    engine = make_engine(url)
    assert select_one(engine) == 1  # a pooled connection now exists
    proxy.down()
    started = time.monotonic()
    with pytest.raises(OperationalError):
        select_one(engine)
    assert time.monotonic() - started < 2
    proxy.up()
    assert select_one(engine) == 1
    engine.dispose()


def test_a_cut_is_invisible_with_the_check_and_fails_without(
    pg_proxy: tuple[FaultProxy, str],
) -> None:
    proxy, url = pg_proxy
    with_ping, without = make_engine(url), create_engine(url, future=True)
    assert select_one(with_ping) == select_one(without) == 1
    proxy.cut()  # a database restart or failover while the connections sit in the pool
    assert select_one(with_ping) == 1
    with pytest.raises(OperationalError):
        select_one(without)
    with_ping.dispose()
    without.dispose()


def test_a_live_pooled_connection_is_not_pinged(
    pg_proxy: tuple[FaultProxy, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pool_pre_ping would send a SELECT 1 before each of these; only the cut one is pinged."""
    proxy, url = pg_proxy
    engine = make_engine(url)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or real_ping(conn))
    assert [select_one(engine) for _ in range(5)] == [1] * 5
    assert pings == []
    proxy.cut()
    assert select_one(engine) == 1
    assert pings == [1]  # the reset socket was readable: pinged, found dead, replaced
    engine.dispose()


def test_connect_timeout_bounds_a_hanging_server(
    pg_proxy: tuple[FaultProxy, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, url = pg_proxy
    monkeypatch.setenv("DATABASE_CONNECT_TIMEOUT", "2")
    engine = make_engine(url)
    proxy.set_mode("blackhole")
    started = time.monotonic()
    with pytest.raises(OperationalError):
        select_one(engine)
    assert 1.5 < time.monotonic() - started < 6
    engine.dispose()


@pytest.mark.parametrize("ours", [False, True], ids=["rasa-sql", "threaded"])
def test_sql_tracker_stores_survive_a_cut(postgres_url: str, ours: bool) -> None:
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from connectors import guard
    from connectors.tracker_store import ThreadedSQLTrackerStore

    guard.install()
    parsed = make_url(postgres_url)
    proxy = FaultProxy(parsed.port or 5432, parsed.host or "127.0.0.1").start()
    domain = Domain.from_yaml('version: "3.1"\nintents: [greet]\n')
    try:
        with pg_database(postgres_url, migrate=False) as tracker_url:
            db = make_url(via(tracker_url, proxy))
            store = (ThreadedSQLTrackerStore if ours else SQLTrackerStore)(
                domain, "postgresql", db.host, db.port, db.database, db.username, db.password
            )
            events = [ActionExecuted("action_listen"), UserUttered("xin chào", {"name": "greet"})]
            tracker = DialogueStateTracker.from_events("zalo:1", events)

            async def round_trip() -> int:
                await store.save(tracker)
                proxy.cut()  # the idle pooled connection is dead now
                again = await store.retrieve("zalo:1")
                return len(again.events) if again else 0

            import asyncio

            assert asyncio.run(round_trip()) == 2
            store.engine.dispose()
    finally:
        proxy.stop()
        guard.uninstall()


class Slow:
    def __init__(self) -> None:
        self.arrived = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        return web.json_response({"error": 0})


def test_http_faults_503_refused_and_slow() -> None:
    loop = LoopThread()
    fake = Slow()
    app = web.Application()
    app.router.add_post("/api", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    loop.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run(site.start())
    proxy = FaultProxy(runner.addresses[0][1], delay=0.8).start()
    try:
        with httpx.Client(base_url=proxy.url, timeout=5) as client:
            started = time.monotonic()
            assert client.post("/api", json={}).json() == {"error": 0}
            assert time.monotonic() - started >= 0.8 and fake.arrived == 1
            proxy.set_mode("http_503")
            answer = client.post("/api", json={"x": "y" * 1000})
            assert answer.status_code == 503 and proxy.answered_503 == 1 and fake.arrived == 1
            proxy.down()
            with pytest.raises(httpx.ConnectError):
                client.post("/api", json={})
            proxy.up()
            assert client.post("/api", json={}).status_code == 200 and fake.arrived == 2
    finally:
        proxy.stop()
        loop.run(runner.cleanup())
        loop.close()
