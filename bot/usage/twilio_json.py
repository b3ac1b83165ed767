"""Twilio's JSON to our value types: pure functions that never raise on a field's value."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.http_dates import parse_rfc2822
from bot.model import Account, UsageRecord, UsageTrigger


def parse_records(items: Iterable[Any]) -> list[UsageRecord]:
    """Parse a `usage_records` list, skipping anything that is not an object."""
    return [parse_record(item) for item in items if isinstance(item, dict)]


def parse_record(d: Mapping[str, Any]) -> UsageRecord:
    """One usage record dict, as Twilio sends it, to a `UsageRecord`."""
    return UsageRecord(
        category=as_text(d.get("category")),
        description=as_text(d.get("description")),
        count=parse_decimal(d.get("count")),
        count_unit=as_text(d.get("count_unit")),
        usage=parse_decimal(d.get("usage")),
        usage_unit=as_text(d.get("usage_unit")),
        price=parse_decimal(d.get("price")),
        price_unit=as_text(d.get("price_unit")).strip().lower() or "usd",
        start_date=parse_date(d.get("start_date")),
        end_date=parse_date(d.get("end_date")),
        account_sid=as_text(d.get("account_sid")),
        as_of=as_text(d.get("as_of")),
    )


def parse_account(d: Mapping[str, Any]) -> Account:
    """One account dict from `Accounts.json` to an `Account` (sid, name, status only)."""
    return Account(
        sid=as_text(d.get("sid")).strip(),
        friendly_name=as_text(d.get("friendly_name")),
        status=as_text(d.get("status")).strip().lower(),
    )


def parse_trigger(d: Mapping[str, Any]) -> UsageTrigger:
    """One usage trigger dict, as Twilio sends it, to a `UsageTrigger`."""
    recurring = as_text(d.get("recurring")).strip().lower()
    return UsageTrigger(
        sid=as_text(d.get("sid")),
        usage_category=as_text(d.get("usage_category")),
        trigger_value=as_text(d.get("trigger_value")),
        current_value=as_text(d.get("current_value")),
        trigger_by=as_text(d.get("trigger_by")).strip().lower(),
        # Twilio's docs call a one-shot trigger's value "empty"; the enum says "alltime".
        recurring="" if recurring == "alltime" else recurring,
        friendly_name=as_text(d.get("friendly_name")),
        callback_url=as_text(d.get("callback_url")),
        callback_method=as_text(d.get("callback_method")).strip().upper() or "POST",
        date_fired=parse_rfc2822(d.get("date_fired")),
        date_created=parse_rfc2822(d.get("date_created")),
    )


def parse_decimal(value: Any) -> Decimal | None:
    """`"2192.84855"`, `12`, `0.5` → Decimal; null, `""`, garbage, NaN → None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def parse_date(value: Any) -> date | None:
    """`YYYY-MM-DD` (GMT) → date; anything else → None."""
    if not isinstance(value, str) or not _DATE.match(value.strip()):
        return None
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:$|[T ])")


def as_text(value: Any) -> str:
    return "" if value is None else str(value)


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
