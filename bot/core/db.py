"""Engine and unit-of-work sessions. Nothing connects at import time."""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine, create_engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.core.config import load_settings

DEFAULT_CONNECT_TIMEOUT = 5
SQLITE_WRITE_LOCK = "sqlite_write_lock"  # execution option: BEGIN IMMEDIATE on SQLite


def connect_timeout() -> int:
    """Seconds to wait for a PostgreSQL connection (DATABASE_CONNECT_TIMEOUT, libpq's minimum
    is 2): an unreachable server fails the request quickly instead of hanging it."""
    return max(2, int(os.environ.get("DATABASE_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT)))


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL (readers don't block the writer) and
    units of work that take the write lock first (BEGIN IMMEDIATE: writers queue, never fail).

    PostgreSQL gets a connect timeout and `replace_dropped_connections` (a pooled connection cut
    while idle, by a database restart or a network outage, is replaced instead of failing the
    next request); other server databases get SQLAlchemy's `pool_pre_ping`.
    """
    is_sqlite = url.startswith("sqlite")
    connect_args: dict[str, object] = {"timeout": 30} if is_sqlite else {}
    options: dict[str, object] = {}
    is_postgresql = url.startswith("postgresql")
    if is_postgresql:
        connect_args["connect_timeout"] = connect_timeout()
    if is_sqlite and make_url(url).database not in (None, "", ":memory:"):
        # SQLAlchemy 1.4 opens a new SQLite connection (and runs the pragmas) for every unit
        # of work; a pool keeps them. Each is used by one thread at a time (the pool's rule).
        options["poolclass"] = QueuePool
        connect_args["check_same_thread"] = False
    engine = create_engine(
        url,
        future=True,
        pool_pre_ping=not (is_sqlite or is_postgresql),
        connect_args=connect_args,
        **options,
    )
    if is_postgresql:
        replace_dropped_connections(engine)
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # transactions are begun below, not by pysqlite
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            owner_only_database(make_url(url).database)

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # A unit of work takes the write lock when it starts. A deferred transaction that
            # read first and writes later fails at once with "database is locked" when another
            # process wrote in between (its snapshot is stale; SQLite's busy timeout does not
            # apply), as two processes submitting dossiers at the same moment showed. Plain
            # connections (long reads of the tracker store) stay deferred: they block no one.
            immediate = conn.get_execution_options().get(SQLITE_WRITE_LOCK, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def owner_only_database(path: str | None) -> None:
    """A SQLite file (and its WAL and shared-memory files) holds personal data: owner-only."""
    if path in (None, "", ":memory:"):
        return
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(OSError):  # absent yet, or another user's file
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)


def replace_dropped_connections(engine: Engine) -> None:
    """Check each pooled PostgreSQL connection as it is handed out, as `pool_pre_ping` does, but
    without its round trip (`SELECT 1`) on every unit of work: an idle connection's socket has
    nothing to read unless the server closed or reset it (Go's database/sql checks the same
    way). Only then is the connection pinged, and replaced if the ping fails; a server's
    unsolicited bytes (a TLS session ticket) cost one ping, not the connection."""

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_conn, record, proxy):  # type: ignore[no-untyped-def]
        if getattr(dbapi_conn, "closed", 0):
            raise DisconnectionError("the connection was closed")
        try:
            ready, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
        except (AttributeError, OSError, ValueError):
            ready = [True]  # no socket to look at: ping
        if ready and not engine.dialect.do_ping(dbapi_conn):
            raise DisconnectionError("the server closed the connection")


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(url: str | None = None) -> Engine:
    """One engine (and pool) per database URL for the life of the process."""
    return _engine_for(url or load_settings().database_url)


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, future=True, expire_on_commit=False)


@contextmanager
def unit_of_work(engine: Engine | None = None) -> Iterator[Session]:
    """One session and one transaction: committed on success, rolled back on any error."""
    engine = (engine or get_engine()).execution_options(**{SQLITE_WRITE_LOCK: True})
    with session_factory(engine)() as session, session.begin():
        yield session


def refresh_statistics(engine: Engine) -> None:
    """ANALYZE after bulk loads: without fresh statistics the planner scans whole tables
    (the due-event scan on PostgreSQL went from 5.5 s to 0.4 s for 200,000 citizens)."""
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
