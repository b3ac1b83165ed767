"""`/usage … by-account`: spend per account — the family total, the main account's own spend,
then each subaccount, most spent first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from bot.model import TOTAL_SPEND, Account, DateRange, Message, Period, UsageRecord
from bot.render.blocks import (
    BLOCKS_TEXT_BUDGET,
    MAX_BLOCKS,
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
)
from bot.render.formats import finite, format_money, format_quantity, plural, sum_finite
from bot.usage.render import has_usage, period_context, usage_title

__all__ = ["render_by_account"]


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
        sum_finite(r.price for r in matching) or Decimal(0),
        next((r.price_unit for r in matching if oneline(r.price_unit)), ""),
        sum_finite(r.count for r in matching),
        next((oneline(r.count_unit) for r in matching if oneline(r.count_unit)), ""),
        any(has_usage(r) for r in matching),
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
    head = f"• *{row.name}* {code_span(row.sid, 40)} — "
    if row.spend is None:
        parts = ["_unavailable_"]
    else:
        row_unit = clip(row.unit or unit, 12)
        parts = [f"*{escape_mrkdwn(format_money(row.spend, row_unit))}*"]
        if show_quantity and row.quantity is not None:
            parts.append(escape_mrkdwn(format_quantity(row.quantity, clip(row.quantity_unit, 24))))
        # A share only makes sense in the total's currency.
        share = _share(row.spend, total) if row_unit.strip().lower() == unit.strip().lower() else ""
        if share:
            parts.append(escape_mrkdwn(share))
    status = oneline(row.status).lower()
    if status and status != "active":
        parts.append(f"_{escape_mrkdwn(clip(status, 20))}_")
    return clip(head + " · ".join(parts), 400)


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
    wanted = oneline(category).lower() if category else TOTAL_SPEND
    show_quantity = wanted != TOTAL_SPEND
    every = [*family, *main, *(r for _, records in subaccounts for r in records or ())]
    family_row = _account_row("", "", "", family, wanted)
    unit = family_row.unit or next((r.price_unit for r in every if oneline(r.price_unit)), "") or "usd"
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
            (finite(r.quantity) or Decimal(0)).copy_negate(),
            r.name.lower(),
            r.sid,
        ),
    )
    unavailable = [r for r in rows if r.spend is None]
    idle = len(rows) - len(spenders) - len(unavailable)
    listed = [main_row, *spenders, *unavailable]
    lines = [_account_line(r, total, unit, show_quantity=show_quantity) for r in listed]

    header_text = usage_title(f"Twilio usage by account · {period.label}", category, False)
    wanted_records = [r for r in family if r.category.strip().lower() == wanted]
    dated = wanted_records if any(r.start_date or r.end_date for r in wanted_records) else list(family)
    context_text = period_context(dated, period)
    headline = f"*All accounts:* {escape_mrkdwn(format_money(total, clip(unit, 12)))}"
    if show_quantity and family_row.quantity is not None:
        headline += f" · {escape_mrkdwn(format_quantity(family_row.quantity, clip(family_row.quantity_unit, 24)))}"
    headline += f" · main account + {plural(len(rows), 'subaccount')}"
    blocks: list[dict[str, Any]] = [header_block(header_text), context_block(context_text), section_block(headline)]

    footer_reserve = 700  # the three notes below, each clipped well under this together
    packed, shown = pack_lines(
        lines,
        max_blocks=MAX_BLOCKS - len(blocks) - 1,
        max_chars=BLOCKS_TEXT_BUDGET - blocks_text_len(blocks) - footer_reserve,
    )
    blocks += packed

    def more_line(hidden: int) -> str:
        rest = listed[len(listed) - hidden :]
        spend = sum_finite(r.spend for r in rest if r.spend is not None) or Decimal(0)
        text = f"… and {plural(len(rest), 'more account')} ({escape_mrkdwn(format_money(spend, clip(unit, 12)))}"
        missing = sum(1 for r in rest if r.spend is None)
        return text + (f"; {missing:,} unavailable)" if missing else ")")

    what = "spend" if wanted == TOTAL_SPEND else f"{code_span(category or '')} usage"
    notes = [
        more_line(len(lines) - shown) if shown < len(lines) else "",
        f"{plural(idle, 'subaccount')} with no {what}" if idle else "",
        (
            f"{plural(len(unavailable), 'subaccount')} unavailable: Twilio did not return "
            f"{'its' if len(unavailable) == 1 else 'their'} usage (closed, or an error)"
            if unavailable
            else ""
        ),
    ]
    if not rows:
        notes.append("This account has no subaccounts.")
    notes = [clip(n, 220) for n in notes if n]
    if notes:
        blocks.append(context_block(*notes))

    text = fit_fallback(
        [header_text, context_text, headline],
        lines[:shown],
        notes[1:] if shown < len(lines) else notes,
        more=more_line,
        also_hidden=len(lines) - shown,
    )
    return Message(text=text, blocks=blocks, public=public)


def _account_name(account: Account) -> str:
    name = escape_mrkdwn(clip(oneline(account.friendly_name), 60))
    return name or "(unnamed)"
