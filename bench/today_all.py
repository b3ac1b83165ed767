"""`/usage today all` on a 1,000-category account: Twilio requests per answer, and time to answer.

    PYTHONPATH=. .venv/bin/python bench/today_all.py [--repeat 5] [--categories 1000]

Starts a FakeTwilio holding `--categories` usage records for every period (`add_categories`), a
FakeSlack, and usage-bot as `gunicorn -c gunicorn.conf.py app:app` (the Procfile's web command).
Each repetition sends one signed `/usage today all` whose `response_url` points at the FakeSlack,
and measures: the ack latency (the HTTP answer to the slash command), the time from sending the
command until the answer reaches the response_url (FakeSlack's receive timestamp), and the
number of requests to `/Usage/Records` the FakeTwilio received for it. Targets:
1 Twilio request per answer, answered in < 3 s.
"""

from __future__ import annotations

import argparse
import json
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
from tests.fakes.twilio import FakeTwilio, RecordedRequest
from tests.slack_requests import sign, slash_command

TARGET_TWILIO_REQUESTS = 1
TARGET_ANSWER_S = 3.0
ANSWER_TIMEOUT = 15.0  # seconds to wait for the response_url call before calling it a failure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="commands to send, one after the other (default 5)")
    parser.add_argument("--categories", type=int, default=1000, help="records per period on the account")
    args = parser.parse_args()
    if not (1 <= args.repeat <= 50 and 1 <= args.categories <= 10_000):
        parser.error("keep --repeat in [1, 50] and --categories in [1, 10000]")

    print(
        f"/usage today all — {date.today().isoformat()}, Python {platform.python_version()}, "
        f"{args.categories:,}-category account, {args.repeat} commands\n"
        f"server: gunicorn {' '.join(common.gunicorn_command(common.USAGE_BOT_APP)[1:])}\n"
        f"machine: {os.cpu_count()} CPUs, {common.load_average()}"
    )
    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp, ExitStack() as stack:
        tmpdir = Path(tmp)
        slack = FakeSlack().start()
        stack.callback(slack.stop)
        twilio = FakeTwilio(account_sid=common.TWILIO_ACCOUNT_SID, auth_token=common.TWILIO_AUTH_TOKEN).start()
        stack.callback(twilio.stop)
        twilio.add_categories(args.categories)
        env = common.usage_bot_env(
            slack_api_url=slack.api_url, twilio_api_url=twilio.url, database_url=f"sqlite:///{tmpdir}/bench.db"
        )
        bot = stack.enter_context(common.gunicorn(common.USAGE_BOT_APP, env, log_dir=tmpdir))

        rows, answers, acks, counts, problems = [], [], [], [], []
        for i in range(1, args.repeat + 1):
            key = f"bench-{i}"
            twilio.reset_requests()
            body = slash_command("today all", slack.response_url(key))
            headers = sign(body)
            sent = time.time()
            status, ack_body, ack_s = common.request_once(bot.port, "POST", "/slack/events", body, headers)
            if status != 200:
                problems.append(f"#{i}: ack HTTP {status} {ack_body[:200]!r}")
                continue
            try:
                answer = slack.wait_for_response(key, timeout=ANSWER_TIMEOUT)[0]
            except AssertionError:
                problems.append(f"#{i}: no answer at the response_url within {ANSWER_TIMEOUT:.0f} s")
                continue
            arrived = slack.calls_to(f"response:{key}")[0].at
            time.sleep(0.2)  # let any straggling Twilio request (a second page, a retry) be recorded
            twilio_requests = [r for r in list(twilio.requests) if "/Usage/Records" in r.path]
            text = json.dumps(answer)
            if ":warning:" in text or not answer.get("blocks"):
                problems.append(f"#{i}: the answer looks like an error: {text[:300]}")
            answer_s = arrived - sent
            answers.append(answer_s)
            acks.append(ack_s)
            counts.append(len(twilio_requests))
            rows.append(
                [
                    f"#{i}",
                    f"{ack_s * 1000:.1f}",
                    f"{answer_s * 1000:.0f}",
                    len(twilio_requests),
                    ", ".join(sorted({_describe(r) for r in twilio_requests})),
                    len(answer.get("blocks") or []),
                    f"{len(text):,}",
                ]
            )
        if answers:
            rows.append(
                [
                    "median",
                    f"{common.median(acks) * 1000:.1f}",
                    f"{common.median(answers) * 1000:.0f}",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        print()
        headers_row = ["run", "ack ms", "answered ms", "Twilio reqs", "Twilio request", "blocks", "answer JSON chars"]
        print(common.format_table(headers_row, rows))
        for problem in problems:
            print(f"problem: {problem}")
        print()
        one_request = bool(counts) and all(c == TARGET_TWILIO_REQUESTS for c in counts)
        fast = bool(answers) and max(answers) < TARGET_ANSWER_S and len(answers) == args.repeat
        print(
            f"Twilio requests per answer: {sorted(set(counts))}  target {TARGET_TWILIO_REQUESTS}  "
            f"{common.verdict(one_request)}"
        )
        if answers:
            print(
                f"answered in: median {common.median(answers):.3f} s, max {max(answers):.3f} s  "
                f"target < {TARGET_ANSWER_S:.0f} s  {common.verdict(fast)}"
            )
        if problems:
            print(bot.log_tail(), file=sys.stderr)
        return 0 if one_request and fast and not problems else 1


def _describe(request: RecordedRequest) -> str:
    """`GET Usage/Records/Today.json?PageSize=1000` for a recorded request."""
    path = request.path
    short = path[path.index("/Usage/") + 1 :] if "/Usage/" in path else path
    params = "&".join(f"{k}={v}" for k, v in sorted(request.query.items()))
    return f"{request.method} {short}" + (f"?{params}" if params else "")


if __name__ == "__main__":
    common.run_script(main)
