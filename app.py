"""Composition root: builds the Flask app (with Bolt inside) from explicit settings.

`gunicorn app:app` serves it; `python app.py` runs it locally on $PORT (default 3000).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flask import Flask
from slack_bolt import App

from bot.alerts.receive import AlertWriter
from bot.alerts.relay import AlertRelay
from bot.clock import Clock, system_clock
from bot.commands.answer import UsageBot
from bot.config import ConfigError, Settings, configure_logging
from bot.home.dashboard import HomeDashboard
from bot.home.snapshot import HomeCache
from bot.slack import SlackPoster
from bot.store import Store
from bot.usage.client import UsageClient
from handlers.health import health_blueprint
from handlers.slack_app import build_bolt_app
from handlers.slack_http import SlackEndpoint
from handlers.socket_mode import UsageSocketModeHandler, socket_mode_handler
from handlers.twilio_callbacks import CallbackEndpoint

# Slack and Twilio bodies are small; anything bigger is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024
# Threads that answer /usage after the ack; each mostly waits on Twilio.
ANSWER_THREADS = 32
# What gunicorn.conf.py starts beside the web workers to deliver alerts (handlers/relay_process.py);
# an app module without it (e.g. the benchmarks' bare app) gets no relay process.
RELAY_PROCESS_COMMAND = (sys.executable, "-m", "bot", "worker", "--exit-with-parent")
# What it starts beside them on SQLite to store every worker's callbacks (bot/alerts/single_writer.py),
# followed by the socket's path.
INTAKE_WRITER_COMMAND = (sys.executable, "-m", "bot", "intake-writer", "--exit-with-parent")
# Socket Mode needs no signing secret (nothing comes over HTTP) but an app-level token.
SOCKET_MODE_REQUIRED = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")


@dataclass
class Core:
    """What every way of serving Slack shares: the store, Twilio, the bot and the Bolt app."""

    store: Store
    usage: UsageClient
    bot: UsageBot
    executor: ThreadPoolExecutor
    bolt: App


def build_core(
    settings: Settings, *, usage_client: UsageClient | None = None, store: Store | None = None, clock: Clock
) -> Core:
    store = store or Store.connect(settings.database_url)
    store.migrate()
    usage = usage_client or UsageClient.from_settings(settings)
    bot = UsageBot(
        usage,
        store=store,
        public_url=settings.public_url,
        admins=settings.usage_admins,
        timezone=settings.usage_timezone,
        clock=clock,
    )
    executor = ThreadPoolExecutor(max_workers=ANSWER_THREADS, thread_name_prefix="usage-answer")
    return Core(store, usage, bot, executor, build_bolt(settings, store, usage, bot, executor, clock))


def create_app(
    settings: Settings,
    *,
    usage_client: UsageClient | None = None,
    store: Store | None = None,
    clock: Clock = system_clock,
) -> Flask:
    """Build the whole app. Tests build as many as they like, each with its own settings."""
    core = build_core(settings, usage_client=usage_client, store=store, clock=clock)
    store = core.store
    relay = AlertRelay.from_settings(store, settings, clock=clock)

    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    flask_app.register_blueprint(health_blueprint(store))
    flask_app.wsgi_app = CallbackEndpoint(  # type: ignore[method-assign]
        SlackEndpoint(flask_app.wsgi_app, core.bolt, settings.slack_signing_secret, max_body=MAX_BODY_BYTES),
        AlertWriter(
            store,
            fallback_channel=settings.alert_channel,
            clock=clock,
            single_writer=settings.intake_writer_socket if store.is_sqlite else "",
        ),
        auth_token=settings.twilio_auth_token,
        public_url=settings.public_url,
        on_stored=relay.wake.set,
        max_body=MAX_BODY_BYTES,
    )
    stop_relay = relay.start() if settings.delivery_in_web else None
    flask_app.extensions["usage_bot"] = {
        "store": store,
        "bot": core.bot,
        "executor": core.executor,
        "usage": core.usage,
        "relay": relay,
        "stop_relay": stop_relay,
    }
    return flask_app


def create_socket_mode(
    settings: Settings,
    *,
    usage_client: UsageClient | None = None,
    store: Store | None = None,
    clock: Clock = system_clock,
) -> tuple[UsageSocketModeHandler, Core]:
    """The same listeners over Socket Mode (SLACK_APP_TOKEN): no public URL needed for Slack.
    Twilio's callbacks still need the web app at PUBLIC_URL; alerts are delivered by it or by
    `python -m bot worker`."""
    core = build_core(settings, usage_client=usage_client, store=store, clock=clock)
    handler = socket_mode_handler(core.bolt, app_token=settings.slack_app_token, slack_api_url=settings.slack_api_url)
    return handler, core


def run_socket_mode() -> int:
    """`python -m bot socket`: connect over Socket Mode and serve until SIGTERM/SIGINT."""
    configure_logging()
    try:
        settings = Settings.from_env(required=SOCKET_MODE_REQUIRED)
        handler, core = create_socket_mode(settings)
    except (ConfigError, ValueError) as exc:
        print(f"usage-bot: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    handler.connect()
    logging.getLogger("usage-bot").info("connected to Slack over Socket Mode")
    stop.wait()
    handler.close()
    core.executor.shutdown(wait=True)
    return 0


def build_bolt(
    settings: Settings, store: Store, usage: UsageClient, bot: UsageBot, executor: ThreadPoolExecutor, clock: Clock
) -> App:
    """The Bolt app with every listener: served over HTTP here, or over Socket Mode (handlers/socket_mode.py)."""
    dashboard = HomeDashboard(store, HomeCache(store, usage, clock), clock, timezone=settings.usage_timezone)
    return build_bolt_app(
        bot_token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        slack_api_url=settings.slack_api_url,
        bot=bot,
        executor=executor,
        dashboard=dashboard,
        poster=SlackPoster.from_token(store, settings.slack_bot_token, settings.slack_api_url, clock=clock),
    )


def app_from_env() -> Flask:
    """The app as configured by the environment / `.env`; exits with one line if misconfigured."""
    configure_logging()
    try:
        return create_app(Settings.from_env())
    except ConfigError as exc:
        print(f"usage-bot: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def __getattr__(name: str) -> Any:
    # `gunicorn app:app` looks up `app` here; building it lazily lets tests import
    # create_app without a configured environment.
    if name == "app":
        globals()["app"] = app_from_env()
        return globals()["app"]
    raise AttributeError(name)


if __name__ == "__main__":
    app_from_env().run(host="0.0.0.0", port=int(os.environ.get("PORT", "3000")))
