"""Signed `/usage help` acknowledgements per second and their latency, usage-bot vs bare Flask, on wrk.

    .venv/bin/python bench/ack_throughput.py [--seconds 10] [--rounds 3] [--check body|status|none]

Starts a FakeSlack and a FakeTwilio (tests/fakes), then usage-bot and the bare baseline
(bench/bare_app.py), each as `gunicorn -c gunicorn.conf.py <app>` (the Procfile's web command).
`wrk -t2 -c16` sends the same signed `/usage help` slash command back to back (signed just before
each run: a run lasts seconds, well inside Slack's 5-minute window): a 2 s warm-up, then
`--seconds` measured. The two servers are loaded alternately, `--rounds` times; the medians are
judged. Targets: throughput ratio usage-bot/bare >= 0.65, usage-bot p99 <= 25 ms.

Every response is checked by wrk's Lua response() hook: HTTP 200 and, with `--check body` (the
default), a body containing `/usage` (usage-bot's help) or `"ok"` (bare). `--check status` checks
200 only, `--check none` leaves the hook out (then only wrk's count of status >= 400 is checked).
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

from bench import common
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.slack_requests import sign, slash_command

TARGET_RATIO = 0.65
TARGET_P99_MS = 25.0
HELP_NEEDLE = "/usage"  # the help text names the command
BARE_NEEDLE = '"ok"'
PATH = "/slack/events"
WARMUP_SECONDS = 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternate usage-bot/bare runs this many times (3)")
    parser.add_argument("--check", choices=("body", "status", "none"), default="body", help="response check (body)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other jobs to leave the CPUs (default 30)",
    )
    args = parser.parse_args()
    if not (1 <= args.seconds <= 120 and 1 <= args.rounds <= 10 and 0 <= args.wait_quiet <= 600):
        parser.error("keep --seconds in [1, 120], --rounds in [1, 10], --wait-quiet in [0, 600]")
    common.wrk_path()
    check = "" if args.check == "none" else args.check

    print(_header(args))
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        slack = FakeSlack().start()
        stack.callback(slack.stop)
        twilio = FakeTwilio(account_sid=common.TWILIO_ACCOUNT_SID, auth_token=common.TWILIO_AUTH_TOKEN).start()
        stack.callback(twilio.stop)
        env = common.usage_bot_env(
            slack_api_url=slack.api_url, twilio_api_url=twilio.url, database_url=f"sqlite:///{tmpdir}/bench.db"
        )
        body = slash_command("help", slack.response_url("ack-bench"))
        requests_file = tmpdir / "help.requests"

        bot = stack.enter_context(common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmpdir))
        bare = stack.enter_context(common.gunicorn(common.BARE_APP, env, log_dir=tmpdir))
        servers = (("usage-bot", bot, HELP_NEEDLE), ("bare Flask", bare, BARE_NEEDLE))
        for _, server, needle in servers:
            status, answer, seconds = common.request_once(server.port, "POST", PATH, body, sign(body))
            print(f"sanity {server.app:<20} HTTP {status}, {len(answer):,} bytes, {seconds * 1000:.1f} ms (cold)")
            if status != 200 or needle.encode() not in answer:
                print(f"unexpected answer: {answer[:300]!r}\n{server.log_tail()}", file=sys.stderr)
                return 2

        results: dict[str, list[common.WrkRun]] = {"usage-bot": [], "bare Flask": []}
        for round_no in range(1, args.rounds + 1):
            for label, server, needle in servers:
                if args.wait_quiet > 0:
                    busy = common.wait_for_quiet(args.wait_quiet)
                    if busy is not None and busy >= 0.2:
                        print(f"  note: the machine is still busy ({busy:.1f} cores) before the {label} run")
                # Signed now: the warm-up and the run end well inside Slack's 5-minute window.
                common.write_requests(requests_file, [(PATH, sign(body), body)])
                run = dict(server=server, path=PATH, requests_file=requests_file, check=check, needle=needle)
                common.run_wrk(**run, label="warm-up", seconds=WARMUP_SECONDS)
                result = common.run_wrk(**run, label=f"{label} #{round_no}", seconds=args.seconds)
                results[label].append(result)
                for sample in result.extra.get("bad_samples", []) if result.extra else []:
                    print(f"  {label} bad response: {sample}")
        print()
        print(common.format_runs([r for pair in zip(*results.values(), strict=True) for r in pair]))
        print(common.RESULTS_LEGEND)
        print(f"usage-bot workers after the runs: {common.report_memory(bot)}")
        return _judge(results["usage-bot"], results["bare Flask"], args.check)


def _judge(bot: list[common.WrkRun], bare: list[common.WrkRun], check: str) -> int:
    ratios = [b.rps / a.rps for b, a in zip(bot, bare, strict=True)]
    ratio = common.median(ratios)
    p99 = common.median([r.ms("p99") for r in bot])
    errors = sum(r.errors for r in bot) + sum(r.errors for r in bare)
    print()
    print("ratios per round: " + ", ".join(f"{x:.2f}" for x in ratios))
    print("usage-bot p99 per round: " + ", ".join(f"{r.ms('p99'):.1f} ms" for r in bot))
    print(
        f"throughput usage-bot/bare (median of rounds {common.median([r.rps for r in bot]):,.0f} / "
        f"{common.median([r.rps for r in bare]):,.0f} req/s): {ratio:.2f}  "
        f"target >= {TARGET_RATIO}  {common.verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"usage-bot p99 ack latency (median of rounds): {p99:.1f} ms  target <= {TARGET_P99_MS:.0f} ms  "
        f"{common.verdict(p99 <= TARGET_P99_MS)}"
    )
    what = {"body": "non-200, wrong body", "status": "non-200", "none": "status >= 400"}[check]
    print(f"errors ({what} or socket errors, both servers): {errors}  {common.verdict(errors == 0)}")
    passed = ratio >= TARGET_RATIO and p99 <= TARGET_P99_MS and errors == 0
    return 0 if passed else 1


def _header(args: argparse.Namespace) -> str:
    workers = os.environ.get("WEB_CONCURRENCY", "2")
    threads = os.environ.get("GUNICORN_THREADS", "16")
    return "\n".join(
        [
            f"ack throughput — {date.today().isoformat()} {time.strftime('%H:%M:%S')}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            f"servers: gunicorn {' '.join(common.gunicorn_command('<app>')[1:])} "
            f"(gthread, {workers} workers x {threads} threads) with <app> = app:app | bench.bare_app:app",
            f"load: wrk -t2 -c16, signed `/usage help`, {WARMUP_SECONDS} s warm-up + {args.seconds} s measured, "
            f"{args.rounds} round(s), response check: {args.check}",
            f"machine before the runs: {common.load_average()}",
        ]
    )


if __name__ == "__main__":
    common.run_script(main)
