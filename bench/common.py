"""Shared helpers for benchmarks: throw-away databases, timing, and table printing."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from bot.core.db import make_engine
from bot.core.migrate import upgrade
from tests.faults import pg_database

T = TypeVar("T")
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def postgres_available() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG)
    try:
        with make_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return None
    return url


@contextmanager
def fresh_database(engine_name: str) -> Iterator[str]:
    """A migrated, empty database of the given engine, dropped afterwards."""
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    base = postgres_available()
    assert base is not None
    with pg_database(base, prefix="dvc_bench") as url:
        yield url


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds taken by fn(*args), and its result."""
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for i, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
