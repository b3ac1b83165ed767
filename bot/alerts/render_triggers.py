"""Usage-trigger messages: the confirmation of `/usage trigger …`, the paged `/usage triggers`
list with a Delete button per trigger, and the note that a trigger is gone.

How a trigger's values read ('+1,000', '$25.00') is public: alert messages word them the same way.
The button ids and values are bot/alerts/buttons.py's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.alerts.buttons import TRIGGERS_PAGES_BLOCK, ActionId, trigger_delete_value, triggers_page_value
from bot.model import Message, UsageTrigger
from bot.render.blocks import (
    FALLBACK_BUDGET,
    button_element,
    channel_ref,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fields_block,
    fit_fallback,
    header_block,
    mention,
    oneline,
    section_block,
)
from bot.render.formats import finite, format_money, format_quantity

__all__ = [
    "TRIGGERS_PER_PAGE",
    "parse_trigger_value",
    "render_trigger_created",
    "render_trigger_deleted",
    "render_triggers",
    "trigger_line",
    "trigger_measure",
]


_RECURRING_WORDS = {
    "daily": "every day (GMT)",
    "monthly": "every month (GMT)",
    "yearly": "every year (GMT)",
}
TRIGGERS_PER_PAGE = 20


def parse_trigger_value(raw: str) -> tuple[Decimal | None, bool, str]:
    """'+1,000' → (1000, relative, ''); '$25' / '25usd' → (25, absolute, 'usd')."""
    text = oneline(raw).replace(",", "").replace(" ", "")
    relative = text.startswith("+")
    text = text.lstrip("+")
    unit = ""
    for symbol, code in (("$", "usd"), ("€", "eur"), ("£", "gbp")):
        if text.startswith(symbol):
            unit, text = code, text[len(symbol) :]
    match = re.fullmatch(r"([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)([A-Za-z]{3})?", text)
    if not match:
        return None, relative, unit
    if match.group(2):
        unit = match.group(2).lower()
    return finite(match.group(1)), relative, unit


def _describe_value(raw: str, trigger_by: str, relative_words: str = "more than now") -> str:
    """'1,000', '1,000 more than now', '$25.00' (escaped mrkdwn)."""
    value, relative, unit = parse_trigger_value(raw)
    if value is None:
        return escape_mrkdwn(clip(oneline(raw), 40)) or "—"
    # Twilio's triggers carry no currency: usd unless the value named one.
    money = trigger_by == "price" or bool(unit)
    text = format_money(value, unit or "usd") if money else format_quantity(value, "")
    return escape_mrkdwn(f"{text} {relative_words}" if relative else text)


def trigger_measure(trigger_by: str) -> str:
    """What a trigger compares: count, usage or price (usage when Twilio says something else)."""
    return {"count": "count", "usage": "usage", "price": "price"}.get(oneline(trigger_by).lower(), "usage")


def _recurring(recurring: str) -> str:
    return _RECURRING_WORDS.get(oneline(recurring).lower(), "once")


def _callback_channel(url: str) -> str:
    try:
        return parse_qs(urlsplit(url or "").query).get("channel", [""])[0]
    except ValueError:
        return ""


def render_trigger_created(
    trigger: UsageTrigger, *, channel_id: str, value_requested: str, already: bool = False
) -> Message:
    """Confirmation repeating what was set up: category, threshold, measure, period, name, channel.
    `already`: the same trigger existed, and nothing was created ("Already set: UT…")."""
    by = trigger_measure(trigger.trigger_by)
    threshold = _describe_value(value_requested, by)
    requested, requested_relative, _ = parse_trigger_value(value_requested)
    stored, stored_relative, _ = parse_trigger_value(trigger.trigger_value)
    if stored is not None and (stored != requested or stored_relative != requested_relative):
        threshold += f" (Twilio's threshold: {_describe_value(trigger.trigger_value, by)})"
    channel = channel_ref(channel_id) or "the default alert channel"
    period = _recurring(trigger.recurring)
    name = escape_mrkdwn(clip(oneline(trigger.friendly_name), 200))

    fields = [
        f"*Category*\n{code_span(trigger.usage_category)}",
        f"*Threshold*\n{threshold}",
        f"*Measured by*\n{by}",
        f"*Period*\n{period}",
    ]
    if name:
        fields.append(f"*Name*\n{name}")
    if oneline(trigger.current_value):
        fields.append(f"*Current value*\n{_describe_value(trigger.current_value, by)}")
    fields.append(f"*Trigger SID*\n{code_span(trigger.sid, 64)}")
    intro = f":white_check_mark: *Usage trigger created.* When it fires, the alert comes to {channel}."
    if already:
        intro = (
            f":information_source: *Already set:* {code_span(trigger.sid, 64)}, nothing new was created."
            f" When it fires, the alert comes to {channel}."
        )
    note = "Twilio checks triggers about once a minute and usage data can lag, so an alert may come a little late."
    blocks = [fields_block(intro, fields), context_block(note)]
    opening = f"Already set: {code_span(trigger.sid, 64)}" if already else "Usage trigger created:"
    text = (
        f"{opening} {code_span(trigger.usage_category)} {by} reaches {threshold}, {period}"
        + (f", name “{name}”" if name else "")
        + f". Alerts go to {channel}. SID {code_span(trigger.sid, 64)}"
    )
    return Message(text=clip(text, FALLBACK_BUDGET), blocks=blocks, public=False)


# --- the trigger list -------------------------------------------------------------


def trigger_line(trigger: UsageTrigger, channels: Mapping[str, str], creators: Mapping[str, str]) -> str:
    by = trigger_measure(trigger.trigger_by)
    name = escape_mrkdwn(clip(oneline(trigger.friendly_name), 80))
    title = f"*{name}* · {code_span(trigger.usage_category)}" if name else code_span(trigger.usage_category)
    current = _describe_value(trigger.current_value, by) if oneline(trigger.current_value) else "—"
    # A relative threshold counts from the usage when the trigger was made, not from today.
    threshold = _describe_value(trigger.trigger_value, by, "more than at creation")
    parts = [f"{by} {current} of {threshold}", _recurring(trigger.recurring)]
    channel = channel_ref(channels.get(trigger.sid, "") or _callback_channel(trigger.callback_url))
    parts.append(f"→ {channel}" if channel else "→ default alert channel")
    if creator := mention(creators.get(trigger.sid, "")):
        parts.append(f"by {creator}")
    if trigger.date_fired is not None:
        fired = trigger.date_fired
        fired = fired.astimezone(UTC) if fired.tzinfo is not None else fired
        parts.append(f"last fired {fired:%Y-%m-%d %H:%M} GMT")
    parts.append(code_span(trigger.sid, 64))
    return f"• {title} — " + " · ".join(parts)


def _delete_trigger_button(trigger: UsageTrigger, category: str | None, page: int) -> dict[str, Any]:
    button = button_element(
        "Delete", ActionId.TRIGGERS_DELETE, trigger_delete_value(trigger.sid, category, page), "danger"
    )
    button["confirm"] = {
        "title": {"type": "plain_text", "text": "Delete this trigger?"},
        "text": {
            "type": "mrkdwn",
            "text": f"Twilio stops watching {code_span(trigger.usage_category)} for this trigger.",
        },
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger",
    }
    return button


def render_triggers(
    triggers: list[UsageTrigger],
    *,
    channels: Mapping[str, str],
    creators: Mapping[str, str],
    page: int = 0,
    category: str | None = None,
    note: str = "",
) -> Message:
    """One section per trigger (name/category, current vs threshold, period, channel, creator,
    SID) with a Delete button, TRIGGERS_PER_PAGE to a page with Previous/Next buttons.

    `channels` and `creators` map trigger SIDs to Slack channel and user IDs where they are known;
    `category` is the filter the list was asked with (kept across pages); `note` says what just
    happened (e.g. a deletion).
    """
    header_text = f"Usage triggers ({len(triggers):,})"
    blocks: list[dict[str, Any]] = [header_block(header_text)]
    if note:
        blocks.append(context_block(note))
    if not triggers:
        empty = "No usage triggers yet. Create one with `/usage trigger sms +1000`."
        blocks.append(section_block(empty))
        return Message(text=f"{header_text}\n{empty}", blocks=blocks, public=False)

    pages = (len(triggers) + TRIGGERS_PER_PAGE - 1) // TRIGGERS_PER_PAGE
    page = max(0, min(page, pages - 1))
    first = page * TRIGGERS_PER_PAGE
    shown = triggers[first : first + TRIGGERS_PER_PAGE]
    lines = [clip(trigger_line(t, channels, creators), 480) for t in shown]
    for trigger, line in zip(shown, lines, strict=True):
        section = section_block(line)
        section["accessory"] = _delete_trigger_button(trigger, category, page)
        blocks.append(section)
    if pages > 1:
        blocks.append(
            context_block(
                f"Showing {first + 1:,}–{first + len(shown):,} of {len(triggers):,} · page {page + 1} of {pages}"
            )
        )
        nav = []
        if page > 0:
            nav.append(
                button_element("‹ Previous", ActionId.TRIGGERS_PAGE_PREV, triggers_page_value(category, page - 1))
            )
        if page < pages - 1:
            nav.append(button_element("Next ›", ActionId.TRIGGERS_PAGE_NEXT, triggers_page_value(category, page + 1)))
        blocks.append({"type": "actions", "block_id": TRIGGERS_PAGES_BLOCK, "elements": nav})
    text = fit_fallback([header_text], lines, also_hidden=len(triggers) - len(shown))
    return Message(text=text, blocks=blocks, public=False)


def render_trigger_deleted(sid: str) -> Message:
    """Confirmation that a usage trigger is gone."""
    body = f":wastebasket: Deleted usage trigger {code_span(sid, 64)}. Twilio will not send its alerts any more."
    return Message(text=body, blocks=[section_block(body)], public=False)
