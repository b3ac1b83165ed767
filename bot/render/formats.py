"""Number, money and date formats the views share: money and quantities as people read them,
sparklines, plurals and the "as of" note.

Figures arrive as Decimals, strings or None; anything missing or not finite shows as '—'
instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from typing import Any

from bot.model import UsageRecord
from bot.render.blocks import clip, escape_mrkdwn, oneline

__all__ = ["as_of_text", "finite", "format_money", "format_quantity", "plural", "sparkline", "sum_finite"]


_CENT = Decimal("0.01")
# Beyond 10**18 a fixed-point figure is absurd (and could be millions of digits long).
_HUGE_EXPONENT = 18
_MONEY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_SPARK_BARS = "▁▂▃▄▅▆▇█"


def finite(value: Any) -> Decimal | None:
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


def sum_finite(values: Iterable[Decimal | None]) -> Decimal | None:
    """Sum of the finite values (None if there are none); overflow gives None, not an exception."""
    present = [v for v in (finite(v) for v in values) if v is not None]
    if not present:
        return None
    with localcontext(Context(prec=40, traps=[])):
        total = sum(present, Decimal(0))
    return total if total.is_finite() else None


def format_money(amount: Decimal | None, unit: str) -> str:
    """'$1,234.57', '€12.35', '£12.35', '12.35 JPY'; '<$0.01' for sub-cent amounts; None → '—'."""
    value = finite(amount)
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
    number_value = finite(value)
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
    present = [v for v in (finite(v) for v in values) if v is not None]
    if not present:
        return "·" * len(values)
    low = min(min(present), Decimal(0))
    high = max(present)
    span = high - low
    chars = []
    for raw in values:
        value = finite(raw)
        if value is None:
            chars.append("·")
        elif span == 0:
            chars.append(_SPARK_BARS[0])
        else:
            with localcontext(Context(prec=28, traps=[])):
                step = int(((value - low) / span * 7).to_integral_value(rounding=ROUND_HALF_UP))
            chars.append(_SPARK_BARS[max(0, min(7, step))])
    return "".join(chars)


def plural(n: int, singular: str, plural: str | None = None) -> str:
    """'1 category', '3 categories': the count with the noun that fits it."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


def as_of_text(records: Sequence[UsageRecord]) -> str:
    """'as of 2026-11-25 14:03 GMT' from the first record that says when its figures are current to."""
    raw = next((r.as_of for r in records if oneline(r.as_of)), "")
    if not raw:
        return ""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return f"as of {escape_mrkdwn(clip(oneline(raw), 40))}"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"as of {moment:%Y-%m-%d %H:%M} GMT"
