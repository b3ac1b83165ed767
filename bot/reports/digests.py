"""What a digest says: the period's spend against the period before, the categories that moved
most, and a sparkline of daily spend, built from records fetched once per pass.

Twilio usage is per account, not per channel: within one pass every list of records is fetched
once (`SharedRecords`) and each (cadence, period) digest is computed once, so 1,000 channels
subscribed to the same cadence cost the same three requests as one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from bot.model import TOTAL_SPEND, Period, UsageRecord
from bot.reports.model import DigestReport, Mover
from bot.reports.schedule import period_range, previous_range, spark_range
from bot.usage.errors import TwilioError
from bot.usage.source import RecordSource

MAX_MOVERS = 5


def _prices(records: Iterable[UsageRecord]) -> dict[str, tuple[Decimal, str]]:
    """category → (price, description), summed where Twilio split a category over records."""
    out: dict[str, tuple[Decimal, str]] = {}
    for record in records:
        category = record.category.strip().lower()
        if not category or record.price is None:
            continue
        price, description = out.get(category, (Decimal(0), ""))
        out[category] = (price + record.price, description or record.description)
    return out


def _has_ancestor(category: str, present: set[str]) -> bool:
    """`sms-outbound-longcode` has `sms-outbound` or `sms` among `present`: its spend is counted there."""
    parts = category.split("-")
    return any("-".join(parts[:i]) in present for i in range(1, len(parts)))


def biggest_movers(
    current: Sequence[UsageRecord], previous: Sequence[UsageRecord], limit: int = MAX_MOVERS
) -> tuple[Mover, ...]:
    """The categories whose spend changed most (by amount, up or down), top `limit`.

    `totalprice` is left out, and so is a subcategory whose parent category is in the records
    (`sms-outbound` when `sms` is there), so no spend is counted twice.
    """
    now, before = _prices(current), _prices(previous)
    present = (set(now) | set(before)) - {TOTAL_SPEND}
    movers = []
    for category in present:
        if _has_ancestor(category, present):
            continue
        price_now, description = now.get(category, (Decimal(0), ""))
        price_before, description_before = before.get(category, (Decimal(0), ""))
        if price_now != price_before:
            movers.append(Mover(category, description or description_before, price_now, price_before))
    movers.sort(key=lambda m: (-abs(m.change), m.category))
    return tuple(movers[:limit])


def build_digest(
    cadence: str,
    period_key: str,
    current: Sequence[UsageRecord],
    previous: Sequence[UsageRecord],
    daily: Sequence[UsageRecord],
    *,
    now: datetime,
) -> DigestReport:
    """The digest from the records of the period, of the period before, and the daily totals."""
    start, end = period_range(cadence, period_key)
    previous_start, previous_end = previous_range(cadence, start, end)
    spark_start, spark_end = spark_range(cadence, start, end)
    total_record = next((r for r in current if r.category.strip().lower() == TOTAL_SPEND), None)
    previous_record = next((r for r in previous if r.category.strip().lower() == TOTAL_SPEND), None)
    by_day: dict[date, Decimal] = {}
    for record in daily:
        if record.category.strip().lower() == TOTAL_SPEND and record.start_date and record.price is not None:
            by_day[record.start_date] = by_day.get(record.start_date, Decimal(0)) + record.price
    days = tuple(
        (spark_start + timedelta(days=i), by_day.get(spark_start + timedelta(days=i)))
        for i in range((spark_end - spark_start).days + 1)
    )
    unit = (total_record or previous_record or next(iter(current), None) or UsageRecord("")).price_unit or "usd"
    end_of_period = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)
    return DigestReport(
        cadence=cadence,
        period_key=period_key,
        start=start,
        end=end,
        previous_start=previous_start,
        previous_end=previous_end,
        total=total_record.price if total_record else None,
        previous_total=previous_record.price if previous_record else None,
        price_unit=unit,
        movers=biggest_movers(current, previous),
        daily=days,
        as_of=total_record.as_of if total_record else "",
        complete=now >= end_of_period,
    )


class SharedRecords:
    """Twilio records fetched at most once per pass for each (resource, range, category).

    Thread-safe: concurrent askers for the same list wait for one request. A failure is
    remembered too, so a Twilio outage costs one request per list, not one per channel.
    """

    def __init__(self, usage: RecordSource) -> None:
        self._usage = usage
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self.fetches = 0

    def get(self, period: Period | None, category: str | None, start: date, end: date) -> list[UsageRecord]:
        key = (period, category, start, end)
        with self._lock:
            entry = self._entries.setdefault(key, _Entry())
        with entry.lock:
            if not entry.done:
                with self._lock:
                    self.fetches += 1
                try:
                    entry.value = self._usage.records(period, category, start=start, end=end)
                except TwilioError as exc:
                    entry.error = exc
                entry.done = True
        if entry.error is not None:
            raise entry.error
        return entry.value


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    value: list[UsageRecord] = field(default_factory=list)
    error: TwilioError | None = None


def fetch_digest(records: SharedRecords, cadence: str, period_key: str, now: datetime) -> DigestReport:
    """Three requests at most: the period and the one before (every category, `Records.json`
    with StartDate/EndDate), and the daily totals for the sparkline (`Daily.json`, totalprice)."""
    start, end = period_range(cadence, period_key)
    previous_start, previous_end = previous_range(cadence, start, end)
    spark_start, spark_end = spark_range(cadence, start, end)
    current = records.get(None, None, start, end)
    previous = records.get(None, None, previous_start, previous_end)
    daily = records.get(Period.DAILY, TOTAL_SPEND, spark_start, spark_end)
    return build_digest(cadence, period_key, current, previous, daily, now=now)
