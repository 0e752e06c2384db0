"""Due-event scan over a seeded population (`python -m scheduler scan`), SQLite and PostgreSQL.

Seeds BENCH_SCAN_CITIZENS (default 1,000,000) citizens with their records through `bot seed`,
then scans one day (rows created), and scans the same day again (nothing new to create).
Reports seconds, citizens/s and the peak memory of the scanning process. Goal: first scan
under 60 s and 1 GiB on this 2-core machine, the second under 10 s.
"""

from __future__ import annotations

import datetime as dt
import os
import resource

from bench.common import fresh_database, postgres_available, print_table, progress, timed
from bot.catalogue.model import get_catalogue
from bot.core.db import make_engine
from bot.data.seed import seed
from scheduler.scan import scan

CITIZENS = int(os.environ.get("BENCH_SCAN_CITIZENS", "1000000"))
DAY = dt.date(2026, 11, 23)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(engine_name: str) -> list[list[object]]:
    catalogue = get_catalogue()
    with fresh_database(engine_name) as url:
        engine = make_engine(url)
        progress(f"{engine_name}: seeding {CITIZENS:,} citizens")
        seeded, report = timed(seed, engine, catalogue, CITIZENS, 7, DAY)
        progress(f"{engine_name}: seeded in {seeded:.0f} s ({report.records:,} records); scanning")
        first, counts = timed(scan, engine, catalogue, DAY)
        progress(f"{engine_name}: first scan {first:.1f} s, {sum(counts.values()):,} reminders")
        second, again = timed(scan, engine, catalogue, DAY)
        engine.dispose()
    return [
        [
            engine_name,
            "first scan",
            f"{CITIZENS:,}",
            f"{first:.1f}",
            f"{CITIZENS / first:,.0f}",
            f"{sum(counts.values()):,}",
            f"{peak_mib():.0f}",
        ],
        [
            engine_name,
            "same day again",
            f"{CITIZENS:,}",
            f"{second:.1f}",
            f"{CITIZENS / second:,.0f}",
            f"{sum(again.values()):,}",
            f"{peak_mib():.0f}",
        ],
    ]


def main() -> None:
    rows = run("sqlite")
    if postgres_available():
        rows += run("postgresql")
    else:
        progress("PostgreSQL not reachable: skipped (set TEST_DATABASE_URL)")
    print_table(
        f"Due-event scan of {DAY} (peak RSS of this process, MiB)",
        ["engine", "run", "citizens", "seconds", "citizens/s", "reminders created", "peak MiB"],
        rows,
    )


if __name__ == "__main__":
    main()
