"""`make run` on the embedded default starts the phone simulator and points every channel at
its local stand-ins; with real channel secrets it starts neither, and the simulator refuses to
run (so it cannot be reached)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.config import PROJECT_ROOT
from console.config import local_simulator
from simulator.standins import local_env, real_channels_configured

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_embedded_default_runs_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path))
    assert "phone simulator" in serve.commands(local=True)
    env = local_env(8090)
    assert not real_channels_configured(env)  # the stand-ins' own environment
    assert env["ZALO_API_URL"].startswith("http://127.0.0.1:8090")
    assert local_simulator(env["SIMULATOR_URL"]) == "http://127.0.0.1:8090"


@pytest.mark.parametrize(
    "real",
    [
        {"ZALO_APP_ID": "2553928453557884079"},
        {"TELEGRAM_BOT_TOKEN": "123456:real-token"},
        {"SMS_WEBHOOK_SECRET": "gateway-secret"},
        {"ESMS_API_KEY": "real-key"},
    ],
)
def test_real_secrets_start_no_stand_ins_and_the_simulator_refuses(
    real: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path))
    mixed = {**local_env(8090), **real}  # one real secret among stand-in values
    assert real_channels_configured(real) and real_channels_configured(mixed)
    assert "phone simulator" not in serve.commands(local=False)
    port = free_port()
    env = {**os.environ, **real, "APP_VAR_DIR": str(tmp_path), "DATABASE_URL": "sqlite://"}
    started = subprocess.run(
        [sys.executable, "-m", "simulator", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 2 and "Real channel secrets" in started.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there


def test_the_console_links_only_a_local_simulator() -> None:
    assert local_simulator("http://127.0.0.1:8090/") == "http://127.0.0.1:8090"
    assert local_simulator("https://sim.example.vn") is None
    assert local_simulator(None) is None
