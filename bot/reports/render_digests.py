"""Digest messages: the digest posted to a channel (total vs the period before, biggest movers,
a daily sparkline) and the replies to `/usage digest …` and `/usage digests`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.model import Message, UsageRecord
from bot.render.blocks import (
    FALLBACK_BUDGET,
    channel_ref,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fit_fallback,
    header_block,
    list_message,
    mention,
    section_block,
)
from bot.render.formats import as_of_text, format_money, sparkline
from bot.reports.model import DigestReport, Mover, Subscription

__all__ = [
    "digest_schedule",
    "render_digest",
    "render_digest_subscribed",
    "render_digest_unsubscribed",
    "render_digests_list",
]


_BEFORE = {"daily": "the day before", "weekly": "the week before", "monthly": "the month before"}
_PERIOD_WORD = {"daily": "day", "weekly": "week", "monthly": "month"}


# --- small formats ----------------------------------------------------------------


def _hhmm(at_minutes: int) -> str:
    return f"{at_minutes // 60:02d}:{at_minutes % 60:02d}"


def digest_schedule(cadence: str, at_minutes: int) -> str:
    """'every day at 09:00', 'every Monday at 09:00', 'on the 1st of each month at 09:00'."""
    when = {"daily": "every day", "weekly": "every Monday", "monthly": "on the 1st of each month"}
    return f"{when.get(cadence, cadence)} at {_hhmm(at_minutes)}"


def _covers(cadence: str) -> str:
    return {
        "daily": "the day before",
        "weekly": "the previous Monday–Sunday",
        "monthly": "the previous month",
    }.get(cadence, "the previous period")


def _day(d: date) -> str:
    return f"{d:%A} {d.day} {d:%B %Y}"


def _period_words(report: DigestReport) -> str:
    """'Tuesday 24 November 2026', 'week of 16–22 November 2026', 'November 2026'."""
    start, end = report.start, report.end
    if report.cadence == "daily":
        return _day(start)
    if report.cadence == "monthly":
        return f"{start:%B %Y}"
    if start.year != end.year:
        return f"week of {start.day} {start:%B %Y} – {end.day} {end:%B %Y}"
    if start.month != end.month:
        return f"week of {start.day} {start:%B} – {end.day} {end:%B %Y}"
    return f"week of {start.day}–{end.day} {end:%B %Y}"


def _signed_money(amount: Decimal, unit: str) -> str:
    return ("+" if amount > 0 else "") + format_money(amount, unit)


def _percent(change: Decimal, base: Decimal) -> str:
    """'+45%', '-12%', '+4.5%'; 'new' when there was nothing before."""
    if base == 0:
        return "new"
    pct = change / abs(base) * 100
    return format(pct, "+.1f") + "%" if abs(pct) < 10 else format(pct, "+,.0f") + "%"


def _local(moment: datetime) -> str:
    return f"{moment:%a %d %b} at {moment:%H:%M}"


# --- the digest -------------------------------------------------------------------


def _total_line(report: DigestReport) -> str:
    unit = report.price_unit
    before = _BEFORE.get(report.cadence, "the period before")
    if report.total is None:
        return "*Total spend:* — (Twilio sent no total for this period)"
    line = f"*Total spend:* {escape_mrkdwn(format_money(report.total, unit))}"
    previous = report.previous_total
    if previous is None:
        return f"{line} · no figures for {before}"
    change = report.total - previous
    if previous == 0:
        return f"{line} · new: nothing was spent {before}" if change else f"{line} · nothing spent, as {before}"
    if change == 0:
        return f"{line} · no change from {before}"
    arrow = "▲" if change > 0 else "▼"
    pct = _percent(change, previous).lstrip("+-")
    return f"{line} · {arrow} {pct} vs {escape_mrkdwn(format_money(previous, unit))} {before}"


def _mover_line(mover: Mover, unit: str) -> str:
    """'• `sms` +$12.30 (+45%) · $39.60 vs $27.30'."""
    change = escape_mrkdwn(_signed_money(mover.change, unit))
    now = escape_mrkdwn(format_money(mover.now, unit))
    before = escape_mrkdwn(format_money(mover.before, unit))
    return f"• {code_span(mover.category, 60)} *{change}* ({_percent(mover.change, mover.before)}) · {now} vs {before}"


def _spark_label(report: DigestReport) -> str:
    if report.cadence == "daily":
        return f"last {len(report.daily)} days"
    if report.cadence == "weekly":
        return "Monday to Sunday"
    return f"1–{report.end.day} {report.end:%B}"


def render_digest(report: DigestReport) -> Message:
    """The digest posted to a channel: total vs the period before, biggest movers, daily sparkline."""
    header = f"Twilio usage digest · {_period_words(report)} (GMT)"
    unit = report.price_unit
    total = _total_line(report)

    movers = [_mover_line(m, unit) for m in report.movers]
    movers_text = "*Biggest movers*\n" + ("\n".join(movers) if movers else "No category's spend changed.")

    values = [v for _, v in report.daily]
    spark = sparkline(values)
    present = [v for v in values if v is not None]
    low_high = ""
    if present:
        low = escape_mrkdwn(format_money(min(present), unit))
        high = escape_mrkdwn(format_money(max(present), unit))
        low_high = f"  low {low} · high {high}"
    spark_text = f"*Daily spend* · {_spark_label(report)}\n`{spark}`{low_high}"

    span = report.start.isoformat() if report.start == report.end else f"{report.start} – {report.end}"
    as_of = as_of_text([UsageRecord("", as_of=report.as_of)]) if report.as_of else ""
    notes = [f"{span} (GMT)" + (f" · {as_of}" if as_of else "")]
    if not report.complete:
        word = _PERIOD_WORD.get(report.cadence, "period")
        notes.append(f"Twilio's GMT {word} was not over yet: these figures are partial.")
    notes.append("Stop with `/usage digest off`")

    blocks: list[dict[str, Any]] = [
        header_block(header),
        section_block(total),
        section_block(movers_text),
        section_block(spark_text),
        context_block(*notes),
    ]
    plain_movers = [m.removeprefix("• ") for m in movers]
    text = fit_fallback(
        [header, total],
        ["Biggest movers: " + ", ".join(plain_movers)] if plain_movers else [],
        [f"Daily spend: {spark}"],
    )
    return Message(text=text, blocks=blocks, public=True)


# --- subscriptions and the list ---------------------------------------------------


def render_digest_subscribed(
    sub: Subscription,
    *,
    replaced: Subscription | None,
    tz_name: str,
    next_at: datetime,
    now: datetime,
    already: bool = False,
) -> Message:
    """Confirmation of `/usage digest …`: what comes, when, and what it covers (`already`: the
    channel was subscribed exactly so, and nothing changed)."""
    schedule = f"{digest_schedule(sub.cadence, sub.at_minutes)} ({escape_mrkdwn(tz_name)})"
    body = (
        f":white_check_mark: This channel gets a *{sub.cadence}* Twilio usage digest {schedule}, "
        f"covering {_covers(sub.cadence)} (Twilio's GMT dates)."
    )
    if already:
        body = (
            f":information_source: This channel is already subscribed: a *{sub.cadence}* Twilio usage digest "
            f"{schedule}, covering {_covers(sub.cadence)} (Twilio's GMT dates)."
        )
    if replaced is not None and replaced.at_minutes != sub.at_minutes:
        body += f" It was at {_hhmm(replaced.at_minutes)}."
    if (next_at - now).total_seconds() <= 60:
        upcoming = "The first one is due now: it goes out with the next digests run, within minutes."
    else:
        upcoming = f"Next: {_local(next_at)}."
    note = "Stop with `/usage digest off`; see every digest with `/usage digests`."
    blocks = [section_block(f"{body}\n{upcoming}"), context_block(note)]
    return Message(text=clip(f"{body} {upcoming}", FALLBACK_BUDGET), blocks=blocks)


def render_digest_unsubscribed(removed: Sequence[Subscription]) -> Message:
    if not removed:
        body = "This channel has no digests to stop."
    else:
        cadences = [s.cadence for s in removed]
        listed = cadences[0] if len(cadences) == 1 else ", ".join(cadences[:-1]) + " and " + cadences[-1]
        body = f":wastebasket: Stopped this channel's {listed} {'digest' if len(cadences) == 1 else 'digests'}."
    return Message(text=body, blocks=[section_block(body)])


def render_digests_list(subs: Sequence[Subscription], *, tz_name: str, channel_id: str = "") -> Message:
    """`/usage digests`: every subscription, this channel's first."""
    header = f"Usage digests ({len(subs):,})"
    if not subs:
        body = "No digests yet. Subscribe this channel with `/usage digest daily at 09:00`."
        return Message(text=f"{header}\n{body}", blocks=[header_block(header), section_block(body)])
    ordered = sorted(subs, key=lambda s: s.channel_id != channel_id)
    lines = []
    for sub in ordered:
        where = channel_ref(sub.channel_id) or "a channel"
        here = " (this channel)" if sub.channel_id == channel_id else ""
        who = f" · by {creator}" if (creator := mention(sub.created_by)) else ""
        lines.append(f"• {where}{here} · *{sub.cadence}* · {digest_schedule(sub.cadence, sub.at_minutes)}{who}")
    note = f"Times are {escape_mrkdwn(tz_name)} (USAGE_TIMEZONE); the figures are Twilio's GMT days."
    return list_message(header, lines, note)
