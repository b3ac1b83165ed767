"""What is usual: a per-slot profile of each category's rate, from stored snapshots or Daily totals.

Pure functions. The method (median and scaled MAD per 30-minute slot, weekday/weekend split,
Daily fallback) and why are in docs/WATCH.md.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

from bot.watch.model import (
    DAY_SECONDS,
    ZERO,
    DailyTotal,
    Profile,
    Snapshot,
    Totals,
    WatchSettings,
    seconds_into_day,
)

MAD_SCALE = 1.4826  # MAD * this estimates the standard deviation of normal data

WEEKDAY, WEEKEND, ALL = "weekday", "weekend", "all"


def day_kind(day: date) -> str:
    return WEEKEND if day.weekday() >= 5 else WEEKDAY


def profiles_for(
    day: date,
    history: Sequence[Snapshot],
    daily: Sequence[DailyTotal],
    settings: WatchSettings,
) -> dict[str, Profile]:
    """Usual profile for every category seen, for `day`'s kind (weekday/weekend when the data
    supports it), from stored snapshots of previous days when there are enough, else from Daily
    totals of the last 28 days spread over the day."""
    first = day.toordinal() - settings.history_days
    slots = slot_count(settings)
    by_day = _slot_rates_by_day(
        (s for s in history if first <= s.taken_at.date().toordinal() < day.toordinal()), settings
    )
    kind = day_kind(day)
    history_days = _pick_days(day, list(by_day), settings)
    categories: set[str] = set()
    for rates in by_day.values():
        categories.update(rates)
    profiles: dict[str, Profile] = {}
    recent_daily = [d for d in daily if first <= d.day.toordinal() < day.toordinal()]
    if history_days is not None:
        used_kind, days = history_days
        since = _first_used(by_day, recent_daily)
        for category in categories:
            # A category the account started using lately: its days before that are not "usually
            # nothing" once it has `new_category_days` of use (else a launch would page for weeks).
            used = [d for d in days if d >= since[category]]
            series = [by_day[d].get(category) for d in (used if len(used) >= settings.new_category_days else days)]
            profiles[category] = _profile_from_days(category, "history", used_kind, series, slots, settings)
    shape = _account_shape(by_day, history_days[1] if history_days else [], slots)
    daily_kind, by_category = _daily_by_category(recent_daily, kind, settings)
    for category, totals in by_category.items():
        if category not in profiles:
            profiles[category] = _profile_from_daily(category, daily_kind, totals, shape, settings)
    return profiles


def _first_used(by_day: dict[date, dict[str, list[Totals | None]]], daily: list[DailyTotal]) -> dict[str, date]:
    """The first day each category had usage, in the snapshots or the Daily records."""
    first: dict[str, date] = {}
    for d in sorted(by_day):
        for category, rates in by_day[d].items():
            if category not in first and any(r is not None and (r.count > 0 or r.price > 0) for r in rates):
                first[category] = d
    for record in daily:
        if (record.count > 0 or record.price > 0) and record.day < first.get(record.category, date.max):
            first[record.category] = record.day
    return defaultdict(lambda: date.min, first)


def slot_count(settings: WatchSettings) -> int:
    return int(DAY_SECONDS // (settings.slot_minutes * 60))


def _pick_days(day: date, days: list[date], settings: WatchSettings) -> tuple[str, list[date]] | None:
    """The history days to use for `day`: same kind when each kind has enough, else all."""
    if len(days) < settings.min_history_days:
        return None
    kinds: dict[str, list[date]] = defaultdict(list)
    for d in days:
        kinds[day_kind(d)].append(d)
    if all(len(kinds[k]) >= settings.min_history_days for k in (WEEKDAY, WEEKEND)):
        kind = day_kind(day)
        return kind, sorted(kinds[kind])
    return ALL, sorted(days)


def _slot_rates_by_day(
    snapshots: Iterable[Snapshot], settings: WatchSettings
) -> dict[date, dict[str, list[Totals | None]]]:
    """Per well-covered day, per category, the per-hour rate in each slot (None: unknown).

    The value at a slot boundary is the last snapshot at or before it (Twilio's counters are
    cumulative for the GMT day and start at zero at midnight); a boundary with no snapshot in the
    last `max_snapshot_gap_minutes` is unknown, and so are the slots on either side of it.
    """
    slot_seconds = settings.slot_minutes * 60
    slots = slot_count(settings)
    max_gap = settings.max_snapshot_gap_minutes * 60
    days: dict[date, list[Snapshot]] = defaultdict(list)
    for s in snapshots:
        days[s.taken_at.date()].append(s)
    out: dict[date, dict[str, list[Totals | None]]] = {}
    for d, snaps in days.items():
        snaps.sort(key=lambda s: s.taken_at)
        # boundary[i]: the snapshot holding the cumulative at the end of slot i (None: unknown)
        boundary: list[Snapshot | None] = [None] * slots
        j = 0
        last: Snapshot | None = None
        for i in range(slots):
            edge = (i + 1) * slot_seconds
            while j < len(snaps) and seconds_into_day(snaps[j].taken_at) <= edge:
                last = snaps[j]
                j += 1
            if last is not None and edge - seconds_into_day(last.taken_at) <= max_gap:
                boundary[i] = last
        if sum(b is not None for b in boundary) < settings.min_day_coverage * slots:
            continue  # the bot was not running for much of this day: it says little
        categories: set[str] = set()
        for s in snaps:
            categories.update(s.totals)
        per_category: dict[str, list[Totals | None]] = {}
        for category in categories:
            rates: list[Totals | None] = []
            # midnight: the day's counters start at zero
            previous: tuple[float, Totals] | None = (0.0, ZERO)
            for b in boundary:
                now = None if b is None else (seconds_into_day(b.taken_at), b.totals.get(category, ZERO))
                if now is None or previous is None or now[0] <= previous[0]:
                    rates.append(None)
                else:
                    # Over the time between the two snapshots, not the slot's length: the last
                    # snapshot of a day is a few minutes before midnight.
                    span = (now[0] - previous[0]) / 3600.0
                    rates.append(
                        Totals(
                            max(now[1].count - previous[1].count, 0.0) / span,
                            max(now[1].price - previous[1].price, 0.0) / span,
                        )
                    )
                previous = now
            per_category[category] = rates
        out[d] = per_category
    return out


def _robust(values: list[float]) -> tuple[float, float]:
    """Median and scaled MAD."""
    if not values:
        return 0.0, 0.0
    med = statistics.median(values)
    return med, MAD_SCALE * statistics.median(abs(v - med) for v in values)


def _profile_from_days(
    category: str,
    source: str,
    kind: str,
    series: list[list[Totals | None] | None],
    slots: int,
    settings: WatchSettings,
) -> Profile:
    """Median rate per slot over the days, and a MAD of the residuals over the slot and its
    neighbours."""
    n_days = len(series)
    counts: list[list[float]] = [[] for _ in range(slots)]
    prices: list[list[float]] = [[] for _ in range(slots)]
    for day_rates in series:
        for i in range(slots):
            # A day without the category at all had none of it: zero, not unknown.
            r = ZERO if day_rates is None else day_rates[i]
            if r is not None:
                counts[i].append(r.count)
                prices[i].append(r.price)
    # The median of the slot and its two neighbours, over the days: three times the samples, so a
    # category with a few events per slot gets a steady usual rate; a step (office hours) stays
    # a step, a ramp is smoothed.
    med_c = [statistics.median(_near(counts, i)) if _near(counts, i) else 0.0 for i in range(slots)]
    med_p = [statistics.median(_near(prices, i)) if _near(prices, i) else 0.0 for i in range(slots)]
    rate, spread = [], []
    for i in range(slots):
        res_c: list[float] = []
        res_p: list[float] = []
        for k in (i - 1, i, i + 1):
            if 0 <= k < slots:
                res_c.extend(v - med_c[k] for v in counts[k])
                res_p.extend(v - med_p[k] for v in prices[k])
        rate.append(Totals(med_c[i], med_p[i]))
        spread.append(Totals(_mad(res_c), _mad(res_p)))
    return Profile(
        category=category,
        source=source,
        kind=kind,
        days=n_days,
        slot_seconds=settings.slot_minutes * 60,
        rate=tuple(rate),
        spread=tuple(spread),
    )


def _near(values: list[list[float]], i: int) -> list[float]:
    return [v for k in (i - 1, i, i + 1) if 0 <= k < len(values) for v in values[k]]


def _mad(residuals: list[float]) -> float:
    if not residuals:
        return 0.0
    return MAD_SCALE * statistics.median(abs(r) for r in residuals)


def _daily_by_category(
    daily: list[DailyTotal], kind: str, settings: WatchSettings
) -> tuple[str, dict[str, list[DailyTotal]]]:
    """Daily totals per category, of `day`'s kind when each kind has enough days."""
    days = {d.day for d in daily}
    kinds: dict[str, set[date]] = defaultdict(set)
    for d in days:
        kinds[day_kind(d)].add(d)
    split = all(len(kinds[k]) >= settings.min_history_days for k in (WEEKDAY, WEEKEND))
    wanted = kinds[kind] if split else days
    out: dict[str, dict[date, DailyTotal]] = defaultdict(dict)
    for d in daily:
        if d.day in wanted and (d.count > 0 or d.price > 0):
            out[d.category][d.day] = d
    result: dict[str, list[DailyTotal]] = {}
    for category, by_day in out.items():
        # A day in the range without a record for the category had none of it.
        result[category] = [by_day.get(d, DailyTotal(d, category, 0.0, 0.0)) for d in sorted(wanted)]
    return (kind if split else ALL), result


def _account_shape(
    by_day: dict[date, dict[str, list[Totals | None]]], days: list[date], slots: int
) -> list[float] | None:
    """The share of a day's spend each slot usually holds, from the whole account's history
    (median over days of every category's spend per slot), or None without history."""
    if not days:
        return None
    per_slot: list[list[float]] = [[] for _ in range(slots)]
    for d in days:
        total = [0.0] * slots
        known = [True] * slots
        for rates in by_day[d].values():
            for i, r in enumerate(rates):
                if r is None:
                    known[i] = False
                else:
                    total[i] += r.price
        for i in range(slots):
            if known[i]:
                per_slot[i].append(total[i])
    med = [statistics.median(v) if v else 0.0 for v in per_slot]
    whole = sum(med)
    if whole <= 0:
        return None
    # Never below a tenth of flat: a category new to the account need not follow it exactly.
    floor = 0.1 / slots
    shaped = [max(m / whole, floor) for m in med]
    norm = sum(shaped)
    return [s / norm for s in shaped]


def _profile_from_daily(
    category: str,
    kind: str,
    totals: list[DailyTotal],
    shape: list[float] | None,
    settings: WatchSettings,
) -> Profile:
    """The median daily total spread over the day (by the account's shape, else flat), with a
    band from the MAD of the daily totals widened by `daily_dispersion_factor`."""
    slots = slot_count(settings)
    med_c, mad_c = _robust([t.count for t in totals])
    med_p, mad_p = _robust([t.price for t in totals])
    weights = shape or [1.0 / slots] * slots
    slot_hours = settings.slot_minutes / 60.0
    rate, spread = [], []
    f = settings.daily_dispersion_factor
    for w in weights:
        # w of the day's total falls in this slot of `slot_hours`: per hour, w * total / slot_hours
        k = w / slot_hours
        rate.append(Totals(med_c * k, med_p * k))
        spread.append(Totals(f * mad_c * k, f * mad_p * k))
    return Profile(
        category=category,
        source="daily",
        kind=kind,
        days=len(totals),
        slot_seconds=settings.slot_minutes * 60,
        rate=tuple(rate),
        spread=tuple(spread),
    )
