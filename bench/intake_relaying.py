"""Signed callbacks durably stored per second while the relay works, against bare Flask, with `wrk`.

    PYTHONPATH=. .venv/bin/python bench/intake_relaying.py [--seconds 10] [--backlog 20000] [--postgres URL]

Target (issue 8, point 2): with the relay inside the web processes (the default) and a backlog of
undelivered alerts over 20 channels, callbacks stored per second >= 0.5 of bare Flask on SQLite and
>= 0.4 on PostgreSQL.

Both servers run the Procfile's web command (gunicorn -c gunicorn.conf.py app:app, and
bench.bare_app:app for the baseline) with the same environment, one after the other in the same run;
`wrk` drives each with 16 connections (2 threads) for `--seconds`. Before usage-bot starts, the
database gets `--backlog` undelivered alerts over 20 channels (as intake stores them); the load's own
callbacks go round-robin to the same 20 channels, so the backlog grows while the relay posts to a
FakeSlack (in this process) at Slack's pace. Every request is a distinct firing, signed as Twilio
signs it (pre-computed, read by wrk's Lua script); usage-bot's rate counts the outbox rows that are
new after the run, so only durably stored callbacks count. Also runs usage-bot with
DELIVERY_IN_WEB=false (the relay off), for comparison. Exits 0 when the target is met.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, select, text

from bot.alerts.outbox import store_alerts
from bot.alerts.receive import parse_callback
from bot.config import normalize_database_url
from bot.store import Store
from bot.store.schema import outbox
from tests.fakes.slack import FakeSlack
from tests.servers import app_env, gunicorn_app, signed_callback

CHANNELS = 20
BODIES = 60_000  # per server run: more than 16 connections send in one; wrk's threads split them
RUNS = 3  # usage-bot with the relay, without, and bare Flask: each sends bodies of its own
LUA = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  requests = {}
  local i = 0
  local first = tonumber(os.getenv("BENCH_FIRST"))
  local last = first + tonumber(os.getenv("BENCH_COUNT"))
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if i >= first and i < last and i % tonumber(os.getenv("BENCH_THREADS")) == id then
      local path, signature, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
      requests[#requests + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    i = i + 1
  end
  n = 0
end
function request()
  n = n + 1
  return requests[(n - 1) % #requests + 1]
end
"""


def write_requests(path: Path) -> None:
    with open(path, "w") as out:
        for i in range(BODIES * RUNS):
            url, body, headers = signed_callback(1_000_000 + i, f"C{i % CHANNELS:08d}", token=uuid.uuid4().hex)
            out.write(f"{url}\t{headers['X-Twilio-Signature']}\t{body.decode()}\n")


def fill(database_url: str, backlog: int) -> None:
    store = Store.connect(database_url)
    store.migrate()
    batch = []
    for i in range(backlog):
        params = {"UsageTriggerSid": f"UT{i:032x}", "UsageCategory": "sms", "IdempotencyToken": f"backlog-{i}"}
        alert = parse_callback(params, channel=f"C{i % CHANNELS:08d}")
        assert alert is not None
        batch.append(alert)
    for k in range(0, backlog, 1000):
        store_alerts(store, batch[k : k + 1000], fallback_channel="", received=time.time())
    store.dispose()


def outbox_rows(database_url: str) -> tuple[int, int]:
    """(all outbox rows, those not yet sent)."""
    store = Store.connect(database_url)
    try:
        with store.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(outbox)).scalar_one()
            unsent = conn.execute(select(func.count()).where(outbox.c.status != "sent")).scalar_one()
            return total, unsent
    finally:
        store.dispose()


def run_wrk(port: int, seconds: float, script: Path, requests: Path, run: int) -> tuple[float, int, int]:
    """(requests/s, requests, non-2xx) as wrk reports them; `run` picks the bodies (none repeats)."""
    env = {
        **os.environ,
        "BENCH_REQUESTS": str(requests),
        "BENCH_THREADS": "2",
        "BENCH_FIRST": str(run * BODIES),
        "BENCH_COUNT": str(BODIES),
    }
    command = ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "-s", str(script), f"http://127.0.0.1:{port}/"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, count, int(bad.group(1)) if bad else 0


def run(kind: str, database_url: str, args: argparse.Namespace, tmp: Path, script: Path, requests: Path) -> bool:
    print(f"\n{kind}: filling {args.backlog:,} undelivered alerts over {CHANNELS} channels ...", flush=True)
    fill(database_url, args.backlog)
    results = {}
    with FakeSlack() as slack:
        servers = (("usage-bot, relay in web", {}), ("usage-bot, DELIVERY_IN_WEB=false", {"DELIVERY_IN_WEB": "false"}))
        for run_no, (label, extra) in enumerate(servers):
            env = app_env(slack_api_url=slack.api_url, database_url=database_url, **extra)
            before, _ = outbox_rows(database_url)
            posts_before = len(slack.posted)
            with gunicorn_app(env, log_dir=str(tmp)) as port:
                rps, count, bad = run_wrk(port, args.seconds, script, requests, run_no)
            after, unsent = outbox_rows(database_url)
            stored = (after - before) / args.seconds
            results[label] = stored
            print(
                f"  {label:<34} wrk {rps:8.0f} req/s ({count} requests, {bad} not 2xx); stored {stored:8.0f}/s;"
                f" posts during the run {len(slack.posted) - posts_before}; undelivered after {unsent:,}",
                flush=True,
            )
        env = app_env(slack_api_url=slack.api_url, database_url=database_url)
        with gunicorn_app(env, log_dir=str(tmp), app="bench.bare_app:app") as port:
            bare, count, bad = run_wrk(port, args.seconds, script, requests, 2)
        print(f"  {'bare Flask':<34} wrk {bare:8.0f} req/s ({count} requests, {bad} not 2xx)")
    target = 0.5 if kind == "SQLite" else 0.4
    ratio = results["usage-bot, relay in web"] / bare
    off = results["usage-bot, DELIVERY_IN_WEB=false"] / bare
    verdict = "PASS" if ratio >= target else "FAIL"
    print(f"  stored/s relay in web / bare: {ratio:.2f} (target >= {target})  {verdict};  relay off / bare: {off:.2f}")
    return ratio >= target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="usage-bot-intake-") as tmp_name:
        tmp = Path(tmp_name)
        script, requests = tmp / "callbacks.lua", tmp / "requests.tsv"
        script.write_text(LUA)
        write_requests(requests)
        ok &= run("SQLite", f"sqlite:///{tmp}/intake.db", args, tmp, script, requests)
        if args.postgres:
            admin = create_engine(normalize_database_url(args.postgres))
            schema = "bench_" + uuid.uuid4().hex[:10]
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            url = normalize_database_url(args.postgres)
            try:
                ok &= run(
                    "PostgreSQL",
                    f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}",
                    args,
                    tmp,
                    script,
                    requests,
                )
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
