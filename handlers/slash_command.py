"""The `/usage` slash command: acknowledge at once, answer through `response_url`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.commands.answer import Invoker, UsageBot
from bot.commands.grammar import parse_command
from bot.model import Message
from handlers.slack_http import REQUEST_KEY

log = logging.getLogger(__name__)


# Opens a form instead of answering (handlers/modals.py): True when it did, after its own ack.
FormOpener = Callable[[dict[str, Any], WebClient, Executor], bool]


def register(app: App, bot: UsageBot, executor: Executor, open_form: FormOpener | None = None) -> None:
    @app.command("/usage")
    def usage(ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext, client: WebClient) -> None:
        if open_form is not None and open_form(command, client, executor):
            ack()
            return
        handle_usage(ack, command, respond, bot, executor, request_key=context.get(REQUEST_KEY, ""))


def handle_usage(
    ack: Ack, command: dict[str, Any], respond: Respond, bot: UsageBot, executor: Executor, *, request_key: str = ""
) -> None:
    parsed = parse_command(command.get("text", ""), bot.today())
    quick = bot.quick_answer(parsed)
    if quick is not None:  # help or bad input: the same answer however often it is asked
        ack(**quick.to_slack())
        return
    if request_key and not first_time(bot, request_key):
        # A retry or a double submit of a command already under way: its answer is coming.
        log.info("a /usage request already handled came again (retry or double submit); acknowledged only")
        ack()
        return
    public = bool(getattr(parsed, "public", False))
    # A public answer echoes the command into the channel; a private one shows a placeholder
    # that the answer replaces.
    if public:
        ack(response_type="in_channel")
    else:
        ack(text=":hourglass_flowing_sand: Asking Twilio…", response_type="ephemeral")
    invoker = Invoker(user_id=command.get("user_id", ""), channel_id=command.get("channel_id", ""))
    executor.submit(_answer_later, bot, parsed, invoker, respond, public)


def first_time(bot: UsageBot, request_key: str) -> bool:
    """Has this request not been handled yet? If the database cannot tell, it is handled: a
    command answered twice beats a command not answered."""
    try:
        return bot.claim_request(request_key)
    except SQLAlchemyError as exc:
        log.warning("could not check for a repeated Slack request (%s); handling it", type(exc).__name__)
        return True


def _answer_later(bot: UsageBot, parsed: Any, invoker: Invoker, respond: Respond, public: bool) -> None:
    try:
        message = bot.answer(parsed, invoker)
    except Exception:
        log.exception("failed to answer /usage")
        message = Message(text=":warning: Something went wrong on our side; please try again.")
    body = message.to_slack()
    # The ephemeral placeholder is replaced in place; a public answer (or an error, which stays
    # private) is posted as a new message.
    body["replace_original"] = not public
    try:
        result = respond(**body)
        if result.status_code != 200:
            log.warning("response_url answered %s", result.status_code)
    except Exception:
        log.exception("could not deliver the /usage answer to response_url")
