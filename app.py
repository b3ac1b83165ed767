"""Composition root: builds the Flask app (with Bolt inside) from explicit settings.

`gunicorn app:app` serves it; `python app.py` runs it locally on $PORT (default 3000).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
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
from handlers.slack_http import slack_blueprint
from handlers.twilio_callbacks import twilio_blueprint

# Slack and Twilio bodies are small; anything bigger is refused with 413 before it is read.
MAX_BODY_BYTES = 64 * 1024
# Threads that answer /usage after the ack; each mostly waits on Twilio.
ANSWER_THREADS = 32


def create_app(
    settings: Settings,
    *,
    usage_client: UsageClient | None = None,
    store: Store | None = None,
    clock: Clock = system_clock,
) -> Flask:
    """Build the whole app. Tests build as many as they like, each with its own settings."""
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

    relay = AlertRelay.from_settings(store, settings, clock=clock)
    executor = ThreadPoolExecutor(max_workers=ANSWER_THREADS, thread_name_prefix="usage-answer")
    bolt = build_bolt(settings, store, usage, bot, executor, clock)

    flask_app = Flask(__name__)
    flask_app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    flask_app.register_blueprint(slack_blueprint(bolt, settings.slack_signing_secret))
    flask_app.register_blueprint(
        twilio_blueprint(
            AlertWriter(store, fallback_channel=settings.alert_channel, clock=clock),
            auth_token=settings.twilio_auth_token,
            public_url=settings.public_url,
            on_stored=relay.wake.set,
        )
    )
    flask_app.register_blueprint(health_blueprint(store))
    stop_relay = relay.start() if settings.delivery_in_web else None
    flask_app.extensions["usage_bot"] = {
        "store": store,
        "bot": bot,
        "executor": executor,
        "usage": usage,
        "relay": relay,
        "stop_relay": stop_relay,
    }
    return flask_app


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
