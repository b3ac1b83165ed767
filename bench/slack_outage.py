"""Slack down, then rate-limiting everything: no post inside a Retry-After, every alert once.

    PYTHONPATH=. .venv/bin/python bench/slack_outage.py [--runs 10] [--down 15] [--limited 5]
        [--retry-after 1-3] [--alerts 100] [--channels 5] [--arrive-over 20] [--postgres URL]

Each run starts a FakeSlack and usage-bot exactly as the Procfile's web: line runs it (gunicorn -c
gunicorn.conf.py app:app, relay inside the web processes: the default) on a fresh database (a
SQLite file; with --postgres a PostgreSQL schema of its own, dropped after). Then the FakeSlack
answers every Web API call with 503 for `--down` seconds, then with 429 and a Retry-After (whole
seconds, drawn from `--retry-after`) for `--limited` seconds, then normally. Meanwhile `--alerts`
signed Twilio callbacks, spread round-robin over `--channels` channels, arrive evenly over the first
`--arrive-over` seconds (so some meet the outage, some the 429s).

Per run it prints: the 429s Slack answered; posts inside a Retry-After window (a message accepted
after a 429 was answered and before its Retry-After ran out: must be 0); calls inside a window
(any chat.postMessage that reached Slack in a window, including ones already on their way when the
429 was answered: shown, not judged); alerts posted (must be all); duplicates (alerts named in more
than one message: must be 0); and the time from the end of the 429s until the last alert was posted.
Exits 0 when every run passes.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from tests.databases import postgres_schema
from tests.fakes.slack import FakeSlack
from tests.servers import app_env, gunicorn_app, send_all, signed_callback, trigger_sid

SID = re.compile(r"UT[0-9a-f]{32}")


@contextmanager
def database(postgres: str, tmp: str, run: int) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{tmp}/outage-{run}.db"
        return
    with postgres_schema(postgres, "bench_") as (url, _):
        yield url


def one_run(args: argparse.Namespace, run: int, tmp: str) -> tuple[bool, bool]:
    """(passed, whether any call met a 429)."""
    low, high = (int(x) for x in args.retry_after.split("-"))
    with FakeSlack() as slack, database(args.postgres, tmp, run) as url:
        env = app_env(slack_api_url=slack.api_url, database_url=url)
        with gunicorn_app(env, log_dir=tmp) as port:
            normal_again = slack.misbehave((503, args.down), (429, args.limited), retry_after=(low, high))
            callbacks = [signed_callback(i, f"C{i % args.channels:08d}") for i in range(args.alerts)]
            answers: list[int] = []

            def arrive() -> None:
                gap = args.arrive_over / max(1, args.alerts)
                for i, callback in enumerate(callbacks):
                    time.sleep(max(0.0, normal_again - args.down - args.limited + i * gap - time.time()))
                    answers.extend(send_all(port, [callback], clients=1))

            sender = threading.Thread(target=arrive)
            sender.start()
            deadline = normal_again + args.timeout
            while time.time() < deadline:
                named = {sid for p in slack.posted for sid in SID.findall(str(p.blocks))}
                if len(named) >= args.alerts and not sender.is_alive():
                    break
                time.sleep(0.2)
            sender.join()
            time.sleep(2.0)  # a duplicate would show by now
    counts = Counter(sid for p in slack.posted for sid in set(SID.findall(str(p.blocks))))
    posted = sum(1 for i in range(args.alerts) if counts[trigger_sid(i)] >= 1)
    duplicates = sum(1 for i in range(args.alerts) if counts[trigger_sid(i)] > 1)
    last = max((p.at for p in slack.posted), default=float("nan"))
    inside = slack.posts_inside_rate_limits()
    calls_inside = slack.calls_inside_rate_limits()
    post_429s = sum(1 for r in slack.rate_limits if r.method == "chat.postMessage")
    ok = not inside and posted == args.alerts and duplicates == 0 and answers == [200] * args.alerts
    print(
        f"{run:>3} {len(slack.rate_limits):>5} {post_429s:>10} {len(inside):>13} {len(calls_inside):>13} "
        f"{posted:>7}/{args.alerts} {duplicates:>5} {last - normal_again:>12.1f}  {'PASS' if ok else 'FAIL'}"
    )
    for post, window in inside[:5]:
        print(f"    posted to {post.channel} at +{post.at - window.at:.3f} s into a {window.retry_after} s Retry-After")
    return ok, bool(slack.rate_limits)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--down", type=float, default=15.0)
    parser.add_argument("--limited", type=float, default=5.0)
    parser.add_argument("--retry-after", default="1-3")
    parser.add_argument("--alerts", type=int, default=100)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--arrive-over", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds after the 429s to wait for delivery")
    parser.add_argument("--postgres", default="")
    args = parser.parse_args()
    print(
        f"{args.runs} runs: {args.down:g} s of 503, then {args.limited:g} s of 429 (Retry-After {args.retry_after} s)"
        f" for every call; {args.alerts} alerts over {args.channels} channels arriving over {args.arrive_over:g} s;"
        f" {'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    print("run  429s  post 429s  posts inside  calls inside  posted   dups  last post after 429s end (s)")
    ok, met = True, 0
    with tempfile.TemporaryDirectory(prefix="usage-bot-outage-") as tmp:
        for run in range(1, args.runs + 1):
            passed, met_429 = one_run(args, run, tmp)
            ok &= passed
            met += met_429
    # The relay backs off while Slack is down (up to 2^n s, jittered), so whether it meets the 429s
    # at all varies from run to run; a run that met none says nothing about the pause.
    print(f"runs in which the relay met a 429 (any method; each pauses posting): {met} of {args.runs}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop gunicorn, drop the schema
    sys.exit(main())
