"""Where a `/usage help` ack spends its CPU: in-process, single thread, no gunicorn, no network.

    PYTHONPATH=. .venv/bin/python bench/profile_ack.py [--requests 3000] [--cprofile 25]

Calls the WSGI apps (usage-bot built by `create_app` against idle fakes, and bench/bare_app.py)
directly with a signed `/usage help` request and prints microseconds per request, then the cost of
each stage of usage-bot's path on its own. `--cprofile N` adds cProfile's top N by cumulative time
(cProfile roughly triples the times; read its proportions, not its absolute figures).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from werkzeug.test import EnvironBuilder

from app import build_bolt, create_app
from bench import common
from bench.bare_app import app as bare_app
from bot.clock import system_clock
from bot.commands.forms import USAGE_LINES
from bot.commands.grammar import parse_command
from bot.commands.help import render_help
from bot.config import Settings
from handlers.slack_http import _bolt_request, parse_slack_body, verify_slack_signature
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.slack_requests import SIGNING_SECRET, sign, slash_command

FORM = "application/x-www-form-urlencoded"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="calls per measurement (default 3000)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also print cProfile's top N")
    args = parser.parse_args()
    if not 100 <= args.requests <= 100_000 or not 0 <= args.cprofile <= 200:
        parser.error("keep --requests in [100, 100000] and --cprofile in [0, 200]")

    with tempfile.TemporaryDirectory(prefix="usage-bot-bench-") as tmp, FakeSlack() as slack, FakeTwilio() as twilio:
        settings = Settings(
            slack_bot_token=VALID_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            twilio_account_sid=twilio.account_sid,
            twilio_auth_token=twilio.auth_token,
            database_url=f"sqlite:///{tmp}/bench.db",
            slack_api_url=slack.api_url,
            twilio_api_url=twilio.url,
            delivery_in_web=False,
        )
        bot_app = create_app(settings)
        body = slash_command("help", slack.response_url("profile"))
        headers = sign(body)
        environ = EnvironBuilder(path="/slack/events", method="POST", data=body, headers=headers).get_environ()

        def call(app: Any) -> bytes:
            env = dict(environ, **{"wsgi.input": io.BytesIO(body)})
            status: list[str] = []
            chunks = app(env, lambda s, h, exc=None: status.append(s))
            data = b"".join(chunks)
            getattr(chunks, "close", lambda: None)()
            if not status or not status[0].startswith("200"):
                raise RuntimeError(f"unexpected answer {status} {data[:200]!r}")
            return data

        if b"/usage" not in call(bot_app):
            raise RuntimeError("usage-bot's answer has no help text")

        # The same Bolt app create_app builds, to time dispatch on its own.
        parts = bot_app.extensions["usage_bot"]
        bolt = build_bolt(settings, parts["store"], parts["usage"], parts["bot"], parts["executor"], system_clock)
        parsed = parse_slack_body(body, FORM)
        assert parsed is not None
        help_message = render_help(USAGE_LINES)

        build_bolt_request = functools.partial(_bolt_request, body, parsed, "", headers)
        prepared = [build_bolt_request() for _ in range(args.requests)]

        def dispatch_prepared() -> None:
            bolt.dispatch(prepared.pop())

        stages: list[tuple[str, Callable[[], object]]] = [
            ("usage-bot: whole WSGI call", lambda: call(bot_app)),
            ("bare Flask: whole WSGI call", lambda: call(bare_app)),
            ("  verify_slack_signature", lambda: verify_slack_signature(SIGNING_SECRET, body, headers)),
            ("  parse_slack_body", lambda: parse_slack_body(body, FORM)),
            ("  _bolt_request (BoltRequest + build_context)", build_bolt_request),
            ("  App.dispatch (Bolt, listener, ack)", dispatch_prepared),
            ("    parse_command('help')", lambda: parse_command("help")),
            ("    render_help(USAGE_LINES)", lambda: render_help(USAGE_LINES)),
            ("    json.dumps(help.to_slack())", lambda: json.dumps(help_message.to_slack())),
        ]
        rows: list[list[str]] = []
        timings: dict[str, float] = {}
        for name, fn in stages:
            for _ in range(min(200, args.requests // 10)):
                if fn is not dispatch_prepared:
                    fn()
            seconds = timeit.timeit(fn, number=args.requests)
            timings[name.strip()] = seconds / args.requests * 1e6
            rows.append([name, f"{timings[name.strip()]:.1f}"])
        print(f"in-process, 1 thread, {args.requests:,} calls each; help answer {len(call(bot_app)):,} bytes")
        print(common.format_table(["stage", "us/request"], rows))
        bolt_own = (
            timings["App.dispatch (Bolt, listener, ack)"]
            - timings["render_help(USAGE_LINES)"]
            - timings["json.dumps(help.to_slack())"]
            - timings["parse_command('help')"]
        )
        extra = timings["usage-bot: whole WSGI call"] - timings["bare Flask: whole WSGI call"]
        stages_sum = sum(timings[name] for name in list(timings)[2:6])
        remainder = timings["usage-bot: whole WSGI call"] - timings["bare Flask: whole WSGI call"] - stages_sum
        print(f"usage-bot - bare: {extra:.1f} us/request; Bolt's own machinery in dispatch: {bolt_own:.1f} us;")
        print(
            f"the rest, {remainder:.1f} us, is the WSGI endpoint's own glue (reading the body, the headers "
            "from the environ, Bolt's response into WSGI) less the Flask the bare app runs and usage-bot skips"
        )

        if args.cprofile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.requests):
                call(bot_app)
            profiler.disable()
            print()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
