"""`make shell`: talk to the assistant in the terminal, with the action server running.

Reuses an action server already listening (e.g. from `make run`), else starts one for the
session and stops it on exit. Prints first how to speak as a demo citizen.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = str(ROOT / "scripts" / "rasa_process.py")


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


HOW_TO_LINK = """\
Talking to the assistant as a tester (type /stop to leave).
To act as a demo citizen: list them with
    .venv/bin/python -m bot demo-citizens --limit 10
then type "tôi muốn xác thực tài khoản" and the citizen's 12-digit ID number. The one-time
code goes by SMS; on this machine it is the last line of var/sms_outbox.jsonl:
    tail -1 var/sms_outbox.jsonl
Type the 6 digits, then e.g. "tôi có giấy tờ nào sắp hết hạn không".
"""


def main() -> int:
    print(HOW_TO_LINK, flush=True)
    port = int(os.environ.get("ACTION_PORT", "5055"))
    actions = None
    if not listening(port):
        env = {**os.environ, "SANIC_HOST": "127.0.0.1"}
        cmd = [sys.executable, LAUNCHER, "actions", "--actions", "actions", "--port", str(port)]
        actions = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        for _ in range(120):
            if listening(port):
                break
            time.sleep(0.5)
    shell_port = os.environ.get("RASA_SHELL_PORT", "5006")
    try:
        return subprocess.call(
            [
                sys.executable,
                LAUNCHER,
                "shell",
                "--model",
                "models",
                "--endpoints",
                "endpoints.yml",
                "--port",
                shell_port,
            ],
            cwd=ROOT,
        )
    finally:
        if actions is not None:
            actions.terminate()
            actions.wait(timeout=15)


if __name__ == "__main__":
    sys.exit(main())
