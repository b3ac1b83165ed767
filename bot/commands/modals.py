"""The forms (Slack modals) for a new alert, budget or digest, and what their submissions mean.

Pure: views out, submitted values in. A submission is read by the same grammar `/usage` uses
(`parse_trigger`, `parse_budget`, `parse_digest`), so a form accepts exactly what the command
accepts and becomes the same command object, answered by the same `UsageBot` handler (same
permissions, idempotency and audit). What is wrong comes back per input, for Slack to show under
it (`response_action: errors`, https://api.slack.com/surfaces/modals#displaying_errors).

Limits (https://api.slack.com/reference/surfaces/views, .../block-kit/composition-objects#option):
title, submit and close 24 characters; an option's text 75 and value 150; at most 100 options in
an external select's answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.commands.parse_alerting import MAX_TRIGGER_NAME, parse_trigger
from bot.commands.parse_reports import parse_budget, parse_digest
from bot.commands.types import CreateTrigger, ParseError, SetBudget, SubscribeDigest
from bot.model import TOTAL_SPEND, Message
from bot.render.blocks import clip, section_block
from bot.usage.categories import ALIASES, known_categories, resolve_category

__all__ = [
    "BUDGET_FORM",
    "CATEGORY_ACTION",
    "DIGEST_FORM",
    "FORMS",
    "MAX_OPTIONS",
    "TRIGGER_FORM",
    "Submission",
    "category_options",
    "form_view",
    "outcome_view",
    "read_submission",
    "working_view",
]

TRIGGER_FORM = "usage_trigger_form"
BUDGET_FORM = "usage_budget_form"
DIGEST_FORM = "usage_digest_form"
FORMS = (TRIGGER_FORM, BUDGET_FORM, DIGEST_FORM)
CATEGORY_ACTION = "usage_category"  # the external select answered by the options listener
MAX_OPTIONS = 100
_MAX_OPTION_TEXT = 75
_MAX_VIEW_BLOCKS = 100

_TITLES = {TRIGGER_FORM: "New usage alert", BUDGET_FORM: "New budget", DIGEST_FORM: "New digest"}
_SUBMITS = {TRIGGER_FORM: "Create alert", BUDGET_FORM: "Set budget", DIGEST_FORM: "Subscribe"}
_MEASURES = {"count": "Count (messages, calls…)", "usage": "Usage (minutes, segments…)", "price": "Price (spend)"}
_RECURRING = {"once": "Once", "daily": "Every day", "monthly": "Every month", "yearly": "Every year"}
_BUDGET_PERIODS = {"monthly": "Per month", "daily": "Per day"}
_CADENCES = {"daily": "Every day", "weekly": "Every Monday", "monthly": "On the 1st of each month"}
# Shown first when nothing is typed yet: what people ask about most.
_COMMON = (TOTAL_SPEND, "sms", "calls", "mms", "phonenumbers", "recordings", "channels-whatsapp", "lookups")


@dataclass(frozen=True)
class Submission:
    """A form read: the command it stands for, and the channel chosen in it."""

    command: CreateTrigger | SetBudget | SubscribeDigest
    channel_id: str
    origin: str  # "home", "slash" or "shortcut": where the form was opened


# --- the views ---------------------------------------------------------------------------


def form_view(form: str, *, channel_id: str = "", origin: str = "") -> dict[str, Any]:
    """The modal for `form`; `channel_id` preselects the channel it was opened from (none: the
    user must choose one)."""
    if form == TRIGGER_FORM:
        blocks = [
            _category_input("What to watch", "Type to search: sms, calls, spend…"),
            _text_input("threshold", "Threshold", "1000, +1000 (more than now) or $25", max_length=32),
            _select_input("measure", "Compare", _MEASURES, optional=True, placeholder="Automatic ($ → price)"),
            _select_input("recurring", "Repeat", _RECURRING, initial="once"),
            _text_input("name", "Name", "Too many texts", optional=True, max_length=MAX_TRIGGER_NAME),
            _channel_input(channel_id),
        ]
    elif form == BUDGET_FORM:
        blocks = [
            _text_input("amount", "Amount", "$500", max_length=32),
            _select_input("period", "Period", _BUDGET_PERIODS, initial="monthly"),
            _category_input("Category (empty: total spend)", "Total spend", optional=True),
            _channel_input(channel_id),
        ]
    elif form == DIGEST_FORM:
        blocks = [
            _select_input("cadence", "How often", _CADENCES, initial="daily"),
            {
                "type": "input",
                "block_id": "time",
                "label": _plain("At (USAGE_TIMEZONE)"),
                "element": {"type": "timepicker", "action_id": "time", "initial_time": "09:00"},
            },
            _channel_input(channel_id),
        ]
    else:
        raise ValueError(f"no such form: {form}")
    return {
        "type": "modal",
        "callback_id": form,
        "title": _plain(_TITLES[form]),
        "submit": _plain(_SUBMITS[form]),
        "close": _plain("Cancel"),
        "private_metadata": json.dumps({"origin": origin}),
        "blocks": blocks,
    }


def working_view(form: str) -> dict[str, Any]:
    """What the modal shows while Twilio is asked (the submission is answered at once)."""
    return _info_view(form, [section_block(":hourglass_flowing_sand: Asking Twilio… this takes a few seconds.")])


def outcome_view(form: str, message: Message) -> dict[str, Any]:
    """The answer, shown in the modal: the message's text blocks (its buttons belong in a channel)."""
    kept = [b for b in message.blocks if b.get("type") in ("header", "section", "context", "divider")]
    return _info_view(form, kept[:_MAX_VIEW_BLOCKS] or [section_block(message.text or "Done.")])


def _info_view(form: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": form,
        "title": _plain(_TITLES[form]),
        "close": _plain("Close"),
        "blocks": blocks,
    }


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(clip(text, _MAX_OPTION_TEXT)), "value": value}


def _text_input(block: str, label: str, placeholder: str, *, optional: bool = False, max_length: int) -> dict[str, Any]:
    element = {
        "type": "plain_text_input",
        "action_id": block,
        "placeholder": _plain(placeholder),
        "max_length": max_length,
    }
    return {"type": "input", "block_id": block, "label": _plain(label), "optional": optional, "element": element}


def _select_input(
    block: str, label: str, choices: dict[str, str], *, initial: str = "", optional: bool = False, placeholder: str = ""
) -> dict[str, Any]:
    options = [_option(value, text) for value, text in choices.items()]
    element: dict[str, Any] = {"type": "static_select", "action_id": block, "options": options}
    if initial:
        element["initial_option"] = _option(initial, choices[initial])
    if placeholder:
        element["placeholder"] = _plain(placeholder)
    return {"type": "input", "block_id": block, "label": _plain(label), "optional": optional, "element": element}


def _category_input(label: str, placeholder: str, *, optional: bool = False) -> dict[str, Any]:
    element = {
        "type": "external_select",
        "action_id": CATEGORY_ACTION,
        "placeholder": _plain(placeholder),
        "min_query_length": 0,
    }
    return {"type": "input", "block_id": "category", "label": _plain(label), "optional": optional, "element": element}


def _channel_input(channel_id: str) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "conversations_select",
        "action_id": "channel",
        "placeholder": _plain("The channel the alerts go to"),
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if channel_id:
        element["initial_conversation"] = channel_id
    return {"type": "input", "block_id": "channel", "label": _plain("Channel"), "element": element}


# --- the category search -------------------------------------------------------------------


def category_options(query: str) -> list[dict[str, Any]]:
    """At most MAX_OPTIONS categories matching what was typed: aliases ("texts → sms") and
    category names; names starting with it first. Nothing typed: the common ones, then the rest."""
    typed = " ".join(query.split()).lower().replace("_", "-")[:60]
    found: dict[str, dict[str, Any]] = {}  # one option per category (values must be unique)
    if not typed:
        for category in (*_COMMON, *known_categories()):
            found.setdefault(category, _option(category, _category_text(category)))
        return list(found.values())[:MAX_OPTIONS]
    words = [*ALIASES, *known_categories()]
    # The word typed exactly first, then words starting with it, then words containing it.
    ranked = sorted((w for w in words if typed in w), key=lambda w: (w != typed, not w.startswith(typed)))
    for word in ranked:
        category = ALIASES.get(word, word)
        text = f"{word} → {_category_text(category)}" if word in ALIASES else _category_text(category)
        found.setdefault(category, _option(category, text))
    return list(found.values())[:MAX_OPTIONS]


def _category_text(category: str) -> str:
    return "totalprice (total spend)" if category == TOTAL_SPEND else category


# --- reading a submission ---------------------------------------------------------------


def read_submission(form: str, values: dict[str, Any], private_metadata: str = "") -> Submission | dict[str, str]:
    """The command a submitted form stands for, or {block_id: what is wrong} for Slack to show."""
    channel = _selected_conversation(values, "channel")
    errors: dict[str, str] = {} if channel else {"channel": "Choose the channel the messages go to."}
    parsed: CreateTrigger | SetBudget | SubscribeDigest | dict[str, str]
    if form == TRIGGER_FORM:
        parsed = _read_trigger(values)
    elif form == BUDGET_FORM:
        parsed = _read_budget(values)
    elif form == DIGEST_FORM:
        parsed = _read_digest(values)
    else:
        return {"channel": "This form is no longer supported; open it again."}
    if isinstance(parsed, dict):
        return {**parsed, **errors}
    if errors:
        return errors
    return Submission(parsed, channel, _origin(private_metadata))


def _read_trigger(values: dict[str, Any]) -> CreateTrigger | dict[str, str]:
    category = resolve_category(_selected(values, "category"))
    if category is None:
        return {"category": "Choose what to watch from the list."}
    threshold = _text(values, "threshold")
    # The threshold alone first, so that its error goes under its own input.
    alone = parse_trigger([category, threshold], None) if threshold else ParseError("Say the value to trigger at.")
    if isinstance(alone, ParseError):
        return {"threshold": _error_text(alone)}
    measure, recurring, name = _selected(values, "measure"), _selected(values, "recurring"), _text(values, "name")
    words = [category, threshold]
    words += ["by", measure] if measure else []
    words += [recurring] if recurring in ("daily", "monthly", "yearly") else []
    words += ["name", *name.split()] if name else []
    parsed = parse_trigger(words, None)
    if isinstance(parsed, ParseError):
        return {"name" if name and len(name) > MAX_TRIGGER_NAME else "measure": _error_text(parsed)}
    assert isinstance(parsed, CreateTrigger)  # no "delete" word was given
    return parsed


def _read_budget(values: dict[str, Any]) -> SetBudget | dict[str, str]:
    amount = _text(values, "amount")
    if not amount:
        return {"amount": "Say the amount, e.g. $500."}
    words = [amount, _selected(values, "period") or "monthly"]
    category = _selected(values, "category")
    if category:
        if resolve_category(category) is None:
            return {"category": "Choose a category from the list, or leave it empty for total spend."}
        words.append(category)
    parsed = parse_budget(words, None)
    if isinstance(parsed, ParseError):
        return {"amount": _error_text(parsed)}
    if not isinstance(parsed, SetBudget):  # an amount such as "off" reads as removing one
        return {"amount": "Say the amount, e.g. $500."}
    return parsed


def _read_digest(values: dict[str, Any]) -> SubscribeDigest | dict[str, str]:
    words = [_selected(values, "cadence") or "daily"]
    at = str(_element(values, "time").get("selected_time") or "")
    words += ["at", at] if at else []
    parsed = parse_digest(words, None)
    if isinstance(parsed, ParseError):
        return {"time": _error_text(parsed)}
    if not isinstance(parsed, SubscribeDigest):
        return {"cadence": "Choose how often."}
    return parsed


def _element(values: dict[str, Any], block: str) -> dict[str, Any]:
    """The state of the one element in an input block (view.state.values[block][action_id])."""
    found = values.get(block)
    if not isinstance(found, dict):
        return {}
    state = next(iter(found.values()), None)
    return state if isinstance(state, dict) else {}


def _text(values: dict[str, Any], block: str) -> str:
    value = _element(values, block).get("value")
    return " ".join(value.split()) if isinstance(value, str) else ""


def _selected(values: dict[str, Any], block: str) -> str:
    option = _element(values, block).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if isinstance(value, str) else ""


def _selected_conversation(values: dict[str, Any], block: str) -> str:
    value = _element(values, block).get("selected_conversation")
    return value if isinstance(value, str) else ""


def _origin(private_metadata: str) -> str:
    try:
        origin = json.loads(private_metadata or "{}").get("origin", "")
    except (ValueError, AttributeError):
        return ""
    return origin if isinstance(origin, str) else ""


def _error_text(error: ParseError) -> str:
    """A grammar error as plain text under an input: no backticks, no mrkdwn escapes."""
    text = error.message.replace("`", "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return clip(text, 150)
