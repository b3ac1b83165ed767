"""`/usage` answers: the summary of a period (`render_summary`) and a series of days or months
(`render_series`).

The title with the sample label, the period line and which records count as usage are public:
by_account.py words its message the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from bot.model import TOTAL_SPEND, DateRange, Message, Period, UsageRecord
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    blocks_text_len,
    clip,
    code_span,
    context_block,
    escape_mrkdwn,
    fit_fallback,
    header_block,
    oneline,
    pack_lines,
    section_block,
    slack_len,
)
from bot.render.formats import as_of_text, finite, format_money, format_quantity, plural, sparkline, sum_finite

__all__ = ["SAMPLE_LABEL", "has_usage", "period_context", "render_series", "render_summary", "usage_title"]


SAMPLE_LABEL = "Sample data — not your account"
_TOP_N = 10


def has_usage(record: UsageRecord) -> bool:
    """Whether the record shows any count, usage or spend (zero rows are left out of lists)."""
    return any((finite(v) or 0) != 0 for v in (record.count, record.usage, record.price))


def _sort_key(record: UsageRecord) -> tuple[Decimal, Decimal, str]:
    # copy_negate() is exact: plain negation rounds to the context and can overflow on absurd values.
    price = (finite(record.price) or Decimal(0)).copy_negate()
    return (price, (finite(record.count) or Decimal(0)).copy_negate(), record.category)


def _money_by_unit(records: Iterable[UsageRecord]) -> str:
    """Total price per currency: '$12.34' or '$12.34 + €1.00'; '' when no record has a price."""
    by_unit: dict[str, list[Decimal | None]] = {}
    for record in records:
        by_unit.setdefault((record.price_unit or "").strip().lower(), []).append(record.price)
    parts = []
    for unit, prices in by_unit.items():
        total = sum_finite(prices)
        if total is not None:
            parts.append(format_money(total, clip(unit, 12)))
    return " + ".join(parts)


def _record_name(record: UsageRecord) -> str:
    description = clip(oneline(record.description), 100)
    if description:
        return escape_mrkdwn(description)
    return code_span(record.category) if oneline(record.category) else "(unnamed)"


def _usage_differs(record: UsageRecord) -> bool:
    usage = finite(record.usage)
    if usage is None:
        return False
    count = finite(record.count)
    same_unit = oneline(record.usage_unit).lower() == oneline(record.count_unit).lower()
    return count is None or not same_unit or usage != count


def _summary_line(record: UsageRecord) -> str:
    """'• SMS outbound — *$14.54* · 1,840 messages · 2,392 segments'."""
    parts = []
    if finite(record.price) is not None:
        parts.append(f"*{escape_mrkdwn(format_money(record.price, clip(record.price_unit, 12)))}*")
    if finite(record.count) is not None:
        parts.append(escape_mrkdwn(format_quantity(record.count, clip(oneline(record.count_unit), 24))))
    if _usage_differs(record):
        parts.append(escape_mrkdwn(format_quantity(record.usage, clip(oneline(record.usage_unit), 24))))
    return f"• {_record_name(record)} — " + " · ".join(parts)


def _date_span(start: date | None, end: date | None) -> str:
    if start is None or end is None or start == end:
        only = start or end
        return f"{only.isoformat()} (GMT)" if only else ""
    return f"{start.isoformat()} – {end.isoformat()} (GMT)"


def period_context(records: Sequence[UsageRecord], period: Period | DateRange) -> str:
    """'2026-11-01 – 2026-11-25 (GMT) · as of 2026-11-25 14:03 GMT' from the records' own dates."""
    starts = [r.start_date for r in records if r.start_date is not None]
    ends = [r.end_date for r in records if r.end_date is not None]
    if starts or ends:
        span = _date_span(min(starts) if starts else None, max(ends) if ends else None)
    elif isinstance(period, DateRange):
        span = _date_span(period.start, period.end)
    else:
        span = f"{period.label} (GMT)"
    as_of = as_of_text(records)
    return f"{span} · {as_of}" if as_of else span


def usage_title(base: str, category: str | None, sample: bool) -> str:
    """Header text; the sample label is kept whole even when the rest must be cut."""
    title = base + (f" · {oneline(category)}" if category and oneline(category) else "")
    suffix = f" · {SAMPLE_LABEL}" if sample else ""
    return clip(title, MAX_HEADER_TEXT - slack_len(suffix)) + suffix


def _sample_note(sample: bool) -> str:
    return f":test_tube: *{SAMPLE_LABEL}*" if sample else ""


def render_summary(
    records: list[UsageRecord],
    period: Period | DateRange,
    *,
    category: str | None = None,
    show_all: bool = False,
    public: bool = False,
    sample: bool = False,
) -> Message:
    """Total spend, then the categories with usage, most expensive first (top 10 unless `show_all`).

    With `category`, only records of that category are shown.
    """
    wanted = oneline(category).lower() if category else ""
    selected = [r for r in records if r.category.strip().lower() == wanted] if wanted else list(records)
    total_record = next((r for r in selected if r.category.strip().lower() == TOTAL_SPEND), None)
    visible = sorted((r for r in selected if r.category.strip().lower() != TOTAL_SPEND and has_usage(r)), key=_sort_key)

    header_text = usage_title(f"Twilio usage · {period.label}", category, sample)
    dated = [total_record] if total_record and (total_record.start_date or total_record.end_date) else selected
    context_text = period_context(dated, period)
    blocks: list[dict[str, Any]] = [header_block(header_text), context_block(context_text, _sample_note(sample))]
    head = [header_text, context_text]

    # The headline: the totalprice record, or the spend of the one category asked for.
    headline = ""
    if total_record is not None:
        money = escape_mrkdwn(format_money(total_record.price, clip(total_record.price_unit, 12)))
        headline = f"*Total spend:* {money}"
        if visible and not wanted:
            headline += f" · {plural(len(visible), 'category', 'categories')} with usage"
    elif wanted and visible:
        spend = _money_by_unit(visible)
        if spend:
            headline = f"*Spend on {code_span(category or '')}:* {escape_mrkdwn(spend)}"

    empty = ""
    if not visible and not (total_record is not None and wanted == TOTAL_SPEND):
        if wanted:
            empty = f"No usage for {code_span(category or '')} in this period."
        elif not records or total_record is None or not has_usage(total_record):
            empty = "No usage in this period."
    if headline:
        blocks.append(section_block(headline))
        head.append(headline)
    if empty:
        blocks.append(section_block(empty))
        head.append(empty)

    limit = len(visible) if show_all else min(_TOP_N, len(visible))
    lines = [_summary_line(r) for r in visible[:limit]]
    footer_reserve = 400
    packed, shown = pack_lines(
        lines,
        max_blocks=MAX_BLOCKS - len(blocks) - 1,
        max_chars=BLOCKS_TEXT_BUDGET - blocks_text_len(blocks) - footer_reserve,
    )
    blocks += packed

    def more_line(hidden: int) -> str:
        rest = visible[len(visible) - hidden :]
        spend = clip(_money_by_unit(rest), 150)  # many currencies must not crowd out the rest
        more = f"… and {plural(len(rest), 'more category', 'more categories')}"
        return more + (f" ({escape_mrkdwn(spend)})" if spend else "")

    footer = ""
    if shown < len(visible):
        more = more_line(len(visible) - shown)
        if shown < limit:
            # Even the requested list does not fit in one Slack message.
            footer = f"{more} left out: that is all that fits in one Slack message. Ask for one category, e.g. `sms`."
        else:
            footer = f"{more} — add `all` to see every one"
        blocks.append(context_block(footer))

    # The fallback words the rest itself: it may hold fewer lines than the blocks do.
    text = fit_fallback(head, lines[:shown], more=more_line, also_hidden=len(visible) - shown)
    return Message(text=text, blocks=blocks, public=public)


# --- series of days or months -----------------------------------------------------


def render_series(
    records: list[UsageRecord],
    period: Period,
    *,
    category: str | None,
    count: int,
    public: bool = False,
    sample: bool = False,
) -> Message:
    """One line per day (or month), oldest first, with a price sparkline and the series total.

    Without `category` the `totalprice` rows are used; rows of other categories are ignored.
    """
    wanted = oneline(category).lower() if category else TOTAL_SPEND
    monthly = period is Period.MONTHLY
    step_word = {Period.MONTHLY: "month", Period.YEARLY: "year"}.get(period, "day")
    span = f"last {plural(max(count, 1), step_word)}" if count != 1 else f"last {step_word}"

    # Twilio may split one day over several records; add them up per start date.
    by_date: dict[date, list[UsageRecord]] = {}
    for record in records:
        if record.category.strip().lower() == wanted and record.start_date is not None:
            by_date.setdefault(record.start_date, []).append(record)
    days = sorted(by_date)
    if count > 0:
        days = days[-count:]

    header_text = usage_title(f"Twilio usage · {span}", category, sample)
    blocks: list[dict[str, Any]] = [header_block(header_text)]
    if not days:
        context_text = f"{period.label} (GMT)"
        blocks.append(context_block(context_text, _sample_note(sample)))
        what = f"for {code_span(category)} " if category else ""
        empty = f"No usage {what}in the {span}."
        blocks.append(section_block(empty))
        return Message(
            text=fit_fallback([header_text, context_text, empty], []),
            blocks=blocks,
            public=public,
        )

    first = by_date[days[0]][0]
    price_unit = clip(first.price_unit, 12)
    count_unit = clip(oneline(first.count_unit), 24)
    prices = [sum_finite(r.price for r in by_date[d]) for d in days]
    counts = [sum_finite(r.count for r in by_date[d]) for d in days]
    show_counts = category is not None and any(c is not None for c in counts)

    last = days[-1]
    end = max((r.end_date for r in by_date[last] if r.end_date), default=last)
    context_text = _date_span(days[0], end)
    blocks.append(context_block(context_text, _sample_note(sample)))

    total_price = sum_finite(prices)
    summary = f"*Total over the {span}:* {escape_mrkdwn(format_money(total_price, price_unit))}"
    if show_counts:
        summary += f" · {escape_mrkdwn(format_quantity(sum_finite(counts), count_unit))}"

    # A fixed-width table: date, bar, price (right-aligned), count.
    labels = [d.strftime("%Y-%m") if monthly else d.strftime("%Y-%m-%d %a") for d in days]
    money = [format_money(p, price_unit) for p in prices]
    width = max(slack_len(m) for m in money)
    bars = sparkline(prices)  # one scale for the whole series, so the table and summary agree
    rows = []
    for label, bar, price_text, count_value in zip(labels, bars, money, counts, strict=True):
        row = f"{label}  {bar}  {price_text:>{width}}"
        if show_counts:
            row += f"  {format_quantity(count_value, count_unit)}"
        rows.append(escape_mrkdwn(row))

    summary_block_chars = slack_len(summary) + 400  # + sparkline line, added below
    room_blocks = MAX_BLOCKS - len(blocks) - 2
    room_chars = BLOCKS_TEXT_BUDGET - blocks_text_len(blocks) - summary_block_chars - 300
    # Keep the newest rows when they cannot all fit: find how many fit counting back from today.
    _, fit = pack_lines(rows[::-1], max_blocks=room_blocks, max_chars=room_chars, code=True)
    tail = rows[len(rows) - fit :]
    table, shown = pack_lines(tail, max_blocks=room_blocks, max_chars=room_chars, code=True)
    hidden = len(rows) - shown

    present = [p for p in prices if p is not None]
    spark = bars[len(bars) - shown :] if shown else ""
    if spark:
        low_high = ""
        if present:
            low_high = (
                f"  low {escape_mrkdwn(format_money(min(present), price_unit))}"
                f" · high {escape_mrkdwn(format_money(max(present), price_unit))}"
            )
        summary += f"\n`{spark}`{low_high}"
    blocks.append(section_block(summary))
    blocks += table
    footer = ""
    if hidden:
        footer = f"… {plural(hidden, 'earlier ' + step_word)} not shown (Slack's message size limit)"
        blocks.append(context_block(footer))

    text = fit_fallback(
        [header_text, context_text, summary],
        rows[len(rows) - shown :],
        more=lambda n: f"… {plural(n, 'earlier ' + step_word)} not shown",
        also_hidden=hidden,
        newest_last=True,
    )
    return Message(text=text, blocks=blocks, public=public)
