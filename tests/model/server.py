"""A real Rasa server and action server on loopback, with their own database and var/ folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bot.config import PROJECT_ROOT

TOKEN = "test-token"


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


class Servers:
    """Starts both servers; `say` talks through the REST channel like a citizen."""

    def __init__(
        self, workdir: Path, database_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.rasa_port, self.action_port = free_port(), free_port()
        endpoints = workdir / "endpoints.yml"
        endpoints.write_text(
            f'action_endpoint:\n  url: "http://127.0.0.1:{self.action_port}/webhook"\n'
            f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{workdir}/tracker.db"\n'
        )
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "APP_VAR_DIR": str(workdir),
            "APP_SECRET_KEY": "integration",
            "TRACKER_DB_URL": f"sqlite:///{workdir}/tracker.db",
            "ERASURE_DELAY_SECONDS": "0.5",
            "SANIC_HOST": "127.0.0.1",
            "RASA_TELEMETRY_ENABLED": "false",
            **(extra_env or {}),
        }
        rasa = str(Path(sys.executable).parent / "rasa")
        logs = (workdir / "actions.log").open("w"), (workdir / "rasa.log").open("w")
        self.actions = subprocess.Popen(
            [rasa, "run", "actions", "--actions", "actions", "--port", str(self.action_port)],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        )
        self.rasa = subprocess.Popen(
            [
                rasa,
                "run",
                "--enable-api",
                "--auth-token",
                TOKEN,
                "--interface",
                "127.0.0.1",
                "--port",
                str(self.rasa_port),
                "--model",
                str(PROJECT_ROOT / "models"),
                "--endpoints",
                str(endpoints),
                "--credentials",
                str(PROJECT_ROOT / "credentials.yml"),
            ],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
        _wait(f"http://127.0.0.1:{self.action_port}/health", self.actions)
        _wait(f"http://127.0.0.1:{self.rasa_port}/", self.rasa)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.rasa_port}", timeout=60)

    def say(self, sender: str, text: str) -> str:
        response = self.client.post(
            "/webhooks/rest/webhook", json={"sender": sender, "message": text}
        )
        response.raise_for_status()
        return "\n".join(m.get("text", "") for m in response.json())

    def trigger(self, sender: str, intent: str, entities: dict[str, Any]) -> str:
        response = self.client.post(
            f"/conversations/{sender}/trigger_intent",
            params={"token": TOKEN, "output_channel": "latest"},
            json={"name": intent, "entities": entities},
        )
        response.raise_for_status()
        return "\n".join(m.get("text", "") for m in response.json().get("messages", []))

    def last_code(self, phone: str) -> str:
        lines = (self.workdir / "sms_outbox.jsonl").read_text(encoding="utf-8").splitlines()
        text = next(json.loads(x)["text"] for x in reversed(lines) if json.loads(x)["to"] == phone)
        return re.search(r"\b(\d{6})\b", text).group(1)

    def stop(self) -> None:
        self.client.close()
        for proc in (self.rasa, self.actions):
            proc.terminate()
        for proc in (self.rasa, self.actions):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def copy_db(template: Path, target: Path) -> str:
    shutil.copy(template, target)
    return f"sqlite:///{target}"
