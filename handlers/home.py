"""The App Home tab: `app_home_opened` and the Refresh button publish the user's Home view.

The event is acknowledged at once and the view is built and published afterwards, on the answer
pool (https://api.slack.com/apis/events-api#responding: Slack wants a 200 within 3 seconds and
retries otherwise, saying so in `X-Slack-Retry-Num`). A retried event is recognised by its
`event_id` and published once. A view Slack refuses, or a Home that could not be built, is
replaced by a short note: the tab is never left blank.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.commands.answer import UsageBot
from bot.commands.handled import request_key
from bot.home.dashboard import HomeDashboard
from bot.home.render import REFRESH
from bot.render.blocks import context_block, header_block, section_block
from handlers.slash_command import first_time

log = logging.getLogger(__name__)

PROBLEM_NOTE = ":warning: Home could not be shown in full just now ({why}). Press Refresh, or use `/usage today`."


def register(app: App, bot: UsageBot, home: HomeDashboard, executor: Executor) -> None:
    @app.event("app_home_opened")
    def home_opened(ack: Ack, event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        ack()
        if event.get("tab") != "home":
            return  # the Messages tab
        user = str(event.get("user") or "")
        event_id = str(body.get("event_id") or "")
        # Slack's retries of an event carry the same event_id: publish once.
        if event_id and not first_time(bot, request_key(f"event:{event_id}".encode())):
            log.info("app_home_opened %s came again (a retry); already published", event_id)
            return
        if user:
            executor.submit(publish, client, home, user)

    @app.action(REFRESH)
    def refresh(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user = str((body.get("user") or {}).get("id") or "")
        if user:
            executor.submit(publish, client, home, user)


def publish(client: WebClient, home: HomeDashboard, user_id: str) -> None:
    """Build and publish `user_id`'s Home; on any failure, publish a short note instead."""
    try:
        view = home.view(user_id)
    except Exception as exc:
        log.exception("Home could not be built")
        view = problem_view(type(exc).__name__)
    try:
        client.views_publish(user_id=user_id, view=view)
        return
    except SlackApiError as exc:
        error = str(exc.response.get("error", "")) or f"HTTP {exc.response.status_code}"
        log.warning("views.publish refused the Home view (%s); publishing a note instead", error)
    except Exception as exc:
        log.warning("views.publish failed (%s); publishing a note instead", type(exc).__name__)
        error = "Slack did not answer"
    try:
        client.views_publish(user_id=user_id, view=problem_view(error))
    except Exception as exc:
        log.warning("could not publish the Home note either (%s)", type(exc).__name__)


def problem_view(why: str) -> dict[str, Any]:
    """A Home that says what went wrong, in a few words."""
    return {
        "type": "home",
        "callback_id": "usage_home",
        "blocks": [
            header_block("Twilio usage"),
            section_block(PROBLEM_NOTE.format(why=why[:100])),
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Refresh"}, "action_id": REFRESH}
                ],
            },
            context_block("Alerts keep being delivered to their channels meanwhile."),
        ],
    }
