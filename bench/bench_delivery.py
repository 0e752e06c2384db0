"""Proactive delivery pipeline: 10,000 messages through fake Telegram, Zalo OA and eSMS APIs.

Each message goes the whole way: channel choice from the citizen's bindings, outbox and attempt
rows committed before the request, token buckets, HTTP to the fake API (a separate process on
127.0.0.1), attempt completed. Citizens are split evenly between a Telegram binding, a Zalo chat
inside the reply window, and only a phone (SMS). Two phases:
1. throughput: 10,000 messages with buckets too wide to bind → messages per second;
2. rate limits: about 10 s of traffic per channel against the production buckets (Telegram
   25/s overall and 1/s per chat, Zalo 10/s, SMS 5/s here) → the most messages each fake API
   received in any one-second window, which must not exceed the bucket.
Text notices are used (an intent notice adds Rasa's own turn on top).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection

from bench.common import fresh_database, median, postgres_available, print_table, progress
from bot.core.clock import utcnow
from bot.core.db import make_engine, unit_of_work
from bot.core.models import ChannelActivity, ChannelBinding, Citizen
from bot.delivery.deliverer import ChannelLimit, Deliverer, DeliveryConfig, Notice
from connectors.senders import build_senders
from connectors.sms_providers import EsmsGateway
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeApi, FakeEsms, FakeTelegram, FakeZalo

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "10000"))
REPEAT = int(os.environ.get("BENCH_DELIVERY_REPEAT", "1"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "64"))
WIDE = {"telegram": 5000.0, "zalo": 5000.0, "sms": 5000.0}
LIMITED = {"telegram": 25.0, "zalo": 10.0, "sms": 5.0}
LIMITED_SECONDS = 10
NOTICE = Notice(text="Giấy phép lái xe của Ông/Bà sẽ hết hạn ngày 20/12/2026. Ông/Bà cần đổi.")


def max_in_one_second(stamps: Sequence[float]) -> int:
    """The most timestamps inside any window [t, t + 1 s)."""
    best, start = 0, 0
    ordered = sorted(stamps)
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def add_citizens(url: str, count: int) -> list[int]:
    engine = make_engine(url)
    citizens = [
        Citizen(
            cccd=f"066{i:09d}",
            full_name=f"Công dân {i}",
            date_of_birth=dt.date(1990, 1, 1),
            sex="M",
            phone=f"09{i:08d}",
        )
        for i in range(count)
    ]
    with unit_of_work(engine) as session:
        session.add_all(citizens)
        session.flush()
        for i, citizen in enumerate(citizens):
            if i % 3 == 0:
                sender = f"telegram:{100000 + i}"
                session.add(
                    ChannelBinding(
                        channel="telegram", channel_user_id=sender, citizen_id=citizen.id
                    )
                )
            elif i % 3 == 1:
                sender = f"zalo:{600000 + i}"
                session.add(
                    ChannelBinding(channel="zalo", channel_user_id=sender, citizen_id=citizen.id)
                )
                session.add(
                    ChannelActivity(sender_id=sender, channel="zalo", last_inbound_at=utcnow())
                )
        ids = [c.id for c in citizens]
    engine.dispose()
    return ids


def serve_fakes(conn: Connection) -> None:
    """Child process: the fake APIs, so they do not share the pipeline's CPU and GIL."""

    async def main() -> None:
        fakes: dict[str, FakeApi] = {
            "telegram": FakeTelegram(),
            "zalo": FakeZalo(),
            "sms": FakeEsms(),
        }
        for fake in fakes.values():
            await fake.start()
        conn.send({name: fake.url for name, fake in fakes.items()})
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send({name: fake.arrivals for name, fake in fakes.items()})
        for fake in fakes.values():
            await fake.stop()

    asyncio.run(main())


async def run_once(
    url: str, citizen_ids: list[int], label: str, urls: dict[str, str], rates: dict[str, float]
) -> float:
    env = {
        "TELEGRAM_BOT_TOKEN": "123:TEST",
        "TELEGRAM_WEBHOOK_SECRET": "s",
        "TELEGRAM_API_URL": urls["telegram"],
        "ZALO_APP_ID": "app",
        "ZALO_APP_SECRET": "app-secret",
        "ZALO_OA_SECRET": "oa",
        "ZALO_API_URL": urls["zalo"],
        "ZALO_OAUTH_URL": urls["zalo"],
        "RASA_AUTH_TOKEN": "unused",
    }
    engine = make_engine(url)
    zalo_config = ZaloConfig.from_env(env)
    assert zalo_config is not None
    ZaloTokenStore(engine, zalo_config).save("access-0", "refresh-0", 90000)
    gateway = EsmsGateway("k", "s", "DAKLAK", base_url=urls["sms"])
    senders, kinds, close = build_senders(engine, env, sms_gateway=gateway)
    limits = {
        c: ChannelLimit(rate, per_recipient=1 if c == "telegram" else None)
        for c, rate in rates.items()
    }
    deliverer = Deliverer(engine, senders, DeliveryConfig(limits=limits), kinds)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for citizen_id in citizen_ids:
        queue.put_nowait(citizen_id)

    async def worker() -> None:
        while not queue.empty():
            citizen_id = queue.get_nowait()
            result = await deliverer.deliver(citizen_id, NOTICE, f"bench-{label}-{citizen_id}")
            assert result.status == "sent", result

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    elapsed = time.perf_counter() - started
    await deliverer.aclose()
    await close()
    gateway.close()
    engine.dispose()
    return elapsed


def run_with_fakes(
    url: str, citizen_ids: list[int], label: str, rates: dict[str, float]
) -> tuple[float, dict[str, list[float]]]:
    """Deliver one message to each citizen while the fake APIs run in a child process."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=serve_fakes, args=(theirs,), daemon=True)
    child.start()
    try:
        urls = ours.recv()
        elapsed = asyncio.run(run_once(url, citizen_ids, label, urls, rates))
        ours.send("stop")
        arrivals = ours.recv()
    finally:
        child.join(timeout=10)
    return elapsed, arrivals


def measure(engine_name: str) -> list[list[object]]:
    speeds: list[float] = []
    peaks: dict[str, int] = dict.fromkeys(LIMITED, 0)
    for run in range(REPEAT):
        with fresh_database(engine_name) as url:
            progress(f"{engine_name}: {MESSAGES} messages, run {run + 1}/{REPEAT}")
            ids = add_citizens(url, MESSAGES)
            elapsed, arrivals = run_with_fakes(url, ids, f"t{run}", WIDE)
            assert sum(len(a) for a in arrivals.values()) == MESSAGES
            speeds.append(MESSAGES / elapsed)
            progress(f"{engine_name}: {LIMITED_SECONDS} s against the production buckets")
            groups = {"telegram": ids[0::3], "zalo": ids[1::3], "sms": ids[2::3]}
            chosen = [
                i
                for channel, rate in LIMITED.items()
                for i in groups[channel][: int(rate * LIMITED_SECONDS)]
            ]
            _, arrivals = run_with_fakes(url, chosen, f"l{run}", LIMITED)
        for channel, stamps in arrivals.items():
            peaks[channel] = max(peaks[channel], max_in_one_second(stamps))
    rows: list[list[object]] = [[engine_name, "all", MESSAGES, f"{median(speeds):.0f}", "", ""]]
    for channel, rate in LIMITED.items():
        verdict = "ok" if peaks[channel] <= rate else "EXCEEDED"
        rows.append([engine_name, channel, "", "", f"{rate:.0f}", f"{peaks[channel]} ({verdict})"])
    return rows


def main() -> None:
    engines = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    rows = [row for name in engines for row in measure(name)]
    print_table(
        f"Delivery pipeline: {MESSAGES} messages, {WORKERS} concurrent deliveries, "
        f"median of {REPEAT} run(s); then the production buckets",
        ["engine", "channel", "messages", "messages/s", "bucket (/s)", "max in any 1 s at the API"],
        rows,
    )


if __name__ == "__main__":
    main()
