"""One leading scheduler across machines.

PostgreSQL: a session-level advisory lock held on a dedicated connection; if the leader dies its
connection closes and the lock is free for the next one. SQLite (one machine by nature): an
exclusive `flock` on a file beside the database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)
LOCK_KEY = 0x44564353  # "DVCS"


class Leadership:
    def __init__(self, engine: Engine, lock_file: Path) -> None:
        self.engine, self.lock_file = engine, lock_file
        self._conn: Connection | None = None
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            conn.detach()  # closing it must end the database session, not return it to the pool
            if conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
                self._conn = conn
                return True
            conn.close()
            return False
        handle = self.lock_file.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    def still_leading(self) -> bool:
        """A PostgreSQL leader checks its connection (and so its lock) is alive."""
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
            except Exception:
                log.exception("lost the leader connection")
                return False
        return self._conn is not None or self._file is not None

    def wait(self, poll_seconds: float = 10.0) -> None:
        """Block until this process leads; followers poll and take over when the leader dies."""
        announced = False
        while not self.try_acquire():
            if not announced:
                log.info("another scheduler leads; waiting to take over")
                announced = True
            time.sleep(poll_seconds)
        log.info("this scheduler is now the leader")

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
