"""Buttons: on alert messages (snooze, show usage, delete trigger) and in `/usage triggers`."""

from __future__ import annotations

import logging
import re
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.alerts.buttons import ALERT_ACTION_PREFIX, TRIGGER_LIST_ACTION_PREFIX
from bot.commands.answer import Invoker, UsageBot

log = logging.getLogger(__name__)


def register(app: App, bot: UsageBot, executor: Executor) -> None:
    @app.action(re.compile("^" + re.escape(ALERT_ACTION_PREFIX)))
    def alert_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        executor.submit(_guarded, _alert_clicked, bot, body, action, respond)

    @app.action(re.compile("^" + re.escape(TRIGGER_LIST_ACTION_PREFIX)))
    def trigger_list_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        executor.submit(_guarded, _trigger_list_clicked, bot, body, action, respond)


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
