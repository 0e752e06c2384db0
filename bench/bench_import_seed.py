"""Throughput of demo-data generation (`bot seed`) and department import (`bot import`).

For each engine: seed N citizens into an empty database; write N valid citizen rows to a CSV and
import them into an empty database; import the same file again (every row unchanged). Each
measurement is repeated and the median reported. Goal: 100,000 rows imported in < 30 s on SQLite.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from pathlib import Path

from bench.common import fresh_database, median, postgres_available, print_table, progress, timed
from bot.catalogue.model import get_catalogue
from bot.core.db import make_engine
from bot.data.importer import import_file
from bot.data.seed import Generator, seed

ROWS = int(os.environ.get("BENCH_ROWS", "100000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
TODAY = dt.date(2026, 11, 23)


def write_citizens_csv(path: Path, rows: int) -> None:
    gen = Generator(get_catalogue(), 42, TODAY)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            [
                "so_dinh_danh",
                "ho_ten",
                "ngay_sinh",
                "gioi_tinh",
                "so_dien_thoai",
                "dia_chi_thuong_tru",
                "xa_phuong",
            ]
        )
        for i in range(rows):
            c, _ = gen.citizen(i, i + 1)
            out.writerow(
                [
                    c["cccd"],
                    c["full_name"],
                    c["date_of_birth"].strftime("%d/%m/%Y"),
                    "Nam" if c["sex"] == "M" else "Nữ",
                    c["phone"],
                    c["permanent_address"],
                    c["commune"],
                ]
            )


def measure(engine_name: str, csv_path: Path) -> list[list[object]]:
    catalogue = get_catalogue()
    results: dict[str, list[float]] = {"seed": [], "import": [], "re-import": []}
    seeded_rows = 0
    for run in range(1, REPEAT + 1):
        with fresh_database(engine_name) as url:
            engine = make_engine(url)
            progress(f"{engine_name} run {run}/{REPEAT}: seed {ROWS:,} citizens")
            secs, report = timed(seed, engine, catalogue, ROWS, 1, TODAY)
            results["seed"].append(secs)
            seeded_rows = report.citizens + report.businesses + report.records
            engine.dispose()
        with fresh_database(engine_name) as url:
            engine = make_engine(url)
            progress(f"{engine_name} run {run}/{REPEAT}: import {ROWS:,} rows, then again")
            for step in ("import", "re-import"):
                secs, _ = timed(import_file, engine, catalogue, "citizen", csv_path)
                results[step].append(secs)
            engine.dispose()
    rows = []
    for step, times in results.items():
        count = seeded_rows if step == "seed" else ROWS
        secs = median(times)
        rows.append([engine_name, step, f"{count:,}", f"{secs:.1f}", f"{count / secs:,.0f}"])
    return rows


def main() -> None:
    engines = ["sqlite"] + (["postgresql"] if postgres_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "citizens.csv"
        progress(f"writing a CSV of {ROWS:,} citizens")
        write_citizens_csv(csv_path, ROWS)
        rows = [row for name in engines for row in measure(name, csv_path)]
    print_table(
        f"Import and seed throughput ({ROWS:,} citizens, median of {REPEAT} runs; "
        "seed rows = citizens + businesses + records)",
        ["engine", "step", "rows", "seconds", "rows/s"],
        rows,
    )
    if "postgresql" not in engines:
        print("(PostgreSQL not reachable: set TEST_DATABASE_URL to include it)")


if __name__ == "__main__":
    main()
