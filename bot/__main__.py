"""Command line: `python -m bot usage today sms`, `python -m bot usage --sandbox this-month`, ...

The `usage` subcommand accepts exactly what `/usage` accepts in Slack and prints the same answer
as plain text.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.alerts.receive import write_alerts
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.alerts.single_writer import serve
from bot.clock import system_clock, utc_now
from bot.commands.answer import QueryBot
from bot.commands.grammar import parse_command
from bot.commands.types import ParseError
from bot.config import ConfigError, Settings, configure_logging
from bot.model import IncomingAlert
from bot.render.plain import render_plain
from bot.reports.scheduler import RunReport, run_due, run_loop
from bot.slack import SlackPoster
from bot.store import Store
from bot.usage.client import UsageClient
from bot.usage.sandbox import SampleAccount
from bot.watch.model import WatchSettings

TWILIO_REQUIRED = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="usage-bot operator commands")
    sub = parser.add_subparsers(dest="command", required=True)
    usage = sub.add_parser("usage", help="answer a /usage query in the terminal")
    usage.add_argument("--sandbox", action="store_true", help="use a built-in sample account (no credentials)")
    usage.add_argument("words", nargs="*", help="what you would type after /usage, e.g. today sms")
    sub.add_parser("migrate", help="create or upgrade the database schema (the Procfile's release step)")
    worker = sub.add_parser("worker", help="run the alert delivery loop as its own process")
    worker.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the process that started this one ends"
    )
    writer = sub.add_parser(
        "intake-writer", help="store the web workers' Twilio callbacks on SQLite (started by gunicorn.conf.py)"
    )
    writer.add_argument("socket", help="the Unix socket to listen on")
    writer.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the process that started this one ends"
    )
    scheduled = sub.add_parser(
        "scheduled",
        aliases=["digests"],
        help="run every scheduled job once: digests and budget warnings due, the spend-spike watch, pruning",
    )
    scheduled.add_argument(
        "--loop", type=float, metavar="SECONDS", help="keep running, one pass every SECONDS (a clock: process)"
    )
    sub.add_parser("socket", help="serve Slack over Socket Mode (SLACK_APP_TOKEN): no public URL needed for Slack")
    args = parser.parse_args(argv)

    if args.command == "usage":
        return run_usage(args.words, sandbox=args.sandbox)
    if args.command == "migrate":
        return run_migrate()
    if args.command == "worker":
        return run_worker(exit_with_parent=args.exit_with_parent)
    if args.command == "intake-writer":
        return run_intake_writer(args.socket, exit_with_parent=args.exit_with_parent)
    if args.command in ("scheduled", "digests"):  # `digests`: its name before the watch joined it
        return run_scheduled(args.loop)
    if args.command == "socket":
        # Socket Mode is a Slack adapter (handlers/socket_mode.py) composed in app.py, like the web
        # process; this one command reaches the composition root (an exception the import
        # contracts in pyproject.toml name).
        from app import run_socket_mode

        return int(run_socket_mode())
    return 2  # pragma: no cover - argparse rejects unknown commands first


def load_settings(required: Sequence[str]) -> Settings | None:
    """Settings from the environment, or None after one line on stderr saying what is missing."""
    try:
        return Settings.from_env(required=required)
    except ConfigError as exc:
        print(f"usage-bot: {exc}", file=sys.stderr)
        return None


def run_worker(*, exit_with_parent: bool = False) -> int:
    """Deliver alerts until SIGTERM/SIGINT (a PaaS `worker:` process), or, with `exit_with_parent`,
    until the process that started it is gone (the web command's relay: handlers/relay_process.py)."""
    parent = os.getppid()  # first thing: the parent may die while this process starts
    configure_logging()
    settings = load_settings(("SLACK_BOT_TOKEN",))
    if settings is None:
        return 1
    store = Store.connect(settings.database_url)
    store.migrate()
    default = DeliveryPolicy()
    relay = AlertRelay.from_settings(
        store, settings, policy=replace(default, poll_interval=default.own_process_poll_interval)
    )
    stop = _stop_on_signals(parent if exit_with_parent else None)
    logging.getLogger("bot.worker").info("alert delivery worker started")
    relay.run_forever(stop)
    return 0


def run_intake_writer(path: str, *, exit_with_parent: bool = False) -> int:
    """Store the web workers' callbacks, sent over the Unix socket `path`, until SIGTERM/SIGINT or,
    with `exit_with_parent`, until the web server is gone (bot/alerts/single_writer.py)."""
    parent = os.getppid()
    configure_logging()
    settings = load_settings(())
    if settings is None:
        return 1
    store = Store.connect(settings.database_url)
    store.migrate()
    stop = _stop_on_signals(parent if exit_with_parent else None)

    def write(batch: list[IncomingAlert]) -> list[bool | Exception]:
        return write_alerts(store, batch, fallback_channel=settings.alert_channel, received=system_clock())

    logging.getLogger("bot.intake").info("single writer listening on %s", path)
    serve(path, write, stop)
    return 0


def _stop_on_signals(parent: int | None) -> threading.Event:
    """An event set on SIGTERM/SIGINT and, given the parent's pid, when that parent is gone."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if parent is not None:
        threading.Thread(target=_stop_when_orphaned, args=(parent, stop), daemon=True).start()
    return stop


def _stop_when_orphaned(parent: int, stop: threading.Event) -> None:
    # When the parent dies, the process is handed to another (init): its parent pid changes.
    while not stop.wait(1.0):
        if os.getppid() != parent:
            logging.getLogger("bot").warning("the web server that started this process is gone; stopping")
            stop.set()


def run_scheduled(loop: float | None) -> int:
    """One scheduled pass (a scheduler job): due digests and budget warnings, the spend-spike
    watch, pruning; or one every `loop` seconds until SIGTERM/SIGINT (a `clock:` process). Any
    number may run at once."""
    configure_logging()
    settings = load_settings(("SLACK_BOT_TOKEN", *TWILIO_REQUIRED))
    if settings is None:
        return 1
    store = Store.connect(settings.database_url)
    store.migrate()
    usage = UsageClient.from_settings(settings)
    poster = SlackPoster.from_token(store, settings.slack_bot_token, settings.slack_api_url)
    tz = ZoneInfo(settings.usage_timezone)
    watch = WatchSettings(min_excess_price=settings.watch_min_excess)

    def one_pass() -> RunReport:
        return run_due(
            store,
            usage,
            poster,
            now=utc_now(system_clock),
            tz=tz,
            retention_days=settings.retention_days,
            watch_settings=watch,
        )

    if loop is None:
        print(f"usage-bot: {one_pass().summary()}")
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("bot.reports.scheduler").info("scheduled-jobs clock started: a pass every %g s", loop)
    run_loop(one_pass, max(loop, 1.0), stop)
    return 0


def run_migrate() -> int:
    """Create or upgrade the schema (`alembic upgrade head`, see bot/store/migrate.py); one line says what was done."""
    settings = load_settings(())
    if settings is None:
        return 1
    store = Store.connect(settings.database_url)
    try:
        print(f"usage-bot: {store.migrate()}")
    except ConfigError as exc:  # a database this release cannot upgrade: one line, no traceback
        print(f"usage-bot: {exc}", file=sys.stderr)
        return 1
    finally:
        store.dispose()
    return 0


def run_usage(words: Sequence[str], *, sandbox: bool) -> int:
    """Print the answer; exit 0 on an answer, 1 on a platform error, 2 on bad input."""
    if sandbox:
        bot = QueryBot(SampleAccount(), sample=True)
    else:
        try:
            settings = Settings.from_env(required=TWILIO_REQUIRED)
        except ConfigError as exc:
            print(f"usage-bot: {exc}\n(or try: python -m bot usage --sandbox {' '.join(words)})", file=sys.stderr)
            return 1
        bot = QueryBot(UsageClient.from_settings(settings))

    command = parse_command(" ".join(words), bot.today())
    message = bot.answer(command)
    print(render_plain(message))
    if isinstance(command, ParseError):
        return 2
    return 1 if message.error else 0


if __name__ == "__main__":
    sys.exit(main())
