"""What one relay pass (`AlertRelay.run_once`) costs with 10 and with 20,000 alerts waiting.

    PYTHONPATH=. .venv/bin/python bench/relay_pass.py [--passes 50] [--postgres URL]

Alerts are stored as intake stores them (bot/alerts/intake.py `store_alerts`), spread over 20
channels, in a fresh database (a SQLite file; with --postgres or TEST_DATABASE_URL also a
PostgreSQL schema of its own, dropped after). A FakeSlack on 127.0.0.1 takes the posts. Each
figure is the median of `--passes` passes, timed with time.perf_counter around `run_once`:

- idle: every channel is waiting for its pace, so the pass finds nothing due. This is what each
  stored callback's wake-up used to cost while the relay works;
- delivering: every channel is due; the pass posts to `parallel_channels` (8) of them. After each
  timed pass the posted alerts are put back to pending, untimed, so every pass sees the same
  backlog (and, on PostgreSQL, VACUUM ANALYZE runs, also untimed, as after the fill: otherwise
  autovacuum's work on the churned tables lands in the timed passes). With 10 alerts a message
  names one alert, with 20,000 it names 30 (a full batch), so the judged comparison is 600 alerts
  (30 per channel: full batches) against 20,000.

Exits 0 when, on every database, the 20,000-alert median is within the tolerance of the small one:
at most 1.5 x + 0.5 ms (noise on a shared 2-core machine is of that order).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text, update

from bot.alerts import leases
from bot.alerts.intake import store_alerts
from bot.alerts.receive import parse_callback
from bot.alerts.relay import AlertRelay
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import channels, outbox
from tests.databases import postgres_schema
from tests.fakes.slack import VALID_TOKEN, FakeSlack

CHANNELS = 20
RATIO, SLACK_MS = 1.5, 0.5


class Clock:
    """The relay's clock: the real time plus an offset the benchmark moves to make channels due."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def fill(store: Store, count: int) -> None:
    batch = []
    for i in range(count):
        params = {"UsageTriggerSid": f"UT{i:032x}", "UsageCategory": "sms", "CurrentValue": str(i)}
        alert = parse_callback({**params, "IdempotencyToken": f"bench-{i}"}, channel=f"C{i % CHANNELS:08d}")
        assert alert is not None
        batch.append(alert)
    for k in range(0, count, 1000):
        store_alerts(store, batch[k : k + 1000], fallback_channel="", received=time.time())


def settle(store: Store) -> None:
    """PostgreSQL: VACUUM ANALYZE now (untimed), rather than autovacuum doing it during the timed
    passes after a bulk insert, which slows every statement, whatever it reads."""
    if not store.is_sqlite:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def pace_all(store: Store, until: float) -> None:
    store.write(lambda conn: conn.execute(update(channels).values(next_post_at=until)))


def undo_posts(store: Store) -> None:
    """Put what the pass posted back, so that the next pass sees the same backlog (untimed)."""

    def undo(conn):  # type: ignore[no-untyped-def]
        conn.execute(
            update(outbox).where(outbox.c.status == "sent").values(status="pending", batch_id=None, sent_at=None)
        )
        conn.execute(update(channels).values(next_post_at=0.0, queued=channels.c.queued + 1))  # work again

    store.write(undo)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(database_url: str, size: int, passes: int) -> dict[str, float]:
    store = Store.connect(database_url)
    store.migrate()
    fill(store, size)
    leases.collect_work(store)  # what the fill gave each channel, collected once (untimed)
    settle(store)
    clock = Clock()
    try:
        with FakeSlack() as slack:
            poster = SlackPoster.from_token(store, VALID_TOKEN, slack.api_url, clock=clock)
            relay = AlertRelay(store, poster, clock=clock)
            pace_all(store, clock() + 3600)
            relay.run_once()  # warm up: connections, the first statements
            idle = []
            for _ in range(passes):
                started = time.perf_counter()
                worked = relay.run_once()
                idle.append(time.perf_counter() - started)
                assert worked == 0
            pace_all(store, 0.0)
            delivering = []
            for _ in range(passes):
                started = time.perf_counter()
                worked = relay.run_once()
                delivering.append(time.perf_counter() - started)
                assert worked == min(8, size), worked
                undo_posts(store)
                settle(store)
            posts = len(slack.posted)
        return {"idle": median_ms(idle), "delivering": median_ms(delivering), "posts": posts}
    finally:
        relay._pool.shutdown(wait=True)
        store.dispose()


@contextmanager
def database(kind: str, base: str, tmp: Path, size: int) -> Iterator[str]:
    if kind == "SQLite":
        yield f"sqlite:///{tmp}/relay-pass-{size}.db"
        return
    with postgres_schema(base, "bench_") as (url, _):
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=50)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    kinds = ["SQLite"] + (["PostgreSQL"] if args.postgres else [])
    ok = True
    print(f"median ms per pass over {args.passes} passes; {CHANNELS} channels; tolerance {RATIO} x + {SLACK_MS} ms")
    print(f"{'database':<11} {'alerts':>7} {'idle pass':>10} {'delivering pass':>16}")
    with tempfile.TemporaryDirectory(prefix="usage-bot-relay-pass-") as tmp:
        for kind in kinds:
            found = {}
            for size in (10, 600, 20_000):
                with database(kind, args.postgres, Path(tmp), size) as url:
                    found[size] = measure(url, size, args.passes)
                print(f"{kind:<11} {size:>7,} {found[size]['idle']:>10.2f} {found[size]['delivering']:>16.2f}")
            judged = [("idle", 10), ("delivering", 600)]
            for what, small in judged:
                within = found[20_000][what] <= found[small][what] * RATIO + SLACK_MS
                ok &= within
                verdict = "PASS" if within else "FAIL"
                print(
                    f"  {kind} {what}: {small:,} -> 20,000 alerts: {found[small][what]:.2f} -> "
                    f"{found[20_000][what]:.2f} ms  {verdict}"
                )
    if not args.postgres:
        print("(PostgreSQL skipped: give --postgres URL or set TEST_DATABASE_URL)")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (schemas, files)
    sys.exit(main())
