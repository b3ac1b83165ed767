"""The App Home view: spend at a glance, what alerts are set, and the buttons to set more.

Pure: a `HomeView` in, a `home` view object out (https://api.slack.com/surfaces/app-home).
Slack allows 100 blocks in a Home view and 3,000 characters in a section's text
(https://api.slack.com/reference/block-kit/blocks); each list here has its own block budget,
and a part that could not be read is a short note, never a missing Home.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bot.alerts.outbox import OutboxStatus
from bot.alerts.render_triggers import trigger_line
from bot.home.model import HomeView
from bot.home.snapshot import Snapshot
from bot.model import TOTAL_SPEND
from bot.render.blocks import (
    MAX_SECTION_TEXT,
    button_element,
    channel_ref,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fields_block,
    header_block,
    mention,
    oneline,
    pack_lines,
    section_block,
    slack_date,
)
from bot.render.formats import finite, format_money, sparkline
from bot.reports.render_budgets import budget_title
from bot.reports.render_digests import digest_schedule

__all__ = [
    "HOME_ACTIONS",
    "MAX_VIEW_BLOCKS",
    "NEW_ALERT",
    "NEW_BUDGET",
    "NEW_DIGEST",
    "REFRESH",
    "render_home",
]

MAX_VIEW_BLOCKS = 100  # a modal or Home view (https://api.slack.com/reference/block-kit/blocks)
_LIST_CHARS = 8_000  # per list, so the whole view stays a readable size

NEW_ALERT = "home_new_alert"
NEW_BUDGET = "home_new_budget"
NEW_DIGEST = "home_new_digest"
REFRESH = "home_refresh"
HOME_ACTIONS = (NEW_ALERT, NEW_BUDGET, NEW_DIGEST, REFRESH)

FETCHING_NOTE = ":hourglass_flowing_sand: Twilio's figures are being fetched; press *Refresh* in a moment."


def render_home(home: HomeView) -> dict[str, Any]:
    """The whole Home view."""
    snap = home.snapshot
    blocks: list[dict[str, Any]] = [header_block("Twilio usage")]
    blocks += _spend_blocks(snap)
    blocks.append(context_block(*_notes(home)))
    blocks.append(
        {
            "type": "actions",
            "block_id": "home_actions",
            "elements": [
                button_element("New alert", NEW_ALERT, "home", style="primary"),
                button_element("New budget", NEW_BUDGET, "home"),
                button_element("New digest", NEW_DIGEST, "home"),
                button_element("Refresh", REFRESH, "home"),
            ],
        }
    )
    blocks += _list(
        "Alerts set (Twilio usage triggers)", _trigger_lines(home), 20, "None yet: press *New alert* to set one."
    )
    blocks += _list("Budgets", _budget_lines(home), 8, "None yet: press *New budget* to set one.")
    blocks += _list("Digests", _digest_lines(home), 8, "None yet: press *New digest* to subscribe a channel.")
    if home.local.watched:
        lines = [f"• {channel_ref(channel) or 'a channel'} · {line}" for channel, line in home.local.watched]
        blocks += _list("Watched categories", lines, 8, "")
    blocks += _list("Alerts waiting, held or failed", _alert_lines(home), 8, "Nothing waiting: every alert went out.")
    return {"type": "home", "callback_id": "usage_home", "blocks": blocks[:MAX_VIEW_BLOCKS]}


def _spend_blocks(snap: Snapshot | None) -> list[dict[str, Any]]:
    if snap is None or snap.usage_at is None:
        return [section_block("*Spend:* not known yet.")]
    unit = snap.price_unit
    today = escape_mrkdwn(format_money(finite(snap.today), unit)) if snap.today is not None else "—"
    month = escape_mrkdwn(format_money(finite(snap.month), unit)) if snap.month is not None else "—"
    blocks = [
        fields_block(
            "*Spend* (GMT days and months, as Twilio counts them)", [f"*Today*\n{today}", f"*This month*\n{month}"]
        )
    ]
    if snap.pace:
        blocks.append(context_block(snap.pace))
    if snap.daily:
        values = [finite(spend) for _, spend in snap.daily]
        present = [v for v in values if v is not None]
        high = escape_mrkdwn(format_money(max(present), unit)) if present else "—"
        line = f"`{sparkline(values)}` last {len(values)} days · highest {high} a day"
        blocks.append(section_block(line))
    return blocks


def _notes(home: HomeView) -> list[str]:
    snap = home.snapshot
    notes: list[str] = []
    if snap is None:
        notes.append(FETCHING_NOTE)
    else:
        if snap.usage_at is not None:
            notes.append(f"Twilio figures as of {slack_date(snap.usage_at)} · fetched at most once a minute")
        if snap.usage_error:
            notes.append(f":warning: Spend: {_short(snap.usage_error)}")
        if snap.triggers_error:
            shown = f" (showing the list from {slack_date(snap.triggers_at)})" if snap.triggers_at else ""
            notes.append(f":warning: Alerts set: {_short(snap.triggers_error)}{shown}")
    if home.local.error:
        notes.append(f":warning: {_short(home.local.error)}")
    return notes or ["Twilio usage and spend, the alerts set on it, and what the bot is delivering."]


def _short(text: str) -> str:
    return escape_mrkdwn(clip(oneline(text), 300))


def _trigger_lines(home: HomeView) -> list[str]:
    snap = home.snapshot
    if snap is None or snap.triggers_at is None:
        return []
    channels = {sid: channel for sid, (channel, _) in home.local.owners.items()}
    creators = {sid: user for sid, (_, user) in home.local.owners.items()}
    # The bot's own triggers first: those are the ones people here set.
    ordered = sorted(snap.triggers, key=lambda t: t.sid not in home.local.owners)
    return [clip(trigger_line(t.as_trigger(), channels, creators), 480) for t in ordered]


def _budget_lines(home: HomeView) -> list[str]:
    lines = []
    snap = home.snapshot
    for budget in home.local.budgets:
        line = f"• {channel_ref(budget.channel_id) or 'a channel'} · {budget_title(budget)}"
        spent = _spent(snap, budget.period) if budget.category == TOTAL_SPEND else None
        if spent is not None:
            line += f" · {escape_mrkdwn(format_money(spent, snap.price_unit if snap else 'usd'))} spent so far"
        if who := mention(budget.created_by):
            line += f" · by {who}"
        lines.append(line)
    return lines


def _spent(snap: Snapshot | None, period: str) -> Decimal | None:
    if snap is None or snap.usage_at is None:
        return None
    return finite(snap.today if period == "daily" else snap.month)


def _digest_lines(home: HomeView) -> list[str]:
    tz = escape_mrkdwn(home.timezone)
    lines = []
    for sub in home.local.digests:
        who = f" · by {creator}" if (creator := mention(sub.created_by)) else ""
        schedule = digest_schedule(sub.cadence, sub.at_minutes)
        lines.append(f"• {channel_ref(sub.channel_id) or 'a channel'} · *{sub.cadence}* · {schedule} ({tz}){who}")
    return lines


def _alert_lines(home: HomeView) -> list[str]:
    local = home.local
    waiting = local.unsent.get(OutboxStatus.PENDING, 0) + local.unsent.get(OutboxStatus.SENDING, 0)
    held = local.unsent.get(OutboxStatus.HELD, 0)
    failed = local.unsent.get(OutboxStatus.FAILED, 0)
    lines = []
    if waiting:
        lines.append(
            f"• :outbox_tray: *{waiting:,}* waiting to be posted (Slack paces a channel at one message a second)"
        )
    if held or local.snoozes:
        lines.append(f"• :zzz: *{held:,}* held back by snoozes; they go out as one summary when the snooze ends")
        for sid, channel, until, who in local.snoozes:
            by = f" by {creator}" if (creator := mention(who)) else ""
            where = channel_ref(channel) or "a channel"
            lines.append(f"    ◦ {code_span(sid, 64)} in {where} until {slack_date(until)}{by}")
    if failed:
        lines.append(f"• :x: *{failed:,}* failed (`/usage alerts failed` lists them all)")
        for alert in local.failed:
            where = channel_ref(alert.channel or alert.requested_channel) or "no channel"
            why = escape_mrkdwn(clip(oneline(alert.last_error), 200)) or "no reason recorded"
            lines.append(f"    ◦ {code_span(alert.category)} for {where}: {why}")
    return lines


def _list(title: str, lines: Sequence[str], max_blocks: int, empty: str) -> list[dict[str, Any]]:
    """A divider, a header, the lines packed into at most `max_blocks` sections, and "… and N more"."""
    blocks: list[dict[str, Any]] = [{"type": "divider"}, header_block(title)]
    if not lines:
        if empty:
            blocks.append(context_block(empty))
        return blocks
    packed, shown = pack_lines(lines, max_blocks=max_blocks, max_chars=_LIST_CHARS)
    blocks += packed
    if shown < len(lines):
        blocks.append(context_block(clip(f"… and {len(lines) - shown:,} more", MAX_SECTION_TEXT)))
    return blocks
