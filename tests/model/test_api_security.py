"""The assistant as `make run` starts it (`scripts/serve.py`), on its defaults: every process
listens on loopback only, the Rasa HTTP API refuses a call without the right token, no token is
on a command line, var/ is owner-only, bodies are bounded before they are read, a REST message
cannot speak for another channel's sender (issue 15, finding 1), and SIGTERM to the launcher
stops every process it started.

Only ports, the database, the var/ folder and the endpoints file (so the tracker store is a
temporary file, not the developer's var/tracker.db) are set; no host, no token: the launcher
generates the token into the var/ folder, as on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from bot.core.config import PROJECT_ROOT
from bot.core.models import ChannelBinding, Citizen
from bot.identity.linking import bind
from connectors import action_auth
from tests import factories
from tests.model.server import base_env, copy_db, free_port, write_endpoints

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore")]
GREETING = "Xin chào Ông/Bà"
HOST_VARIABLES = ("RASA_HOST", "ACTION_HOST", "CONSOLE_HOST", "SANIC_HOST", "RASA_AUTH_TOKEN")
LOOPBACK = {
    "0100007F",  # 127.0.0.1 in /proc/net/tcp (little-endian)
    "00000000000000000000000001000000",  # ::1 in /proc/net/tcp6
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


# --- processes, from /proc ---------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, session id, start time) of a live process; None once it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    if fields[0] in ("Z", "X"):  # a zombie has stopped; only its parent's wait is missing
        return None
    return int(fields[1]), int(fields[3]), int(fields[19])


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def descendants(root: int) -> dict[int, int]:
    """pid → start time of `root` and everything below it (children sit in their own
    sessions: the launcher starts each with start_new_session)."""
    table = {pid: info for pid in all_pids() if (info := proc_stat(pid)) is not None}
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found[pid] = table[pid][2]
            todo.extend(child for child, info in table.items() if info[0] == pid)
    return found


def alive(pid: int, started: int) -> bool:
    """Still the same process (not a new one that reused the pid)."""
    info = proc_stat(pid)
    return info is not None and info[2] == started


def listening_sockets(pids: list[int]) -> list[tuple[str, int]]:
    """(hex local address, port) of every TCP socket in LISTEN state owned by these pids."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                address, port = cols[1].split(":")
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.append((address, int(port, 16)))
    return found


def non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


# --- the launcher ------------------------------------------------------------------------------


@dataclass
class Assistant:
    proc: subprocess.Popen
    workdir: Path
    log: Path
    ports: dict[str, int]
    tracker_url: str
    seen: dict[int, int] = field(default_factory=dict)  # every process of the tree, ever

    def record(self) -> dict[int, int]:
        tree = descendants(self.proc.pid)
        self.seen.update(tree)
        return tree

    def token(self) -> str:
        return (self.workdir / "rasa_auth_token").read_text().strip()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def wait_ready(self, seconds: float = 420) -> None:
        checks = {
            "rasa": lambda: f"{self.url('rasa')}/status?token={self.token()}",
            "actions": lambda: f"{self.url('actions')}/health",
            "console": lambda: f"{self.url('console')}/healthz",
        }
        deadline = time.monotonic() + seconds
        pending = set(checks)
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError(f"launcher exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{sorted(pending)} not ready:\n{self.log_tail()}")
            self.record()
            for name in sorted(pending):
                with contextlib.suppress(httpx.HTTPError, OSError):
                    if httpx.get(checks[name](), timeout=2).status_code == 200:
                        pending.discard(name)
            time.sleep(1)
        self.record()

    def stop(self, seconds: float = 60) -> int | None:
        """SIGTERM to the launcher, as Ctrl-C or a service manager would; its exit code."""
        self.record()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def kill_leftovers(self) -> None:
        for pid, started in self.seen.items():
            if alive(pid, started):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def assistant(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Assistant]:
    if not list((PROJECT_ROOT / "models").glob("*.tar.gz")):
        pytest.fail("no trained model: run `make train` (make test does)")
    workdir = tmp_path_factory.mktemp("served")
    ports = {"rasa": free_port(), "actions": free_port(), "console": free_port()}
    tracker_url = f"sqlite:///{workdir}/tracker.db"
    endpoints = write_endpoints(
        workdir / "endpoints.yml", f"http://127.0.0.1:{ports['actions']}/webhook", tracker_url
    )
    env = base_env(workdir, copy_db(sqlite_template, workdir / "app.db"), tracker_url)
    for name in HOST_VARIABLES:  # the defaults are under test
        env.pop(name, None)
    env.update(
        RASA_PORT=str(ports["rasa"]),
        ACTION_PORT=str(ports["actions"]),
        CONSOLE_PORT=str(ports["console"]),
        RASA_ENDPOINTS=str(endpoints),
    )
    log = workdir / "launcher.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "scripts/serve.py"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    served = Assistant(proc, workdir, log, ports, tracker_url)
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()
        served.kill_leftovers()  # whatever a failing test left running


# --- the tests (in file order; the last one stops the launcher) -------------------------------


def test_the_generated_token_is_readable_only_by_its_owner(assistant: Assistant) -> None:
    path = assistant.workdir / "rasa_auth_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(assistant.token()) >= 32


def test_every_process_listens_on_loopback_only(assistant: Assistant) -> None:
    """From the kernel's socket table: the three ports are listening, and every listening
    socket of the launcher's processes is bound to 127.0.0.1 (or ::1)."""
    tree = assistant.record()
    assert len(tree) >= 5, tree  # launcher, Rasa, action server, console, scheduler
    sockets = listening_sockets(list(tree))
    assert set(assistant.ports.values()) <= {port for _, port in sockets}, sockets
    assert all(address in LOOPBACK for address, _ in sockets), sockets


def test_ports_cannot_be_reached_on_the_machines_network_address(assistant: Assistant) -> None:
    """Connecting from the network side fails, while the same address reaches a socket that
    does listen on every interface (so the refusal is the bind, not the network)."""
    address = non_loopback_address()
    if address is None:  # test_every_process_listens_on_loopback_only still checked the binds
        pytest.skip("this machine has no non-loopback address")
    with socket.create_server(("0.0.0.0", 0)) as control:
        socket.create_connection((address, control.getsockname()[1]), timeout=3).close()
    for name, port in assistant.ports.items():
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        try:
            socket.create_connection((address, port), timeout=3).close()
        except OSError:
            continue
        pytest.fail(f"the {name} port {port} answers on {address}")


def tracker_rows(assistant: Assistant, sender: str) -> int:
    engine = create_engine(assistant.tracker_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT COUNT(*) FROM events WHERE sender_id = :sender")
            return conn.execute(query, {"sender": sender}).scalar_one()
    finally:
        engine.dispose()


def test_api_calls_without_the_right_token_are_refused_and_change_nothing(
    assistant: Assistant,
) -> None:
    sender = f"security-{uuid.uuid4().hex[:8]}"
    base = f"/conversations/{sender}"
    calls = [
        ("POST", f"{base}/trigger_intent", {"name": "greet"}),
        ("POST", f"{base}/tracker/events", {"event": "slot", "name": "x", "value": 1}),
        ("PUT", f"{base}/tracker/events", [{"event": "restart"}]),
        ("POST", f"{base}/execute", {"name": "utter_greet"}),
        ("GET", f"{base}/tracker", None),
    ]
    with httpx.Client(base_url=assistant.url("rasa"), timeout=60) as client:
        for params in ({}, {"token": ""}, {"token": "wrong"}, {"token": assistant.token() + "x"}):
            for method, path, body in calls:
                answer = client.request(method, path, params=params, json=body)
                assert answer.status_code in (401, 403), (method, path, params, answer.text)
        assert tracker_rows(assistant, sender) == 0

        answer = client.post(
            f"{base}/trigger_intent", params={"token": assistant.token()}, json={"name": "greet"}
        )
    assert answer.status_code == 200, answer.text
    assert any(GREETING in m.get("text", "") for m in answer.json()["messages"])
    assert tracker_rows(assistant, sender) > 0


def test_no_process_has_the_token_on_its_command_line(assistant: Assistant) -> None:
    """`ps` shows every user each process's arguments (finding 6)."""
    token = assistant.token().encode()
    tree = assistant.record()
    assert len(tree) >= 5
    for pid in tree:
        with contextlib.suppress(OSError):
            assert token not in Path(f"/proc/{pid}/cmdline").read_bytes(), pid


def test_var_and_every_file_in_it_are_owner_only(assistant: Assistant) -> None:
    """The launcher's umask and var/ handling (finding 6): the tracker database Rasa created,
    the copied application database, the generated secrets, logs."""
    assert stat.S_IMODE(assistant.workdir.stat().st_mode) == 0o700
    files = [p for p in assistant.workdir.iterdir() if p.is_file()]
    assert {"tracker.db", "app.db", "rasa_auth_token"} <= {p.name for p in files}
    loose = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}


def declare_body(port: int, path: str, length: int, headers: str = "") -> str:
    """Send only the headers of a POST declaring `length` bytes; the status line answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{headers}Content-Length: {length}\r\n\r\n".encode()
        )
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def test_bodies_over_the_limit_are_refused_before_they_are_read(assistant: Assistant) -> None:
    """Sanic's own limit (finding 7), not its 100 MB default: a declared length over it is
    answered 413 at once, without waiting for (or buffering) a byte of the body."""
    rasa, actions = assistant.ports["rasa"], assistant.ports["actions"]
    assert " 413 " in declare_body(rasa, "/webhooks/rest/webhook", 2 * 1024 * 1024)
    assert " 413 " in declare_body(rasa, "/model/parse", 50 * 1024 * 1024)
    # The action server refuses a caller without its token before reading any body (below);
    # the Rasa server's own calls are bounded too.
    with mock.patch.dict(
        os.environ, {"APP_SECRET_KEY": base_env(assistant.workdir, "", None)["APP_SECRET_KEY"]}
    ):
        token = f"{action_auth.HEADER}: {action_auth.action_server_token()}\r\n"
    assert " 413 " in declare_body(actions, "/webhook", 20 * 1024 * 1024, token)
    assert " 401 " in declare_body(actions, "/webhook", 20 * 1024 * 1024)
    with httpx.Client(timeout=60) as client:  # and both still serve
        assert client.get(f"{assistant.url('actions')}/health").status_code == 200
        ok = client.post(
            f"{assistant.url('rasa')}/webhooks/rest/webhook",
            json={"sender": f"size-{uuid.uuid4().hex[:6]}", "message": "xin chào"},
        )
        assert ok.status_code == 200 and ok.json()


def test_the_action_server_answers_only_the_rasa_server(assistant: Assistant) -> None:
    """A tracker names its sender: without the action token nobody may post one."""
    tracker = {
        "sender_id": "telegram:123",
        "slots": {},
        "latest_message": {"text": "hồ sơ", "intent": {"name": "check_status"}, "entities": []},
        "events": [],
        "paused": False,
        "latest_input_channel": "telegram",
        "active_loop": {},
        "latest_action_name": "action_listen",
    }
    call = {
        "next_action": "action_check_status",
        "sender_id": "telegram:123",
        "tracker": tracker,
        "domain": {},
        "version": "3.6.2",
    }
    url = f"{assistant.url('actions')}/webhook"
    with httpx.Client(timeout=60) as client:
        for headers in ({}, {"X-Action-Token": "wrong"}, {"Origin": "https://evil.example"}):
            answer = client.post(url, json=call, headers=headers)
            assert answer.status_code == 401, answer.text
            assert "responses" not in answer.text


def app_session(assistant: Assistant) -> tuple[Session, Any]:
    engine = create_engine(f"sqlite:///{assistant.workdir / 'app.db'}", future=True)
    return Session(engine), engine


def test_rest_cannot_create_read_or_change_another_channels_binding(assistant: Assistant) -> None:
    """Finding 1 as it was found: REST bodies naming Telegram or SMS, a phone in metadata."""
    phone, chat = "0905777888", f"telegram:{uuid.uuid4().int % 10**9}"
    session, engine = app_session(assistant)
    try:
        with session.begin():
            citizen = factories.citizen(
                session, cccd="066190077788", phone=phone, full_name="Trần Thị Bảo"
            )
            bind(session, "telegram", chat, citizen, "otp")
    finally:
        session.close()
    attempts = [
        {
            "sender": f"telegram:{uuid.uuid4().int % 10**9}",
            "input_channel": "telegram",
            "message": "/link_account",
            "metadata": {"verified_phone": phone},
        },
        {"sender": f"sms:{phone}", "input_channel": "sms", "message": "hồ sơ của tôi đến đâu rồi"},
        {"sender": chat, "input_channel": "telegram", "message": "hồ sơ của tôi đến đâu rồi"},
        {"sender": chat, "input_channel": "telegram", "message": "tôi có giấy tờ nào sắp hết hạn"},
        {"sender": chat, "input_channel": "telegram", "message": "hủy liên kết"},
    ]
    with httpx.Client(base_url=assistant.url("rasa"), timeout=120) as client:
        for body in attempts:
            answer = client.post("/webhooks/rest/webhook", json=body)
            assert answer.status_code == 200, answer.text
            said = " ".join(m.get("text", "") for m in answer.json())
            assert "Xác thực thành công" not in said and "Bảo" not in said, (body, said)
            assert all(m["recipient_id"].startswith("rest:") for m in answer.json())
    session, _ = app_session(assistant)
    try:
        rows = session.execute(select(ChannelBinding.channel, ChannelBinding.channel_user_id))
        assert [tuple(r) for r in rows] == [("telegram", chat)]  # unchanged, nothing added
        assert session.scalar(select(func.count()).select_from(Citizen)) >= 1
    finally:
        session.close()
        engine.dispose()
    assert tracker_rows(assistant, chat) == 0  # the real chat's conversation untouched
    assert tracker_rows(assistant, f"sms:{phone}") == 0


def test_sigterm_to_the_launcher_stops_every_process(assistant: Assistant) -> None:
    """Last: stops the launcher the fixture started, then looks for survivors."""
    started = dict(assistant.seen)
    assert len(started) >= 5
    code = assistant.stop()
    assert code == 0, assistant.log_tail()
    deadline = time.monotonic() + 10
    while (left := [p for p, t in started.items() if alive(p, t)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], f"still running after the launcher stopped: {left}"
    for port in assistant.ports.values():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
