"""Slack messages for digests and budgets. Pure: plain data in, `Message` out.

The block builders, number formats and limits are bot/render.py's; every message here stays
well inside Slack's limits (`render.check_limits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.model import Message, UsageRecord
from bot.render import (
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    _as_of,
    _channel_ref,
    _clip,
    _code,
    _context,
    _fields_section,
    _fit_fallback,
    _header,
    _pack_lines,
    _section,
    _slack_len,
    escape_mrkdwn,
    format_money,
    mention,
    sparkline,
)
from bot.reports.model import Budget, BudgetChange, BudgetCheck, DigestReport, Mover, Subscription

__all__ = [
    "render_budget_removed",
    "render_budget_set",
    "render_budget_warning",
    "render_budgets_list",
    "render_digest",
    "render_digest_subscribed",
    "render_digest_unsubscribed",
    "render_digests_list",
    "render_pace_line",
    "with_pace_line",
]

_FALLBACK_LIMIT = 3_900
_LIST_TEXT_BUDGET = 9_000
_BEFORE = {"daily": "the day before", "weekly": "the week before", "monthly": "the month before"}
_PERIOD_WORD = {"daily": "day", "weekly": "week", "monthly": "month"}
_TOTAL = "totalprice"


# --- small formats ----------------------------------------------------------------------


def _hhmm(at_minutes: int) -> str:
    return f"{at_minutes // 60:02d}:{at_minutes % 60:02d}"


def _schedule(cadence: str, at_minutes: int) -> str:
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


def _category_words(category: str) -> str:
    return "total spend" if category == _TOTAL else _code(category)


def _local(moment: datetime) -> str:
    return f"{moment:%a %d %b} at {moment:%H:%M}"


# --- digests ----------------------------------------------------------------------------


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
    return f"• {_code(mover.category, 60)} *{change}* ({_percent(mover.change, mover.before)}) · {now} vs {before}"


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
    as_of = _as_of([UsageRecord("", as_of=report.as_of)]) if report.as_of else ""
    notes = [f"{span} (GMT)" + (f" · {as_of}" if as_of else "")]
    if not report.complete:
        word = _PERIOD_WORD.get(report.cadence, "period")
        notes.append(f"Twilio's GMT {word} was not over yet: these figures are partial.")
    notes.append("Stop with `/usage digest off`")

    blocks: list[dict[str, Any]] = [
        _header(header),
        _section(total),
        _section(movers_text),
        _section(spark_text),
        _context(*notes),
    ]
    plain_movers = [m.removeprefix("• ") for m in movers]
    text = _fit_fallback(
        [header, total],
        ["Biggest movers: " + ", ".join(plain_movers)] if plain_movers else [],
        [f"Daily spend: {spark}"],
    )
    return Message(text=text, blocks=blocks, public=True)


def render_digest_subscribed(
    sub: Subscription, *, replaced: Subscription | None, tz_name: str, next_at: datetime, now: datetime
) -> Message:
    """Confirmation of `/usage digest …`: what comes, when, and what it covers."""
    schedule = f"{_schedule(sub.cadence, sub.at_minutes)} ({escape_mrkdwn(tz_name)})"
    body = (
        f":white_check_mark: This channel gets a *{sub.cadence}* Twilio usage digest {schedule}, "
        f"covering {_covers(sub.cadence)} (Twilio's GMT dates)."
    )
    if replaced is not None and replaced.at_minutes != sub.at_minutes:
        body += f" It was at {_hhmm(replaced.at_minutes)}."
    if (next_at - now).total_seconds() <= 60:
        upcoming = "The first one is due now: it goes out with the next digests run, within minutes."
    else:
        upcoming = f"Next: {_local(next_at)}."
    note = "Stop with `/usage digest off`; see every digest with `/usage digests`."
    blocks = [_section(f"{body}\n{upcoming}"), _context(note)]
    return Message(text=_clip(f"{body} {upcoming}", _FALLBACK_LIMIT), blocks=blocks)


def render_digest_unsubscribed(removed: Sequence[Subscription]) -> Message:
    if not removed:
        body = "This channel has no digests to stop."
    else:
        cadences = [s.cadence for s in removed]
        listed = cadences[0] if len(cadences) == 1 else ", ".join(cadences[:-1]) + " and " + cadences[-1]
        body = f":wastebasket: Stopped this channel's {listed} {'digest' if len(cadences) == 1 else 'digests'}."
    return Message(text=body, blocks=[_section(body)])


def render_digests_list(subs: Sequence[Subscription], *, tz_name: str, channel_id: str = "") -> Message:
    """`/usage digests`: every subscription, this channel's first."""
    header = f"Usage digests ({len(subs):,})"
    if not subs:
        body = "No digests yet. Subscribe this channel with `/usage digest daily at 09:00`."
        return Message(text=f"{header}\n{body}", blocks=[_header(header), _section(body)])
    ordered = sorted(subs, key=lambda s: s.channel_id != channel_id)
    lines = []
    for sub in ordered:
        where = _channel_ref(sub.channel_id) or "a channel"
        here = " (this channel)" if sub.channel_id == channel_id else ""
        who = f" · by {creator}" if (creator := mention(sub.created_by)) else ""
        lines.append(f"• {where}{here} · *{sub.cadence}* · {_schedule(sub.cadence, sub.at_minutes)}{who}")
    note = f"Times are {escape_mrkdwn(tz_name)} (USAGE_TIMEZONE); the figures are Twilio's GMT days."
    packed, shown = _pack_lines(lines, max_blocks=MAX_BLOCKS - 3, max_chars=_LIST_TEXT_BUDGET)
    blocks = [_header(header), *packed]
    if shown < len(lines):
        blocks.append(_context(f"… and {len(lines) - shown:,} more"))
    blocks.append(_context(note))
    text = _fit_fallback([header], lines[:shown], [note], also_hidden=len(lines) - shown)
    return Message(text=text, blocks=blocks)


# --- budgets ------------------------------------------------------------------------------


def _budget_title(budget: Budget) -> str:
    """'$500.00 a month for total spend' / '$20.00 a day for `sms`'."""
    per = "a day" if budget.period == "daily" else "a month"
    return f"{escape_mrkdwn(format_money(budget.amount, 'usd'))} {per} for {_category_words(budget.category)}"


def render_budget_set(change: BudgetChange, *, channel_id: str) -> Message:
    """Confirmation of `/usage budget …`: the budget, the Twilio trigger behind it, the warning."""
    budget, trigger = change.budget, change.trigger
    where = _channel_ref(channel_id) or "this channel"
    intro = f":white_check_mark: *Budget set:* {_budget_title(budget)}, reported in {where}."
    period = "every day (GMT)" if budget.period == "daily" else "every month (GMT)"
    fields = [
        f"*Budget*\n{escape_mrkdwn(format_money(budget.amount, 'usd'))}",
        f"*Period*\n{period}",
        f"*Watching*\n{_category_words(budget.category)}",
        f"*Twilio trigger*\n{_code(trigger.sid, 64)}",
    ]
    word = "day" if budget.period == "daily" else "month"
    note = (
        f"Twilio alerts here when spend reaches the budget; before that, usage-bot warns once a {word} "
        "when spend is on pace to cross it."
    )
    if change.replaced is not None:
        note += f" Replaces the budget of {escape_mrkdwn(format_money(change.replaced.amount, 'usd'))}."
    text = f"Budget set: {_budget_title(budget)}, Twilio trigger {_code(trigger.sid, 64)}. {note}"
    return Message(text=_clip(text, _FALLBACK_LIMIT), blocks=[_fields_section(intro, fields), _context(note)])


def render_budget_removed(budget: Budget | None, *, period: str, category: str | None) -> Message:
    if budget is None:
        what = _category_words((category or _TOTAL).lower())
        body = f"This channel has no {period} budget for {what}. See them all with `/usage budgets`."
        return Message(text=body, blocks=[_section(body)])
    sid = f" and its Twilio trigger {_code(budget.trigger_sid, 64)}" if budget.trigger_sid else ""
    body = f":wastebasket: Removed the budget of {_budget_title(budget)}{sid}."
    return Message(text=body, blocks=[_section(body)])


def _check_words(check: BudgetCheck, period: str) -> str:
    unit = check.price_unit
    word = "day" if period == "daily" else "month"
    spent = escape_mrkdwn(format_money(check.spent, unit))
    share = f"{int(check.share * 100)}%"
    if check.spent >= check.amount:
        return f"{spent} spent ({share} through the {word}): over budget"
    if not check.ready:
        return f"{spent} spent so far ({share} through the {word}; too early for a pace)"
    pace = escape_mrkdwn(format_money(check.projected, unit))
    flag = " :warning:" if check.warn else ""
    return f"{spent} spent ({share} through the {word}) · on pace for {pace}{flag}"


def render_budgets_list(
    budgets: Sequence[Budget], *, checks: Mapping[int, BudgetCheck] | None = None, channel_id: str = ""
) -> Message:
    """`/usage budgets`: every budget, this channel's first, with the spend so far when known."""
    header = f"Budgets ({len(budgets):,})"
    if not budgets:
        body = "No budgets yet. Set one with `/usage budget $500 monthly`."
        return Message(text=f"{header}\n{body}", blocks=[_header(header), _section(body)])
    checks = checks or {}
    lines = []
    for budget in sorted(budgets, key=lambda b: b.channel_id != channel_id):
        where = _channel_ref(budget.channel_id) or "a channel"
        line = f"• {where} · {_budget_title(budget)}"
        check = checks.get(budget.id)
        if check is not None:
            line += f" · {_check_words(check, budget.period)}"
        lines.append(line)
    note = "Budget periods are GMT days and months, as Twilio counts them. Remove one with `/usage budget off …`."
    if not checks:
        note = "Spend so far is not shown: Twilio did not answer. " + note
    packed, shown = _pack_lines(lines, max_blocks=MAX_BLOCKS - 3, max_chars=_LIST_TEXT_BUDGET)
    blocks = [_header(header), *packed]
    if shown < len(lines):
        blocks.append(_context(f"… and {len(lines) - shown:,} more"))
    blocks.append(_context(note))
    text = _fit_fallback([header], lines[:shown], [note], also_hidden=len(lines) - shown)
    return Message(text=text, blocks=blocks)


def render_budget_warning(budget: Budget, check: BudgetCheck) -> Message:
    """'On pace to spend $612.00 of your $500.00 monthly budget (40% through the month; $310.00
    spent so far)', posted once per period."""
    unit = check.price_unit
    word = "day" if budget.period == "daily" else "month"
    what = "" if budget.category == _TOTAL else f" for {_code(budget.category)}"
    sentence = (
        f"On pace to spend *{escape_mrkdwn(format_money(check.projected, unit))}* of your "
        f"{escape_mrkdwn(format_money(budget.amount, 'usd'))} {budget.period} budget{what} "
        f"({int(check.share * 100)}% through the {word}; "
        f"{escape_mrkdwn(format_money(check.spent, unit))} spent so far)."
    )
    trigger = (
        f" Twilio's trigger {_code(budget.trigger_sid, 64)} alerts here if spend reaches it."
        if budget.trigger_sid
        else ""
    )
    note = f"Projected at the current rate over the GMT {word}, as Twilio counts it; one warning per {word}.{trigger}"
    blocks = [_section(f":warning: *Budget warning* — {sentence}"), _context(note)]
    return Message(text=_clip(sentence.replace("*", ""), _FALLBACK_LIMIT), blocks=blocks, public=True)


# --- pace ---------------------------------------------------------------------------------


def render_pace_line(
    spent: Decimal, projected: Decimal, unit: str, *, share: float, ready: bool, period_word: str = "month"
) -> Message:
    """One context line for a summary of an unfinished period: 'On pace for $612.00 this month'."""
    if ready:
        pace = escape_mrkdwn(format_money(projected, unit))
        text = (
            f"On pace for *{pace}* this {period_word} (GMT) at the current rate · "
            f"{int(share * 100)}% of the {period_word} gone"
        )
    else:
        text = f'Too early in the {period_word} for an "on pace for" estimate ({int(share * 100)}% of it gone)'
    return Message(text=text, blocks=[_context(text)])


def with_pace_line(message: Message, pace: Message) -> Message:
    """`message` with the pace line after its headline section (or in its last context block
    when one more block would break Slack's limit)."""
    blocks = list(message.blocks)
    line = pace.blocks[0] if pace.blocks else _context(pace.text)
    if len(blocks) < MAX_BLOCKS:
        first_section = next((i for i, b in enumerate(blocks) if b.get("type") == "section"), len(blocks) - 1)
        blocks.insert(first_section + 1, line)
    else:
        last = max((i for i, b in enumerate(blocks) if b.get("type") == "context"), default=None)
        if last is not None and len(blocks[last]["elements"]) < MAX_CONTEXT_ELEMENTS:
            blocks[last] = {**blocks[last], "elements": [*blocks[last]["elements"], *line["elements"]]}
    text = message.text
    if _slack_len(text) + _slack_len(pace.text) + 1 <= _FALLBACK_LIMIT:
        text = f"{text}\n{pace.text}"
    return Message(text=text, blocks=blocks, public=message.public, error=message.error)
