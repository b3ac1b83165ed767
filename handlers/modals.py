"""Forms: opening them (Home buttons, the global shortcut, `/usage trigger` alone), searching
categories for their external select, and their submissions.

A submission is answered within Slack's 3 seconds whatever Twilio does: bad input comes back at
once as `response_action: errors`; good input turns the modal into "Asking Twilio…"
(`response_action: update`), and the command runs on the answer pool, exactly as the slash
command's would (`UsageBot.answer`). Its outcome replaces the modal (`views.update`); if Slack
refuses that (the modal was closed), the user gets it as an ephemeral message, else as a DM.
A success also goes to the chosen channel as a short confirmation, through `SlackPoster`.
(https://api.slack.com/surfaces/modals, https://api.slack.com/reference/interaction-payloads/views)
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Executor
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot.commands.answer import Invoker, UsageBot
from bot.commands.modals import (
    BUDGET_FORM,
    CATEGORY_ACTION,
    DIGEST_FORM,
    FORMS,
    TRIGGER_FORM,
    Submission,
    category_options,
    form_view,
    outcome_view,
    read_submission,
    working_view,
)
from bot.home.dashboard import HomeDashboard
from bot.home.render import NEW_ALERT, NEW_BUDGET, NEW_DIGEST
from bot.model import Message
from bot.render.blocks import clip, mention, section_block
from bot.slack import Marker, PostOutcome, SlackPoster
from handlers.home import publish
from handlers.slack_http import REQUEST_KEY
from handlers.slash_command import first_time

log = logging.getLogger(__name__)

SHORTCUT = "new_usage_alert"  # the global shortcut's callback_id (manifest.yml)
_HOME_BUTTONS = {NEW_ALERT: TRIGGER_FORM, NEW_BUDGET: BUDGET_FORM, NEW_DIGEST: DIGEST_FORM}
# `/usage trigger`, `/usage budget`, `/usage digest` with nothing after them open the form.
_SLASH_FORMS = {"trigger": TRIGGER_FORM, "budget": BUDGET_FORM, "digest": DIGEST_FORM}
_FORM_CALLBACK = re.compile("^(" + "|".join(re.escape(f) for f in FORMS) + ")$")
SOMETHING_WRONG = ":warning: Something went wrong on our side; please try again."


def open_from_slash(command: dict[str, Any], client: WebClient, executor: Executor) -> bool:
    """`/usage trigger` (or `budget`, `digest`) alone opens its form; True when it did."""
    words = str(command.get("text") or "").split()
    form = _SLASH_FORMS.get(words[0].lower()) if len(words) == 1 else None
    trigger_id = str(command.get("trigger_id") or "")
    if form is None or not trigger_id:
        return False
    channel = str(command.get("channel_id") or "")
    executor.submit(open_form, client, trigger_id, form, channel_id=channel, origin="slash")
    return True


def open_form(client: WebClient, trigger_id: str, form: str, *, channel_id: str = "", origin: str = "") -> None:
    """views.open, right after the ack: a trigger_id is good for 3 seconds, once."""
    try:
        client.views_open(trigger_id=trigger_id, view=form_view(form, channel_id=channel_id, origin=origin))
    except Exception as exc:
        log.warning("could not open the %s form (%s)", form, _error(exc))


def register(app: App, bot: UsageBot, home: HomeDashboard, poster: SlackPoster, executor: Executor) -> None:
    @app.action(re.compile("^(" + "|".join(_HOME_BUTTONS) + ")$"))
    def home_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        form = _HOME_BUTTONS[action["action_id"]]
        executor.submit(open_form, client, str(body.get("trigger_id") or ""), form, origin="home")

    @app.shortcut(SHORTCUT)
    def shortcut(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        executor.submit(open_form, client, str(body.get("trigger_id") or ""), TRIGGER_FORM, origin="shortcut")

    @app.options(CATEGORY_ACTION)
    def categories(ack: Ack, payload: dict[str, Any]) -> None:
        ack(options=category_options(str(payload.get("value") or "")))

    @app.view(_FORM_CALLBACK)
    def submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
    ) -> None:
        form = str(view.get("callback_id") or "")
        values = (view.get("state") or {}).get("values") or {}
        read = read_submission(
            form, values if isinstance(values, dict) else {}, str(view.get("private_metadata") or "")
        )
        if isinstance(read, dict):
            ack(response_action="errors", errors=read)
            return
        key = context.get(REQUEST_KEY, "")
        if key and not first_time(bot, key):
            log.info("a form submission already handled came again (retry or double submit); acknowledged only")
            ack()
            return
        ack(response_action="update", view=working_view(form))
        user = str((body.get("user") or {}).get("id") or "")
        executor.submit(_complete, bot, home, poster, client, form, str(view.get("id") or ""), user, read)


def _complete(
    bot: UsageBot,
    home: HomeDashboard,
    poster: SlackPoster,
    client: WebClient,
    form: str,
    view_id: str,
    user: str,
    submission: Submission,
) -> None:
    """After the ack: the command, its outcome to the user, the confirmation to the channel."""
    try:
        message = bot.answer(submission.command, Invoker(user_id=user, channel_id=submission.channel_id))
    except Exception:
        log.exception("a form submission could not be answered")
        message = Message(text=SOMETHING_WRONG, blocks=[section_block(SOMETHING_WRONG)], error=True)
    _tell_user(client, form, view_id, user, submission.channel_id, message)
    if not message.error:
        _confirm_in_channel(poster, form, view_id, user, submission.channel_id, message)
    if submission.origin == "home":
        publish(client, home, user)


def _tell_user(client: WebClient, form: str, view_id: str, user: str, channel: str, message: Message) -> None:
    try:
        client.views_update(view_id=view_id, view=outcome_view(form, message))
        return
    except Exception as exc:
        log.info("could not show the outcome in the modal (%s); telling the user privately", _error(exc))
    text = clip(message.text, 3000)
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=message.blocks)
        return
    except Exception as exc:
        log.info("no ephemeral message in %s (%s); sending a DM", channel, _error(exc))
    try:
        client.chat_postMessage(channel=user, text=text, blocks=message.blocks)
    except Exception as exc:
        log.warning("could not tell %s the outcome of their form (%s)", user, _error(exc))


def _confirm_in_channel(
    poster: SlackPoster, form: str, view_id: str, user: str, channel: str, message: Message
) -> None:
    who = mention(user) or "Someone"
    first = clip(message.text.splitlines()[0] if message.text else "", 500)
    text = f"{who} used the Twilio usage form: {first}"
    result = poster.post(
        channel, Message(text=text, blocks=[section_block(text)]), Marker("usage_bot_form", {"view": view_id})
    )
    if result.outcome is not PostOutcome.POSTED:
        log.warning("the form's confirmation to %s was not posted (%s)", channel, result.error or result.outcome.value)


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error", "")) or type(exc).__name__
    return type(exc).__name__
