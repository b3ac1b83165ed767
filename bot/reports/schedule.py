"""When a report is due: pure functions of the time, the time zone and the subscription.

Send times are wall-clock times in USAGE_TIMEZONE. A daily digest is due from `at` each local
day and covers yesterday; a weekly one from `at` on Mondays, covering the previous Monday to
Sunday; a monthly one from `at` on the 1st, covering the previous month. A digest missed while
nothing ran is still sent later the same local day, never for an older period. The figures are
Twilio's, whose days are GMT: a digest covers the GMT dates of the same calendar dates.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

CADENCES = ("daily", "weekly", "monthly")
DAILY_SPARK_DAYS = 14


def check_cadence(cadence: str, at_minutes: int) -> None:
    if cadence not in CADENCES:
        raise ValueError(f"unknown cadence {cadence!r}")
    if not 0 <= at_minutes < 24 * 60:
        raise ValueError(f"at_minutes {at_minutes} is not a time of day")


def format_minutes(at_minutes: int) -> str:
    return f"{at_minutes // 60:02d}:{at_minutes % 60:02d}"


def due_period(now: datetime, tz: tzinfo, cadence: str, at_minutes: int) -> str | None:
    """The period key of the digest due at `now`, or None.

    Keys: daily "2026-11-24" (the day covered), weekly "2026-W47" (ISO week covered), monthly
    "2026-11" (the month covered). Due from `at_minutes` local wall-clock time until the end of
    the local day: on a day when the clocks skip `at` (spring forward), from the first minute
    after it; on a day when `at` happens twice, the key is the same both times.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    check_cadence(cadence, at_minutes)
    local = now.astimezone(tz)
    if local.hour * 60 + local.minute < at_minutes:
        return None
    today = local.date()
    if cadence == "daily":
        return (today - timedelta(days=1)).isoformat()
    if cadence == "weekly":
        if today.weekday() != 0:
            return None
        year, week, _ = (today - timedelta(days=7)).isocalendar()
        return f"{year}-W{week:02d}"
    if today.day != 1:
        return None
    last = today - timedelta(days=1)
    return f"{last.year}-{last.month:02d}"


def _send_day(cadence: str, day: date) -> bool:
    return cadence == "daily" or (cadence == "weekly" and day.weekday() == 0) or (cadence == "monthly" and day.day == 1)


def next_due(now: datetime, tz: tzinfo, cadence: str, at_minutes: int, *, current_sent: bool = False) -> datetime:
    """When this subscription's next digest goes out, in `tz`: `now` when one is due and not yet
    sent (it goes with the next run of `python -m bot digests`), else the next send time."""
    local = now.astimezone(tz)
    if not current_sent and due_period(now, tz, cadence, at_minutes) is not None:
        return local
    minutes = local.hour * 60 + local.minute
    for offset in range(0, 63):
        day = local.date() + timedelta(days=offset)
        if not _send_day(cadence, day) or (offset == 0 and minutes >= at_minutes):
            continue
        return datetime.combine(day, time(at_minutes // 60, at_minutes % 60), tzinfo=tz)
    raise AssertionError("a monthly send day comes within 62 days")  # pragma: no cover


def period_range(cadence: str, period_key: str) -> tuple[date, date]:
    """The GMT dates (inclusive) a digest covers."""
    if cadence == "daily":
        day = date.fromisoformat(period_key)
        return day, day
    if cadence == "weekly":
        year, week = period_key.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
        return monday, monday + timedelta(days=6)
    year, month = (int(x) for x in period_key.split("-"))
    start = date(year, month, 1)
    return start, (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def previous_range(cadence: str, start: date, end: date) -> tuple[date, date]:
    """The period before: the day, the week, or the calendar month before."""
    if cadence == "monthly":
        last = start - timedelta(days=1)
        return last.replace(day=1), last
    length = (end - start).days + 1
    return start - timedelta(days=length), end - timedelta(days=length)


def spark_range(cadence: str, start: date, end: date) -> tuple[date, date]:
    """The days the sparkline shows: the period itself, or the last 14 days for a daily digest."""
    if cadence == "daily":
        return end - timedelta(days=DAILY_SPARK_DAYS - 1), end
    return start, end
