"""Builds the Bolt app and wires the listener groups."""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.commands.answer import UsageBot
from bot.home.dashboard import HomeDashboard
from bot.slack import SlackPoster
from handlers import buttons, home, modals, slash_command

HOME_THREADS = 4


def build_bolt_app(
    *,
    bot_token: str,
    signing_secret: str,
    slack_api_url: str,
    bot: UsageBot,
    executor: Executor,
    dashboard: HomeDashboard,
    poster: SlackPoster,
) -> App:
    """A single-workspace Bolt app whose acknowledgements never wait on the network."""

    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        # A static answer instead of Bolt's default auth.test round trip: acks stay fast,
        # and a Slack outage cannot turn into "please install this app".
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=bot_token)

    app = App(
        client=WebClient(base_url=slack_api_url),
        signing_secret=signing_secret,
        authorize=authorize,
        # handlers/slack_http.py verifies every request before dispatching it (see its docstring).
        request_verification_enabled=False,
        # Run listeners in the request thread: no 10 ms ack polling, no 5-thread pool to queue on.
        # Slow work goes to `executor` after ack (handlers/slash_command.py).
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    slash_command.register(app, bot, executor, open_form=modals.open_from_slash)
    buttons.register(app, bot, executor)
    # Home views wait on one Twilio fetch a minute; their own few threads mean a slow Twilio can
    # hold up Home tabs, never the answers to /usage.
    home.register(app, bot, dashboard, ThreadPoolExecutor(max_workers=HOME_THREADS, thread_name_prefix="usage-home"))
    modals.register(app, bot, dashboard, poster, executor)
    return app
