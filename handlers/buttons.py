"""Buttons: on alert messages (snooze, show usage, delete trigger) and in `/usage triggers`.

handlers/slack_http.py has checked the payload's shape (actions, user, channel, message are
what Slack sends) before a click reaches these listeners.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.alerts.buttons import ALERT_ACTION_PREFIX, TRIGGER_LIST_ACTION_PREFIX
from bot.commands.answer import Invoker, UsageBot
from handlers.slack_http import REQUEST_KEY
from handlers.slash_command import first_time

log = logging.getLogger(__name__)


def register(app: App, bot: UsageBot, executor: Executor) -> None:
    @app.action(re.compile("^" + re.escape(ALERT_ACTION_PREFIX)))
    def alert_button(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        ack()
        if _again(bot, context):
            return
        executor.submit(_guarded, _alert_clicked, bot, body, action, respond)

    @app.action(re.compile("^" + re.escape(TRIGGER_LIST_ACTION_PREFIX)))
    def trigger_list_button(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, context: BoltContext
    ) -> None:
        ack()
        if _again(bot, context):
            return
        executor.submit(_guarded, _trigger_list_clicked, bot, body, action, respond)


def _again(bot: UsageBot, context: BoltContext) -> bool:
    """Is this click a retry or a double submit of one already handled?"""
    key = context.get(REQUEST_KEY, "")
    if key and not first_time(bot, key):
        log.info("a button click already handled came again (retry or double submit); acknowledged only")
        return True
    return False


def _invoker(body: dict[str, Any]) -> Invoker:
    return Invoker(user_id=(body.get("user") or {}).get("id", ""), channel_id=(body.get("channel") or {}).get("id", ""))


def _alert_clicked(bot: UsageBot, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    message = body.get("message") or {}
    outcome = bot.act_on_alert(
        action.get("action_id", ""), action.get("value", ""), _invoker(body), message.get("blocks") or []
    )
    if outcome.blocks is not None:
        respond(replace_original=True, text=message.get("text", "Twilio usage alert"), blocks=outcome.blocks)
    if outcome.reply is not None:
        respond(replace_original=False, **outcome.reply.to_slack())


def _trigger_list_clicked(bot: UsageBot, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
    answer = bot.act_on_trigger_list(action.get("action_id", ""), action.get("value", ""), _invoker(body))
    # An error (not an admin, Twilio down) comes as a separate private note; the list stays.
    respond(replace_original=not answer.error, **answer.to_slack())


def _guarded(handler: Any, *args: Any) -> None:
    try:
        handler(*args)
    except Exception:
        log.exception("a button click could not be handled")
