"""Daily digests to 1,000 subscribed channels: Twilio requests made, and time to send them all.

    PYTHONPATH=. .venv/bin/python bench/digests_1000.py [--channels 1000] [--categories 40]
        [--instances 1] [--database-url postgresql://…]

Starts a FakeTwilio holding `--categories` categories of Daily records for the last 30 days and a
FakeSlack, subscribes `--channels` channels to the daily digest (due now), and times one
`run_due` pass (`python -m bot digests` without the process start-up) — or `--instances` passes
racing on the same database, as several scheduler jobs would. Then it times a second pass (the
digests are sent: nothing to do) and, for comparison, the Twilio requests of the same digest to
one channel. Prints: Twilio requests, messages posted (and any channel posted to twice), wall
time and posts per second.

The database is a fresh SQLite file unless `--database-url` names another (PostgreSQL: give an
empty database or schema; the bench empties the digest tables before it starts).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bot.config import normalize_database_url
from bot.reports import subscriptions
from bot.reports.scheduler import RunReport, run_due
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import digests as digest_rows
from bot.store.schema import report_runs
from bot.usage.client import UsageClient
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record

ACCOUNT_SID = "AC" + "b2" * 16
AUTH_TOKEN = "bench-auth-token"


def load_account(twilio: FakeTwilio, categories: int, days: int = 30) -> None:
    today = datetime.now(UTC).date()
    records = []
    for back in range(days):
        day = today - timedelta(days=back)
        prices = [Decimal(i + 1) * Decimal("0.37") + Decimal(back % 7) for i in range(categories - 1)]
        records.append(make_record("totalprice", price=str(sum(prices)), start_date=day, end_date=day))
        records += [
            make_record(f"fake-category-{i:04d}", price=str(p), start_date=day, end_date=day)
            for i, p in enumerate(prices)
        ]
    twilio.set_records("Daily", records)


def fresh_store(url: str, channels: int) -> Store:
    store = Store.connect(url)
    store.migrate()
    with store.transaction() as conn:
        conn.execute(report_runs.delete())
        conn.execute(digest_rows.delete())
    for i in range(channels):
        # at 00:00 local: due from midnight, so due whenever the bench runs
        subscriptions.subscribe(
            store, channel_id=f"C{i:06d}", cadence="daily", at_minutes=0, user_id="UBENCH", now=time.time()
        )
    return store


def one_pass(url: str, twilio: FakeTwilio, slack: FakeSlack, now: datetime) -> RunReport:
    store = Store.connect(url)  # each instance its own engine, as separate processes would have
    try:
        usage = UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio.url)
        poster = SlackPoster.from_token(store, VALID_TOKEN, slack.api_url)
        return run_due(store, usage, poster, now=now, tz=ZoneInfo("UTC"))
    finally:
        store.dispose()


def race(url: str, twilio: FakeTwilio, slack: FakeSlack, now: datetime, instances: int) -> list[RunReport]:
    reports: list[RunReport] = []
    barrier = threading.Barrier(instances)
    lock = threading.Lock()

    def instance() -> None:
        barrier.wait()
        report = one_pass(url, twilio, slack, now)
        with lock:
            reports.append(report)

    threads = [threading.Thread(target=instance) for _ in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return reports


def gets(twilio: FakeTwilio) -> int:
    return len([r for r in twilio.requests if r.method == "GET"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=40, help="usage categories on the account (default 40)")
    parser.add_argument("--instances", type=int, default=1, help="passes racing on the same database (default 1)")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    if not (1 <= args.channels <= 20_000 and 2 <= args.categories <= 1000 and 1 <= args.instances <= 8):
        parser.error("keep --channels in [1, 20000], --categories in [2, 1000], --instances in [1, 8]")

    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp:
        url = normalize_database_url(args.database_url) if args.database_url else f"sqlite:///{tmp}/bench.db"
        database = url.split(":", 1)[0]
        print(
            f"daily digests — {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()}, "
            f"{args.channels:,} channels, {args.categories}-category account, {args.instances} instance(s), "
            f"{database}\nmachine: {os.cpu_count()} CPUs"
        )
        twilio = FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
        slack = FakeSlack().start()
        try:
            load_account(twilio, args.categories)
            now = datetime.now(UTC)

            # Baseline: the same digest to one channel.
            fresh_store(url, 1).dispose()
            twilio.reset_requests()
            one_pass(url, twilio, slack, now)
            single_requests = gets(twilio)

            setup_started = time.perf_counter()
            fresh_store(url, args.channels).dispose()
            setup_s = time.perf_counter() - setup_started
            with slack.lock:
                slack.posted.clear()
                slack.calls.clear()
            twilio.reset_requests()
            started = time.perf_counter()
            reports = race(url, twilio, slack, now, args.instances)
            elapsed = time.perf_counter() - started
            requests = gets(twilio)
            posted = len(slack.posted)
            doubles = sum(n - 1 for n in Counter(p.channel for p in slack.posted).values() if n > 1)

            twilio.reset_requests()
            again_started = time.perf_counter()
            again = one_pass(url, twilio, slack, now)
            again_s = time.perf_counter() - again_started
            again_requests = gets(twilio)
        finally:
            slack.stop()
            twilio.stop()

    print(f"\n  subscribe {args.channels:,} channels (setup, not timed below): {setup_s:.2f} s")
    print(f"  Twilio requests, 1 channel:               {single_requests}")
    print(f"  Twilio requests, {args.channels:,} channels:          {requests}")
    print(f"  digests posted:                           {posted:,} (channels posted twice: {doubles})")
    print(f"  time to send all:                         {elapsed:.2f} s ({posted / elapsed:,.0f} posts/s)")
    for i, report in enumerate(reports, 1):
        print(f"    instance {i}: {report.summary()}")
    print(f"  second pass (all sent):                   {again_s:.2f} s, {again_requests} Twilio requests, "
          f"{again.posted} posted")  # fmt: skip
    # Racing instances may each fetch the (same) figures: at most one set per instance.
    ok = posted == args.channels and doubles == 0 and requests <= single_requests * args.instances
    print(f"\n  {'OK' if ok else 'FAILED'}: every channel once, Twilio requests independent of the channel count")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
