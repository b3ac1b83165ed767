"""Signed `/usage help` acknowledgements per second and their latency, usage-bot vs bare Flask.

    PYTHONPATH=. .venv/bin/python bench/ack_throughput.py [--seconds 10] [--rounds 1]

Starts a FakeSlack and a FakeTwilio (tests/fakes), then usage-bot and the bare baseline
(bench/bare_app.py), each as `gunicorn -c gunicorn.conf.py <app>` (the Procfile's web command).
16 keep-alive clients (threads over 4 processes) send the same pre-signed `/usage help` slash
command back to back: 1 s warm-up, then `--seconds` measured. With `--rounds N` the two servers
are loaded alternately N times and the medians are judged. Targets: throughput ratio
usage-bot/bare >= 0.5, usage-bot p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench import harness
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.slack_requests import sign, slash_command

TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
SIGNATURE_WINDOW = 300  # seconds a Slack signature stays valid; re-sign before a run could outlast it
HELP_NEEDLE = b"/usage"  # the help text names the command
BARE_NEEDLE = b'"ok"'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds before each run (default 1)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    parser.add_argument("--processes", type=int, default=4, help="load processes the clients are spread over")
    parser.add_argument("--rounds", type=int, default=1, help="alternate usage-bot/bare runs this many times")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other jobs to leave the CPUs (default 30)",
    )
    args = parser.parse_args()
    if not (0 < args.seconds <= 120 and 0 <= args.warmup <= 30 and 1 <= args.rounds <= 10 and 1 <= args.clients <= 256):
        parser.error("keep --seconds in (0, 120], --warmup in [0, 30], --rounds in [1, 10], --clients in [1, 256]")
    if not 0 <= args.wait_quiet <= 600:
        parser.error("keep --wait-quiet in [0, 600]")

    print(_header(args))
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        slack = FakeSlack().start()
        stack.callback(slack.stop)
        twilio = FakeTwilio(account_sid=harness.TWILIO_ACCOUNT_SID, auth_token=harness.TWILIO_AUTH_TOKEN).start()
        stack.callback(twilio.stop)
        env = harness.usage_bot_env(
            slack_api_url=slack.api_url,
            twilio_api_url=twilio.url,
            database_url=f"sqlite:///{tmpdir}/bench.db",
        )
        body = slash_command("help", slack.response_url("ack-bench"))
        signed_at = time.time()
        headers = sign(body)

        bot = stack.enter_context(harness.gunicorn(harness.USAGE_BOT_APP, env, log_dir=tmpdir))
        bare = stack.enter_context(harness.gunicorn(harness.BARE_APP, env, log_dir=tmpdir))
        for server, needle in ((bot, HELP_NEEDLE), (bare, BARE_NEEDLE)):
            status, answer, seconds = harness.request_once(server.port, "POST", "/slack/events", body, headers)
            print(f"sanity {server.app:<20} HTTP {status}, {len(answer):,} bytes, {seconds * 1000:.1f} ms (cold)")
            if status != 200 or needle not in answer:
                print(f"unexpected answer: {answer[:300]!r}\n{server.log_tail()}", file=sys.stderr)
                return 2

        results: dict[str, list[harness.LoadResult]] = {"usage-bot": [], "bare Flask": []}
        for round_no in range(1, args.rounds + 1):
            for label, server, needle in (("usage-bot", bot, HELP_NEEDLE), ("bare Flask", bare, BARE_NEEDLE)):
                if args.wait_quiet > 0:
                    busy = harness.wait_for_quiet(args.wait_quiet)
                    if busy is not None and busy >= 0.2:
                        print(f"  note: the machine is still busy ({busy:.1f} cores) before the {label} run")
                if time.time() - signed_at + args.warmup + args.seconds > SIGNATURE_WINDOW - 30:
                    signed_at, headers = time.time(), sign(body)
                spec = harness.LoadSpec(server.port, "/slack/events", body, headers, check=harness.ExpectBody(needle))
                result = harness.run_load(
                    spec,
                    label=label if args.rounds == 1 else f"{label} #{round_no}",
                    clients=args.clients,
                    processes=args.processes,
                    warmup=args.warmup,
                    seconds=args.seconds,
                    server_cpu=server.cpu_seconds,
                )
                results[label].append(result)
                for sample in result.error_samples:
                    print(f"  {label} error: {sample}")
        print()
        print(harness.format_results([r for pair in zip(*results.values(), strict=True) for r in pair]))
        print(harness.RESULTS_LEGEND)
        print(f"machine after the runs: {harness.load_average()}")
        return _judge(results["usage-bot"], results["bare Flask"])


def _judge(bot: list[harness.LoadResult], bare: list[harness.LoadResult]) -> int:
    ratios = [b.rps / a.rps for b, a in zip(bot, bare, strict=True)]
    ratio = harness.median(ratios)
    p99 = harness.median([r.ms(99) for r in bot])
    errors = sum(r.errors for r in bot) + sum(r.errors for r in bare)
    several = len(bot) > 1
    what = "median of rounds " if several else ""
    print()
    if several:
        print("ratios per round: " + ", ".join(f"{x:.2f}" for x in ratios))
    print(
        f"throughput usage-bot/bare ({what}{harness.median([r.rps for r in bot]):,.0f} / "
        f"{harness.median([r.rps for r in bare]):,.0f} req/s): {ratio:.2f}  "
        f"target >= {TARGET_RATIO}  {harness.verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"usage-bot p99 ack latency ({what.strip() or 'one run'}): {p99:.1f} ms  target <= {TARGET_P99_MS:.0f} ms  "
        f"{harness.verdict(p99 <= TARGET_P99_MS)}"
    )
    print(f"errors (non-200 or wrong body, both servers): {errors}  {harness.verdict(errors == 0)}")
    cost = harness.median([_cpu_per_request(a) / _cpu_per_request(b) for b, a in zip(bot, bare, strict=True)])
    print(
        f"(for noisy machines: CPU per request, bare/usage-bot, server + load clients = {cost:.2f}; "
        "on a saturated 2-core box the throughput ratio tends to this)"
    )
    passed = ratio >= TARGET_RATIO and p99 <= TARGET_P99_MS and errors == 0
    return 0 if passed else 1


def _cpu_per_request(result: harness.LoadResult) -> float:
    return ((result.server_cpu or 0.0) + result.client_cpu) / max(1, result.requests)


def _header(args: argparse.Namespace) -> str:
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    threads = os.environ.get("GUNICORN_THREADS", "16")
    return "\n".join(
        [
            f"ack throughput — {date.today().isoformat()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            f"servers: gunicorn {' '.join(harness.gunicorn_command('<app>')[1:])} "
            f"(gthread, {workers} workers x {threads} threads) with <app> = app:app | bench.bare_app:app",
            f"load: {args.clients} keep-alive clients over {args.processes} processes, signed `/usage help`, "
            f"{args.warmup:g} s warm-up + {args.seconds:g} s measured, {args.rounds} round(s)",
            f"machine before the runs: {harness.load_average()}",
        ]
    )


if __name__ == "__main__":
    harness.run_script(main)
