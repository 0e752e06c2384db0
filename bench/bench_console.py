"""Officer console: list and search pages over 100,000 conversations.

For each engine: write N conversations into a Rasa tracker store (`events`, ~7 events each,
30 % of senders linked to a citizen), index them with the console's indexer (timed), then
request list and search pages through the real app over HTTP as a signed-in officer and
report the median response time of each. Goal: every page under 300 ms median.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, text

from bench.common import fresh_database, median, postgres_available, print_table, progress, timed
from bot.catalogue.model import get_catalogue
from bot.core.db import make_engine
from bot.core.models import ChannelBinding, Citizen
from bot.core.tracker_store import ensure_events_table, events
from console.indexer import sync_all

CONVERSATIONS = int(os.environ.get("BENCH_CONVERSATIONS", "100000"))
REPEAT = int(os.environ.get("BENCH_CONSOLE_REPEAT", "15"))
GOAL_MS = 300
SAYINGS = [
    ("greet", "xin chào", None),
    ("ask_fee", "làm hộ chiếu hết bao nhiêu tiền", "ho_chieu_cap_lai"),
    ("ask_requirements", "đổi căn cước cần giấy tờ gì", "cccd_doi_the"),
    ("request_service", "tôi muốn gia hạn tạm trú", "tam_tru_gia_han"),
    ("request_service", "tôi muốn làm khai sinh cho con", "khai_sinh"),
    ("check_status", "hồ sơ của tôi đến đâu rồi", None),
    ("ask_processing_time", "đổi bằng lái mất mấy ngày", "gplx_doi"),
    ("list_due", "tôi có giấy tờ nào sắp hết hạn không", None),
    ("request_human", "cho tôi gặp cán bộ", None),
    ("rate_service", "5 sao", None),
    ("thank", "cảm ơn nhiều", None),
    ("nlu_fallback", "cái đó sao rồi ta", None),
]
PAGES = {
    "list (newest)": "",
    "list, page 20 (cursor)": None,  # filled by following 'next' links
    "low confidence / fallback": "low=1",
    "channel zalo": "channel=zalo",
    "linked citizens": "linked=linked",
    "anonymous": "linked=anonymous",
    "service": "service=tam_tru_gia_han",
    "intent": "intent=request_human",
    "hand-off requested": "handoff=1",
    "rating 1–3": "rating=low",
    "date range (7 days)": "from={d7}&to={d0}",
    "search: common word": "q=ho+so",
    "search: two words": "q=gia+han+tam+tru",
    "search: rare code": "q=DLK-261101-00077",
    "search + filters": "q=ho+chieu&channel=telegram&low=1",
}


def seed_tracker(url: str, count: int, now: float) -> int:
    engine = make_engine(url)
    ensure_events_table(engine)
    rng = random.Random(7)
    rows: list[dict] = []
    written = 0
    channels = ("zalo", "telegram", "sms")
    for i in range(count):
        channel = channels[i % 3]
        sender = f"{channel}:{9_000_000 + i}" if channel != "sms" else f"sms:09{i:08d}"
        clock = now - rng.uniform(0, 120 * 86400)
        for turn in range(rng.randint(2, 4)):
            intent, text, service = rng.choice(SAYINGS)
            confidence = 0.3 if intent == "nlu_fallback" else rng.uniform(0.45, 0.99)
            entities = [{"entity": "service", "value": service}] if service else []
            if intent == "rate_service":
                entities = [{"entity": "rating", "value": str(rng.randint(1, 5))}]
            clock += rng.uniform(3, 40)
            user = {
                "event": "user",
                "timestamp": clock,
                "text": text,
                "input_channel": channel,
                "parse_data": {
                    "intent": {"name": intent, "confidence": confidence},
                    "entities": entities,
                },
            }
            rows.append(_row(sender, "user", clock, json.dumps(user), intent, None))
            rows.append(_row(sender, "action", clock, '{"name": "action_listen"}', None, "x"))
            if intent == "request_human" and rng.random() < 0.3:
                handoff = '{"name": "action_handoff"}'
                rows.append(_row(sender, "action", clock, handoff, None, "action_handoff"))
                rows.append(_row(sender, "pause", clock, '{"event": "pause"}', None, None))
            reply = f"Đã nộp hồ sơ. Mã hồ sơ: DLK-2611{i % 28 + 1:02d}-{i % 99991:05d}."
            bot = {"event": "bot", "timestamp": clock + 1, "text": reply if turn == 1 else "Dạ."}
            rows.append(_row(sender, "bot", clock + 1, json.dumps(bot), None, None))
        if len(rows) >= 20_000:
            written += _flush(engine, rows)
    written += _flush(engine, rows)
    engine.dispose()
    return written


def _row(sender: str, kind: str, at: float, data: str, intent, action) -> dict:  # type: ignore[no-untyped-def]
    return {
        "sender_id": sender,
        "type_name": kind,
        "timestamp": at,
        "intent_name": intent,
        "action_name": action,
        "data": data,
    }


def _flush(engine, rows: list[dict]) -> int:  # type: ignore[no-untyped-def]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(events), rows)
    written = len(rows)
    rows.clear()
    return written


def seed_bindings(url: str, count: int) -> None:
    """30 % of the Zalo and Telegram senders are linked to a citizen."""
    engine = make_engine(url)
    linked = [i for i in range(count) if i % 3 != 2 and i % 10 < 3]
    with engine.begin() as conn:
        conn.execute(
            insert(Citizen),
            [
                {
                    "id": n + 1,
                    "cccd": f"066{n:09d}",
                    "full_name": f"Nguyễn Văn {n}",
                    "date_of_birth": dt.date(1990, 1, 1),
                    "sex": "M",
                    "created_at": dt.datetime(2026, 1, 1),
                    "updated_at": dt.datetime(2026, 1, 1),
                }
                for n in range(len(linked))
            ],
        )
        conn.execute(
            insert(ChannelBinding),
            [
                {
                    "channel": ("zalo", "telegram")[i % 3],
                    "channel_user_id": f"{('zalo', 'telegram')[i % 3]}:{9_000_000 + i}",
                    "citizen_id": n + 1,
                    "method": "otp",
                    "created_at": dt.datetime(2026, 1, 1),
                    "updated_at": dt.datetime(2026, 1, 1),
                }
                for n, i in enumerate(linked)
            ],
        )
    engine.dispose()


async def measure_pages(app_url: str, tracker_url: str) -> dict[str, list[float]]:
    from aiohttp.test_utils import TestClient, TestServer

    from console.web import create_app
    from tests.console_support import add_officers, login, make_deps

    engine, tracker = make_engine(app_url), make_engine(tracker_url)
    add_officers(engine)
    client = TestClient(TestServer(create_app(make_deps(engine, tracker, get_catalogue()))))
    await client.start_server()
    await login(client, "canbo")
    today = dt.date.today()
    queries = {
        name: q.format(d7=(today - dt.timedelta(days=7)).isoformat(), d0=today.isoformat())
        for name, q in PAGES.items()
        if q is not None
    }
    url = "/conversations"
    for _ in range(19):  # the 20th page, reached as an officer would: by "Trang sau"
        html = await (await client.get(url)).text()
        url = html.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    queries["list, page 20 (cursor)"] = url.split("?", 1)[1]
    timings: dict[str, list[float]] = {name: [] for name in queries}
    for _ in range(REPEAT):
        for name, query in queries.items():
            start = time.perf_counter()
            answer = await client.get(f"/conversations?{query}")
            await answer.read()
            timings[name].append((time.perf_counter() - start) * 1000)
            assert answer.status == 200, name
    await client.close()
    engine.dispose()
    tracker.dispose()
    return timings


def measure(engine_name: str) -> list[list[object]]:
    rows: list[list[object]] = []
    with fresh_database(engine_name) as app_url, tempfile.TemporaryDirectory() as tmp:
        tracker_url = app_url if engine_name == "postgresql" else f"sqlite:///{Path(tmp) / 't.db'}"
        progress(f"{engine_name}: writing {CONVERSATIONS:,} conversations into the tracker store")
        seconds, written = timed(seed_tracker, tracker_url, CONVERSATIONS, time.time())
        progress(f"{engine_name}: {written:,} events in {seconds:.0f} s; indexing")
        seed_bindings(app_url, CONVERSATIONS)
        app, tracker = make_engine(app_url), make_engine(tracker_url)
        seconds, read = timed(sync_all, app, tracker, 0.6, 20_000)
        if engine_name == "postgresql":  # what autovacuum does on a live server
            with app.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
        app.dispose()
        tracker.dispose()
        rows.append([engine_name, f"index {read:,} events", f"{seconds * 1000:,.0f}", "", ""])
        progress(f"{engine_name}: indexed in {seconds:.0f} s; timing pages")
        timings = asyncio.run(measure_pages(app_url, tracker_url))
        for name, values in timings.items():
            ms = median(values)
            rows.append([engine_name, name, f"{ms:.1f}", f"{max(values):.1f}", _verdict(ms)])
    return rows


def _verdict(ms: float) -> str:
    return "ok" if ms < GOAL_MS else f"over {GOAL_MS} ms"


def main() -> None:
    engines = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    rows = [row for name in engines for row in measure(name)]
    print_table(
        f"Officer console over {CONVERSATIONS:,} conversations (median of {REPEAT} requests "
        "through HTTP, page of 50, signed in)",
        ["engine", "page", "median ms", "max ms", f"goal < {GOAL_MS} ms"],
        rows,
    )
    if "postgresql" not in engines:
        print("(PostgreSQL not reachable: set TEST_DATABASE_URL to include it)")


if __name__ == "__main__":
    main()
