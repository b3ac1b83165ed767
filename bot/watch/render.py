"""A spend-spike alert: the message that explains itself, made when the spike is detected.

The scheduled pass (bot/watch/watcher.py) renders it and stores it with the alert
(`alerts.details`); the relay posts it as it is, or names it in one line of a grouped message
(bot/alerts/render.py), so a spike alert travels exactly like a trigger alert.

The console links: SMS geo permissions
(https://www.twilio.com/docs/messaging/guides/sms-geo-permissions) and SMS Pumping Protection,
under Messaging > Settings > General
(https://www.twilio.com/docs/messaging/features/sms-pumping-protection-programmable-messaging);
for voice, the voice geo permissions page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from bot.alerts.buttons import (
    ALERT_ACTIONS_BLOCK,
    SPIKE_SID_PREFIX,
    ActionId,
    alert_button_value,
    set_trigger_value,
)
from bot.render.blocks import (
    FALLBACK_BUDGET,
    button_element,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fields_block,
    header_block,
    oneline,
    section_block,
    slack_date,
)
from bot.render.formats import format_money, format_quantity, sparkline
from bot.watch.model import AlertKind, SpikeAlert, Totals

SMS_GEO_PERMISSIONS = "https://console.twilio.com/us1/develop/sms/settings/geo-permissions"
SMS_PUMPING_PROTECTION = "https://console.twilio.com/us1/develop/sms/settings/general"
VOICE_GEO_PERMISSIONS = "https://console.twilio.com/us1/develop/voice/settings/geo-permissions"
SPARK_DAYS = 14  # days before today in the sparkline
_LINE = 300
_COUNT_UNITS = {"sms": "messages", "mms": "messages", "calls": "calls", "recordings": "recordings"}


def spike_sid(category: str) -> str:
    """The trigger SID a spike alert of this category stands under (snoozes hold it by this)."""
    return (SPIKE_SID_PREFIX + category)[:64]


def proposed_trigger(projected_price: float, today_price: float) -> str:
    """A daily price trigger worth proposing: the day's pace rounded up to two significant
    digits ($143.20 → $150), never below today's spend, at least $1."""
    value = max(projected_price, today_price, 1.0)
    exponent = math.floor(math.log10(value)) - 1
    step = 10.0**exponent
    rounded = math.ceil(value / step - 1e-9) * step
    return f"{Decimal(str(round(rounded, 2))).normalize():f}"


def render_spike(
    alert: SpikeAlert,
    *,
    description: str = "",
    days: Sequence[tuple[date, float | None]] = (),
) -> dict[str, Any]:
    """The alert as stored in `alerts.details`: text (notification), blocks, actions, and the line
    and fallback that name it in a grouped message. `days`: (day, spend) of the days before today,
    oldest first, for the sparkline (None where unknown)."""
    verdict = alert.verdict
    category = verdict.category
    name = oneline(description) or category
    escalation = alert.kind is AlertKind.ESCALATION
    ratio = _ratio(verdict.ratio)
    pace = money(verdict.projected_price)
    today = money(verdict.today.price)
    usual = money(verdict.usual_by_now.price)
    title = "Spend rate doubled again" if escalation else "Spend spike"
    header = f"{':rotating_light:' if escalation else ':chart_with_upwards_trend:'} {title}: {clip(name, 80)}"
    who = f"*{escape_mrkdwn(clip(name, 80))}* {code_span(category, 80)}"
    if escalation:
        intro = f"The spend rate of {who} has doubled again since the first alert: now *{ratio}* the usual rate."
    else:
        intro = f"{who} is spending *{ratio}* its usual rate for this time of day."
    started = slack_date(verdict.started_at.timestamp()) if verdict.started_at else "this check"
    fields = [
        f"*Today so far (GMT)*\n{today} · {_count(category, verdict.today)}",
        f"*Usual by now*\n{usual} · {_count(category, verdict.usual_by_now)}",
        f"*Rate now*\n{money(verdict.rate_per_hour.price)}/h · {_count(category, verdict.rate_per_hour)}/h",
        f"*Usual rate now*\n{money(verdict.usual_rate_per_hour.price)}/h"
        f" · {_count(category, verdict.usual_rate_per_hour)}/h",
        f"*On pace for*\n{pace} today",
        f"*Started*\n{started}",
    ]
    spark = _sparkline(days, verdict.today.price)
    blocks = [header_block(header), fields_block(intro, fields)]
    if spark:
        blocks.append(section_block(spark))
    blocks.append(context_block(_basis(verdict.source), f"Checked {slack_date(verdict.checked_at.timestamp())}."))
    sid = spike_sid(category)
    amount = proposed_trigger(verdict.projected_price, verdict.today.price)
    summary = (
        f"{escape_mrkdwn(clip(name, 80))} ({escape_mrkdwn(clip(category, 80))}) at {ratio} its usual spend rate: "
        f"{today} today (usual {usual} by now), on pace for {pace}"
    )
    line = f"• {':rotating_light:' if escalation else ':chart_with_upwards_trend:'} {who} *{ratio}* usual rate"
    line += f" — {today} today (usual {usual} by now) · on pace for {pace} · since {started}"
    return {
        "text": clip(f"{title}: {summary}", FALLBACK_BUDGET),
        "blocks": blocks,
        "actions": spike_actions(sid, category, amount),
        "line": clip(line, _LINE),
        "fallback": clip(f"{title}: {summary}", 400),
    }


def spike_actions(
    sid: str, category: str, amount: str, *, snoozed: bool = False, offer_trigger: bool = True
) -> dict[str, Any]:
    """Snooze 1 h / 24 h (or Unsnooze), Show usage, Set a trigger (confirm dialog), and the console
    pages where an SMS pumping or toll-fraud attack is stopped."""
    value = alert_button_value(sid, category, "daily")
    elements = (
        [button_element("Unsnooze", ActionId.UNSNOOZE, value)]
        if snoozed
        else [
            button_element("Snooze 1 h", ActionId.SNOOZE_1H, value),
            button_element("Snooze 24 h", ActionId.SNOOZE_24H, value),
        ]
    )
    elements.append(button_element("Show usage", ActionId.SHOW_USAGE, value))
    if offer_trigger and amount:
        button = button_element(
            f"Set a trigger (${amount})", ActionId.SET_TRIGGER, set_trigger_value(sid, category, amount)
        )
        button["confirm"] = {
            "title": {"type": "plain_text", "text": "Set a daily trigger?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Twilio alerts this channel when today's {code_span(category, 80)} spend reaches *${amount}* "
                "(every day, GMT).",
            },
            "confirm": {"type": "plain_text", "text": "Set it"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
        elements.append(button)
    elements += _console_links(category, value)
    return {"type": "actions", "block_id": ALERT_ACTIONS_BLOCK, "elements": elements}


def _console_links(category: str, value: str) -> list[dict[str, Any]]:
    family = category.split("-", 1)[0]
    if family in ("calls", "sip", "trunking"):
        return [_link("Voice geo permissions", ActionId.CONSOLE_GEO, VOICE_GEO_PERMISSIONS, value)]
    return [
        _link("Geo permissions", ActionId.CONSOLE_GEO, SMS_GEO_PERMISSIONS, value),
        _link("SMS pumping protection", ActionId.CONSOLE_PUMPING, SMS_PUMPING_PROTECTION, value),
    ]


def _link(text: str, action_id: str, url: str, value: str) -> dict[str, Any]:
    # Slack still sends the click: the value routes it to the spike alert's handler, which only
    # acknowledges it.
    return {**button_element(text, action_id, value), "url": url}


def _sparkline(days: Sequence[tuple[date, float | None]], today: float) -> str:
    recent = list(days)[-SPARK_DAYS:]
    if not recent:
        return ""
    values = [None if v is None else as_decimal(v) for _, v in recent] + [as_decimal(today)]
    known = [v for _, v in recent if v is not None]
    span = f"{money(min(known))}–{money(max(known))} a day" if known else "no daily totals"
    return f"*Last {len(recent)} days and today*  `{sparkline(values)}`  ({span}; today so far {money(today)})"


def _basis(source: str) -> str:
    if source == "history":
        return "Usual: this time of day on past days like today (stored checks)."
    if source == "daily":
        return "Usual: Twilio's daily totals of the last 28 days, spread over the day (no history yet)."
    return "Nothing usual known for this category yet."


def _count(category: str, totals: Totals) -> str:
    unit = _COUNT_UNITS.get(category.split("-", 1)[0], "")
    return escape_mrkdwn(format_quantity(as_decimal(round(totals.count, 2)), unit))


def _ratio(ratio: float) -> str:
    if not math.isfinite(ratio) or ratio <= 0:
        return "×?"
    return f"×{ratio:.0f}" if ratio >= 10 else f"×{ratio:.1f}"


def money(value: float) -> str:
    return format_money(as_decimal(value), "usd")


def as_decimal(value: float) -> Decimal:
    return Decimal(str(round(value, 6))) if math.isfinite(value) else Decimal(0)
