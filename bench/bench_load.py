"""Load: simulated citizens talking concurrently through the REST channel and the Zalo webhook.

What runs (real processes on 127.0.0.1, started with `tests/model/server.py`):
- **baseline**: `rasa run` with the same `models/`, `config.yml` and `credentials.yml`, no action
  server, Rasa's in-memory tracker store. The Zalo channel still needs its own tables (webhook
  ids seen, access token, button payloads), so it gets a SQLite app database. Custom actions
  fail there (no endpoint) and those turns get no answer: expected, not counted as errors.
- **sqlite**: Rasa server + action server, SQL tracker store and app database on SQLite files.
- **postgresql**: the same with the tracker store and the app database on two throw-away
  PostgreSQL databases (TEST_DATABASE_URL's server; skipped when unreachable).
The app databases are seeded with `bot seed` (BENCH_LOAD_CITIZENS citizens; by default enough
for every session to have a citizen of its own). All servers are started side by side and get
two unmeasured warm-up sessions each. A level (1, 10, 50 concurrent citizens) runs BENCH_LOAD_ROUNDS
rounds (default 6) of BENCH_LOAD_SECONDS / rounds (default 120 s / 6 = 20 s) on each variant in
turn, the order rotating, so that the three share the machine's ups and downs; one server is
loaded at a time. Between its rounds a variant's citizens wait (their sessions pause, they are
not cut), and a round ends when its last reply is in.

A simulated citizen runs scripted sessions one after another, in a closed loop: think for a
uniform 0.5–1.5 s, send, wait for the reply. A session: "xin chào"; two procedure questions
drawn from six (fee, documents, processing time; one typed without diacritics); "tôi muốn
xác thực tài khoản"; the ID number; the one-time code read from the SMS outbox; in one session
of two, a pre-fill and submit of a level-3 service due for that citizen (gia hạn tạm trú:
summary, "đồng ý nộp"; or đổi bằng lái xe: one missing field "1", summary, "đồng ý nộp");
"hồ sơ của tôi đến đâu rồi"; "5 sao" (and "không" if a comment is asked for); "tạm biệt".
The next session is another citizen (one-time codes are limited to 3 per ID number per hour)
with a fresh conversation id, and the other channel: half the sessions talk over REST, half
over the Zalo webhook (events signed like Zalo's), both channels getting both kinds of
session. No seeded citizen is used twice by a variant.

Every reply is checked for what the flow expects: the procedure answer built from the
catalogue, the masked phone in the linking answer, the masked ID number in the summary, a
dossier code after submitting and the same code in the status answer, the rating thanks, the
greeting and the goodbye. An HTTP error, no reply within 60 s, an unexpected reply, or the
action error message ("Mã sự cố") is an error and ends that session. For the baseline only
the greeting and goodbye (domain responses) are checked, and the code typed is a fixed
6-digit number.

Reply time: REST, the HTTP round trip. Zalo, from the signed webhook POST to the turn's last
reply reaching the fake Zalo OA API (it runs in this process). Zalo webhooks are acknowledged
at once, so the end of a turn is signalled by `bench/load_signal.py`, Rasa's in-memory lock
store plus one UDP datagram when a Zalo conversation's lock is released; a turn without any
reply (baseline custom actions only) is timed to that signal.

Messages/s: messages answered divided by the level's wall time (its rounds, each until its last
reply). "server CPU ms/msg": user + system CPU of the variant's Rasa and action server processes
during the level's rounds, per message (PostgreSQL's own processes are not counted).
Environment: BENCH_LOAD_SECONDS (120), BENCH_LOAD_LEVELS ("1,10,50"), BENCH_LOAD_ROUNDS (6),
BENCH_LOAD_VARIANTS ("baseline,sqlite,postgresql"), BENCH_LOAD_CITIZENS, BENCH_LOAD_KEEP=1
keeps the work folder (server logs, databases); it is also kept when there were errors. The
servers inherit this process's environment (e.g. OMP_NUM_THREADS).
Goal (issue 8): at 10 concurrent citizens, our median within 1.5× of the baseline's and our
messages/s at least 0.7× of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiohttp import web
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bench.common import postgres_available, print_table, progress
from bot.catalogue.model import get_catalogue
from bot.catalogue.procedures import answer
from bot.core.db import make_engine, unit_of_work
from bot.core.migrate import upgrade
from bot.core.models import Citizen
from bot.data.seed import seed
from bot.governance.pii import mask_cccd, mask_phone
from bot.reminders.due import citizens_with_dues
from connectors.zalo_api import ZaloConfig, ZaloTokenStore
from tests.fakes import FakeZalo, zalo_text_event
from tests.model.server import ActionServer, RasaServer, base_env, write_endpoints

SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "120"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LOAD_LEVELS", "1,10,50").split(",") if x.strip()]
VARIANTS = [
    x.strip()
    for x in os.environ.get("BENCH_LOAD_VARIANTS", "baseline,sqlite,postgresql").split(",")
    if x.strip()
]
ROUNDS = int(os.environ.get("BENCH_LOAD_ROUNDS", "6"))
THINK = (0.5, 1.5)
REPLY_TIMEOUT = 60.0
PROGRESS_EVERY = 20.0
GOAL_LEVEL, GOAL_MEDIAN, GOAL_RATE = 10, 1.5, 0.7

APP_ID, APP_SECRET, OA_SECRET, OA_ID = "2553928453557884079", "app-secret", "oa-secret", "366272"
ACTION_ERROR = "Mã sự cố"
DOSSIER_CODE = re.compile(r"\b[A-Z]{2,5}-\d{6}-\d{5}\b")
BARE_CODE = "482913"  # the baseline sends no code: a fixed number of the same shape

QUESTIONS = [  # (text, service, topic): the reply must hold `answer(service, topic)`
    ("làm hộ chiếu hết bao nhiêu tiền", "ho_chieu_cap_lai", "fee"),
    ("đổi căn cước cần giấy tờ gì", "cccd_doi_the", "requirements"),
    ("khai sinh mất mấy ngày", "khai_sinh", "processing_time"),
    ("gia hạn tạm trú cần những giấy tờ gì", "tam_tru_gia_han", "requirements"),
    ("doi bang lai xe het bao nhieu tien", "gplx_doi", "fee"),
    ("lý lịch tư pháp bao lâu thì có", "ly_lich_tu_phap", "processing_time"),
]
SUBMITTABLE = ("tam_tru_gia_han", "gplx_doi")
# Session kinds in turn; with the channel alternating too, both channels get every kind.
KINDS = ["tam_tru_gia_han", None, "gplx_doi", None]


# ---------------------------------------------------------------- citizens and their pools


@dataclasses.dataclass(frozen=True)
class Person:
    cccd: str
    phone: str
    service: str | None  # a level-3 service due for them that the session submits, or None


def sessions_needed() -> int:
    """An upper bound of sessions per variant: 12 messages at ≥ 0.5 s think time each."""
    return int(sum(LEVELS) * SECONDS / 6) + 10


def citizens_to_seed() -> int:
    if os.environ.get("BENCH_LOAD_CITIZENS"):
        return int(os.environ["BENCH_LOAD_CITIZENS"])
    # About 1.7 % of seeded citizens have đổi bằng lái xe due (the rarer of the two), and a
    # quarter of the sessions need one.
    return max(20_000, math.ceil(sessions_needed() / 4 / 0.015))


def people(url: str, today: dt.date) -> dict[str | None, list[Person]]:
    """Seeded citizens with a phone: by the service the session will submit (None: none)."""
    engine = make_engine(url)
    pools: dict[str | None, list[Person]] = {code: [] for code in (*SUBMITTABLE, None)}
    with unit_of_work(engine) as session:
        due: dict[str, list[str]] = {
            c.cccd: [i.service.code for i in items]
            for c, items in citizens_with_dues(session, get_catalogue(), today)
        }
        rows = session.execute(
            select(Citizen.cccd, Citizen.phone).where(Citizen.phone.isnot(None))
        ).all()
    engine.dispose()
    for cccd, phone in rows:
        codes = due.get(cccd, [])
        service = next((c for c in SUBMITTABLE if c in codes), None)
        if service is None and codes:
            continue  # something else is due: keep the plain sessions plain
        pools[service].append(Person(cccd, phone, service))
    return pools


# ---------------------------------------------------------------- measurements


@dataclasses.dataclass
class Cell:
    """What one (variant, level, channel) measured."""

    messages: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0


class Ledger:
    def __init__(self) -> None:
        self.cells: dict[tuple[str, int, str], Cell] = {}
        self.elapsed: dict[tuple[str, int], float] = {}
        self.cpu: dict[tuple[str, int], float] = {}
        self.errors: list[str] = []
        self.kinds: Counter[str] = Counter()

    def cell(self, variant: str, level: int, channel: str) -> Cell:
        return self.cells.setdefault((variant, level, channel), Cell())

    def error(self, kind: str, where: str, detail: str) -> None:
        self.kinds[kind] += 1
        self.errors.append(f"{kind}: {where}: {detail}")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# ---------------------------------------------------------------- Zalo plumbing


class ZaloTurn:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.last: float | None = None
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()


class ZaloRouter:
    """Replies reaching the fake API and turn-end datagrams, routed to the waiting citizen."""

    def __init__(self) -> None:
        self.waiting: dict[str, ZaloTurn] = {}

    def on_text(self, user_id: str, text: str, at: float) -> None:
        turn = self.waiting.get(f"zalo:{user_id}")
        if turn is not None:
            turn.texts.append(text)
            turn.last = at

    def on_turn_end(self, conversation_id: str, at: float) -> None:
        turn = self.waiting.get(conversation_id)
        if turn is not None and not turn.done.done():
            turn.done.set_result(at)


class RoutingZalo(FakeZalo):
    """The fake OA API, telling the router about each customer-service message at arrival."""

    def __init__(self, router: ZaloRouter) -> None:
        super().__init__(APP_SECRET)
        self.router = router
        self.count = 0

    async def message(self, request: web.Request) -> web.Response:
        body = await self._common(request, "cs")
        if isinstance(body, web.Response):
            return body
        self.calls.clear()  # the base class keeps every call; thousands are not needed here
        self.count += 1
        user = str((body.get("recipient") or {}).get("user_id", ""))
        self.router.on_text(
            user, str((body.get("message") or {}).get("text", "")), time.monotonic()
        )
        return web.json_response({"error": 0, "data": {"message_id": f"m{self.count}"}})


class TurnSignals(asyncio.DatagramProtocol):
    def __init__(self, router: ZaloRouter) -> None:
        self.router = router

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.router.on_turn_end(data.decode("utf-8", "replace"), time.monotonic())


# ---------------------------------------------------------------- one-time codes


class Outbox:
    """Reads `sms_outbox.jsonl` incrementally: the newest one-time code per phone."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.codes: dict[str, str] = {}

    def code_for(self, phone: str) -> str | None:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            self.offset += end
            for line in chunk[:end].decode("utf-8").splitlines():
                sms = json.loads(line)
                if found := re.search(r"\b(\d{6})\b", sms.get("text", "")):
                    self.codes[sms["to"]] = found.group(1)
        return self.codes.pop(phone, None)


# ---------------------------------------------------------------- variants


@dataclasses.dataclass
class Variant:
    name: str
    bare: bool
    workdir: Path
    app_url: str
    tracker_url: str | None
    router: ZaloRouter = dataclasses.field(default_factory=ZaloRouter)
    fake: RoutingZalo | None = None
    signal_port: int = 0
    rasa: RasaServer | None = None
    actions: ActionServer | None = None
    pools: dict[str | None, list[Person]] = dataclasses.field(default_factory=dict)
    sessions: Iterator[int] = dataclasses.field(default_factory=itertools.count)
    rest: httpx.AsyncClient | None = None
    outbox: Outbox | None = None

    def take(self, kind: str | None) -> Person:
        pool = self.pools[kind] or self.pools[None]
        if not pool:
            raise RuntimeError(
                f"{self.name}: no unused seeded citizen left; raise BENCH_LOAD_CITIZENS"
            )
        return pool.pop()

    def start(self) -> None:
        assert self.fake is not None
        env = {
            **base_env(self.workdir, self.app_url, self.tracker_url),
            "ZALO_APP_ID": APP_ID,
            "ZALO_APP_SECRET": APP_SECRET,
            "ZALO_OA_SECRET": OA_SECRET,
            "ZALO_API_URL": self.fake.url,
            "ZALO_OAUTH_URL": self.fake.url,
            "ZALO_ZNS_URL": self.fake.url,
        }
        engine = make_engine(self.app_url)
        config = ZaloConfig.from_env(env)
        assert config is not None
        ZaloTokenStore(engine, config).save("access-0", "refresh-0", 90000)
        engine.dispose()
        if not self.bare:
            self.actions = ActionServer(self.workdir, env)
        endpoints = write_endpoints(
            self.workdir / "endpoints.yml",
            self.actions.webhook if self.actions else None,
            self.tracker_url,
        )
        with endpoints.open("a") as f:
            f.write(
                "lock_store:\n  type: bench.load_signal.TurnSignalLockStore\n"
                f"  signal_port: {self.signal_port}\n"
            )
        self.rasa = RasaServer(self.workdir, env, endpoints)
        if self.actions:
            self.actions.start(wait=False)
        self.rasa.start(wait=False)
        self.outbox = Outbox(self.workdir / "sms_outbox.jsonl")

    def wait_ready(self) -> None:
        if self.actions:
            self.actions.wait_ready(900)
        assert self.rasa is not None
        self.rasa.wait_ready(900)

    def stop(self) -> None:
        for server in (self.rasa, self.actions):
            if server is not None:
                server.stop()


# ---------------------------------------------------------------- conversations


class SessionOver(Exception):
    """The session cannot go on (an error was counted)."""


class Gate:
    """Open while a variant's round runs. Citizens wait here between rounds, so a session is
    paused, never cut, and the next round goes on from where it stopped."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.round = 0
        self.in_flight = 0

    def open(self) -> None:
        self.round += 1
        self.opened.set()

    async def close(self) -> None:
        """Stop new messages, then wait for the replies still under way."""
        self.opened.clear()
        while self.in_flight:
            await asyncio.sleep(0.02)


class Conversation:
    def __init__(
        self,
        variant: Variant,
        ledger: Ledger,
        cell: Cell,
        where: str,
        gate: Gate,
        rng: random.Random,
        think: tuple[float, float] = THINK,
    ) -> None:
        self.variant, self.ledger, self.cell, self.where = variant, ledger, cell, where
        self.gate, self.rng, self.think = gate, rng, think
        self.last = ""

    async def exchange(self, text_: str) -> tuple[str, float]:
        raise NotImplementedError

    async def say(self, text_: str) -> str:
        while True:  # think inside one round; a round that ends meanwhile: think again later
            await self.gate.opened.wait()
            round_ = self.gate.round
            await asyncio.sleep(self.rng.uniform(*self.think))
            if self.gate.opened.is_set() and self.gate.round == round_:
                break
        self.cell.messages += 1
        self.last = text_
        self.gate.in_flight += 1
        try:
            reply, seconds = await self.exchange(text_)
        except httpx.TimeoutException:
            self.fail("timeout", f"no HTTP answer within {REPLY_TIMEOUT:.0f} s")
        except httpx.HTTPError as exc:
            self.fail("http", f"{type(exc).__name__}: {exc}")
        except asyncio.TimeoutError:
            self.fail("timeout", f"no reply within {REPLY_TIMEOUT:.0f} s")
        finally:
            self.gate.in_flight -= 1
        self.cell.latencies.append(seconds)
        if ACTION_ERROR in reply:
            self.fail("action error", reply)
        return reply

    def expect(self, reply: str, *needles: str, utter: bool = False) -> None:
        """Check a reply; in the baseline only domain responses (`utter`) are checked."""
        if self.variant.bare and not utter:
            return
        missing = [n for n in needles if n not in reply]
        if missing:
            self.fail("unexpected reply", f"missing {missing!r} in {reply[:300]!r}")

    def fail(self, kind: str, detail: str) -> None:
        self.cell.errors += 1
        self.ledger.error(kind, f"{self.where} after {self.last!r}", detail)
        raise SessionOver


class RestConversation(Conversation):
    def __init__(self, *args: Any, sender: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sender = sender

    async def exchange(self, text_: str) -> tuple[str, float]:
        assert self.variant.rest is not None
        start = time.perf_counter()
        response = await self.variant.rest.post(
            "/webhooks/rest/webhook", json={"sender": self.sender, "message": text_}
        )
        seconds = time.perf_counter() - start
        response.raise_for_status()
        return "\n".join(m.get("text", "") for m in response.json()), seconds


class ZaloConversation(Conversation):
    def __init__(self, *args: Any, user: str, client: httpx.AsyncClient, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user, self.client = user, client

    async def exchange(self, text_: str) -> tuple[str, float]:
        router = self.variant.router
        conversation = f"zalo:{self.user}"
        turn = router.waiting[conversation] = ZaloTurn()
        try:
            raw, headers = zalo_text_event(
                APP_ID, OA_SECRET, self.user, text_, uuid.uuid4().hex, OA_ID
            )
            start = time.monotonic()
            response = await self.client.post(
                "/webhooks/zalo/webhook", content=raw, headers=headers
            )
            response.raise_for_status()
            if response.json().get("status") != "ok":
                self.fail("http", f"webhook answered {response.text[:200]}")
            ended = await asyncio.wait_for(turn.done, REPLY_TIMEOUT)
            return "\n".join(turn.texts), (turn.last or ended) - start
        finally:
            router.waiting.pop(conversation, None)


async def session(
    conv: Conversation, person: Person, questions: list[tuple[str, str, str]]
) -> None:
    """One citizen's visit; raises SessionOver at the first error."""
    catalogue = get_catalogue()
    reply = await conv.say("xin chào")
    conv.expect(reply, "Xin chào Ông/Bà", utter=True)
    for text_, service, topic in questions:
        reply = await conv.say(text_)
        conv.expect(reply, answer(catalogue.service(service), topic))
    reply = await conv.say("tôi muốn xác thực tài khoản")
    conv.expect(reply, "số định danh")
    reply = await conv.say(person.cccd)
    conv.expect(reply, "mã xác thực", mask_phone(person.phone))
    code = BARE_CODE
    if not conv.variant.bare:
        assert conv.variant.outbox is not None
        found = conv.variant.outbox.code_for(person.phone)
        if found is None:
            conv.fail("no code", f"no one-time code to {person.phone} in the SMS outbox")
        code = str(found)
    reply = await conv.say(code)
    conv.expect(reply, "Xác thực thành công")
    dossier = None
    if person.service == "tam_tru_gia_han":
        reply = await conv.say("tôi muốn gia hạn tạm trú")
        conv.expect(reply, "đồng ý nộp", mask_cccd(person.cccd))
    elif person.service == "gplx_doi":
        reply = await conv.say("tôi muốn đổi bằng lái xe")
        conv.expect(reply, "nhận giấy phép lái xe mới")
        reply = await conv.say("1")
        conv.expect(reply, "đồng ý nộp", mask_cccd(person.cccd))
    if person.service:
        reply = await conv.say("đồng ý nộp")
        conv.expect(reply, "Mã hồ sơ: ")
        found_code = DOSSIER_CODE.search(reply)
        dossier = found_code.group(0) if found_code else None
    reply = await conv.say("hồ sơ của tôi đến đâu rồi")
    conv.expect(reply, dossier or "chưa có hồ sơ")
    reply = await conv.say("5 sao")
    conv.expect(reply, "Cảm ơn Ông/Bà đã đánh giá")
    if "góp ý gì thêm" in reply:
        await conv.say("không")
    reply = await conv.say("tạm biệt")
    conv.expect(reply, "Cảm ơn Ông/Bà đã liên hệ", utter=True)


def open_conversation(
    variant: Variant,
    ledger: Ledger,
    level: int,
    gate: Gate,
    rng: random.Random,
    zalo_client: httpx.AsyncClient,
    label: str | None = None,
    think: tuple[float, float] = THINK,
) -> tuple[Conversation, Person]:
    number = next(variant.sessions)
    channel = ("rest", "zalo")[number % 2]
    person = variant.take(KINDS[(number // 2) % len(KINDS)])
    cell = ledger.cell(variant.name, level, channel)
    where = f"{variant.name} {label or f'×{level}'} {channel} session {number}"
    common = (variant, ledger, cell, where, gate, rng, think)
    if channel == "rest":
        return RestConversation(*common, sender=f"load-{variant.name}-{number}"), person
    user = str(6_100_000_000_000_000_000 + number)
    return ZaloConversation(*common, user=user, client=zalo_client), person


async def citizen(
    variant: Variant, ledger: Ledger, level: int, slot: int, gate: Gate, zalo: httpx.AsyncClient
) -> None:
    """Sessions one after another until the level is over (the task is then cancelled)."""
    rng = random.Random(f"{level}-{slot}")
    while True:
        conv, person = open_conversation(variant, ledger, level, gate, rng, zalo)
        with contextlib.suppress(SessionOver):
            await session(conv, person, rng.sample(QUESTIONS, 2))


def cpu_seconds(variant: Variant) -> float:
    """User + system CPU of the variant's Rasa and action server processes so far."""
    total = 0.0
    for server in (variant.rasa, variant.actions):
        if server is not None and server.proc is not None:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def run_round(variant: Variant, ledger: Ledger, level: int, gate: Gate, round_: int) -> None:
    """Open the variant's gate for SECONDS / ROUNDS, then let the last replies come in."""
    seconds = SECONDS / ROUNDS
    cells = [ledger.cell(variant.name, level, c) for c in ("rest", "zalo")]
    key = (variant.name, level)
    cpu, start = cpu_seconds(variant), time.monotonic()
    gate.open()
    while (left := start + seconds - time.monotonic()) > 0:
        await asyncio.sleep(min(PROGRESS_EVERY, left))
        if left > PROGRESS_EVERY:
            progress(
                f"{variant.name}, {level} concurrent, round {round_ + 1}/{ROUNDS}: "
                f"{time.monotonic() - start:.0f}/{seconds:.0f} s"
            )
    await gate.close()
    ledger.elapsed[key] = ledger.elapsed.get(key, 0.0) + time.monotonic() - start
    ledger.cpu[key] = ledger.cpu.get(key, 0.0) + cpu_seconds(variant) - cpu
    progress(
        f"{variant.name}, {level} concurrent, round {round_ + 1}/{ROUNDS} done: level so far "
        f"{ledger.elapsed[key]:.0f} s, {sum(c.messages for c in cells)} messages, "
        f"{sum(c.errors for c in cells)} errors"
    )


async def run_level(
    variants: list[Variant], ledger: Ledger, level: int, zalo: dict[str, httpx.AsyncClient]
) -> None:
    """`level` citizens per variant; rounds rotate over the variants, one server at a time."""
    gates = {v.name: Gate() for v in variants}
    tasks = [
        asyncio.create_task(citizen(v, ledger, level, slot, gates[v.name], zalo[v.name]))
        for v in variants
        for slot in range(level)
    ]
    try:
        for round_ in range(ROUNDS):
            shift = round_ % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                await run_round(variant, ledger, level, gates[variant.name], round_)
                for task in tasks:
                    if task.done():
                        task.result()  # a bug in the benchmark itself must not pass silently
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def warm_up(variant: Variant, ledger: Ledger, zalo: httpx.AsyncClient) -> None:
    """Two unmeasured sessions (one per channel): lazy loads, first connections."""
    rng, gate = random.Random("warm-up"), Gate()
    gate.open()
    for _ in range(2):
        conv, person = open_conversation(
            variant, ledger, 0, gate, rng, zalo, label="warm-up", think=(0.05, 0.1)
        )
        with contextlib.suppress(SessionOver):
            await session(conv, person, QUESTIONS[:2])


# ---------------------------------------------------------------- databases


def pg_database(base: str, name: str, create: bool) -> str:
    admin = make_engine(base)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if create:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def seeded_sqlite(path: Path, citizens: int, today: dt.date) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine, get_catalogue(), citizens, 1, today)
    engine.dispose()
    return url


# ---------------------------------------------------------------- report


def rows_for(ledger: Ledger, names: list[str]) -> tuple[list[list[object]], list[str]]:
    def figures(variant: str, level: int, channel: str) -> tuple[int, float, float, float, int]:
        chosen = ("rest", "zalo") if channel == "all" else (channel,)
        cells = [ledger.cell(variant, level, c) for c in chosen]
        latencies = [x for c in cells for x in c.latencies]
        messages = sum(c.messages for c in cells)
        rate = messages / ledger.elapsed[(variant, level)]
        med = statistics.median(latencies) * 1000 if latencies else math.nan
        p95 = percentile(latencies, 0.95) * 1000 if latencies else math.nan
        return messages, rate, med, p95, sum(c.errors for c in cells)

    rows: list[list[object]] = []
    verdicts: list[str] = []
    for level in LEVELS:
        for variant in names:
            for channel in ("rest", "zalo", "all"):
                messages, rate, med, p95, errors = figures(variant, level, channel)
                ratio_med = ratio_rate = ""
                if "baseline" in names:
                    _, b_rate, b_med, _, _ = figures("baseline", level, channel)
                    ratio_med, ratio_rate = f"{med / b_med:.2f}", f"{rate / b_rate:.2f}"
                    if level == GOAL_LEVEL and channel == "all" and variant != "baseline":
                        ok = med / b_med <= GOAL_MEDIAN and rate / b_rate >= GOAL_RATE
                        verdicts.append(
                            f"{variant}: median {med / b_med:.2f}× baseline "
                            f"(goal ≤ {GOAL_MEDIAN}), messages/s {rate / b_rate:.2f}× "
                            f"(goal ≥ {GOAL_RATE}): " + ("goal holds" if ok else "goal MISSED")
                        )
                cpu = ""
                if channel == "all" and messages:
                    cpu = f"{ledger.cpu[(variant, level)] / messages * 1000:.0f}"
                rows.append(
                    [
                        variant,
                        channel,
                        level,
                        messages,
                        f"{rate:.2f}",
                        f"{med:.0f}",
                        f"{p95:.0f}",
                        errors,
                        ratio_med,
                        ratio_rate,
                        cpu,
                    ]
                )
    return rows, verdicts


# ---------------------------------------------------------------- main


async def run(workdir: Path) -> tuple[Ledger, list[str]]:
    ledger = Ledger()
    names = [v for v in VARIANTS if v in ("baseline", "sqlite", "postgresql")]
    pg_base = postgres_available() if "postgresql" in names else None
    if "postgresql" in names and pg_base is None:
        names.remove("postgresql")
        print("(PostgreSQL not reachable: set TEST_DATABASE_URL to include it)")
    today = dt.date.today()
    count = citizens_to_seed()
    progress(f"seeding {count:,} citizens (SQLite template)")
    template = workdir / "template.db"
    template_url = seeded_sqlite(template, count, today)
    pools = people(template_url, today)
    progress(
        "citizens for sessions: "
        + ", ".join(f"{k or 'nothing to submit'} {len(v)}" for k, v in pools.items())
    )
    variants: list[Variant] = []
    pg_names: list[str] = []
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    try:
        for name in names:
            folder = workdir / name
            folder.mkdir()
            if name == "postgresql":
                assert pg_base is not None
                tag = uuid.uuid4().hex[:8]
                app_name, tracker_name = f"dvc_bench_load_{tag}", f"dvc_bench_load_{tag}_tracker"
                pg_names += [app_name, tracker_name]
                app_url = pg_database(pg_base, app_name, create=True)
                tracker_url = pg_database(pg_base, tracker_name, create=True)
                progress(f"seeding {count:,} citizens (PostgreSQL)")
                upgrade(app_url)
                engine = make_engine(app_url)
                seed(engine, get_catalogue(), count, 1, today)
                engine.dispose()
            else:
                shutil.copy(template, folder / "app.db")
                app_url = f"sqlite:///{folder / 'app.db'}"
                tracker_url = None if name == "baseline" else f"sqlite:///{folder / 'tracker.db'}"
            variant = Variant(name, name == "baseline", folder, app_url, tracker_url)
            variant.pools = {k: list(reversed(v)) for k, v in pools.items()}
            variant.fake = await RoutingZalo(variant.router).start()
            transport, _ = await loop.create_datagram_endpoint(
                lambda v=variant: TurnSignals(v.router), local_addr=("127.0.0.1", 0)
            )
            transports.append(transport)
            variant.signal_port = transport.get_extra_info("sockname")[1]
            variants.append(variant)
        progress(
            "starting " + ", ".join(v.name for v in variants) + " (Rasa servers load the model)"
        )
        for variant in variants:
            variant.start()
        for variant in variants:
            await asyncio.to_thread(variant.wait_ready)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with contextlib.AsyncExitStack() as stack:
            zalo_clients = {}
            for variant in variants:
                assert variant.rasa is not None
                variant.rest = await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=variant.rasa.url, timeout=REPLY_TIMEOUT, limits=limits
                    )
                )
                zalo_clients[variant.name] = await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=variant.rasa.url, timeout=REPLY_TIMEOUT, limits=limits
                    )
                )
            for variant in variants:
                progress(f"{variant.name}: warm-up")
                await warm_up(variant, ledger, zalo_clients[variant.name])
            for level in LEVELS:
                await run_level(variants, ledger, level, zalo_clients)
    finally:
        for variant in variants:
            variant.stop()
            if variant.fake is not None:
                await variant.fake.stop()
        for transport in transports:
            transport.close()
        for name in pg_names:
            assert pg_base is not None
            pg_database(pg_base, name, create=False)
    return ledger, [v.name for v in variants]


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    keep = os.environ.get("BENCH_LOAD_KEEP") == "1"
    try:
        ledger, names = asyncio.run(run(workdir))
        rows, verdicts = rows_for(ledger, names)
        print_table(
            f"Load: simulated citizens, half REST and half Zalo webhook, {SECONDS:.0f} s per level "
            f"and variant in {ROUNDS} rounds, think time {THINK[0]}–{THINK[1]} s; ratios to the "
            "bare baseline (same model, no action server, in-memory tracker store)",
            [
                "variant",
                "channel",
                "concurrent",
                "messages",
                "msg/s",
                "median ms",
                "p95 ms",
                "errors",
                "median × baseline",
                "msg/s × baseline",
                "server CPU ms/msg",
            ],
            rows,
        )
        if verdicts:
            print(f"\nGoal at {GOAL_LEVEL} concurrent citizens:")
            for line in verdicts:
                print(f"- {line}")
        warm = sum(c.errors for (_, level, _), c in ledger.cells.items() if level == 0)
        print(f"\nErrors: {len(ledger.errors)} (of which {warm} during warm-up)")
        for kind, number in ledger.kinds.most_common():
            print(f"- {kind}: {number}")
        for line in ledger.errors[:30]:
            print(f"  {line}")
        if ledger.errors:
            keep = True
    finally:
        if keep:
            print(f"(work folder with server logs kept: {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
