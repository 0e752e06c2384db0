"""Two Rasa servers and two action servers on loopback, as deployed (README, "Deployment on
several processes / machines"): one PostgreSQL tracker store, the Redis lock store of
deploy/endpoints.yml, each Rasa server calling the *other* action server (they keep no state).

Messages of one conversation go alternately, or all at once, to both servers; the tracker store
must then hold every message once, in order, each followed by its own complete answer, and a
double confirmation sent to both servers must create one dossier. nginx from deploy/nginx is put
in front of the two servers when it is installed (required in CI, as Redis and PostgreSQL are).

`TWO_INSTANCES_LOCK_STORE=in_memory` (each process its own locks) or `=redis` (Rasa's own Redis
lock store) runs the same tests with a weaker lock store: the burst test then fails (always with
the first, in some runs with the second), which is how connectors/lock_store.py was chosen.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Consent, Dossier
from bot.identity.speaker import rest_sender
from connectors.lock_store import AtomicRedisLockStore
from tests import factories
from tests.faults import pg_database
from tests.model.server import (
    TOKEN,
    ActionServer,
    RasaServer,
    base_env,
    free_port,
    last_code,
    say,
    write_endpoints,
)

pytestmark = [pytest.mark.model, pytest.mark.postgres, pytest.mark.filterwarnings("ignore")]

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
DEPLOY = PROJECT_ROOT / "deploy"
LOCK_STORE = os.environ.get("TWO_INSTANCES_LOCK_STORE", "atomic")  # atomic | redis | in_memory
# In the apologies of a failed turn ("… hệ thống đang tạm gián đoạn / đang gặp sự cố …").
FAILED_TURN = "hệ thống đang"
# Questions with a fixed answer and no side effect: any order of them is a valid conversation.
QUESTIONS = [
    "xin chào",
    "đổi căn cước cần giấy tờ gì",
    "làm hộ chiếu hết bao nhiêu tiền",
    "khai sinh mất mấy ngày",
    "bạn là người hay máy",
    "khai tử cần giấy tờ gì",
    "gia hạn tạm trú hết bao nhiêu tiền",
    "đổi giấy phép lái xe mất mấy ngày",
]


def unavailable(what: str, where: str, exc: Exception) -> None:
    """Skip locally, fail under CI=true (as tests/conftest.py does for PostgreSQL)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI but unreachable at {where}: {exc}")
    pytest.skip(f"{what} not reachable at {where} ({exc.__class__.__name__}); see README")


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS)
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except Exception as exc:
        unavailable("Redis", url, exc)
    return url


@pytest.fixture(scope="module")
def tracker_url(postgres_url: str) -> Iterator[str]:
    """A second throw-away database, empty: Rasa creates its `events` table."""
    with pg_database(postgres_url, migrate=False, prefix="dvc_tracker") as url:
        yield url


@dataclass
class Cluster:
    workdir: Path
    rasa: list[RasaServer]
    actions: list[ActionServer]
    app: Engine
    tracker: Engine
    clients: list[httpx.Client] = field(default_factory=list)

    def say(self, server: int, sender: str, message: str) -> str:
        return say(self.clients[server], sender, message)

    def events(self, sender: str) -> list[dict[str, Any]]:
        """The REST conversation's events as the tracker store holds them, in storage order."""
        with self.tracker.connect() as conn:
            rows = conn.execute(
                text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"),
                {"s": rest_sender(sender)},
            ).all()
        return [json.loads(row.data) for row in rows]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, tracker_url: str, redis_url: str
) -> Iterator[Cluster]:
    """Started once for the module (four processes: about a minute on two cores)."""
    workdir = tmp_path_factory.mktemp("two-instances")
    env = {
        **base_env(workdir, postgres_url, tracker_url),
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": f"t{uuid.uuid4().hex[:12]}",  # alphanumeric, one per run
    }
    actions = [ActionServer(workdir, env), ActionServer(workdir, env)]
    rasa = []
    for index in range(2):
        other = actions[1 - index]  # crossed: server A uses action server B and vice versa
        own_env = {**env, "ACTION_ENDPOINT_URL": other.webhook}
        if LOCK_STORE == "atomic":
            endpoints = DEPLOY / "endpoints.yml"  # the production file itself
        else:
            endpoints = write_endpoints(
                workdir / f"endpoints-{index}.yml",
                other.webhook,
                tracker_url,
                redis_url if LOCK_STORE == "redis" else None,
                env["REDIS_KEY_PREFIX"],
            )
        rasa.append(RasaServer(workdir, own_env, endpoints))
    for process in [*actions, *rasa]:
        process.start(wait=False)
    started = Cluster(workdir, rasa, actions, make_engine(postgres_url), make_engine(tracker_url))
    try:
        for process in [*actions, *rasa]:
            process.wait_ready()
        started.clients = [httpx.Client(base_url=r.url, timeout=120) for r in rasa]
        for index in range(2):  # a process's first turn and first action are slow: warm up
            started.say(index, f"warm-up-{index}", "khai sinh mất mấy ngày")
        yield started
    finally:
        for client in started.clients:
            client.close()
        for process in [*rasa, *actions]:  # SIGTERM to all first: they stop in parallel
            if process.proc is not None and process.proc.poll() is None:
                process.proc.terminate()
        for process in [*rasa, *actions]:
            process.stop()
        started.app.dispose()
        started.tracker.dispose()


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same instant; results in call order."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(released, calls))


def name(event: dict[str, Any]) -> str:
    return event["name"] if event["event"] == "action" else event["event"]


def check_turns(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Assert the shape of a stored conversation; its (user text, bot answer) turns.

    One session start, then turns that never overlap: a user event, the bot's events, and one
    `action_listen` closing the turn before the next user event. No event stored twice, and
    timestamps never go back (two turns processed at once interleave or lose events)."""
    serialised = [json.dumps(e, sort_keys=True) for e in events]
    assert len(set(serialised)) == len(serialised), "an event is stored twice"
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps), "events are stored out of order"
    names = [name(e) for e in events]
    assert names.count("action_session_start") == 1 and names.count("session_started") == 1
    first_user = names.index("user")
    assert names[first_user - 1] == "action_listen"
    turns: list[tuple[str, str]] = []
    start = first_user
    while start < len(events):
        end = next((i for i in range(start + 1, len(events)) if names[i] == "user"), len(events))
        turn = names[start:end]
        assert turn[-1] == "action_listen" and turn.count("action_listen") == 1, (
            f"turn of {events[start]['text']!r} is not one complete turn: {turn}"
        )
        bot = [e.get("text") or "" for e in events[start:end] if e["event"] == "bot"]
        assert bot, f"no answer to {events[start]['text']!r}"
        turns.append((events[start]["text"], "\n".join(bot)))
        start = end
    return turns


def test_atomic_lock_store_issues_each_ticket_once(redis_url: str) -> None:
    """Four connections (as four Rasa processes) take tickets for one conversation at once."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    stores = [AtomicRedisLockStore(host=redis_url, key_prefix=prefix) for _ in range(4)]
    sender = "tickets"

    def take(store: AtomicRedisLockStore) -> list[int]:
        return [store.issue_ticket(sender, 30) for _ in range(25)]

    tickets = [t for batch in run_together([lambda s=s: take(s) for s in stores]) for t in batch]
    assert sorted(tickets) == list(range(100))
    queue = stores[0].get_lock(sender)
    assert queue is not None and len(queue.tickets) == 100
    assert 0 < stores[0].red.ttl(stores[0].key_prefix + sender) <= 31  # dies with its tickets
    run_together([lambda t=t: stores[t % 4].cleanup(sender, t) for t in tickets])
    assert stores[0].get_lock(sender) is None  # the last ticket took the queue with it


def test_production_endpoints_build_the_deployed_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.core.lock_store import LockStore
    from rasa.core.utils import AvailableEndpoints

    monkeypatch.setenv("ACTION_ENDPOINT_URL", "http://127.0.0.1:5090/webhook")
    monkeypatch.setenv("TRACKER_DB_URL", "postgresql://dvc:p@db.internal:5433/dvc_tracker")
    monkeypatch.setenv("REDIS_URL", "redis://:s%40cret@redis.internal:6380/2")
    monkeypatch.setenv("REDIS_KEY_PREFIX", "dichvucong")
    monkeypatch.setenv("ACTION_SERVER_TOKEN", "derived-by-rasa-process")
    endpoints = AvailableEndpoints.read_endpoints(str(DEPLOY / "endpoints.yml"))
    assert endpoints.action.url == "http://127.0.0.1:5090/webhook"
    assert endpoints.action.headers == {"X-Action-Token": "derived-by-rasa-process"}
    assert endpoints.tracker_store.type == "connectors.tracker_store.ThreadedSQLTrackerStore"
    assert endpoints.tracker_store.url == "postgresql://dvc:p@db.internal:5433/dvc_tracker"
    store = LockStore.create(endpoints.lock_store)
    assert isinstance(store, AtomicRedisLockStore)
    options = store.red.connection_pool.connection_kwargs
    assert (options["host"], options["port"], options["db"]) == ("redis.internal", 6380, 2)
    assert options["password"] == "s@cret" and store.key_prefix == "dichvucong:lock:"


def test_conversations_alternating_between_the_servers(cluster: Cluster) -> None:
    """Six conversations at once, each message of each to the other server than the last."""
    run = uuid.uuid4().hex[:6]
    senders = [f"alt-{run}-{n}" for n in range(6)]
    messages = {s: QUESTIONS[n:] + QUESTIONS[:n] for n, s in enumerate(senders)}

    def converse(n: int, sender: str) -> list[str]:
        return [cluster.say((n + i) % 2, sender, m) for i, m in enumerate(messages[sender])]

    answers = run_together([lambda n=n, s=s: converse(n, s) for n, s in enumerate(senders)])
    for sender, replies in zip(senders, answers, strict=True):
        turns = check_turns(cluster.events(sender))
        assert [user for user, _ in turns] == messages[sender]  # each once, in the order sent
        assert [bot for _, bot in turns] == replies  # each answer is its own message's
        assert all(reply and FAILED_TURN not in reply for reply in replies)


def test_a_burst_of_one_conversation_on_both_servers_is_processed_in_turn(
    cluster: Cluster,
) -> None:
    """Eight messages of one conversation at the same instant, half to each server, for three
    conversations at once: the lock store must queue them (Rasa's in-memory one and its own
    Redis one do not, see the module docstring)."""
    run = uuid.uuid4().hex[:6]
    senders = [f"burst-{run}-{n}" for n in range(3)]
    calls = [
        (lambda s=s, i=i: cluster.say(i % 2, s, QUESTIONS[i]))
        for s in senders
        for i in range(len(QUESTIONS))
    ]
    answers = iter(run_together(calls))
    for sender in senders:
        replies = {QUESTIONS[i]: next(answers) for i in range(len(QUESTIONS))}
        turns = check_turns(cluster.events(sender))
        assert Counter(user for user, _ in turns) == Counter(QUESTIONS)  # none lost, none twice
        assert {user: bot for user, bot in turns} == replies
        assert all(reply and FAILED_TURN not in reply for reply in replies.values())


def test_a_double_confirmation_on_both_servers_creates_one_dossier(cluster: Cluster) -> None:
    """Three citizens link and submit across both servers; the final "đồng ý nộp" reaches both
    servers at once (a double click): one dossier and one consent each."""
    run = uuid.uuid4().hex[:6]
    people = []
    with unit_of_work(cluster.app) as s:
        for n in range(3):
            suffix = f"{int(run, 16) % 10_000:04d}{n}"
            person = factories.citizen(
                s, cccd=f"0661900{suffix}", phone=f"09088{suffix}", full_name=f"Phạm Văn {n}"
            )
            factories.record(
                s,
                person,
                "tam_tru",
                issued_on=dt.date(2024, 12, 1),
                valid_until=dt.date.today() + dt.timedelta(days=25),
                attributes={"dia_chi_tam_tru": "45 Phan Bội Châu, Buôn Ma Thuột"},
            )
            people.append((person.id, person.cccd, person.phone, f"dossier-{run}-{n}"))

    def submit(cccd: str, phone: str, sender: str) -> list[str]:
        assert "mã xác thực" in cluster.say(0, sender, cccd)
        assert "Xác thực thành công" in cluster.say(1, sender, last_code(cluster.workdir, phone))
        assert "đồng ý nộp" in cluster.say(0, sender, "tôi muốn gia hạn tạm trú")
        return run_together([lambda i=i: cluster.say(i, sender, "đồng ý nộp") for i in (0, 1)])

    results = run_together([lambda p=p: submit(*p[1:]) for p in people])
    for (citizen_id, _, _, sender), replies in zip(people, results, strict=True):
        assert sum("Mã hồ sơ: DLK-" in reply for reply in replies) == 1, replies
        with unit_of_work(cluster.app) as s:
            dossiers = s.scalar(
                select(func.count()).select_from(Dossier).where(Dossier.citizen_id == citizen_id)
            )
            consents = s.scalar(
                select(func.count()).select_from(Consent).where(Consent.citizen_id == citizen_id)
            )
        assert (dossiers, consents) == (1, 1)
        check_turns(cluster.events(sender))


# --- nginx from deploy/nginx in front of the two servers --------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        unavailable("nginx", "PATH", FileNotFoundError("nginx (Debian package nginx-light)"))
    return found


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot.example.gov.vn")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_prefix(root: Path, rasa: list[int], actions: list[int], site: str) -> Path:
    """An nginx prefix laid out as /etc/nginx: deploy/nginx's snippets, upstreams on the given
    ports, a throw-away certificate, and `site` inside http {}."""
    snippets = root / "dichvucong"
    shutil.copytree(DEPLOY / "nginx" / "dichvucong", snippets)
    lines = {
        name: "".join(f"    server 127.0.0.1:{port};\n" for port in ports)
        for name, ports in (("rasa", rasa), ("actions", actions))
    }
    (snippets / "upstreams.conf").write_text(
        f"upstream rasa_servers {{\n{lines['rasa']}}}\n"
        f"upstream action_servers {{\n{lines['actions']}}}\n"
        f"upstream officer_console {{\n    server 127.0.0.1:{free_port()};\n}}\n"
    )
    cert, key = self_signed(root)
    tls = (snippets / "tls.conf").read_text()
    for placeholder, path in [("fullchain.pem", cert), ("privkey.pem", key)]:
        assert f"/etc/ssl/dichvucong/{placeholder}" in tls
        tls = tls.replace(f"/etc/ssl/dichvucong/{placeholder}", str(path))
    (snippets / "tls.conf").write_text(tls)
    temp = "".join(
        f"{kind}_temp_path {root / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "log_format upstream '$request_uri $status $upstream_addr';\n"
        f"access_log {root / 'access.log'} upstream;\n{temp}{site}\n}}\n"
    )
    return root / "nginx.conf"


def test_nginx_site_is_valid(tmp_path: Path) -> None:
    """`nginx -t` on deploy/nginx/dichvucong.conf as it is installed (ports are not bound)."""
    site = (DEPLOY / "nginx" / "dichvucong.conf").read_text()
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")  # writable by a non-root tester too
    conf = nginx_prefix(tmp_path, [5005, 5006], [5055, 5056], site)
    check = subprocess.run(
        [nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


@pytest.fixture
def nginx(cluster: Cluster, tmp_path: Path) -> Iterator[dict[str, str]]:
    """deploy/nginx's public and internal locations on loopback ports, over the cluster."""
    public, internal = free_port(), free_port()
    site = (
        "include dichvucong/upstreams.conf;\n"
        f"server {{ listen 127.0.0.1:{public}; include dichvucong/public.conf; }}\n"
        f"server {{ listen 127.0.0.1:{internal}; include dichvucong/rasa-api.conf; }}\n"
    )
    ports = [r.port for r in cluster.rasa], [a.port for a in cluster.actions]
    conf = nginx_prefix(tmp_path, *ports, site)
    command = [nginx_binary(), "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"]
    with (tmp_path / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{public}/", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
                time.sleep(0.1)
        yield {
            "public": f"http://127.0.0.1:{public}",
            "internal": f"http://127.0.0.1:{internal}",
            "log": str(tmp_path / "access.log"),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_nginx_exposes_only_the_channel_webhooks_and_balances_both_servers(
    cluster: Cluster, nginx: dict[str, str]
) -> None:
    public = httpx.Client(base_url=nginx["public"], timeout=30)
    # Not public: the REST channel, the Rasa HTTP API (even with the token), Rasa's pages.
    rest = public.post("/webhooks/rest/webhook", json={"sender": "x", "message": "xin chào"})
    assert rest.status_code == 404
    assert public.get("/conversations/x/tracker", params={"token": TOKEN}).status_code == 404
    assert public.get("/status", params={"token": TOKEN}).status_code == 404
    assert public.get("/").status_code == 404
    # Of the officer console only the signed payment callback, and only as a POST.
    assert public.get("/dossiers").status_code == 404
    assert public.get("/api/payments/callback").status_code == 403
    assert public.post("/api/payments/callback", content=b"x" * (17 * 1024)).status_code == 413
    # The channels' webhooks reach Rasa (no channel is configured here: it answers 503 itself);
    # bodies over the channels' 64 KiB cap are refused by nginx.
    sms = public.get("/webhooks/sms/webhook", params={"sender": "0905123456", "content": "a"})
    assert sms.status_code == 503
    huge = public.post("/webhooks/telegram/webhook", content=b"x" * (65 * 1024))
    assert huge.status_code == 413
    public.close()

    # Internal listener: a conversation through nginx, spread over both servers, stays whole.
    sender = f"nginx-{uuid.uuid4().hex[:6]}"
    internal = httpx.Client(base_url=nginx["internal"], timeout=120)
    replies = [say(internal, sender, m) for m in QUESTIONS]
    internal.close()
    turns = check_turns(cluster.events(sender))
    assert [user for user, _ in turns] == QUESTIONS and [bot for _, bot in turns] == replies
    used = {
        line.split()[2]
        for line in Path(nginx["log"]).read_text().splitlines()
        if line.startswith("/webhooks/rest/webhook 200")
    }
    assert used == {f"127.0.0.1:{r.port}" for r in cluster.rasa}
