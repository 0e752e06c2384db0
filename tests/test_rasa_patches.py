"""connectors/patches.py: each attribute the project replaces in Rasa or rasa_sdk is replaced by
the entry point's install and by nothing else (importing the channels changes nothing), and the
entry point refuses a Rasa outside the 3.6 series."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from bot.core.config import PROJECT_ROOT
from connectors import action_auth, guard, patches, rasa_speedups


def current(module: str, path: str) -> Any:
    owner: Any = importlib.import_module(module)
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


@pytest.fixture
def originals() -> Iterator[dict[tuple[str, str], Any]]:
    guard.uninstall()
    rasa_speedups.uninstall()
    action_auth.uninstall_from_action_server()
    before = {target: current(*target) for target in patches.PATCHED}
    yield before
    guard.uninstall()
    rasa_speedups.uninstall()
    action_auth.uninstall_from_action_server()


SERVER_SIDE = [t for t in patches.PATCHED if not t[0].startswith("rasa_sdk")]
ACTION_SIDE = [t for t in patches.PATCHED if t[0].startswith("rasa_sdk")]


def test_importing_the_channels_patches_nothing() -> None:
    """In a fresh interpreter: Rasa's attributes before and after importing every channel."""
    probe = (
        "import importlib\n"
        "from connectors.patches import PATCHED\n"
        "from tests.test_rasa_patches import current\n"
        "before = {t: current(*t) for t in PATCHED}\n"
        "for name in ('rest', 'zalo', 'telegram', 'sms', 'senders', 'tracker_store'):\n"
        "    importlib.import_module('connectors.' + name)\n"
        "print(sorted(t[1] for t in PATCHED if current(*t) is not before[t]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("target", SERVER_SIDE, ids=lambda t: t[1])
def test_the_rasa_server_install_replaces(
    originals: dict[tuple[str, str], Any], target: tuple[str, str]
) -> None:
    patches.install_rasa_server()
    assert current(*target) is not originals[target]
    patches.install_rasa_server()  # idempotent: still replaced once, not wrapped twice
    replaced = current(*target)
    guard.uninstall()
    rasa_speedups.uninstall()
    assert current(*target) is originals[target]
    patches.install_rasa_server()
    assert current(*target) == replaced


@pytest.mark.parametrize("target", ACTION_SIDE, ids=lambda t: t[1])
def test_the_action_server_install_replaces(
    originals: dict[tuple[str, str], Any], target: tuple[str, str]
) -> None:
    patches.install_action_server()
    patches.install_action_server()
    assert current(*target).original is originals[target]  # wrapped once
    action_auth.uninstall_from_action_server()
    assert current(*target) is originals[target]


def test_every_replaced_attribute_is_listed(originals: dict[tuple[str, str], Any]) -> None:
    patches.install_rasa_server()
    patches.install_action_server()
    changed = {t for t in patches.PATCHED if current(*t) is not originals[t]}
    assert changed == set(patches.PATCHED)


def test_another_rasa_series_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version

    @functools.wraps(real)
    def version(package: str) -> str:
        return "3.7.0" if package == "rasa" else real(package)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(patches.UnsupportedRasa, match=r"rasa 3\.7\.0"):
        patches.install_rasa_server()
    with pytest.raises(patches.UnsupportedRasa):
        patches.install_action_server()


def test_the_entry_point_installs_before_rasa_runs() -> None:
    """scripts/rasa_process.py with a Rasa command that only prints: the patches are in."""
    probe = (
        "import runpy, sys\n"
        "import rasa.__main__ as m\n"
        "def fake():\n"
        "    from rasa.core.actions.action import RemoteAction\n"
        "    print(RemoteAction.run.__module__)\n"
        "m.main = fake\n"
        "sys.argv = ['rasa_process.py', 'server', '--enable-api']\n"
        f"runpy.run_path({str(PROJECT_ROOT / 'scripts' / 'rasa_process.py')!r}, "
        "run_name='__main__')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={"APP_SECRET_KEY": "x", "RASA_AUTH_TOKEN": "t", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "connectors.guard"
