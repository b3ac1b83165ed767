"""Signed Twilio callbacks verified and durably stored per second, against bare Flask, on wrk.

    .venv/bin/python bench/callbacks.py [--seconds 10] [--rounds 3] [--postgres URL] [--no-relay]
        [--backlog 20000] [--sqlite-only]

Each request is a different firing of a usage trigger: its own IdempotencyToken, one of 20 channels
(`?channel=` in the callback URL, as bot/alerts/triggers.py registers it), signed as Twilio signs
(HMAC-SHA1 over the URL + the sorted POST parameters, bot/alerts/signature.py). wrk's Lua has no
HMAC, so the signed requests are generated beforehand into a file that bench/lua/replay.lua sends
each once (each wrk thread its own share).

usage-bot runs as the Procfile runs it (gunicorn -c gunicorn.conf.py app:app) with the relay under
the web command (the default, DELIVERY_IN_WEB=true: a process of its own beside the workers,
handlers/relay_process.py) posting to a FakeSlack that accepts every post,
so the relay really delivers while the callbacks come in. On SQLite the web command's single
writer (bot/alerts/single_writer.py) stores the callbacks, as it does in production. Before each
round the database gets `--backlog` undelivered alerts over the same 20 channels, stored through
the app's own code (`bot.alerts.intake.store_alerts`, as AlertWriter stores a callback), so the
backlog is at least that size during the run; it is printed at the start and end of each run. `--no-relay` runs the
same with DELIVERY_IN_WEB=false, for comparison.

Each round has a fresh database: a SQLite file, or with --postgres (or TEST_DATABASE_URL) a schema
of its own, dropped after. After each run the stored callbacks are counted: every callback that
was answered 200 must be there, or the benchmark fails. Targets (issue 8): stored/s >= 0.5 of
bare Flask on SQLite, >= 0.4 on PostgreSQL (relay in web).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench import common

PUBLIC_URL = "https://usage-bot.example.com"
PATH = "/twilio/usage-triggers"
CHANNELS = [f"C0BENCH{i:02d}" for i in range(20)]
TARGETS = {"SQLite": 0.5, "PostgreSQL": 0.4}
WARMUP_SECONDS = 1
# Signed requests generated per measured second: more than usage-bot answers (a thread that ran out
# would repeat callbacks, which the count after the run would catch).
REQUESTS_PER_SECOND = 6000


def callback_params(token: str, channel_no: int) -> dict[str, str]:
    return {
        "AccountSid": common.TWILIO_ACCOUNT_SID,
        "UsageTriggerSid": "UT" + f"{channel_no:02d}" * 16,
        "UsageCategory": "totalprice",
        "TriggerBy": "price",
        "TriggerValue": "100",
        "CurrentValue": "100.42",
        "DateFired": "",
        "IdempotencyToken": token,
    }


def signed_callbacks(prefix: str, count: int) -> Iterator[tuple[str, Mapping[str, str], bytes]]:
    """`count` distinct signed callbacks, round-robin over CHANNELS."""
    from bot.alerts.signature import compute_signature

    for n in range(count):
        channel_no = n % len(CHANNELS)
        path = f"{PATH}?channel={CHANNELS[channel_no]}"
        params = callback_params(f"{prefix}-{n}", channel_no)
        signature = compute_signature(common.TWILIO_AUTH_TOKEN, PUBLIC_URL + path, params.items())
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        yield path, headers, urlencode(params).encode()


def seed_backlog(database_url: str, count: int) -> None:
    """Migrate the database and store `count` undelivered alerts over CHANNELS, in batches, through
    the code that stores a callback (parse_callback + store_alerts)."""
    from bot.alerts.intake import store_alerts
    from bot.alerts.receive import parse_callback
    from bot.store import Store

    store = Store.connect(database_url)
    try:
        store.migrate()
        batch_size = 1000
        for start in range(0, count, batch_size):
            batch = []
            for n in range(start, min(count, start + batch_size)):
                params = callback_params(f"backlog-{n}", n % len(CHANNELS))
                alert = parse_callback(params, channel=CHANNELS[n % len(CHANNELS)])
                assert alert is not None
                batch.append(alert)
            store_alerts(store, batch, fallback_channel="", received=time.time())
    finally:
        store.dispose()


def count_rows(database_url: str, token_prefix: str) -> tuple[int, int]:
    """(alerts whose token starts with `token_prefix`, undelivered outbox rows)."""
    from sqlalchemy import func, select

    from bot.alerts.outbox import OutboxStatus
    from bot.store import Store
    from bot.store.schema import alerts, outbox

    store = Store.connect(database_url)
    try:
        with store.engine.connect() as conn:
            stored = conn.execute(
                select(func.count()).select_from(alerts).where(alerts.c.dedupe_key.startswith(f"token:{token_prefix}"))
            ).scalar_one()
            undelivered = conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
            ).scalar_one()
        return stored, undelivered
    finally:
        store.dispose()


@contextmanager
def fresh_database(kind: str, tmp: Path, postgres: str, round_no: int) -> Iterator[str]:
    """A database URL for one round: a new SQLite file, or a new PostgreSQL schema dropped after."""
    if kind == "SQLite":
        yield f"sqlite:///{tmp}/callbacks-{round_no}.db"
        return
    from tests.databases import postgres_schema

    with postgres_schema(postgres, "bench_") as (url, _):
        yield url


def run_database(kind: str, args: argparse.Namespace, tmp: Path) -> bool:
    from tests.fakes.slack import FakeSlack

    relay = "relay in web" if args.relay else "no relay (DELIVERY_IN_WEB=false)"
    print(f"\nSigned callbacks verified and stored per second — {kind}, {relay}, backlog {args.backlog:,}")
    runs: list[common.WrkRun] = []
    ratios: list[float] = []
    ok = True
    with FakeSlack() as slack, common.gunicorn(common.BARE_APP, {}, log_dir=tmp) as bare:
        for round_no in range(1, args.rounds + 1):
            prefix = f"r{round_no}"
            warm_file, run_file = tmp / f"{prefix}-warm.requests", tmp / f"{prefix}.requests"
            common.write_requests(warm_file, signed_callbacks(f"{prefix}w", WARMUP_SECONDS * REQUESTS_PER_SECOND))
            generated = common.write_requests(run_file, signed_callbacks(prefix, args.seconds * REQUESTS_PER_SECOND))
            with fresh_database(kind, tmp, args.postgres, round_no) as database_url:
                seed_backlog(database_url, args.backlog)
                env = common.usage_bot_env(
                    slack_api_url=slack.api_url,
                    twilio_api_url="http://127.0.0.1:9",
                    database_url=database_url,
                    PUBLIC_URL=PUBLIC_URL,
                    DELIVERY_IN_WEB="true" if args.relay else "false",
                )
                if args.wait_quiet:
                    common.wait_for_quiet(args.wait_quiet)
                with common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmp) as server:
                    posts_before = len(slack.posted)
                    _, backlog_start = count_rows(database_url, prefix)
                    warm = common.run_wrk(
                        server, PATH, requests_file=warm_file, cycle=True, check="status", label="warm-up",
                        seconds=WARMUP_SECONDS,
                    )  # fmt: skip
                    bot = common.run_wrk(
                        server, PATH, requests_file=run_file, cycle=True, check="status",
                        label=f"usage-bot #{round_no}", seconds=args.seconds,
                    )  # fmt: skip
                    stored, backlog_end = count_rows(database_url, prefix)
                    posts = len(slack.posted) - posts_before
                    worker_memory = common.report_memory(server)
                # Every callback answered 200 (warm-up and run) must be stored; a few more may be,
                # answered after wrk stopped counting.
                acknowledged = warm.ok + bot.ok
                wrapped = sum((run.extra or {}).get("wrapped", 0) for run in (warm, bot))
                print(
                    f"  round {round_no}: backlog at start {backlog_start:,}, at end {backlog_end:,}; "
                    f"{posts:,} posts to FakeSlack; acknowledged {acknowledged:,} (warm-up {warm.ok:,}), "
                    f"stored {stored:,}; {generated:,} signed requests generated"
                )
                print(f"  workers: {worker_memory}")
                if stored < acknowledged:
                    print(f"!! {acknowledged - stored:,} acknowledged callbacks are missing from the database")
                    ok = False
                if wrapped:
                    print(f"!! wrk ran out of distinct callbacks ({wrapped:,} repeats): raise REQUESTS_PER_SECOND")
                    ok = False
            if args.wait_quiet:
                common.wait_for_quiet(args.wait_quiet)
            base = common.run_wrk(
                bare, PATH, requests_file=run_file, cycle=True, check="status", label=f"bare Flask #{round_no}",
                seconds=args.seconds,
            )  # fmt: skip
            runs += [bot, base]
            ratios.append(bot.rps / base.rps)
    print(common.format_runs(runs))
    print(common.RESULTS_LEGEND)
    ratio = common.median(ratios)
    target = TARGETS[kind]
    errors = sum(r.errors for r in runs)
    passed = ok and errors == 0 and ratio >= target
    print("stored >= acknowledged (alerts counted in the database after each run)  " + common.verdict(ok))
    print(f"errors (non-200 or socket errors): {errors}  {common.verdict(errors == 0)}")
    print(f"ratio usage-bot on {kind}/bare per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(
        f"callbacks stored/s, usage-bot on {kind} ({relay}) / bare Flask, median of rounds "
        f"({common.median([r.rps for r in runs[::2]]):,.0f} / {common.median([r.rps for r in runs[1::2]]):,.0f}): "
        f"{ratio:.2f}  target >= {target}  {common.verdict(ratio >= target)}"
    )
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each usage-bot then bare (default 3)")
    parser.add_argument("--backlog", type=int, default=20_000, help="undelivered alerts seeded per round (20000)")
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""), help="a PostgreSQL URL")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL even if a URL is known")
    parser.add_argument("--no-relay", dest="relay", action="store_false", help="DELIVERY_IN_WEB=false")
    parser.add_argument("--wait-quiet", type=float, default=20.0, help="wait up to this long for a quiet machine")
    args = parser.parse_args()
    if not (1 <= args.seconds <= 60 and 1 <= args.rounds <= 10 and 0 <= args.backlog <= 200_000):
        parser.error("keep --seconds in [1, 60], --rounds in [1, 10], --backlog in [0, 200000]")
    common.wrk_path()
    print(f"callbacks — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs, {common.load_average()}")
    print("load: wrk -t2 -c16, distinct signed callbacks over 20 channels; servers: gunicorn -c gunicorn.conf.py <app>")
    ok = True
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp:
        ok &= run_database("SQLite", args, Path(tmp))
        if args.postgres and not args.sqlite_only:
            ok &= run_database("PostgreSQL", args, Path(tmp))
        elif not args.sqlite_only:
            print("\n(PostgreSQL skipped: give --postgres URL or set TEST_DATABASE_URL)")
    return 0 if ok else 1


if __name__ == "__main__":
    common.run_script(main)
