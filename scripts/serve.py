"""Start every process of the assistant on embedded defaults; Ctrl-C (or one dying) stops all.

Used by `make run`: the Rasa server, the action server, the officer console and the
scheduler, and, when no real channel secrets are configured, the phone simulator with its
local stand-ins for Zalo, Telegram and the SMS gateway (`simulator/`), towards which every
channel is then pointed (`simulator.standins.local_env`). Each child
gets the project's environment; ports come from RASA_PORT, ACTION_PORT and CONSOLE_PORT. The
Rasa HTTP API requires a token: RASA_AUTH_TOKEN, or one generated once into
var/rasa_auth_token (readable only by the owner), passed to the children in their environment,
never on a command line. Every file the processes create is readable by the owner only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.config import private_file, rasa_auth_token, var_dir  # noqa: E402
from simulator.standins import local_env, real_channels_configured  # noqa: E402

RASA_PROCESS = str(ROOT / "scripts" / "rasa_process.py")


def tighten_var_files() -> None:
    """Files an older version left readable by others become owner-only (var/ itself is 0700)."""
    for path in var_dir().iterdir():
        if path.is_file() and not path.is_symlink():
            private_file(path)


def simulator_port() -> int:
    return int(os.environ.get("SIMULATOR_PORT", "8090"))


def commands(local: bool) -> dict[str, list[str]]:
    """The processes to start; `local`: also the phone simulator and its stand-ins."""
    host = os.environ.get("RASA_HOST", "127.0.0.1")
    simulator = [sys.executable, "-m", "simulator", "serve", "--port", str(simulator_port())]
    return {
        "action server": [
            sys.executable,
            RASA_PROCESS,
            "actions",
            "--actions",
            "actions",
            "--port",
            os.environ.get("ACTION_PORT", "5055"),
        ],
        "rasa server": [
            sys.executable,
            RASA_PROCESS,
            "server",
            "--enable-api",
            "--interface",
            host,
            "--port",
            os.environ.get("RASA_PORT", "5005"),
            "--model",
            str(ROOT / "models"),
            "--endpoints",
            os.environ.get("RASA_ENDPOINTS", "endpoints.yml"),  # tests: their own stores
            "--credentials",
            "credentials.yml",
            "--log-file",
            str(var_dir() / "rasa.log"),
        ],
        "officer console": [sys.executable, "-m", "console", "serve"],
        "scheduler": [sys.executable, "-m", "scheduler", "run"],
        **({"phone simulator": simulator} if local else {}),
    }


def main() -> int:
    os.umask(0o077)
    tighten_var_files()
    env = {
        "RASA_URL": f"http://127.0.0.1:{os.environ.get('RASA_PORT', '5005')}",
        **os.environ,
        "RASA_AUTH_TOKEN": rasa_auth_token(),
        "SANIC_HOST": os.environ.get("ACTION_HOST", "127.0.0.1"),
        # Rasa keeps connections to the action server idle for up to 15 s (aiohttp); Sanic's
        # default 5 s would close them under Rasa's feet ("Cannot write to closing transport").
        "SANIC_KEEP_ALIVE_TIMEOUT": os.environ.get("SANIC_KEEP_ALIVE_TIMEOUT", "75"),
        # One Rasa process answers one message at a time; the e5 encoder's OpenMP threads
        # only spin against each other and the other processes (25-45 ms of CPU per message
        # with one thread, 50-720 ms with the default on two shared cores: bench/README.md).
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    # Real channel secrets: the real providers, never the stand-ins (nor their simulator).
    local = not real_channels_configured(os.environ)
    if local:
        env.update(local_env(simulator_port()))
    children: dict[str, subprocess.Popen] = {}
    for name, cmd in commands(local).items():
        print(f"starting {name}", flush=True)
        children[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    token_from = "RASA_AUTH_TOKEN" if os.environ.get("RASA_AUTH_TOKEN") else "var/rasa_auth_token"
    port = os.environ.get("RASA_PORT", "5005")
    console = os.environ.get("CONSOLE_PORT", "8000")
    print(
        f"Rasa API on http://127.0.0.1:{port} (token: {token_from}), officer console on "
        f"http://127.0.0.1:{console}; Ctrl-C stops all.",
        flush=True,
    )
    if local:
        print(
            f"Phone simulator (local stand-ins for Zalo, Telegram and SMS) on "
            f"http://127.0.0.1:{simulator_port()}",
            flush=True,
        )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping the others", flush=True)
                exit_code, stopping = proc.returncode or 1, True
                break
        time.sleep(0.5)
    for proc in children.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in children.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
