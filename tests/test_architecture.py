"""The layering and the single owners that docs/architecture.md promises, checked on the source:
`bot/` imports no adapter, process or Rasa code and holds no outbound client; the audit log has
one writer; the local time zone is defined once. A test per rule, so a break names its rule."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.core.config import PROJECT_ROOT

APP = ("bot", "actions", "connectors", "console", "scheduler", "simulator", "components", "scripts")
FORBIDDEN_IN_BOT = (
    "actions",
    "connectors",
    "console",
    "scheduler",
    "simulator",
    "rasa",
    "rasa_sdk",
    "sanic",
)
# Outbound service clients live in connectors/, with the channels' (docs/architecture.md).
CLIENT_LIBRARIES = ("httpx", "smtplib", "telegram", "aiohttp", "requests")


def sources(*folders: str) -> list[Path]:
    return [
        p
        for folder in folders
        for p in sorted((PROJECT_ROOT / folder).rglob("*.py"))
        if "migrations/versions" not in p.as_posix()
    ]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_bot_imports_no_adapter_process_or_rasa_code() -> None:
    wrong = {
        f"{p.relative_to(PROJECT_ROOT)}: {name}"
        for p in sources("bot")
        for name in imported(p)
        if name.split(".")[0] in FORBIDDEN_IN_BOT
    }
    assert wrong == set()


def test_outbound_clients_are_not_in_bot() -> None:
    clients = {
        f"{p.relative_to(PROJECT_ROOT)}: {name}"
        for p in sources("bot")
        for name in imported(p)
        if name.split(".")[0] in CLIENT_LIBRARIES
    }
    assert clients == set()


def test_only_the_audit_module_creates_audit_entries() -> None:
    writers = {
        str(p.relative_to(PROJECT_ROOT))
        for p in sources(*APP)
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "AuditEntry"
    }
    assert writers == {"bot/governance/audit.py"}


def test_the_local_time_zone_is_defined_once() -> None:
    defining = {
        str(p.relative_to(PROJECT_ROOT))
        for p in sources(*APP)
        if "hours=7" in (text := p.read_text(encoding="utf-8")) or '"Asia/Ho_Chi_Minh"' in text
    }
    assert defining == {"bot/core/clock.py"}
