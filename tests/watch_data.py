"""Usage as the watch sees it: Usage/Records/Today snapshots every 5 minutes, built from a rate.

Shared by tests/test_watch_baseline.py and tests/test_watch_detect.py.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from bot.watch.model import Snapshot, Totals

STEP = timedelta(minutes=5)
RateFn = Callable[[datetime], float]  # events per minute at that moment


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def cumulative(day: date, rates: dict[str, RateFn], noise: random.Random | None = None) -> dict[str, list[float]]:
    """Events per category by the end of each minute of `day` (counters restart at midnight)."""
    t0 = midnight(day)
    out = {}
    for category, rate in rates.items():
        total, series = 0.0, []
        for m in range(1440):
            lam = rate(t0 + timedelta(minutes=m))
            if noise is not None and lam > 0:
                lam = max(0.0, round(noise.gauss(lam, math.sqrt(lam))))
            total += lam
            series.append(total)
        out[category] = series
    return out


def day_snapshots(
    day: date,
    rates: dict[str, RateFn],
    prices: dict[str, float],
    *,
    lag_minutes: int = 0,
    repeats: Iterable[datetime] = (),
    noise: random.Random | None = None,
    until: datetime | None = None,
) -> list[Snapshot]:
    """One snapshot every 5 minutes (00:05 … 23:55, or up to `until`): each category's totals as of
    `lag_minutes` ago; at the times in `repeats` the previous answer again (Twilio's data lag)."""
    counts = cumulative(day, rates, noise)
    t0 = midnight(day)
    repeat_at = set(repeats)
    out: list[Snapshot] = []
    at = t0 + STEP
    while at.date() == day and (until is None or at <= until):
        if at in repeat_at and out:
            out.append(Snapshot(at, out[-1].totals))
        else:
            minute = int((at - t0).total_seconds() // 60) - lag_minutes - 1
            totals = {}
            for category, series in counts.items():
                n = series[minute] if minute >= 0 else 0.0
                if n > 0:
                    totals[category] = Totals(n, n * prices[category])
            out.append(Snapshot(at, totals))
        at += STEP
    return out


def flat(per_minute: float) -> RateFn:
    return lambda at: per_minute


def office_hours(per_minute: float, start: int = 8, end: int = 18) -> RateFn:
    """`per_minute` from `start` to `end` o'clock GMT, nothing otherwise."""
    return lambda at: per_minute if start <= at.hour < end else 0.0


def spike(base: RateFn, onset: datetime, multiplier: float, minutes: float = 24 * 60) -> RateFn:
    end = onset + timedelta(minutes=minutes)
    return lambda at: base(at) * (multiplier if onset <= at < end else 1.0)
