"""Real Rasa servers and action servers on loopback, with their own database and var/ folder.

`Servers` is the common pair (one Rasa server, one action server, SQLite tracker store). The
parts (`RasaServer`, `ActionServer`, `write_endpoints`) let a test start several of each, put
the tracker store on PostgreSQL, the lock store on Redis, and kill or restart one of them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from bot.core.config import PROJECT_ROOT
from bot.core.db import make_engine, unit_of_work
from bot.core.models import Citizen, Reminder
from bot.identity.speaker import rest_sender

TOKEN = "test-token"
TRACKER_STORE = "connectors.tracker_store.ThreadedSQLTrackerStore"  # as endpoints.yml
# scripts/rasa_process.py, as `make run` starts them: token from the environment, bounded bodies.
LAUNCHER = [sys.executable, str(PROJECT_ROOT / "scripts" / "rasa_process.py")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[1:3]} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def tracker_store_yaml(url: str | None) -> str:
    """Rasa's SQL tracker store for a SQLAlchemy URL (SQLite or PostgreSQL); None: in memory."""
    if url is None:
        return ""
    parsed = make_url(url)
    dialect = parsed.drivername.split("+")[0]
    lines = ["tracker_store:", f"  type: {TRACKER_STORE}", f'  dialect: "{dialect}"']
    lines.append(f'  db: "{parsed.database}"')
    if dialect != "sqlite":
        lines += [f'  url: "{parsed.host or "127.0.0.1"}"', f"  port: {parsed.port or 5432}"]
        lines += [f'  username: "{parsed.username or ""}"']
        lines += [f'  password: "{parsed.password or ""}"']
    return "\n".join(lines) + "\n"


def write_endpoints(
    path: Path,
    action_url: str | None,
    tracker_url: str | None,
    redis_url: str | None = None,
    lock_prefix: str = "test",
) -> Path:
    """An endpoints.yml: action server (or none), tracker store, the project's Redis lock store
    (or Rasa's in-memory one)."""
    text = (
        f'action_endpoint:\n  url: "{action_url}"\n'
        "  headers:\n    X-Action-Token: ${ACTION_SERVER_TOKEN}\n"
        if action_url
        else ""
    )
    text += tracker_store_yaml(tracker_url)
    if redis_url:
        text += (
            "lock_store:\n  type: connectors.lock_store.AtomicRedisLockStore\n"
            f'  url: "{redis_url}"\n  key_prefix: {lock_prefix}\n'
        )
    path.write_text(text)
    return path


class _Process:
    """One server process with its log file; start, stop (SIGTERM), kill (SIGKILL), restart."""

    name = "server"

    def __init__(self, workdir: Path, env: dict[str, str], port: int | None = None) -> None:
        self.workdir, self.env = workdir, env
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / f"{self.name}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def health_url(self) -> str:
        return self.url + "/"

    def start(self, wait: bool = True) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            self.command(), cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, seconds: float = 180) -> None:
        assert self.proc is not None
        _wait(self.health_url(), self.proc, seconds)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when the machine or the OOM killer stops it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class ActionServer(_Process):
    name = "actions"

    def command(self) -> list[str]:
        return [*LAUNCHER, "actions", "--actions", "actions", "--port", str(self.port)]

    def health_url(self) -> str:
        return self.url + "/health"

    @property
    def webhook(self) -> str:
        return self.url + "/webhook"


class RasaServer(_Process):
    name = "rasa"

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        endpoints: Path,
        port: int | None = None,
        credentials: Path = PROJECT_ROOT / "credentials.yml",
    ) -> None:
        super().__init__(workdir, env, port)
        self.endpoints, self.credentials = endpoints, credentials

    def command(self) -> list[str]:
        return [
            *LAUNCHER,
            "server",
            "--enable-api",
            "--interface",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--model",
            str(PROJECT_ROOT / "models"),
            "--endpoints",
            str(self.endpoints),
            "--credentials",
            str(self.credentials),
        ]


def base_env(workdir: Path, database_url: str, tracker_url: str | None) -> dict[str, str]:
    """The environment both servers share: app database, var/ folder, secret, tracker URL."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_VAR_DIR": str(workdir),
        "APP_SECRET_KEY": "integration",
        "ERASURE_DELAY_SECONDS": "0.5",
        "SANIC_HOST": "127.0.0.1",
        "SANIC_KEEP_ALIVE_TIMEOUT": "75",  # longer than Rasa's idle connections (scripts/serve.py)
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),  # as scripts/serve.py
        "RASA_TELEMETRY_ENABLED": "false",
        "RASA_AUTH_TOKEN": TOKEN,
        # Scripted conversations type far faster than people; the per-sender limit has its own
        # tests (tests/test_trust_boundaries.py) and stays on, just out of their way.
        "INBOUND_RATE_PER_MINUTE": "1200",
        "INBOUND_BURST": "200",
    }
    if tracker_url:
        env["TRACKER_DB_URL"] = tracker_url
    return env


class Servers:
    """Starts both servers; `say` talks through the REST channel like a citizen."""

    engine: Engine  # the application database, set by the test that made it

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        extra_env: dict[str, str] | None = None,
        tracker_url: str | None = "",
        redis_url: str | None = None,
    ) -> None:
        """`tracker_url` "" means a SQLite file in workdir, None Rasa's in-memory store."""
        self.workdir = workdir
        if tracker_url == "":
            tracker_url = f"sqlite:///{workdir}/tracker.db"
        self.env = {**base_env(workdir, database_url, tracker_url), **(extra_env or {})}
        self.action_server = ActionServer(workdir, self.env)
        endpoints = write_endpoints(
            workdir / "endpoints.yml", self.action_server.webhook, tracker_url, redis_url
        )
        self.rasa_server = RasaServer(workdir, self.env, endpoints)
        self.action_server.start(wait=False)
        self.rasa_server.start(wait=False)
        self.action_server.wait_ready()
        self.rasa_server.wait_ready()
        self.rasa_port, self.action_port = self.rasa_server.port, self.action_server.port
        self.client = httpx.Client(base_url=self.rasa_server.url, timeout=60)

    @property
    def rasa(self) -> subprocess.Popen:
        assert self.rasa_server.proc is not None
        return self.rasa_server.proc

    @property
    def actions(self) -> subprocess.Popen:
        assert self.action_server.proc is not None
        return self.action_server.proc

    def say(self, sender: str, text: str) -> str:
        return say(self.client, sender, text)

    def trigger(self, sender: str, intent: str, entities: dict[str, Any]) -> str:
        response = self.client.post(
            f"/conversations/{sender}/trigger_intent",
            params={"token": TOKEN, "output_channel": "latest"},
            json={"name": intent, "entities": entities},
        )
        response.raise_for_status()
        return "\n".join(m.get("text", "") for m in response.json().get("messages", []))

    def last_code(self, phone: str) -> str:
        return last_code(self.workdir, phone)

    def remind(self, sender: str, cccd: str, service_code: str) -> tuple[int, str]:
        """A pending reminder of `service_code` for the citizen with this ID number, shown in
        the REST conversation `sender` as the scheduler would: (reminder id, what it said)."""
        with unit_of_work(self.engine) as s:
            reminder = Reminder(
                subject_type="citizen",
                subject_id=s.scalar(select(Citizen.id).where(Citizen.cccd == cccd)),
                service_code=service_code,
                event_key=f"test:{sender}",
                stage=1,
                due_on=dt.date.today(),
                state="pending",
            )
            s.add(reminder)
            s.flush()
            reminder_id = reminder.id
        shown = self.trigger(
            rest_sender(sender), "EXTERNAL_reminder", {"reminder_id": str(reminder_id)}
        )
        return reminder_id, shown

    def stop(self) -> None:
        self.client.close()
        self.rasa_server.stop()
        self.action_server.stop()


def say(client: httpx.Client, sender: str, text: str) -> str:
    """One citizen message through the REST channel; the bot's texts joined by newlines."""
    response = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    response.raise_for_status()
    return "\n".join(m.get("text", "") for m in response.json())


def last_code(workdir: Path, phone: str) -> str:
    """The newest one-time code sent to this phone, read from the SMS outbox."""
    lines = (workdir / "sms_outbox.jsonl").read_text(encoding="utf-8").splitlines()
    text = next(json.loads(x)["text"] for x in reversed(lines) if json.loads(x)["to"] == phone)
    return re.search(r"\b(\d{6})\b", text).group(1)


def copy_db(template: Path, target: Path) -> str:
    shutil.copy(template, target)
    return f"sqlite:///{target}"


def seeded_servers(
    workdir: Path, template: Path, seed: Callable[[Session], None]
) -> Iterator[Servers]:
    """Both servers on a copy of the migrated template, seeded by `seed` in one unit of work;
    `servers.engine` reaches their database. For module-scoped fixtures (`yield from`)."""
    url = copy_db(template, workdir / "app.db")
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        seed(session)
    servers = Servers(workdir, url)
    servers.engine = engine
    try:
        yield servers
    finally:
        servers.stop()
        engine.dispose()
