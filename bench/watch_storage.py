"""The spend-spike watch's storage at its bound: 35 days of snapshots, one every 5 minutes
(288 a day), of 50 active categories, written through the real store code (bot/watch/store.py).

    PYTHONPATH=. .venv/bin/python bench/watch_storage.py [--days 35] [--categories 50]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

SQLite: a fresh file, migrated, filled, VACUUMed; the file's size is printed. PostgreSQL
(`--postgres`): a private schema is created, filled and measured with pg_total_relation_size
(table, indexes and TOAST) of the watch's tables, then dropped. Each day also gets a few spike
states, and the day's Daily records and profiles are cached as the scheduled pass caches them.
Exits 0 when the total is at most 50 MB (issue 9's target), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from sqlalchemy import text

from bot.store import Store
from bot.usage.categories import known_categories
from bot.watch import store as watch_store
from bot.watch.baseline import profiles_for
from bot.watch.model import DailyTotal, Snapshot, Totals, WatchSettings
from tests.databases import postgres_schema

TARGET_BYTES = 50 * 1024 * 1024
SNAPSHOTS_PER_DAY = 288
WATCH_TABLES = ("usage_snapshots", "spike_states", "state")


def categories(n: int) -> list[str]:
    """`totalprice` and `n - 1` real category names (their lengths matter to the size)."""
    names = [c for c in known_categories() if c != "totalprice"]
    return ["totalprice", *random.Random(7).sample(names, n - 1)]


def fill(store: Store, days: int, names: list[str], end: datetime) -> int:
    """Snapshots with cumulative counts and prices growing through each day, as Twilio reports
    them (prices with up to 5 decimals, whole counts); one transaction per day."""
    rng = random.Random(42)
    rates = {c: (rng.uniform(1, 5000), rng.choice((0.0079, 0.0083, 0.013, 0.0221, 0.045, 0.14))) for c in names}
    rows = 0
    for d in range(days, 0, -1):
        midnight = (end - timedelta(days=d)).replace(hour=0, minute=0, second=0, microsecond=0)
        snapshots = []
        for i in range(1, SNAPSHOTS_PER_DAY + 1):
            hours = i * 5 / 60
            totals = {}
            for c, (per_hour, unit) in rates.items():
                count = float(int(per_hour * hours * rng.uniform(0.95, 1.05)))
                totals[c] = Totals(count, round(count * unit, 5))
            snapshots.append(Snapshot(midnight + timedelta(minutes=5 * i), totals))

        def write(conn: object, snapshots: list[Snapshot] = snapshots, day: datetime = midnight) -> None:
            for snapshot in snapshots:
                watch_store.insert_snapshot(conn, snapshot)  # type: ignore[arg-type]
            changes = {(f"C{n:08d}", names[n]): day + timedelta(hours=n) for n in range(1, 4)}
            watch_store.save_first_above(conn, day.date(), changes)  # type: ignore[arg-type]

        store.write(write)
        rows += len(snapshots)
    return rows


def cache_day(store: Store, names: list[str], end: datetime) -> None:
    """The day's Daily records (28 days) and profiles, cached as the scheduled pass does (and how
    long the day's first pass spends reading the history and building the profiles)."""
    day = end.date()
    daily = [DailyTotal(day - timedelta(days=n), c, 1000.0, 12.34567) for n in range(1, 29) for c in names]
    now = end.timestamp()
    store.write(lambda conn: watch_store.save_daily(conn, day, daily, now=now))
    started = time.perf_counter()
    history = watch_store.snapshots_between(store, day - timedelta(days=28), day - timedelta(days=1))
    read = time.perf_counter() - started
    profiles = profiles_for(day, history, daily, WatchSettings())
    built = time.perf_counter() - started - read
    watch_store.save_profiles(store, day, day, profiles, now=now)
    print(
        f"the day's first pass: {len(history):,} stored snapshots read in {read:.2f} s, "
        f"{len(profiles)} profiles built in {built:.2f} s (cached for the day's other passes)"
    )


def measure_sqlite(days: int, names: list[str], end: datetime) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "watch.db")
        store = Store.connect(f"sqlite:///{path}")
        store.migrate()
        started = time.perf_counter()
        rows = fill(store, days, names, end)
        cache_day(store, names, end)
        elapsed = time.perf_counter() - started
        store.dispose()
        con = sqlite3.connect(path, isolation_level=None)  # VACUUM runs outside a transaction
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.execute("VACUUM")
        con.close()
        wal = Path(path + "-wal")
        size = os.path.getsize(path) + (wal.stat().st_size if wal.exists() else 0)
        print(f"SQLite: {rows:,} snapshots written in {elapsed:.1f} s")
        return size, elapsed


def measure_postgres(url: str, days: int, names: list[str], end: datetime) -> tuple[int, float]:
    with postgres_schema(url, "bench_") as (schema_url, schema):
        store = Store.connect(schema_url)
        store.migrate()
        started = time.perf_counter()
        rows = fill(store, days, names, end)
        cache_day(store, names, end)
        elapsed = time.perf_counter() - started
        with store.engine.connect() as conn:
            sizes = {
                t: conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": f"{schema}.{t}"}).scalar_one()
                for t in WATCH_TABLES
            }
        store.dispose()
        print(
            f"PostgreSQL: {rows:,} snapshots written in {elapsed:.1f} s; "
            + ", ".join(f"{t} {s / 1e6:.2f} MB" for t, s in sizes.items())
        )
        return sum(sizes.values()), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--categories", type=int, default=50)
    parser.add_argument("--postgres", metavar="URL", help="measure on PostgreSQL instead of SQLite")
    args = parser.parse_args()
    names = categories(args.categories)
    end = datetime(2026, 12, 2, tzinfo=UTC)
    print(f"{args.days} days x {SNAPSHOTS_PER_DAY} snapshots x {len(names)} categories with usage")
    if args.postgres:
        size, _ = measure_postgres(args.postgres, args.days, names, end)
        what = "watch tables (pg_total_relation_size)"
    else:
        size, _ = measure_sqlite(args.days, names, end)
        what = "database file after VACUUM"
    verdict = "PASS" if size <= TARGET_BYTES else "FAIL"
    print(f"{what}: {size / 1024 / 1024:.1f} MiB ({size:,} bytes); target <= 50 MiB: {verdict}")
    return 0 if size <= TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
