"""Signed Twilio usage-trigger callbacks verified and durably stored per second, against bare Flask.

    PYTHONPATH=. .venv/bin/python bench/callbacks.py [--seconds 10] [--rounds 1] [--postgres URL]

Each request is a different firing (its own IdempotencyToken, signed as Twilio signs it), so every
200 means one new alert + outbox row committed; after the run the rows are counted to check that.
usage-bot runs as the Procfile runs it (gunicorn -c gunicorn.conf.py app:app) with the delivery
loop off (DELIVERY_IN_WEB=false): this measures receiving, not posting. PostgreSQL runs when
--postgres or TEST_DATABASE_URL gives a server (each run in a schema of its own, dropped after).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from bench import harness

PUBLIC_URL = "https://usage-bot.example.com"
PATH = "/twilio/usage-triggers?channel=C0BENCH"


def signed_callback(key: str) -> tuple[str, bytes, Mapping[str, str]]:
    """A distinct, correctly signed callback (runs in the load processes)."""
    from bot.alerts.signature import compute_signature

    params = {
        "AccountSid": harness.TWILIO_ACCOUNT_SID,
        "UsageTriggerSid": "UT" + "b" * 32,
        "UsageCategory": "totalprice",
        "TriggerBy": "price",
        "TriggerValue": "100",
        "CurrentValue": "100.42",
        "DateFired": "",
        "IdempotencyToken": f"bench-{key}",
    }
    signature = compute_signature(harness.TWILIO_AUTH_TOKEN, PUBLIC_URL + PATH, params.items())
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return PATH, urlencode(params).encode(), headers


def stored_alerts(database_url: str) -> int:
    from sqlalchemy import func, select

    from bot.store import Store
    from bot.store.schema import outbox

    store = Store.connect(database_url)
    try:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    finally:
        store.dispose()


def postgres_schema_url(base: str) -> tuple[str, str]:
    from bot.config import normalize_database_url

    url = normalize_database_url(base)
    schema = "bench_" + uuid.uuid4().hex[:10]
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", schema


def run_database(label: str, database_url: str, tmp: Path, seconds: float, rounds: int) -> bool:
    from tests.fakes.slack import FakeSlack

    ratios, results = [], []
    with FakeSlack() as slack:
        env = harness.usage_bot_env(
            slack_api_url=slack.api_url,
            twilio_api_url="http://127.0.0.1:9",
            database_url=database_url,
            PUBLIC_URL=PUBLIC_URL,
        )
        for round_no in range(1, rounds + 1):
            before = stored_alerts(database_url) if round_no > 1 else 0
            with harness.gunicorn(harness.USAGE_BOT_APP, env, log_dir=tmp) as server:
                spec = harness.LoadSpec(server.port, PATH, b"", {}, vary=signed_callback)
                bot = harness.run_load(
                    spec, label=f"usage-bot {label} #{round_no}", seconds=seconds, server_cpu=server.cpu_seconds
                )
            stored = stored_alerts(database_url) - before
            with harness.gunicorn(harness.BARE_APP, {}, log_dir=tmp) as server:
                spec = harness.LoadSpec(server.port, PATH, b"", {}, vary=signed_callback)
                bare = harness.run_load(
                    spec, label=f"bare Flask #{round_no}", seconds=seconds, server_cpu=server.cpu_seconds
                )

            # Every request counted as ok (in the window) or in the warm-up was answered 200 and so
            # must be stored; the window's edges may add a few more that were stored but not counted.
            acknowledged = bot.ok + bot.warmup_requests
            if stored < acknowledged:
                print(f"!! {acknowledged - stored} acknowledged callbacks are missing from the database")
                return False
            results += [bot, bare]
            ratios.append(bot.rps / bare.rps)
    print(harness.format_results(results))
    ratio = harness.median(ratios)
    ok = ratio >= 0.4 and all(r.errors == 0 for r in results)
    print("stored = acknowledged (checked by counting outbox rows after each run)")
    print(f"ratio {label}/bare per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    verdict = harness.verdict(ok)
    print(f"callbacks stored/s, usage-bot on {label} / bare Flask (median): {ratio:.2f}  target >= 0.4  {verdict}")

    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp:
        print("\nSigned callbacks verified and stored per second — SQLite (WAL)")
        ok &= run_database("SQLite", f"sqlite:///{tmp}/callbacks.db", Path(tmp), args.seconds, args.rounds)
        if args.postgres:
            from sqlalchemy import create_engine, text

            from bot.config import normalize_database_url

            url, schema = postgres_schema_url(args.postgres)
            admin = create_engine(normalize_database_url(args.postgres))
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                print("\nSigned callbacks verified and stored per second — PostgreSQL")
                ok &= run_database("PostgreSQL", url, Path(tmp), args.seconds, args.rounds)
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
        else:
            print("\n(PostgreSQL skipped: give --postgres URL or set TEST_DATABASE_URL)")
    return 0 if ok else 1


if __name__ == "__main__":
    harness.run_script(main)
