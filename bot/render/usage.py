"""Slack messages for usage-bot: Block Kit blocks (plain dicts) plus a plain `text` fallback.

Everything here is pure: records and triggers in, `Message` out. No I/O, no Slack SDK.

Every renderer keeps its message inside Slack's limits (SPEC §4, slack-platform.md §6): at most
50 blocks, section text ≤ 3,000 characters, header ≤ 150, context ≤ 10 elements, fallback text
≤ 4,000. On top of the documented limits, Slack rejects messages whose blocks carry roughly
12,000 characters of text in total (`msg_blocks_too_long`, slack-platform.md §5.3), so renderers
budget 10,000 characters for all block text. `check_limits` checks all of this.

Text that comes from users or from Twilio (descriptions, categories, trigger names) is escaped
(`&`, `<`, `>`) before it goes into mrkdwn, so it cannot mention anyone or forge a link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.model import (
    Account,
    AuditEntry,
    DateRange,
    Message,
    ParseError,
    Period,
    StoredAlert,
    UsageRecord,
    UsageTrigger,
)

__all__ = [
    "ALERTS_PER_MESSAGE",
    "SAMPLE_LABEL",
    "SNOOZE_ACTIONS",
    "action_note",
    "alert_actions",
    "annotate_alert",
    "check_limits",
    "escape_mrkdwn",
    "format_money",
    "format_quantity",
    "parse_alert_button_value",
    "parse_triggers_page_value",
    "render_alerts",
    "render_audit",
    "render_by_account",
    "render_error",
    "render_failed_alerts",
    "render_help",
    "render_parse_error",
    "render_plain",
    "render_series",
    "render_summary",
    "render_trigger_created",
    "render_trigger_deleted",
    "render_triggers",
    "sparkline",
]

# --- Slack's limits (slack-platform.md §6) -----------------------------------

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BLOCK_ID = 255
MAX_MARKDOWN_TEXT = 12_000
MAX_TEXT = 40_000
# Undocumented: Slack answers msg_blocks_too_long at about 12,000-13,300 characters of block text.
MAX_BLOCKS_TOTAL_TEXT = 12_000

# --- our own budgets, with headroom below the limits --------------------------

_SECTION_BUDGET = 2_900
_BLOCKS_TEXT_BUDGET = 10_000
_FALLBACK_BUDGET = 3_900  # the brief wants the notification text ≤ 4,000
_TOP_N = 10

TOTAL_CATEGORY = "totalprice"
SAMPLE_LABEL = "Sample data — not your account"

_CENT = Decimal("0.01")
# Beyond 10**18 a fixed-point figure is absurd (and could be millions of digits long).
_HUGE_EXPONENT = 18
_MONEY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_SPARK_BARS = "▁▂▃▄▅▆▇█"
_SLACK_ID = re.compile(r"[A-Z0-9]{2,40}")
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,40}")

_RECURRING_WORDS = {
    "daily": "every day (GMT)",
    "monthly": "every month (GMT)",
    "yearly": "every year (GMT)",
}
_HELP_EXAMPLES = (
    ("/usage today", "spend and usage so far today"),
    ("/usage this-month sms all", "this month's SMS, every category"),
    ("/usage daily sms 7", "SMS spend per day for the last week"),
    ("/usage trigger totalprice $50 every month name Budget", "alert here when spend passes $50 a month"),
)


# --- numbers -------------------------------------------------------------------


def _finite(value: Any) -> Decimal | None:
    """A finite Decimal, or None for missing, NaN, infinite or unparsable values."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        try:
            value = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
    return value if value.is_finite() else None


def _fixed2(value: Decimal) -> str:
    """'1,234.50' from a finite Decimal, rounded half-up (as an invoice would)."""
    if value.adjusted() >= _HUGE_EXPONENT:
        return f"{value:.2E}"
    with localcontext() as ctx:
        # Enough digits that quantize never fails on large-but-sane amounts.
        ctx.prec = max(28, value.adjusted() + 5)
        rounded = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = rounded.copy_abs()  # no "-0.00"
    return f"{rounded:,.2f}"


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    """Sum of the finite values (None if there are none); overflow gives None, not an exception."""
    present = [v for v in (_finite(v) for v in values) if v is not None]
    if not present:
        return None
    with localcontext(Context(prec=40, traps=[])):
        total = sum(present, Decimal(0))
    return total if total.is_finite() else None


def format_money(amount: Decimal | None, unit: str) -> str:
    """'$1,234.57', '€12.35', '£12.35', '12.35 JPY'; '<$0.01' for sub-cent amounts; None → '—'."""
    value = _finite(amount)
    if value is None:
        return "—"
    code = (unit or "").strip()
    symbol = _MONEY_SYMBOLS.get(code.lower())
    sign = "-" if value < 0 else ""
    magnitude = value.copy_abs()
    # A fraction of a cent is real spend: show that it exists instead of "$0.00".
    less = "<" if 0 < magnitude < _CENT else ""
    number = "0.01" if less else _fixed2(magnitude)
    if symbol:
        return f"{sign}{less}{symbol}{number}"
    if code:
        return f"{sign}{less}{number} {code.upper()}"
    return f"{sign}{less}{number}"


def format_quantity(value: Decimal | None, unit: str) -> str:
    """'12,345 messages', '12.5 minutes' (up to 2 decimals, no trailing zeros); None → '—'."""
    number_value = _finite(value)
    if number_value is None:
        return "—"
    sign = "-" if number_value < 0 else ""
    magnitude = number_value.copy_abs()
    if 0 < magnitude < _CENT:
        number = "<0.01"
    else:
        number = _fixed2(magnitude)
        if "E" not in number:
            number = number.rstrip("0").rstrip(".")
    unit = (unit or "").strip()
    text = f"{sign}{number}"
    return f"{text} {unit}" if unit else text


def sparkline(values: Sequence[Decimal | None]) -> str:
    """One block character per value, ▁ (zero or least) to █ (most); '·' where a value is missing.

    Non-negative series are scaled from zero, so a quiet day looks quiet rather than average.
    """
    present = [v for v in (_finite(v) for v in values) if v is not None]
    if not present:
        return "·" * len(values)
    low = min(min(present), Decimal(0))
    high = max(present)
    span = high - low
    chars = []
    for raw in values:
        value = _finite(raw)
        if value is None:
            chars.append("·")
        elif span == 0:
            chars.append(_SPARK_BARS[0])
        else:
            with localcontext(Context(prec=28, traps=[])):
                step = int(((value - low) / span * 7).to_integral_value(rounding=ROUND_HALF_UP))
            chars.append(_SPARK_BARS[max(0, min(7, step))])
    return "".join(chars)


# --- text helpers --------------------------------------------------------------

_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")


def escape_mrkdwn(text: str) -> str:
    """Escape `&`, `<`, `>` for Slack mrkdwn. Idempotent: already-escaped text stays as it is."""
    return _BARE_AMPERSAND.sub("&amp;", text).replace("<", "&lt;").replace(">", "&gt;")


def _slack_len(text: str) -> int:
    """Length as Slack most likely counts it (UTF-16 code units), never less than len()."""
    return len(text.encode("utf-16-le")) // 2


def _clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-16 units, ending in '…' when cut."""
    if _slack_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > limit - 1:
            break
        out.append(char)
        used += width
    return "".join(out) + "…"


def _oneline(text: str | None) -> str:
    """Collapse whitespace (including newlines, which would break a line-per-item list)."""
    return " ".join((text or "").split())


def _code(text: str, limit: int = 60) -> str:
    """`text` as an inline code span, escaped; a backtick inside would end the span early."""
    inner = _clip(_oneline(text).replace("`", "'"), limit)
    return f"`{escape_mrkdwn(inner)}`" if inner else "`?`"


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


# --- block builders --------------------------------------------------------------


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, MAX_HEADER_TEXT), "emoji": True}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, MAX_SECTION_TEXT)}}


def _fields_section(text: str, fields: Sequence[str]) -> dict[str, Any]:
    block = _section(text)
    block["fields"] = [{"type": "mrkdwn", "text": _clip(f, MAX_FIELD_TEXT)} for f in fields[:MAX_FIELDS]]
    return block


def _context(*texts: str) -> dict[str, Any]:
    elements = [{"type": "mrkdwn", "text": _clip(t, MAX_SECTION_TEXT)} for t in texts if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def _pack_lines(
    lines: Sequence[str], *, max_blocks: int, max_chars: int, code: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Pack lines into as few sections as possible, within `max_blocks` and `max_chars` in total.

    Returns the sections and how many lines (from the start) they hold. `code=True` wraps each
    section in a ``` block, for tables that need a fixed-width font.
    """
    overhead = 8 if code else 0  # "```\n" + "\n```"
    per_section = _SECTION_BUDGET - overhead
    groups: list[list[str]] = []
    size = 0
    total = 0
    shown = 0
    for raw in lines:
        line = _clip(raw, per_section)
        width = _slack_len(line)
        if groups and size + 1 + width <= per_section:
            if total + 1 + width > max_chars:
                break
            groups[-1].append(line)
            size += 1 + width
            total += 1 + width
        else:
            if len(groups) >= max_blocks or total + width + overhead > max_chars:
                break
            groups.append([line])
            size = width
            total += width + overhead
        shown += 1
    blocks = []
    for group in groups:
        body = "\n".join(group)
        blocks.append(_section(f"```\n{body}\n```" if code else body))
    return blocks, shown


def _fit_fallback(
    head: Sequence[str],
    items: Sequence[str],
    tail: Sequence[str] = (),
    *,
    more: Callable[[int], str] | None = None,
    also_hidden: int = 0,
    newest_last: bool = False,
) -> str:
    """The notification text: `head`, as many `items` as fit in the budget, then `tail`.

    `more(n)` words the line standing for the n items left out (those cut here plus
    `also_hidden`, which never were items); by default the first items are kept, with
    `newest_last` the last ones (for series, where today matters most).
    """
    fixed = [_clip(x, 600) for x in (*head, *tail) if x]
    budget = _FALLBACK_BUDGET - sum(_slack_len(x) + 1 for x in fixed) - 200
    order = list(reversed(items)) if newest_last else list(items)
    kept: list[str] = []
    for item in order:
        width = _slack_len(item) + 1
        if width > budget:
            break
        kept.append(item)
        budget -= width
    hidden = len(items) - len(kept) + also_hidden
    more_line = _clip((more or (lambda n: f"… and {n:,} more"))(hidden), 190) if hidden else ""
    body = list(reversed(kept)) if newest_last else kept
    body = [more_line, *body] if newest_last else [*body, more_line]
    lines = [_clip(h, 600) for h in head if h] + [x for x in body if x] + [_clip(t, 600) for t in tail if t]
    return _clip("\n".join(lines), _FALLBACK_BUDGET)


def _blocks_text_len(blocks: Iterable[dict[str, Any]]) -> int:
    return sum(_slack_len(t) for block in blocks for t in _block_texts(block))


# --- usage summary -----------------------------------------------------------------


def _has_usage(record: UsageRecord) -> bool:
    return any((_finite(v) or 0) != 0 for v in (record.count, record.usage, record.price))


def _sort_key(record: UsageRecord) -> tuple[Decimal, Decimal, str]:
    # copy_negate() is exact: plain negation rounds to the context and can overflow on absurd values.
    price = (_finite(record.price) or Decimal(0)).copy_negate()
    return (price, (_finite(record.count) or Decimal(0)).copy_negate(), record.category)


def _money_by_unit(records: Iterable[UsageRecord]) -> str:
    """Total price per currency: '$12.34' or '$12.34 + €1.00'; '' when no record has a price."""
    by_unit: dict[str, list[Decimal | None]] = {}
    for record in records:
        by_unit.setdefault((record.price_unit or "").strip().lower(), []).append(record.price)
    parts = []
    for unit, prices in by_unit.items():
        total = _sum(prices)
        if total is not None:
            parts.append(format_money(total, _clip(unit, 12)))
    return " + ".join(parts)


def _record_name(record: UsageRecord) -> str:
    description = _clip(_oneline(record.description), 100)
    if description:
        return escape_mrkdwn(description)
    return _code(record.category) if _oneline(record.category) else "(unnamed)"


def _usage_differs(record: UsageRecord) -> bool:
    usage = _finite(record.usage)
    if usage is None:
        return False
    count = _finite(record.count)
    same_unit = _oneline(record.usage_unit).lower() == _oneline(record.count_unit).lower()
    return count is None or not same_unit or usage != count


def _summary_line(record: UsageRecord) -> str:
    """'• SMS outbound — *$14.54* · 1,840 messages · 2,392 segments'."""
    parts = []
    if _finite(record.price) is not None:
        parts.append(f"*{escape_mrkdwn(format_money(record.price, _clip(record.price_unit, 12)))}*")
    if _finite(record.count) is not None:
        parts.append(escape_mrkdwn(format_quantity(record.count, _clip(_oneline(record.count_unit), 24))))
    if _usage_differs(record):
        parts.append(escape_mrkdwn(format_quantity(record.usage, _clip(_oneline(record.usage_unit), 24))))
    return f"• {_record_name(record)} — " + " · ".join(parts)


def _date_span(start: date | None, end: date | None) -> str:
    if start is None or end is None or start == end:
        only = start or end
        return f"{only.isoformat()} (GMT)" if only else ""
    return f"{start.isoformat()} – {end.isoformat()} (GMT)"


def _as_of(records: Sequence[UsageRecord]) -> str:
    raw = next((r.as_of for r in records if _oneline(r.as_of)), "")
    if not raw:
        return ""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return f"as of {escape_mrkdwn(_clip(_oneline(raw), 40))}"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"as of {moment:%Y-%m-%d %H:%M} GMT"


def _period_context(records: Sequence[UsageRecord], period: Period | DateRange) -> str:
    """'2026-11-01 – 2026-11-25 (GMT) · as of 2026-11-25 14:03 GMT' from the records' own dates."""
    starts = [r.start_date for r in records if r.start_date is not None]
    ends = [r.end_date for r in records if r.end_date is not None]
    if starts or ends:
        span = _date_span(min(starts) if starts else None, max(ends) if ends else None)
    elif isinstance(period, DateRange):
        span = _date_span(period.start, period.end)
    else:
        span = f"{period.label} (GMT)"
    as_of = _as_of(records)
    return f"{span} · {as_of}" if as_of else span


def _title(base: str, category: str | None, sample: bool) -> str:
    """Header text; the sample label is kept whole even when the rest must be cut."""
    title = base + (f" · {_oneline(category)}" if category and _oneline(category) else "")
    suffix = f" · {SAMPLE_LABEL}" if sample else ""
    return _clip(title, MAX_HEADER_TEXT - _slack_len(suffix)) + suffix


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
    wanted = _oneline(category).lower() if category else ""
    selected = [r for r in records if r.category.strip().lower() == wanted] if wanted else list(records)
    total_record = next((r for r in selected if r.category.strip().lower() == TOTAL_CATEGORY), None)
    visible = sorted(
        (r for r in selected if r.category.strip().lower() != TOTAL_CATEGORY and _has_usage(r)), key=_sort_key
    )

    header_text = _title(f"Twilio usage · {period.label}", category, sample)
    dated = [total_record] if total_record and (total_record.start_date or total_record.end_date) else selected
    context_text = _period_context(dated, period)
    blocks: list[dict[str, Any]] = [_header(header_text), _context(context_text, _sample_note(sample))]
    head = [header_text, context_text]

    # The headline: the totalprice record, or the spend of the one category asked for.
    headline = ""
    if total_record is not None:
        money = escape_mrkdwn(format_money(total_record.price, _clip(total_record.price_unit, 12)))
        headline = f"*Total spend:* {money}"
        if visible and not wanted:
            headline += f" · {_plural(len(visible), 'category', 'categories')} with usage"
    elif wanted and visible:
        spend = _money_by_unit(visible)
        if spend:
            headline = f"*Spend on {_code(category or '')}:* {escape_mrkdwn(spend)}"

    empty = ""
    if not visible and not (total_record is not None and wanted == TOTAL_CATEGORY):
        if wanted:
            empty = f"No usage for {_code(category or '')} in this period."
        elif not records or total_record is None or not _has_usage(total_record):
            empty = "No usage in this period."
    if headline:
        blocks.append(_section(headline))
        head.append(headline)
    if empty:
        blocks.append(_section(empty))
        head.append(empty)

    limit = len(visible) if show_all else min(_TOP_N, len(visible))
    lines = [_summary_line(r) for r in visible[:limit]]
    footer_reserve = 400
    packed, shown = _pack_lines(
        lines,
        max_blocks=MAX_BLOCKS - len(blocks) - 1,
        max_chars=_BLOCKS_TEXT_BUDGET - _blocks_text_len(blocks) - footer_reserve,
    )
    blocks += packed

    def more_line(hidden: int) -> str:
        rest = visible[len(visible) - hidden :]
        spend = _clip(_money_by_unit(rest), 150)  # many currencies must not crowd out the rest
        more = f"… and {_plural(len(rest), 'more category', 'more categories')}"
        return more + (f" ({escape_mrkdwn(spend)})" if spend else "")

    footer = ""
    if shown < len(visible):
        more = more_line(len(visible) - shown)
        if shown < limit:
            # Even the requested list does not fit in one Slack message.
            footer = f"{more} left out: that is all that fits in one Slack message. Ask for one category, e.g. `sms`."
        else:
            footer = f"{more} — add `all` to see every one"
        blocks.append(_context(footer))

    # The fallback words the rest itself: it may hold fewer lines than the blocks do.
    text = _fit_fallback(head, lines[:shown], more=more_line, also_hidden=len(visible) - shown)
    return Message(text=text, blocks=blocks, public=public)


# --- usage by account --------------------------------------------------------------


@dataclass(frozen=True)
class _AccountRow:
    """One account's figures for `render_by_account`; `spend` None means Twilio gave none."""

    sid: str
    name: str  # mrkdwn, escaped
    status: str
    spend: Decimal | None
    unit: str
    quantity: Decimal | None = None
    quantity_unit: str = ""
    used: bool = False


def _account_row(sid: str, name: str, status: str, records: Sequence[UsageRecord] | None, wanted: str) -> _AccountRow:
    if records is None:
        return _AccountRow(sid, name, status, None, "")
    matching = [r for r in records if r.category.strip().lower() == wanted]
    return _AccountRow(
        sid,
        name,
        status,
        # No record of the category means no usage of it, not an unknown figure.
        _sum(r.price for r in matching) or Decimal(0),
        next((r.price_unit for r in matching if _oneline(r.price_unit)), ""),
        _sum(r.count for r in matching),
        next((_oneline(r.count_unit) for r in matching if _oneline(r.count_unit)), ""),
        any(_has_usage(r) for r in matching),
    )


def _share(part: Decimal, whole: Decimal | None) -> str:
    """'41.2%' of the family total; '<0.1%' for a sliver; '' when there is no total to share."""
    if whole is None or whole <= 0 or part < 0:
        return ""
    with localcontext(Context(prec=28, traps=[])):
        percent = (part / whole * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if not percent.is_finite():
        return ""
    if percent == 0 and part > 0:
        return "<0.1%"
    return f"{percent}%"


def _account_line(row: _AccountRow, total: Decimal | None, unit: str, *, show_quantity: bool) -> str:
    """'• *Acme EU* `AC…` — *$12.34* · 41.2%', with the status when the account is not active."""
    head = f"• *{row.name}* {_code(row.sid, 40)} — "
    if row.spend is None:
        parts = ["_unavailable_"]
    else:
        row_unit = _clip(row.unit or unit, 12)
        parts = [f"*{escape_mrkdwn(format_money(row.spend, row_unit))}*"]
        if show_quantity and row.quantity is not None:
            parts.append(escape_mrkdwn(format_quantity(row.quantity, _clip(row.quantity_unit, 24))))
        # A share only makes sense in the total's currency.
        share = _share(row.spend, total) if row_unit.strip().lower() == unit.strip().lower() else ""
        if share:
            parts.append(escape_mrkdwn(share))
    status = _oneline(row.status).lower()
    if status and status != "active":
        parts.append(f"_{escape_mrkdwn(_clip(status, 20))}_")
    return _clip(head + " · ".join(parts), 400)


def render_by_account(
    period: Period | DateRange,
    *,
    family: Sequence[UsageRecord],
    main: Sequence[UsageRecord],
    main_sid: str,
    subaccounts: Sequence[tuple[Account, Sequence[UsageRecord] | None]],
    category: str | None = None,
    public: bool = False,
) -> Message:
    """Spend per account: the family total, the main account's own spend, then each subaccount.

    `family` is the main account's records with its subaccounts included (Twilio's default),
    `main` its own (IncludeSubaccounts=false), `subaccounts` each subaccount with its records, or
    None when Twilio gave none (shown as unavailable). The `totalprice` records are used, or
    those of `category`. Subaccounts are sorted by spend, most first; those with no usage are
    only counted.
    """
    wanted = _oneline(category).lower() if category else TOTAL_CATEGORY
    show_quantity = wanted != TOTAL_CATEGORY
    every = [*family, *main, *(r for _, records in subaccounts for r in records or ())]
    family_row = _account_row("", "", "", family, wanted)
    unit = family_row.unit or next((r.price_unit for r in every if _oneline(r.price_unit)), "") or "usd"
    total = family_row.spend

    main_row = _account_row(main_sid, "Main account", "", main, wanted)
    rows = [
        _account_row(account.sid, _account_name(account), account.status, records, wanted)
        for account, records in subaccounts
    ]
    spenders = sorted(
        (r for r in rows if r.spend is not None and r.used),
        key=lambda r: (
            (r.spend or Decimal(0)).copy_negate(),
            (_finite(r.quantity) or Decimal(0)).copy_negate(),
            r.name.lower(),
            r.sid,
        ),
    )
    unavailable = [r for r in rows if r.spend is None]
    idle = len(rows) - len(spenders) - len(unavailable)
    listed = [main_row, *spenders, *unavailable]
    lines = [_account_line(r, total, unit, show_quantity=show_quantity) for r in listed]

    header_text = _title(f"Twilio usage by account · {period.label}", category, False)
    wanted_records = [r for r in family if r.category.strip().lower() == wanted]
    dated = wanted_records if any(r.start_date or r.end_date for r in wanted_records) else list(family)
    context_text = _period_context(dated, period)
    headline = f"*All accounts:* {escape_mrkdwn(format_money(total, _clip(unit, 12)))}"
    if show_quantity and family_row.quantity is not None:
        headline += f" · {escape_mrkdwn(format_quantity(family_row.quantity, _clip(family_row.quantity_unit, 24)))}"
    headline += f" · main account + {_plural(len(rows), 'subaccount')}"
    blocks: list[dict[str, Any]] = [_header(header_text), _context(context_text), _section(headline)]

    footer_reserve = 700  # the three notes below, each clipped well under this together
    packed, shown = _pack_lines(
        lines,
        max_blocks=MAX_BLOCKS - len(blocks) - 1,
        max_chars=_BLOCKS_TEXT_BUDGET - _blocks_text_len(blocks) - footer_reserve,
    )
    blocks += packed

    def more_line(hidden: int) -> str:
        rest = listed[len(listed) - hidden :]
        spend = _sum(r.spend for r in rest if r.spend is not None) or Decimal(0)
        text = f"… and {_plural(len(rest), 'more account')} ({escape_mrkdwn(format_money(spend, _clip(unit, 12)))}"
        missing = sum(1 for r in rest if r.spend is None)
        return text + (f"; {missing:,} unavailable)" if missing else ")")

    what = "spend" if wanted == TOTAL_CATEGORY else f"{_code(category or '')} usage"
    notes = [
        more_line(len(lines) - shown) if shown < len(lines) else "",
        f"{_plural(idle, 'subaccount')} with no {what}" if idle else "",
        (
            f"{_plural(len(unavailable), 'subaccount')} unavailable: Twilio did not return "
            f"{'its' if len(unavailable) == 1 else 'their'} usage (closed, or an error)"
            if unavailable
            else ""
        ),
    ]
    if not rows:
        notes.append("This account has no subaccounts.")
    notes = [_clip(n, 220) for n in notes if n]
    if notes:
        blocks.append(_context(*notes))

    text = _fit_fallback(
        [header_text, context_text, headline],
        lines[:shown],
        notes[1:] if shown < len(lines) else notes,
        more=more_line,
        also_hidden=len(lines) - shown,
    )
    return Message(text=text, blocks=blocks, public=public)


def _account_name(account: Account) -> str:
    name = escape_mrkdwn(_clip(_oneline(account.friendly_name), 60))
    return name or "(unnamed)"


# --- series ------------------------------------------------------------------------


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
    wanted = _oneline(category).lower() if category else TOTAL_CATEGORY
    monthly = period is Period.MONTHLY
    step_word = {Period.MONTHLY: "month", Period.YEARLY: "year"}.get(period, "day")
    span = f"last {_plural(max(count, 1), step_word)}" if count != 1 else f"last {step_word}"

    # Twilio may split one day over several records; add them up per start date.
    by_date: dict[date, list[UsageRecord]] = {}
    for record in records:
        if record.category.strip().lower() == wanted and record.start_date is not None:
            by_date.setdefault(record.start_date, []).append(record)
    days = sorted(by_date)
    if count > 0:
        days = days[-count:]

    header_text = _title(f"Twilio usage · {span}", category, sample)
    blocks: list[dict[str, Any]] = [_header(header_text)]
    if not days:
        context_text = f"{period.label} (GMT)"
        blocks.append(_context(context_text, _sample_note(sample)))
        what = f"for {_code(category)} " if category else ""
        empty = f"No usage {what}in the {span}."
        blocks.append(_section(empty))
        return Message(
            text=_fit_fallback([header_text, context_text, empty], []),
            blocks=blocks,
            public=public,
        )

    first = by_date[days[0]][0]
    price_unit = _clip(first.price_unit, 12)
    count_unit = _clip(_oneline(first.count_unit), 24)
    prices = [_sum(r.price for r in by_date[d]) for d in days]
    counts = [_sum(r.count for r in by_date[d]) for d in days]
    show_counts = category is not None and any(c is not None for c in counts)

    last = days[-1]
    end = max((r.end_date for r in by_date[last] if r.end_date), default=last)
    context_text = _date_span(days[0], end)
    blocks.append(_context(context_text, _sample_note(sample)))

    total_price = _sum(prices)
    summary = f"*Total over the {span}:* {escape_mrkdwn(format_money(total_price, price_unit))}"
    if show_counts:
        summary += f" · {escape_mrkdwn(format_quantity(_sum(counts), count_unit))}"

    # A fixed-width table: date, bar, price (right-aligned), count.
    labels = [d.strftime("%Y-%m") if monthly else d.strftime("%Y-%m-%d %a") for d in days]
    money = [format_money(p, price_unit) for p in prices]
    width = max(_slack_len(m) for m in money)
    bars = sparkline(prices)  # one scale for the whole series, so the table and summary agree
    rows = []
    for label, bar, price_text, count_value in zip(labels, bars, money, counts, strict=True):
        row = f"{label}  {bar}  {price_text:>{width}}"
        if show_counts:
            row += f"  {format_quantity(count_value, count_unit)}"
        rows.append(escape_mrkdwn(row))

    summary_block_chars = _slack_len(summary) + 400  # + sparkline line, added below
    room_blocks = MAX_BLOCKS - len(blocks) - 2
    room_chars = _BLOCKS_TEXT_BUDGET - _blocks_text_len(blocks) - summary_block_chars - 300
    # Keep the newest rows when they cannot all fit: find how many fit counting back from today.
    _, fit = _pack_lines(rows[::-1], max_blocks=room_blocks, max_chars=room_chars, code=True)
    tail = rows[len(rows) - fit :]
    table, shown = _pack_lines(tail, max_blocks=room_blocks, max_chars=room_chars, code=True)
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
    blocks.append(_section(summary))
    blocks += table
    footer = ""
    if hidden:
        footer = f"… {_plural(hidden, 'earlier ' + step_word)} not shown (Slack's message size limit)"
        blocks.append(_context(footer))

    text = _fit_fallback(
        [header_text, context_text, summary],
        rows[len(rows) - shown :],
        more=lambda n: f"… {_plural(n, 'earlier ' + step_word)} not shown",
        also_hidden=hidden,
        newest_last=True,
    )
    return Message(text=text, blocks=blocks, public=public)


# --- help and errors -----------------------------------------------------------------


def _form(form: str) -> str:
    form = _oneline(form)
    return form if form.startswith("/") else f"/usage {form}"


def render_help(lines: Sequence[tuple[str, str]]) -> Message:
    """Every command form with its explanation, then a few examples."""
    header_text = "/usage — Twilio usage in Slack"
    items = []
    for form, explanation in lines:
        item = f"• {_code(_form(form), 200)}"
        if _oneline(explanation):
            # Explanations are our own mrkdwn (they may quote `words`); escaping keeps them inert.
            item += f"\n      {escape_mrkdwn(_clip(_oneline(explanation), 600))}"
        items.append(item)
    examples = "*Examples*\n" + "\n".join(f"• {_code(cmd, 200)} — {what}" for cmd, what in _HELP_EXAMPLES)
    note = "Periods and dates are GMT, as in Twilio. Replies are visible only to you unless you add `public`."

    blocks: list[dict[str, Any]] = [_header(header_text)]
    reserved = _slack_len(examples) + _slack_len(note)
    packed, shown = _pack_lines(
        items, max_blocks=MAX_BLOCKS - 4, max_chars=_BLOCKS_TEXT_BUDGET - reserved - _blocks_text_len(blocks)
    )
    blocks += packed
    if shown < len(items):
        blocks.append(_context(f"… and {len(items) - shown:,} more forms"))
    blocks += [{"type": "divider"}, _section(examples), _context(note)]
    text = _fit_fallback(
        [header_text],
        items[:shown],
        [examples, note],
        more=lambda n: f"… and {n:,} more forms",
        also_hidden=len(items) - shown,
    )
    return Message(text=text, blocks=blocks, public=False)


def render_parse_error(error: ParseError) -> Message:
    """A short ephemeral note: what was wrong, suggestions, the right form, and where help is."""
    lines = [f":warning: {escape_mrkdwn(_clip(_oneline(error.message), 500)) or 'That command was not understood.'}"]
    suggestions = [s for s in error.suggestions if _oneline(s)][:5]
    if suggestions:
        lines.append("Did you mean " + ", ".join(_code(s, 40) for s in suggestions) + "?")
    if _oneline(error.usage):
        lines.append(f"Usage: {_code(error.usage, 300)}")
    lines.append("Try `/usage help` to see every command.")
    body = "\n".join(lines)
    return Message(text=_clip(body, _FALLBACK_BUDGET), blocks=[_section(body)], public=False, error=True)


def render_error(text: str) -> Message:
    """A short ephemeral warning for platform errors (Twilio unavailable, and so on)."""
    body = f":warning: {escape_mrkdwn(_clip(_oneline(text), 1000)) or 'Something went wrong.'}"
    return Message(text=body, blocks=[_section(body)], public=False, error=True)


# --- triggers ----------------------------------------------------------------------


def _parse_value(raw: str) -> tuple[Decimal | None, bool, str]:
    """'+1,000' → (1000, relative, ''); '$25' / '25usd' → (25, absolute, 'usd')."""
    text = _oneline(raw).replace(",", "").replace(" ", "")
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
    return _finite(match.group(1)), relative, unit


def _describe_value(raw: str, trigger_by: str, relative_words: str = "more than now") -> str:
    """'1,000', '1,000 more than now', '$25.00' (escaped mrkdwn)."""
    value, relative, unit = _parse_value(raw)
    if value is None:
        return escape_mrkdwn(_clip(_oneline(raw), 40)) or "—"
    # Twilio's triggers carry no currency: usd unless the value named one.
    money = trigger_by == "price" or bool(unit)
    text = format_money(value, unit or "usd") if money else format_quantity(value, "")
    return escape_mrkdwn(f"{text} {relative_words}" if relative else text)


def _measure(trigger_by: str) -> str:
    return {"count": "count", "usage": "usage", "price": "price"}.get(_oneline(trigger_by).lower(), "usage")


def _recurring(recurring: str) -> str:
    return _RECURRING_WORDS.get(_oneline(recurring).lower(), "once")


def mention(user_id: str) -> str:
    """`<@U123>` for a real-looking Slack user ID, else "": anything else would be an injection risk."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else ""


def _channel_ref(channel_id: str) -> str:
    """`<#C123>` for a real-looking Slack channel ID; anything else would be an injection risk."""
    return f"<#{channel_id}>" if _SLACK_ID.fullmatch(channel_id or "") else ""


def _callback_channel(url: str) -> str:
    try:
        return parse_qs(urlsplit(url or "").query).get("channel", [""])[0]
    except ValueError:
        return ""


def render_trigger_created(trigger: UsageTrigger, *, channel_id: str, value_requested: str) -> Message:
    """Confirmation repeating what was set up: category, threshold, measure, period, name, channel."""
    by = _measure(trigger.trigger_by)
    threshold = _describe_value(value_requested, by)
    requested, requested_relative, _ = _parse_value(value_requested)
    stored, stored_relative, _ = _parse_value(trigger.trigger_value)
    if stored is not None and (stored != requested or stored_relative != requested_relative):
        threshold += f" (Twilio's threshold: {_describe_value(trigger.trigger_value, by)})"
    channel = _channel_ref(channel_id) or "the default alert channel"
    period = _recurring(trigger.recurring)
    name = escape_mrkdwn(_clip(_oneline(trigger.friendly_name), 200))

    fields = [
        f"*Category*\n{_code(trigger.usage_category)}",
        f"*Threshold*\n{threshold}",
        f"*Measured by*\n{by}",
        f"*Period*\n{period}",
    ]
    if name:
        fields.append(f"*Name*\n{name}")
    if _oneline(trigger.current_value):
        fields.append(f"*Current value*\n{_describe_value(trigger.current_value, by)}")
    fields.append(f"*Trigger SID*\n{_code(trigger.sid, 64)}")
    intro = f":white_check_mark: *Usage trigger created.* When it fires, the alert comes to {channel}."
    note = "Twilio checks triggers about once a minute and usage data can lag, so an alert may come a little late."
    blocks = [_fields_section(intro, fields), _context(note)]
    text = (
        f"Usage trigger created: {_code(trigger.usage_category)} {by} reaches {threshold}, {period}"
        + (f", name “{name}”" if name else "")
        + f". Alerts go to {channel}. SID {_code(trigger.sid, 64)}"
    )
    return Message(text=_clip(text, _FALLBACK_BUDGET), blocks=blocks, public=False)


def _trigger_line(trigger: UsageTrigger, channels: Mapping[str, str], creators: Mapping[str, str]) -> str:
    by = _measure(trigger.trigger_by)
    name = escape_mrkdwn(_clip(_oneline(trigger.friendly_name), 80))
    title = f"*{name}* · {_code(trigger.usage_category)}" if name else _code(trigger.usage_category)
    current = _describe_value(trigger.current_value, by) if _oneline(trigger.current_value) else "—"
    # A relative threshold counts from the usage when the trigger was made, not from today.
    threshold = _describe_value(trigger.trigger_value, by, "more than at creation")
    parts = [f"{by} {current} of {threshold}", _recurring(trigger.recurring)]
    channel = _channel_ref(channels.get(trigger.sid, "") or _callback_channel(trigger.callback_url))
    parts.append(f"→ {channel}" if channel else "→ default alert channel")
    if creator := mention(creators.get(trigger.sid, "")):
        parts.append(f"by {creator}")
    if trigger.date_fired is not None:
        fired = trigger.date_fired
        fired = fired.astimezone(UTC) if fired.tzinfo is not None else fired
        parts.append(f"last fired {fired:%Y-%m-%d %H:%M} GMT")
    parts.append(_code(trigger.sid, 64))
    return f"• {title} — " + " · ".join(parts)


TRIGGERS_PER_PAGE = 20


def triggers_page_value(category: str | None, page: int) -> str:
    return f"{category or ''}|{page}"


def parse_triggers_page_value(value: str) -> tuple[str | None, int]:
    category, _, page = value.partition("|")
    return category or None, int(page) if page.isdigit() else 0


def _delete_trigger_button(trigger: UsageTrigger, category: str | None, page: int) -> dict[str, Any]:
    button = _button("Delete", "triggers_delete", f"{trigger.sid}|{triggers_page_value(category, page)}", "danger")
    button["confirm"] = {
        "title": {"type": "plain_text", "text": "Delete this trigger?"},
        "text": {"type": "mrkdwn", "text": f"Twilio stops watching {_code(trigger.usage_category)} for this trigger."},
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
    blocks: list[dict[str, Any]] = [_header(header_text)]
    if note:
        blocks.append(_context(note))
    if not triggers:
        empty = "No usage triggers yet. Create one with `/usage trigger sms +1000`."
        blocks.append(_section(empty))
        return Message(text=f"{header_text}\n{empty}", blocks=blocks, public=False)

    pages = (len(triggers) + TRIGGERS_PER_PAGE - 1) // TRIGGERS_PER_PAGE
    page = max(0, min(page, pages - 1))
    first = page * TRIGGERS_PER_PAGE
    shown = triggers[first : first + TRIGGERS_PER_PAGE]
    lines = [_clip(_trigger_line(t, channels, creators), 480) for t in shown]
    for trigger, line in zip(shown, lines, strict=True):
        section = _section(line)
        section["accessory"] = _delete_trigger_button(trigger, category, page)
        blocks.append(section)
    if pages > 1:
        blocks.append(
            _context(f"Showing {first + 1:,}–{first + len(shown):,} of {len(triggers):,} · page {page + 1} of {pages}")
        )
        nav = []
        if page > 0:
            nav.append(_button("‹ Previous", "triggers_page_prev", triggers_page_value(category, page - 1)))
        if page < pages - 1:
            nav.append(_button("Next ›", "triggers_page_next", triggers_page_value(category, page + 1)))
        blocks.append({"type": "actions", "block_id": "triggers_pages", "elements": nav})
    text = _fit_fallback([header_text], lines, also_hidden=len(triggers) - len(shown))
    return Message(text=text, blocks=blocks, public=False)


def render_trigger_deleted(sid: str) -> Message:
    """Confirmation that a usage trigger is gone."""
    body = f":wastebasket: Deleted usage trigger {_code(sid, 64)}. Twilio will not send its alerts any more."
    return Message(text=body, blocks=[_section(body)], public=False)


# --- alerts ---------------------------------------------------------------------------

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


def _alert_value(raw: str, category: str, by: str) -> str:
    value, _, _ = _parse_value(raw)
    if value is None:
        return escape_mrkdwn(_clip(_oneline(raw), 40)) or "—"
    if by == "price":
        return format_money(value, "usd")
    return escape_mrkdwn(format_quantity(value, _alert_unit(category, by)))


def _slack_date(epoch: float) -> str:
    """A date each reader sees in their own time zone; the fallback is GMT."""
    when = datetime.fromtimestamp(epoch, UTC)
    return f"<!date^{int(epoch)}^{{date_short_pretty}} at {{time}}|{when:%Y-%m-%d %H:%M} GMT>"


def _alert_title(alert: StoredAlert) -> str:
    name = escape_mrkdwn(_clip(_oneline(alert.friendly_name), 60))
    category = _code(alert.category or "unknown category")
    return f"*{name}* · {category}" if name else category


def _alert_period(alert: StoredAlert) -> str:
    words = {"daily": "today (resets daily, GMT)", "monthly": "this month (resets monthly, GMT)"}
    words["yearly"] = "this year (resets yearly, GMT)"
    return words.get(_oneline(alert.recurring).lower(), "one-shot trigger")


def _alert_creator(alert: StoredAlert) -> str:
    return mention(alert.created_by)


def _alert_line(alert: StoredAlert) -> str:
    # What identifies the alert comes first, so a clipped line still names it.
    by = _measure(alert.trigger_by)
    parts = [
        f"{by} *{_alert_value(alert.current_value, alert.category, by)}*"
        f" of {_alert_value(alert.trigger_value, alert.category, by)}",
        _alert_period(alert),
        "fired " + _slack_date(alert.fired_at),
    ]
    if creator := _alert_creator(alert):
        parts.append(f"set up by {creator}")
    head = f"• {_alert_title(alert)} {_code(alert.trigger_sid, 40)} — "
    return _clip(head + " · ".join(parts), _ALERT_LINE)


def _alert_fallback(alert: StoredAlert) -> str:
    by = _measure(alert.trigger_by)
    name = escape_mrkdwn(_clip(_oneline(alert.friendly_name) or alert.category, 60))
    current = _alert_value(alert.current_value, alert.category, by)
    threshold = _alert_value(alert.trigger_value, alert.category, by)
    return f"{name}: {by} {current} (threshold {threshold})"


ALERT_ACTIONS_BLOCK = "alert_actions"
SNOOZE_ACTIONS = {"alert_snooze_1h": 3600, "alert_snooze_24h": 86400}


def alert_button_value(trigger_sid: str, category: str, recurring: str) -> str:
    """What the alert buttons carry back to us: enough to act without a lookup."""
    return f"{trigger_sid}|{category}|{recurring}"[:2000]


def parse_alert_button_value(value: str) -> tuple[str, str, str]:
    sid, _, rest = value.partition("|")
    category, _, recurring = rest.partition("|")
    return sid, category, recurring


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def alert_actions(trigger_sid: str, category: str, recurring: str, *, snoozed: bool = False) -> dict[str, Any]:
    """Snooze 1 h / 24 h (or Unsnooze), Show usage, Delete trigger (with a confirm dialog)."""
    value = alert_button_value(trigger_sid, category, recurring)
    snooze_buttons = (
        [_button("Unsnooze", "alert_unsnooze", value)]
        if snoozed
        else [_button("Snooze 1 h", "alert_snooze_1h", value), _button("Snooze 24 h", "alert_snooze_24h", value)]
    )
    delete = _button("Delete trigger", "alert_delete_trigger", value, style="danger")
    delete["confirm"] = {
        "title": {"type": "plain_text", "text": "Delete this trigger?"},
        "text": {
            "type": "mrkdwn",
            "text": f"Twilio stops watching {_code(category or 'this category')} for {_code(trigger_sid, 40)}.",
        },
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger",
    }
    return {
        "type": "actions",
        "block_id": ALERT_ACTIONS_BLOCK,
        "elements": [*snooze_buttons, _button("Show usage", "alert_show_usage", value), delete],
    }


def annotate_alert(blocks: Sequence[dict[str, Any]], note: str, actions: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An alert message after someone acted on it: the old buttons go, the note (who did what,
    when) is added under earlier notes, and `actions` (the buttons that still make sense) follow."""
    kept = [b for b in blocks if b.get("block_id") != ALERT_ACTIONS_BLOCK][: MAX_BLOCKS - 2]
    kept.append(_context(note))
    if actions is not None:
        kept.append(actions)
    return kept


def action_note(emoji: str, what: str, user_id: str, at: float) -> str:
    """ "<emoji> <what> by @user · <when>", for the message someone just acted on."""
    return f"{emoji} {what} by {mention(user_id) or 'someone'} · {_slack_date(at)}"


def render_audit(entries: Sequence[AuditEntry]) -> Message:
    """`/usage audit`: the latest changes, newest first."""
    header = f"Audit trail (latest {len(entries):,})"
    if not entries:
        text = "Nothing recorded yet: triggers, snoozes, digests and budgets will show up here."
        return Message(text=text, blocks=[_header(header), _section(text)])
    lines = []
    for e in entries:
        who = mention(e.user_id) or "someone"
        where = _channel_ref(e.channel_id)
        target = _code(e.target, 40) if e.target else ""
        detail = escape_mrkdwn(_clip(_oneline(e.detail), 120))
        parts = [_slack_date(e.at), who, f"*{escape_mrkdwn(e.action)}*", target, f"in {where}" if where else "", detail]
        lines.append(_clip("• " + " · ".join(p for p in parts if p), 400))
    sections, shown = _pack_lines(lines, max_blocks=MAX_BLOCKS - 2, max_chars=_BLOCKS_TEXT_BUDGET)
    text = _fit_fallback([header], lines[:shown], also_hidden=len(lines) - shown)
    return Message(text=text, blocks=[_header(header), *sections])


def render_alerts(alerts: Sequence[StoredAlert]) -> Message:
    """The Slack message for fired triggers: one alert in detail, or a burst grouped in one message.

    Names every alert given, up to ALERTS_PER_MESSAGE.
    """
    if len(alerts) == 1:
        return _render_one_alert(alerts[0])
    header = f":rotating_light: {len(alerts)} Twilio usage alerts"
    lines = [_alert_line(a) for a in alerts[:ALERTS_PER_MESSAGE]]
    sections, _ = _pack_lines(lines, max_blocks=MAX_BLOCKS - 3, max_chars=_BLOCKS_TEXT_BUDGET)
    blocks = [_header(header), *sections, _context("Grouped so this channel is not flooded; times are yours.")]
    if len({a.trigger_sid for a in alerts}) == 1:  # one trigger: its buttons still make sense
        blocks.append(alert_actions(alerts[0].trigger_sid, alerts[0].category, alerts[0].recurring))
    text = _fit_fallback(
        [f"{len(alerts)} Twilio usage alerts"],
        [_alert_fallback(a) for a in alerts],
        more=lambda n: f"… and {n} more (see the message)",
    )
    return Message(text=text, blocks=blocks, public=True)


def _render_one_alert(alert: StoredAlert) -> Message:
    by = _measure(alert.trigger_by)
    current = _alert_value(alert.current_value, alert.category, by)
    threshold = _alert_value(alert.trigger_value, alert.category, by)
    title = _oneline(alert.friendly_name) or alert.category or "usage trigger"  # plain_text: no escaping
    fields = [
        f"*Current {by}*\n{current}",
        f"*Threshold*\n{threshold}",
        f"*Period*\n{_alert_period(alert)}",
        f"*Fired*\n{_slack_date(alert.fired_at)}",
        f"*Set up by*\n{_alert_creator(alert) or 'outside Slack, or before this bot'}",
        f"*Trigger*\n{_code(alert.trigger_sid, 40)}",
    ]
    intro = f"{_alert_title(alert)} reached *{current}* — the threshold was {threshold}."
    if alert.also_fired:
        intro += f"\nIt fired {_plural(alert.also_fired, 'more time')} while snoozed; this is the latest."
    blocks = [
        _header(f":rotating_light: Twilio usage alert: {_clip(title, 100)}"),
        _fields_section(intro, fields),
        alert_actions(alert.trigger_sid, alert.category, alert.recurring),
    ]
    text = f"Twilio usage alert: {_alert_fallback(alert)}"
    return Message(text=_clip(text, _FALLBACK_BUDGET), blocks=blocks, public=True)


def render_failed_alerts(alerts: Sequence[StoredAlert]) -> Message:
    """`/usage alerts failed`: alerts that could not be delivered, and why."""
    if not alerts:
        text = ":white_check_mark: No undelivered alerts."
        return Message(text=text, blocks=[_section(text)])
    header = f"Undelivered alerts ({len(alerts):,})"
    lines = []
    for alert in alerts:
        where = _channel_ref(alert.channel) or "no channel"
        reason = escape_mrkdwn(_clip(_oneline(alert.last_error), 120)) or "unknown"
        lines.append(_clip(f"{_alert_line(alert)} · to {where} · _{reason}_", _ALERT_LINE + 160))
    sections, shown = _pack_lines(lines, max_blocks=MAX_BLOCKS - 2, max_chars=_BLOCKS_TEXT_BUDGET)
    blocks = [_header(header), *sections]
    note = "Fix the cause (invite the bot, set ALERT_CHANNEL, reinstall the app); these alerts are kept."
    if shown < len(lines):
        note = f"… and {len(lines) - shown:,} older ones not shown. " + note
    blocks.append(_context(note))
    text = _fit_fallback([header], [_alert_fallback(a) for a in alerts], [note])
    return Message(text=text, blocks=blocks)


# --- plain text (command line) -----------------------------------------------------

_FENCE = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_INLINE_CODE = re.compile(r"(`[^`\n]*`)")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_STRIKE = re.compile(r"~([^~\n]+)~")
_ITALIC = re.compile(r"(?<!\w)_([^_\n]+)_(?!\w)")
_EMOJI = {
    ":warning:": "⚠",
    ":white_check_mark:": "✔",
    ":wastebasket:": "🗑",
    ":test_tube:": "🧪",
}


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _link_text(match: re.Match[str]) -> str:
    target, label = match.group(1), match.group(2)
    if label:
        return label
    if target[:1] in "#@":
        return target  # <#C123> → #C123, <@U123> → @U123
    if target.startswith("!"):
        return "@" + target[1:]  # <!here> → @here
    return target


def _strip_inline(text: str) -> str:
    parts = _INLINE_CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inline code is kept as it is
            out.append(_unescape(part))
            continue
        part = _LINK.sub(_link_text, part)
        part = _BOLD.sub(r"\1", part)
        part = _STRIKE.sub(r"\1", part)
        part = _ITALIC.sub(r"\1", part)
        for code, symbol in _EMOJI.items():
            part = part.replace(code, symbol)
        out.append(_unescape(part))
    return "".join(out)


def _strip_mrkdwn(text: str) -> str:
    """Slack mrkdwn → terminal text: no *bold* stars, links as their label, code blocks unfenced."""
    out = []
    last = 0
    for match in _FENCE.finditer(text):
        out.append(_strip_inline(text[last : match.start()]))
        out.append(_unescape(match.group(1)))
        last = match.end()
    out.append(_strip_inline(text[last:]))
    return "".join(out)


def render_plain(message: Message) -> str:
    """The message as terminal text: header, context, sections — the same information, no mrkdwn."""
    if not message.blocks:
        return _strip_mrkdwn(message.text).strip()
    out: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text"))
            out += [title, "=" * min(_slack_len(title), 80)]
        elif kind == "context":
            texts = [_strip_mrkdwn(_text(e)) for e in block.get("elements", []) if _text(e)]
            out.append(" · ".join(texts))
        elif kind in ("section", "markdown"):
            raw = block.get("text")
            body = raw if isinstance(raw, str) else _text(raw)  # a markdown block's text is a bare string
            if body:
                out.append(_strip_mrkdwn(body))
            for field in block.get("fields", []) or []:
                label, _, value = _strip_mrkdwn(_text(field)).partition("\n")
                out.append(f"{label}: {value}" if value else label)
        elif kind == "divider":
            out.append("")
    return "\n".join(out).strip()


# --- limits ------------------------------------------------------------------------


def _text(obj: Any) -> str:
    if isinstance(obj, dict):
        value = obj.get("text", "")
        return value if isinstance(value, str) else ""
    return ""


def _block_texts(block: dict[str, Any]) -> list[str]:
    raw = block.get("text")
    texts = [raw if isinstance(raw, str) else _text(raw)]  # a markdown block's text is a bare string
    texts += [_text(f) for f in block.get("fields", []) or []]
    texts += [_text(e) for e in block.get("elements", []) or [] if block.get("type") == "context"]
    return [t for t in texts if t]


def check_limits(message: Message) -> list[str]:
    """Human-readable violations of Slack's message limits; [] when the message can be sent."""
    problems: list[str] = []
    blocks = message.blocks or []
    text_len = _slack_len(message.text or "")
    if not message.text and not blocks:
        problems.append("message has neither text nor blocks")
    if text_len > MAX_TEXT:
        problems.append(f"text is {text_len:,} characters (max {MAX_TEXT:,})")
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"message has {len(blocks)} blocks (max {MAX_BLOCKS})")
    for index, block in enumerate(blocks):
        kind = block.get("type", "?")
        where = f"block {index} ({kind})"
        if len(str(block.get("block_id", ""))) > MAX_BLOCK_ID:
            problems.append(f"{where}: block_id longer than {MAX_BLOCK_ID}")
        if kind == "header":
            n = _slack_len(_text(block.get("text")))
            if n == 0:
                problems.append(f"{where}: empty text")
            elif n > MAX_HEADER_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_HEADER_TEXT})")
        elif kind == "section":
            fields = block.get("fields", []) or []
            n = _slack_len(_text(block.get("text")))
            if n == 0 and not fields:
                problems.append(f"{where}: neither text nor fields")
            if n > MAX_SECTION_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_SECTION_TEXT:,})")
            if len(fields) > MAX_FIELDS:
                problems.append(f"{where}: {len(fields)} fields (max {MAX_FIELDS})")
            for field_index, field in enumerate(fields):
                m = _slack_len(_text(field))
                if m == 0:
                    problems.append(f"{where}: field {field_index} is empty")
                elif m > MAX_FIELD_TEXT:
                    problems.append(f"{where}: field {field_index} is {m:,} characters (max {MAX_FIELD_TEXT:,})")
        elif kind == "context":
            elements = block.get("elements", []) or []
            if not elements:
                problems.append(f"{where}: no elements")
            if len(elements) > MAX_CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (max {MAX_CONTEXT_ELEMENTS})")
            for element in elements:
                if element.get("type") in ("mrkdwn", "plain_text") and not _text(element):
                    problems.append(f"{where}: an element has empty text")
        elif kind == "markdown":
            n = _slack_len(block["text"] if isinstance(block.get("text"), str) else "")
            if n > MAX_MARKDOWN_TEXT:
                problems.append(f"{where}: text is {n:,} characters (max {MAX_MARKDOWN_TEXT:,})")
        elif kind == "actions":
            elements = block.get("elements", []) or []
            if len(elements) > MAX_ACTIONS_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements (max {MAX_ACTIONS_ELEMENTS})")
    total = _blocks_text_len(blocks)
    if total > MAX_BLOCKS_TOTAL_TEXT:
        problems.append(
            f"blocks carry {total:,} characters of text (Slack answers msg_blocks_too_long "
            f"above about {MAX_BLOCKS_TOTAL_TEXT:,})"
        )
    return problems
