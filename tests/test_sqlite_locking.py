"""SQLite units of work from two processes (here: two threads, two connections) that read,
then write: the second writer must wait for the first, not fail with "database is locked"."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path

from sqlalchemy import select

from bot.core.db import make_engine, unit_of_work
from bot.core.models import DossierCounter
from bot.dossiers.submission import next_code


def test_a_reading_unit_of_work_is_not_overtaken_by_another_writer(
    sqlite_template: Path, tmp_path: Path
) -> None:
    path = tmp_path / "app.db"
    shutil.copy(sqlite_template, path)
    day = dt.date(2026, 11, 23)
    with unit_of_work(make_engine(f"sqlite:///{path}")) as session:
        session.add(DossierCounter(day=day, last=0))
    first_read, second_done = threading.Event(), threading.Event()
    codes: list[str] = []
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with unit_of_work(make_engine(f"sqlite:///{path}")) as session:
                # Reads inside the transaction (pysqlite alone would run a plain SELECT outside
                # any transaction; a savepoint, as `begin_nested` makes, starts one).
                session.connection().exec_driver_sql("SAVEPOINT hold")
                session.scalar(select(DossierCounter.last))
                first_read.set()
                # Deferred transactions let the other writer commit here, and this one's
                # write then fails at once; with the write lock taken first, it waits for us.
                second_done.wait(timeout=1.5)
                codes.append(next_code(session, day))
        except BaseException as exc:
            errors.append(exc)

    def second() -> None:
        first_read.wait(timeout=5)
        try:
            with unit_of_work(make_engine(f"sqlite:///{path}")) as session:
                codes.append(next_code(session, day))
        except BaseException as exc:
            errors.append(exc)
        finally:
            second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert codes == ["DLK-261123-00001", "DLK-261123-00002"]
