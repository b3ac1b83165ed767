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
from slack_sdk.webhook import WebhookClient

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
from bot.render.blocks import channel_ref, clip, context_block, mention, section_block
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
NOT_POSTED = (
    ":warning: The bot could not post in {channel}: invite it there (`/invite @twilio-usage`), "
    "or its alerts go to ALERT_CHANNEL, else to `/usage alerts failed`."
)


def open_from_slash(command: dict[str, Any], client: WebClient, executor: Executor) -> bool:
    """`/usage trigger` (or `budget`, `digest`) alone opens its form; True when it did."""
    words = str(command.get("text") or "").split()
    form = _SLASH_FORMS.get(words[0].lower()) if len(words) == 1 else None
    trigger_id = str(command.get("trigger_id") or "")
    if form is None or not trigger_id:
        return False
    channel = str(command.get("channel_id") or "")
    response_url = str(command.get("response_url") or "")
    executor.submit(_open_or_explain, client, trigger_id, form, channel, response_url)
    return True


def open_form(client: WebClient, trigger_id: str, form: str, *, channel_id: str = "", origin: str = "") -> bool:
    """views.open, right after the ack: a trigger_id is good for 3 seconds, once. False if Slack refused."""
    try:
        client.views_open(trigger_id=trigger_id, view=form_view(form, channel_id=channel_id, origin=origin))
        return True
    except Exception as exc:
        log.warning("could not open the %s form (%s)", form, _error(exc))
        return False


def _open_or_explain(client: WebClient, trigger_id: str, form: str, channel: str, response_url: str) -> None:
    """The form; if Slack would not open it, a private note through the command's response_url."""
    if open_form(client, trigger_id, form, channel_id=channel, origin="slash") or not response_url:
        return
    word = next(w for w, f in _SLASH_FORMS.items() if f == form)
    note = f":warning: Slack did not open the form; try again, or type it out: `/usage help {word}`."
    try:
        WebhookClient(response_url).send(text=note, response_type="ephemeral")
    except Exception as exc:
        log.warning("could not tell the user the form did not open (%s)", _error(exc))


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
    if not message.error and not _confirm_in_channel(poster, view_id, user, submission.channel_id, message):
        note = NOT_POSTED.format(channel=channel_ref(submission.channel_id) or "that channel")
        message = Message(text=f"{message.text}\n{note}", blocks=[*message.blocks, context_block(note)])
    _tell_user(client, poster, form, view_id, user, submission.channel_id, message)
    if submission.origin == "home":
        publish(client, home, user)


def _tell_user(
    client: WebClient, poster: SlackPoster, form: str, view_id: str, user: str, channel: str, message: Message
) -> None:
    """The outcome in the modal; if it is gone, an ephemeral message in the channel; else a DM."""
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
    # A user ID as the channel: the app's DM with the user (its Messages tab).
    result = poster.post(user, message, Marker("usage_bot_form_outcome", {"view": view_id}))
    if result.outcome is not PostOutcome.POSTED:
        log.warning("could not tell %s the outcome of their form (%s)", user, result.error or result.outcome.value)


def _confirm_in_channel(poster: SlackPoster, view_id: str, user: str, channel: str, message: Message) -> bool:
    """A one-line confirmation in the chosen channel; False when the bot could not post there."""
    who = mention(user) or "Someone"
    first = clip(message.text.splitlines()[0] if message.text else "", 500)
    text = f"{who} used the Twilio usage form: {first}"
    marker = Marker("usage_bot_form", {"view": view_id})
    result = poster.post(channel, Message(text=text, blocks=[section_block(text)]), marker)
    if result.outcome is PostOutcome.POSTED:
        return True
    log.warning("the form's confirmation to %s was not posted (%s)", channel, result.error or result.outcome.value)
    return False


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "get"):
        return str(response.get("error", "")) or type(exc).__name__
    return type(exc).__name__
