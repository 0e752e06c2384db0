"""The embedded outboxes of a development machine: one JSON line per message in a file under
var/ (`sms_outbox.jsonl`, `mail_outbox.jsonl`), readable by the owner only, so nothing leaves
the machine and testers can read one-time codes and notices."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from bot.core.clock import utcnow
from bot.core.config import private_file, var_dir


class OutboxFile:
    """Appends records to var/`name`; concurrent senders of one process take turns."""

    _lock = threading.Lock()

    def __init__(self, name: str, path: Path | None = None) -> None:
        self.path = path or var_dir() / name

    def append(self, record: dict[str, Any]) -> None:
        line = {**record, "at": utcnow().isoformat(timespec="seconds") + "+00:00"}
        with self._lock, private_file(self.path).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
