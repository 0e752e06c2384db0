"""Shared fixtures: migrated SQLite and PostgreSQL databases, the real catalogue.

Database tests run on both engines. PostgreSQL comes from TEST_DATABASE_URL (default: the local
server's `test` database); without it they are skipped locally, but under CI=true a missing
PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from bot.catalogue.model import Catalogue, load_catalogue
from bot.core.config import PROJECT_ROOT
from bot.core.db import get_engine, make_engine
from bot.core.migrate import upgrade
from bot.core.models import Base

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"

# Runtime files a test writes without choosing a folder (a generated secret, an outbox) go to a
# throw-away var/, never the developer's: tests must not read or leave secrets there.
os.environ.setdefault("APP_VAR_DIR", tempfile.mkdtemp(prefix="dvc-test-var-"))


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(PROJECT_ROOT / "bot" / "catalogue" / "catalogue.yml")


@pytest.fixture
def actions_db(
    tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The actions' default database (a copy of the migrated template), var/ and secret key
    point at this test's folder, as they do in the action server."""
    db = tmp_path / "app.db"
    db.write_bytes(sqlite_template.read_bytes())
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("APP_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("APP_SECRET_KEY", "test")
    yield tmp_path
    get_engine().dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away database on the PostgreSQL server, migrated once for the session."""
    base_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    try:
        admin = make_engine(base_url)
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver or connection error
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI but unreachable at {base_url}: {exc}")
        pytest.skip(f"PostgreSQL not reachable ({exc.__class__.__name__}); set TEST_DATABASE_URL")
    name = f"dvc_test_{uuid.uuid4().hex[:10]}"
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(engine: Engine) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty, migrated database of each engine."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    engine = make_engine(url)
    _truncate_all(engine)
    engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium for the browser tests: required in CI, skipped elsewhere if absent."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("Chromium not installed (apt-get install chromium); browser tests skipped")
    return path


@pytest.fixture
async def console(engine: Engine, tmp_path: Path, catalogue: Catalogue) -> AsyncIterator[Any]:
    """The officer console on a real socket, with the three officers of `add_officers`:
    yields (client, deps)."""
    from tests.console_support import add_officers, make_deps, start_client, tracker_engine

    tracker = tracker_engine(tmp_path)
    add_officers(engine)
    deps = make_deps(engine, tracker, catalogue)
    client = await start_client(deps)
    yield client, deps
    await client.close()
    tracker.dispose()
