"""Alert messages: one fired trigger in detail or a burst grouped in one message, the buttons
under an alert and what the message becomes after a click, and `/usage alerts failed`.

The button ids and values are bot/alerts/buttons.py's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from bot.alerts.buttons import ALERT_ACTIONS_BLOCK, ActionId, alert_button_value
from bot.alerts.render_triggers import parse_trigger_value, trigger_measure
from bot.model import Message, StoredAlert
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    FALLBACK_BUDGET,
    MAX_BLOCKS,
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
    pack_lines,
    section_block,
    slack_date,
)
from bot.render.formats import format_money, format_quantity, plural

__all__ = [
    "ALERTS_PER_MESSAGE",
    "action_note",
    "alert_actions",
    "annotate_alert",
    "offers_delete",
    "render_alerts",
    "render_failed_alerts",
]


# One message names at most this many alerts: 30 lines of at most 300 characters stay inside
# the 10,000-character block budget, so every alert handed to render_alerts is named.
ALERTS_PER_MESSAGE = 30
_ALERT_LINE = 300
# What a count or a usage of a category is measured in, for the categories people watch most.
_COUNT_UNITS = {"sms": "messages", "mms": "messages", "calls": "calls", "recordings": "recordings"}
_USAGE_UNITS = {"sms": "segments", "mms": "segments", "calls": "minutes", "recordings": "minutes"}


def _alert_unit(category: str, by: str) -> str:
    family = category.split("-", 1)[0]
    units = _COUNT_UNITS if by == "count" else _USAGE_UNITS if by == "usage" else {}
    return units.get(family, "")


# Pure, and a grouped message repeats the same thresholds and values: a burst of 30 alerts formats
# a handful of distinct ones, not 120.
@functools.lru_cache(maxsize=1024)
def _alert_value(raw: str, category: str, by: str) -> str:
    value, _, _ = parse_trigger_value(raw)
    if value is None:
        return escape_mrkdwn(clip(oneline(raw), 40)) or "—"
    if by == "price":
        return format_money(value, "usd")
    return escape_mrkdwn(format_quantity(value, _alert_unit(category, by)))


def _alert_title(alert: StoredAlert) -> str:
    name = escape_mrkdwn(clip(oneline(alert.friendly_name), 60))
    category = code_span(alert.category or "unknown category")
    return f"*{name}* · {category}" if name else category


def _alert_period(alert: StoredAlert) -> str:
    words = {"daily": "today (resets daily, GMT)", "monthly": "this month (resets monthly, GMT)"}
    words["yearly"] = "this year (resets yearly, GMT)"
    return words.get(oneline(alert.recurring).lower(), "one-shot trigger")


def _alert_creator(alert: StoredAlert) -> str:
    return mention(alert.created_by)


def _deletion_note(alert: StoredAlert) -> str:
    """ "Deleted by @x on <date>; Twilio still sent this" for a trigger the bot deleted, else ""."""
    if alert.deleted_at is None:
        return ""
    who = mention(alert.deleted_by) or "someone"
    return f"Deleted by {who} on {slack_date(alert.deleted_at)}; Twilio still sent this"


def _alert_values(alert: StoredAlert) -> tuple[str, str, str]:
    """(what the trigger measures, the current value, the threshold), formatted."""
    by = trigger_measure(alert.trigger_by)
    return (
        by,
        _alert_value(alert.current_value, alert.category, by),
        _alert_value(alert.trigger_value, alert.category, by),
    )


def _generated(alert: StoredAlert) -> dict[str, Any] | None:
    """The message of an alert the bot raised itself (a spend spike: bot/watch/render.py made it
    when it was detected), or None for a Twilio trigger's alert."""
    if alert.kind == "trigger" or not alert.details:
        return None
    try:
        details = json.loads(alert.details)
    except ValueError:
        return None
    if not isinstance(details, dict) or not isinstance(details.get("blocks"), list):
        return None
    return details


def _alert_line(alert: StoredAlert) -> str:
    if (generated := _generated(alert)) is not None:
        return clip(str(generated.get("line") or generated.get("text") or ""), _ALERT_LINE)
    # What identifies the alert comes first, so a clipped line still names it.
    by, current, threshold = _alert_values(alert)
    parts = [
        f"{by} *{current}* of {threshold}",
        _alert_period(alert),
        "fired " + slack_date(alert.fired_at),
    ]
    if creator := _alert_creator(alert):
        parts.append(f"set up by {creator}")
    if alert.deleted_at is not None:
        parts.append(f"deleted by {mention(alert.deleted_by) or 'someone'}")
    head = f"• {_alert_title(alert)} {code_span(alert.trigger_sid, 40)} — "
    return clip(head + " · ".join(parts), _ALERT_LINE)


def _alert_fallback(alert: StoredAlert) -> str:
    if (generated := _generated(alert)) is not None:
        return str(generated.get("fallback") or generated.get("text") or "")
    by, current, threshold = _alert_values(alert)
    name = escape_mrkdwn(clip(oneline(alert.friendly_name) or alert.category, 60))
    return f"{name}: {by} {current} (threshold {threshold})"


def render_alerts(alerts: Sequence[StoredAlert]) -> Message:
    """The Slack message for fired triggers: one alert in detail, or a burst grouped in one message.

    Names every alert given, up to ALERTS_PER_MESSAGE.
    """
    if len(alerts) == 1:
        generated = _generated(alerts[0])
        return _render_one_alert(alerts[0]) if generated is None else _render_generated(alerts[0], generated)
    header = f":rotating_light: {len(alerts)} Twilio usage alerts"
    lines = [_alert_line(a) for a in alerts[:ALERTS_PER_MESSAGE]]
    sections, _ = pack_lines(lines, max_blocks=MAX_BLOCKS - 3, max_chars=BLOCKS_TEXT_BUDGET)
    blocks = [
        header_block(header),
        *sections,
        context_block("Grouped so this channel is not flooded; times are yours."),
    ]
    if len({a.trigger_sid for a in alerts}) == 1:  # one trigger: its buttons still make sense
        first = alerts[0]
        generated = _generated(first)
        if generated is None:
            blocks.append(
                alert_actions(first.trigger_sid, first.category, first.recurring, deletable=first.deleted_at is None)
            )
        elif isinstance(generated.get("actions"), dict):
            blocks.append(generated["actions"])
    text = fit_fallback(
        [f"{len(alerts)} Twilio usage alerts"],
        [_alert_fallback(a) for a in alerts],
        more=lambda n: f"… and {n} more (see the message)",
    )
    return Message(text=text, blocks=blocks, public=True)


def _render_one_alert(alert: StoredAlert) -> Message:
    by, current, threshold = _alert_values(alert)
    title = oneline(alert.friendly_name) or alert.category or "usage trigger"  # plain_text: no escaping
    fields = [
        f"*Current {by}*\n{current}",
        f"*Threshold*\n{threshold}",
        f"*Period*\n{_alert_period(alert)}",
        f"*Fired*\n{slack_date(alert.fired_at)}",
        f"*Set up by*\n{_alert_creator(alert) or 'outside Slack, or before this bot'}",
        f"*Trigger*\n{code_span(alert.trigger_sid, 40)}",
    ]
    intro = f"{_alert_title(alert)} reached *{current}* — the threshold was {threshold}."
    if alert.also_fired:
        intro += f"\nIt fired {plural(alert.also_fired, 'more time')} while snoozed; this is the latest."
    blocks = [header_block(f":rotating_light: Twilio usage alert: {clip(title, 100)}"), fields_block(intro, fields)]
    text = f"Twilio usage alert: {_alert_fallback(alert)}"
    if deleted := _deletion_note(alert):
        # Twilio can still call after a deletion (e.g. a retried callback): say so, and offer no Delete.
        blocks.append(context_block(f":wastebasket: {deleted}."))
        text += f". {deleted}"
    blocks.append(alert_actions(alert.trigger_sid, alert.category, alert.recurring, deletable=not deleted))
    return Message(text=clip(text, FALLBACK_BUDGET), blocks=blocks, public=True)


def _render_generated(alert: StoredAlert, generated: dict[str, Any]) -> Message:
    blocks = list(generated["blocks"])
    if alert.also_fired:
        blocks.append(context_block(f"{plural(alert.also_fired, 'more alert')} like this came while snoozed."))
    if isinstance(generated.get("actions"), dict):
        blocks.append(generated["actions"])
    return Message(text=clip(str(generated.get("text") or ""), FALLBACK_BUDGET), blocks=blocks, public=True)


# --- buttons under an alert -------------------------------------------------------


def alert_actions(
    trigger_sid: str, category: str, recurring: str, *, snoozed: bool = False, deletable: bool = True
) -> dict[str, Any]:
    """Snooze 1 h / 24 h (or Unsnooze), Show usage, Delete trigger (with a confirm dialog; not
    when the trigger is deleted already)."""
    value = alert_button_value(trigger_sid, category, recurring)
    snooze_buttons = (
        [button_element("Unsnooze", ActionId.UNSNOOZE, value)]
        if snoozed
        else [
            button_element("Snooze 1 h", ActionId.SNOOZE_1H, value),
            button_element("Snooze 24 h", ActionId.SNOOZE_24H, value),
        ]
    )
    delete = button_element("Delete trigger", ActionId.DELETE_TRIGGER, value, style="danger")
    delete["confirm"] = {
        "title": {"type": "plain_text", "text": "Delete this trigger?"},
        "text": {
            "type": "mrkdwn",
            "text": f"Twilio stops watching {code_span(category or 'this category')} for {code_span(trigger_sid, 40)}.",
        },
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger",
    }
    elements = [*snooze_buttons, button_element("Show usage", ActionId.SHOW_USAGE, value)]
    return {
        "type": "actions",
        "block_id": ALERT_ACTIONS_BLOCK,
        "elements": [*elements, delete] if deletable else elements,
    }


def offers_delete(blocks: Sequence[dict[str, Any]]) -> bool:
    """Do an alert message's buttons include Delete trigger? (Kept as it was when buttons change.)"""
    return any(
        element.get("action_id") == ActionId.DELETE_TRIGGER
        for block in blocks
        if block.get("block_id") == ALERT_ACTIONS_BLOCK
        for element in block.get("elements") or []
        if isinstance(element, dict)
    )


def annotate_alert(blocks: Sequence[dict[str, Any]], note: str, actions: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An alert message after someone acted on it: the old buttons go, the note (who did what,
    when) is added under earlier notes, and `actions` (the buttons that still make sense) follow."""
    kept = [b for b in blocks if b.get("block_id") != ALERT_ACTIONS_BLOCK][: MAX_BLOCKS - 2]
    kept.append(context_block(note))
    if actions is not None:
        kept.append(actions)
    return kept


def action_note(emoji: str, what: str, user_id: str, at: float) -> str:
    """ "<emoji> <what> by @user · <when>", for the message someone just acted on."""
    return f"{emoji} {what} by {mention(user_id) or 'someone'} · {slack_date(at)}"


# --- undelivered alerts -----------------------------------------------------------


def render_failed_alerts(alerts: Sequence[StoredAlert]) -> Message:
    """`/usage alerts failed`: alerts that could not be delivered, and why."""
    if not alerts:
        text = ":white_check_mark: No undelivered alerts."
        return Message(text=text, blocks=[section_block(text)])
    header = f"Undelivered alerts ({len(alerts):,})"
    lines = []
    for alert in alerts:
        where = channel_ref(alert.channel) or "no channel"
        reason = escape_mrkdwn(clip(oneline(alert.last_error), 120)) or "unknown"
        lines.append(clip(f"{_alert_line(alert)} · to {where} · _{reason}_", _ALERT_LINE + 160))
    sections, shown = pack_lines(lines, max_blocks=MAX_BLOCKS - 2, max_chars=BLOCKS_TEXT_BUDGET)
    blocks = [header_block(header), *sections]
    note = "Fix the cause (invite the bot, set ALERT_CHANNEL, reinstall the app); these alerts are kept."
    if shown < len(lines):
        note = f"… and {len(lines) - shown:,} older ones not shown. " + note
    blocks.append(context_block(note))
    text = fit_fallback([header], [_alert_fallback(a) for a in alerts], [note])
    return Message(text=text, blocks=blocks)
