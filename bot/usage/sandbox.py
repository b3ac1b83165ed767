"""A built-in sample account, so a newcomer sees real output without Twilio credentials.

It answers `records()` like `UsageClient` does, from fixed, made-up figures.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta
from decimal import Decimal

from bot.clock import Clock, gmt_today, system_clock
from bot.model import TOTAL_SPEND, DateRange, Period, UsageRecord

SAMPLE_ACCOUNT_SID = "AC" + "0" * 32

# category: (description, count unit, usage unit, events per day, usage per event, price per event)
_DAILY_PROFILE: dict[str, tuple[str, str, str, int, Decimal, Decimal]] = {
    "sms-outbound": ("SMS outbound", "messages", "segments", 1840, Decimal("1.3"), Decimal("0.0079")),
    "sms-inbound": ("SMS inbound", "messages", "segments", 610, Decimal("1"), Decimal("0.0079")),
    "calls-outbound": ("Outbound voice calls", "calls", "minutes", 212, Decimal("3.4"), Decimal("0.0476")),
    "calls-inbound": ("Inbound voice calls", "calls", "minutes", 145, Decimal("4.1"), Decimal("0.0374")),
    "mms-outbound": ("MMS outbound", "messages", "segments", 96, Decimal("1"), Decimal("0.0200")),
    "recordings": ("Call recordings", "recordings", "minutes", 88, Decimal("3.0"), Decimal("0.0075")),
    "verify-push": ("Verify push", "verifications", "verifications", 45, Decimal("1"), Decimal("0.0500")),
    "lookups": ("Lookups", "lookups", "lookups", 120, Decimal("1"), Decimal("0.0050")),
    "phonenumbers": ("Phone numbers", "numbers", "numbers", 0, Decimal("0"), Decimal("0")),
}
# Twilio also reports parent categories that add up their children.
_PARENTS = {"sms": ("SMS", "messages"), "calls": ("Voice calls", "calls"), "mms": ("MMS", "messages")}
_PHONE_NUMBERS = 12
_PHONE_NUMBER_MONTHLY = Decimal("1.15")


class SampleAccount:
    """Deterministic sample usage; every figure is derived from the period's dates."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self.today = gmt_today(clock)
        self.request_count = 0

    def records(
        self,
        period: Period | DateRange | None = None,
        category: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> list[UsageRecord]:
        self.request_count += 1
        if isinstance(period, Period) and period in (Period.DAILY, Period.MONTHLY, Period.YEARLY):
            spans = self._series_spans(period, start or self.today, end or self.today)
        else:
            spans = [self._span(period)]
        records = [r for span_start, span_end in spans for r in self._records_for(span_start, span_end)]
        if category:
            records = [r for r in records if r.category == category]
        return records

    def _span(self, period: Period | DateRange | None) -> tuple[date, date]:
        t = self.today
        if isinstance(period, DateRange):
            return period.start, min(period.end, t)
        first_of_month = t.replace(day=1)
        last_month_end = first_of_month - timedelta(days=1)
        return {
            Period.TODAY: (t, t),
            Period.YESTERDAY: (t - timedelta(days=1), t - timedelta(days=1)),
            Period.THIS_MONTH: (first_of_month, t),
            Period.LAST_MONTH: (last_month_end.replace(day=1), last_month_end),
            Period.ALL_TIME: (date(t.year - 1, 1, 1), t),
            None: (date(t.year - 1, 1, 1), t),
        }[period]

    def _series_spans(self, period: Period, start: date, end: date) -> list[tuple[date, date]]:
        spans = []
        cursor = start
        while cursor <= end:
            if period is Period.DAILY:
                span_end = cursor
            elif period is Period.MONTHLY:
                cursor = cursor.replace(day=1)
                span_end = cursor.replace(day=monthrange(cursor.year, cursor.month)[1])
            else:
                cursor = cursor.replace(month=1, day=1)
                span_end = cursor.replace(month=12, day=31)
            spans.append((cursor, min(span_end, self.today)))
            cursor = span_end + timedelta(days=1)
        return spans

    def _records_for(self, start: date, end: date) -> list[UsageRecord]:
        days = (end - start).days + 1
        records = []
        total = Decimal(0)
        for offset, (category, (description, count_unit, usage_unit, per_day, per_event, price)) in enumerate(
            _DAILY_PROFILE.items()
        ):
            if category == "phonenumbers":
                count = Decimal(_PHONE_NUMBERS)
                cost = (_PHONE_NUMBER_MONTHLY * _PHONE_NUMBERS * days / 30).quantize(Decimal("0.01"))
                usage = count
            else:
                # A weekly rhythm plus a slow trend, so series and comparisons look alive.
                wobble = sum(1 + ((start.toordinal() + d + offset) % 7) / 10 for d in range(days))
                count = Decimal(int(per_day * wobble))
                usage = (count * per_event).quantize(Decimal("1"))
                cost = (count * per_event * price).quantize(Decimal("0.00001"))
            total += cost
            records.append(_record(category, description, count, count_unit, usage, usage_unit, cost, start, end))
        for parent, (description, unit) in _PARENTS.items():
            children = [r for r in records if r.category.startswith(parent + "-")]
            count = sum((r.count or Decimal(0) for r in children), Decimal(0))
            usage = sum((r.usage or Decimal(0) for r in children), Decimal(0))
            cost = sum((r.price or Decimal(0) for r in children), Decimal(0))
            usage_unit = children[0].usage_unit if children else unit
            records.append(_record(parent, description, count, unit, usage, usage_unit, cost, start, end))
        records.append(_record(TOTAL_SPEND, "Total Price", None, "", total, "usd", total, start, end))
        return records


def _record(
    category: str,
    description: str,
    count: Decimal | None,
    count_unit: str,
    usage: Decimal,
    usage_unit: str,
    price: Decimal,
    start: date,
    end: date,
) -> UsageRecord:
    return UsageRecord(
        category=category,
        description=description,
        count=count,
        count_unit=count_unit,
        usage=usage,
        usage_unit=usage_unit,
        price=price,
        price_unit="usd",
        start_date=start,
        end_date=end,
        account_sid=SAMPLE_ACCOUNT_SID,
    )
