"""Security regressions of the officer console: open redirect after login, atomic login
throttling, which client address is believed, and the request body cap."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.catalogue.model import Catalogue
from bot.core.db import unit_of_work
from bot.core.models import AuditEntry
from console import auth
from console.config import ConsoleSettings
from console.web import Deps
from tests.console_support import (
    PASSWORD,
    add_officers,
    csrf_of,
    make_deps,
    settings,
    start_client,
    tracker_engine,
)

# Decoded forms of what an attacker puts in `?next=` (`/%09/evil.example/` is the first one):
# browsers drop tabs and newlines from a Location and read a backslash as a slash.
EVIL_NEXT = [
    "/\t/evil.example/",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example",
    "/\r\n/evil",
    "/ /evil.example",
    "",
]
GOOD_NEXT = "/dossiers?status=x"
_NEXT = re.compile(r'name="next" value="([^"]*)"')


async def _console(
    engine: Engine, tmp_path: Path, catalogue: Catalogue, **overrides: Any
) -> tuple[TestClient, Deps]:
    add_officers(engine)
    deps = make_deps(engine, tracker_engine(tmp_path), catalogue, settings=settings(**overrides))
    return await start_client(deps), deps


@pytest.fixture
async def console(
    engine: Engine, tmp_path: Path, catalogue: Catalogue
) -> AsyncIterator[tuple[TestClient, Deps]]:
    client, deps = await _console(engine, tmp_path, catalogue)
    yield client, deps
    await client.close()
    deps.tracker.dispose()


def _hidden_next(html: str) -> str:
    match = _NEXT.search(html)
    assert match, "no next field in the login page"
    return match.group(1)


# --- 1. open redirect after login -------------------------------------------------------------


async def test_login_page_keeps_only_a_next_on_this_site(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    raw = await client.get("/login?next=/%09/evil.example/")
    assert _hidden_next(await raw.text()) == "/"
    for target in EVIL_NEXT:
        page = await client.get("/login", params={"next": target})
        assert _hidden_next(await page.text()) == "/", repr(target)
    page = await client.get("/login", params={"next": GOOD_NEXT})
    assert _hidden_next(await page.text()) == GOOD_NEXT


async def test_login_redirects_only_to_a_path_on_this_site(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    for target, expected in [*((t, "/") for t in EVIL_NEXT), (GOOD_NEXT, GOOD_NEXT)]:
        client.session.cookie_jar.clear()
        token = csrf_of(await (await client.get("/login")).text())
        form = {"username": "canbo", "password": PASSWORD, "csrf_token": token, "next": target}
        answer = await client.post("/login", data=form, allow_redirects=False)
        assert answer.status == 303, repr(target)
        assert answer.headers["Location"] == expected, repr(target)


# --- 2. login throttling is atomic ------------------------------------------------------------

ATTEMPTS = 12
LIMIT = 5


@pytest.mark.parametrize("limited", ["username", "ip"])
def test_concurrent_wrong_passwords_are_throttled_atomically(engine: Engine, limited: str) -> None:
    """Twelve wrong passwords at the same moment: at most LIMIT are checked and recorded, the
    rest are throttled (the count and the insert are one step for the same name or address)."""
    add_officers(engine)
    by_name = limited == "username"
    config = settings(
        login_max_failures=LIMIT if by_name else 1000,
        login_ip_max_failures=1000 if by_name else LIMIT,
    )
    barrier = threading.Barrier(ATTEMPTS)
    results: list[auth.LoginResult] = []
    errors: list[BaseException] = []

    def attempt(i: int) -> None:
        username = "canbo" if by_name else f"khong-co-{i}"
        ip = f"198.51.100.{i}" if by_name else "198.51.100.7"
        try:
            with unit_of_work(engine) as session:
                barrier.wait(timeout=30)
                results.append(auth.login(session, config, username, "sai-mat-khau", ip))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == ATTEMPTS
    assert all(r.token is None for r in results)
    assert sum(not r.throttled for r in results) == LIMIT  # the others were not even checked
    with unit_of_work(engine) as session:
        failures = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "console.login_failed")
        )
    assert failures == LIMIT


# --- 3. X-Real-IP is believed only from configured proxies ------------------------------------


async def _failed_login_actor(client: TestClient, deps: Deps, headers: dict[str, str]) -> str:
    token = csrf_of(await (await client.get("/login")).text())
    form = {"username": "canbo", "password": "sai-mat-khau", "csrf_token": token}
    answer = await client.post("/login", data=form, headers=headers)
    assert answer.status == 401
    with unit_of_work(deps.engine) as session:
        actors = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "console.login_failed")
        ).all()
    assert len(actors) == 1
    return actors[0]


def test_no_proxy_is_trusted_by_default() -> None:
    assert ConsoleSettings(secret_key="x").trusted_proxies == frozenset()
    env = {"CONSOLE_SECRET_KEY": "x", "RASA_AUTH_TOKEN": "t"}
    assert ConsoleSettings.from_env(env).trusted_proxies == frozenset()
    trusted = ConsoleSettings.from_env({**env, "CONSOLE_TRUSTED_PROXIES": " 127.0.0.1 , ::1,"})
    assert trusted.trusted_proxies == frozenset({"127.0.0.1", "::1"})


async def test_a_local_client_cannot_choose_its_address_by_default(console) -> None:  # type: ignore[no-untyped-def]
    client, deps = console
    actor = await _failed_login_actor(client, deps, {"X-Real-IP": "203.0.113.9"})
    assert actor == "127.0.0.1"


async def test_a_trusted_proxy_names_the_client(
    engine: Engine, tmp_path: Path, catalogue: Catalogue
) -> None:
    client, deps = await _console(
        engine, tmp_path, catalogue, trusted_proxies=frozenset({"127.0.0.1"})
    )
    try:
        actor = await _failed_login_actor(client, deps, {"X-Real-IP": "203.0.113.9"})
        assert actor == "203.0.113.9"
    finally:
        await client.close()
        deps.tracker.dispose()


# --- 4. request bodies are capped ---------------------------------------------------------------


async def test_a_huge_login_body_is_refused_and_the_server_stays_up(console) -> None:  # type: ignore[no-untyped-def]
    client, _ = console
    await client.get("/login")
    body = io.BytesIO(b"username=canbo&password=" + b"x" * (1024 * 1024))
    answer = await client.post(
        "/login", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status == 413
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/login")).status == 200
