"""Is a category spiking now? The rate over recent data-time windows against its profile.

Pure functions; docs/WATCH.md explains the rule (the line, materiality, data lag, escalation).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.watch.model import (
    DAY_SECONDS,
    ZERO,
    AlertKind,
    Profile,
    Sensitivity,
    Snapshot,
    SpikeState,
    Totals,
    Verdict,
    WatchSettings,
    seconds_into_day,
)


@dataclass(frozen=True)
class Window:
    """The rate over one data-time window, what is usual over it, and its noise (same unit)."""

    minutes: float
    rate: Totals
    usual: Totals
    value: float  # the judged unit: price, or count when the category has no price
    usual_value: float
    sigma: float  # dispersion of `value` from the day-to-day band and the lag's jitter
    events: float  # usual events in the window (at least the Poisson floor)
    per_event: float  # `value` per event per hour of the window: unit price (or 1) / hours

    def line(self, z: float, ratio: float) -> float:
        """Above this is a spike: z dispersions above usual, and `ratio` times usual.

        Counts are Poisson: the bound is on the square-root scale, (sqrt(events) + z/2)^2, which
        holds for a handful of events where a normal bound would page on ordinary luck.
        """
        poisson = ((math.sqrt(self.events) + z / 2) ** 2 - self.events) * self.per_event
        return max(self.usual_value + math.hypot(z * self.sigma, poisson), ratio * self.usual_value)


@dataclass(frozen=True)
class Measurement:
    """Everything about one category now that does not depend on the sensitivity."""

    category: str
    checked_at: datetime
    today: Totals
    end_s: float  # seconds into the day where the data ends (see _change_points)
    by_price: bool
    windows: tuple[Window, ...]
    profile: Profile | None

    def above(self, sensitivity: Sensitivity, settings: WatchSettings) -> bool:
        """Is any window above the line at this sensitivity?"""
        z, ratio = settings.thresholds(sensitivity)
        return any(w.value > 0 and w.value >= w.line(z, ratio) for w in self.windows)


def check(
    category: str,
    today: Sequence[Snapshot],
    profile: Profile | None,
    *,
    now: datetime,
    sensitivity: Sensitivity,
    settings: WatchSettings,
    above_since: datetime | None = None,
) -> Verdict:
    """`today`: today's snapshots, oldest first (may hold repeats: Twilio's data lag).

    `above_since` is when this category went above the line (the stored state), so that the
    verdict can say when the spike started; a verdict above the line without it started now.
    """
    m = measure(category, today, profile, now=now, settings=settings)
    return judge(m, sensitivity=sensitivity, settings=settings, above_since=above_since)


def measure(
    category: str, today: Sequence[Snapshot], profile: Profile | None, *, now: datetime, settings: WatchSettings
) -> Measurement:
    """The category's rates over each window against its profile (one per check, shared by every
    sensitivity)."""
    series = _change_points(category, today, now, settings)
    end_at, current = series.dated(now, profile, settings)
    end_s = seconds_into_day(end_at)
    by_price = (profile is not None and profile.usual_day().price > 0) or current.price > 0
    windows = tuple(
        w
        for minutes in settings.windows_minutes
        if (w := _window(series, end_at, end_s, minutes, profile, by_price, settings))
    )
    return Measurement(category, now, current, end_s, by_price, windows, profile)


def judge(
    m: Measurement, *, sensitivity: Sensitivity, settings: WatchSettings, above_since: datetime | None = None
) -> Verdict:
    """The verdict for one sensitivity: above the line in any window, and material."""
    z, ratio_line = settings.thresholds(sensitivity)
    above = [w for w in m.windows if w.value > 0 and w.value >= w.line(z, ratio_line)]
    if above:
        shown: Window | None = max(above, key=lambda w: (w.value - w.usual_value, -w.minutes))
    elif m.windows:
        shown = min(m.windows, key=lambda w: abs(w.minutes - 30.0))
    else:
        shown = None
    profile = m.profile
    usual_now = profile.usual_by(m.end_s) if profile else ZERO
    excess = m.today.price - usual_now.price
    rate = shown.rate if shown else ZERO
    usual_rate = shown.usual if shown else (profile.usual_rate(m.end_s) if profile else ZERO)
    material = excess >= settings.min_excess_price or (
        (rate.price - usual_rate.price) * settings.lookahead_minutes / 60.0 >= settings.min_excess_price
    )
    return Verdict(
        category=m.category,
        checked_at=m.checked_at,
        spiking=bool(above) and material,
        today=m.today,
        usual_by_now=usual_now,
        rate_per_hour=rate,
        usual_rate_per_hour=usual_rate,
        ratio=_ratio(rate, usual_rate, m.by_price),
        projected_price=_projected(m.today, rate, usual_rate, profile, m.end_s),
        excess_price=excess,
        started_at=(above_since or m.checked_at) if above else above_since,
        source=profile.source if profile else "none",
        above_line=bool(above),
        window_minutes=shown.minutes if shown else 0.0,
    )


def next_alert(
    state: SpikeState | None, verdict: Verdict, *, settings: WatchSettings | None = None
) -> AlertKind | None:
    """FIRST once per channel/category/day; one ESCALATION when the excess doubles again."""
    if not verdict.spiking:
        return None
    if state is None or state.alerted_excess is None:
        return AlertKind.FIRST
    if state.escalated:
        return None
    settings = settings or WatchSettings()
    # Measured from at least the materiality floor: a FIRST alert sent on the rate's lookahead,
    # before the day's excess was material, does not escalate on the next few dollars.
    base = max(state.alerted_excess, settings.min_excess_price)
    if verdict.excess_price >= settings.escalation_factor * base:
        return AlertKind.ESCALATION
    return None


def _taken_at(s: Snapshot) -> datetime:
    return s.taken_at


@dataclass(frozen=True)
class _Series:
    """A category's cumulative totals in today's snapshots `snaps[lo:hi]` (from midnight's zero)."""

    category: str
    snaps: Sequence[Snapshot]
    lo: int
    hi: int
    midnight: datetime

    def latest(self) -> Totals:
        return self.snaps[self.hi - 1].totals.get(self.category, ZERO) if self.hi > self.lo else ZERO

    def dated(self, at: datetime, profile: Profile | None, settings: WatchSettings) -> tuple[datetime, Totals]:
        """The value as of `at`, and the time it is known to hold for.

        A value repeated by later snapshots is either Twilio's lag (the record was not refreshed)
        or no usage. For a category that usually has `lag_evidence_events` or more events in
        between, a repeat is lag: the value is dated by its first sighting. Otherwise, or once
        it has not moved for `stale_after_minutes`, it is quiet: dated by its last sighting.
        """
        j = bisect.bisect_right(self.snaps, at, lo=self.lo, hi=self.hi, key=_taken_at) - 1
        if j < self.lo:
            return self.midnight, ZERO
        category, snaps = self.category, self.snaps
        value = snaps[j].totals.get(category, ZERO)
        last_seen = snaps[j].taken_at
        oldest = last_seen - timedelta(minutes=settings.stale_after_minutes)
        k = j
        while k > self.lo and snaps[k - 1].totals.get(category, ZERO) == value:  # back to its first sighting
            if snaps[k - 1].taken_at < oldest:
                return last_seen, value  # unchanged for longer than any lag: quiet
            k -= 1
        if k == j or profile is None:
            return last_seen, value
        changed_at = self.midnight if k == self.lo and value == ZERO else snaps[k].taken_at
        if changed_at < oldest:
            return last_seen, value
        expected = (
            profile.usual_by(seconds_into_day(last_seen)).count - profile.usual_by(seconds_into_day(changed_at)).count
        )
        return (changed_at, value) if expected >= settings.lag_evidence_events else (last_seen, value)


def _change_points(category: str, today: Sequence[Snapshot], now: datetime, settings: WatchSettings) -> _Series:
    """Today's snapshots up to `now` (bisect: a check costs the same at 23:55 as at 00:05)."""
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=now.tzinfo)
    lo = bisect.bisect_left(today, midnight, key=_taken_at)
    hi = bisect.bisect_right(today, now, lo=lo, key=_taken_at)
    return _Series(category, today, lo, hi, midnight)


def _window(
    series: _Series,
    end_at: datetime,
    end_s: float,
    minutes: float,
    profile: Profile | None,
    by_price: bool,
    settings: WatchSettings,
) -> Window | None:
    if min(minutes * 60.0, end_s) < settings.min_window_minutes * 60.0:
        return None
    # The window starts where the value `minutes` ago is known to hold, and the rate is over the
    # span between the two ends: a value repeated by lag only lengthens the span, it never packs
    # two intervals' usage into one.
    start_at, start = series.dated(end_at - timedelta(minutes=minutes), profile, settings)
    end = series.latest()
    length_s = (end_at - start_at).total_seconds()
    if length_s <= 0:
        return None
    hours = length_s / 3600.0
    # Counters only grow within a day; a lower value would be an older replica's answer.
    rate = Totals(max(end.count - start.count, 0.0) / hours, max(end.price - start.price, 0.0) / hours)
    start_s = end_s - length_s
    jitter_s = settings.lag_jitter_minutes * 60.0
    if profile is None:
        usual = spread = edge = ZERO
    else:
        u0, u1 = profile.usual_by(start_s), profile.usual_by(end_s)
        usual = Totals((u1.count - u0.count) / hours, (u1.price - u0.price) / hours)
        spread = profile.usual_spread(end_s)
        # The usual rate around the two ends, which the lag's jitter moves in or out of the span.
        near = [profile.usual_rate(t) for t in (start_s - jitter_s, start_s, end_s - jitter_s, end_s)]
        edge = Totals(max(t.count for t in near), max(t.price for t in near))
    # Poisson floor: never fewer than `min_count_per_hour` usual events; in price, at the usual
    # price per event (else today's).
    events = max(usual.count, settings.min_count_per_hour) * hours
    if usual.count > 0 and usual.price > 0:
        unit_price = usual.price / usual.count
    elif rate.count > 0:
        unit_price = rate.price / rate.count
    else:
        unit_price = 0.0
    lag_share = jitter_s / length_s
    f = settings.dispersion_floor_fraction
    if by_price:
        value, mu = rate.price, usual.price
        sigma = math.hypot(max(spread.price, f * mu), edge.price * lag_share)
        per_event = unit_price / hours
    else:
        value, mu = rate.count, usual.count
        sigma = math.hypot(max(spread.count, f * mu), edge.count * lag_share)
        per_event = 1.0 / hours
    return Window(minutes, rate, usual, value, mu, sigma, events, per_event)


def _ratio(rate: Totals, usual: Totals, by_price: bool) -> float:
    value, mu = (rate.price, usual.price) if by_price else (rate.count, usual.count)
    if mu > 0:
        return value / mu
    return 0.0 if value <= 0 else 999.0  # nothing usual: shown as "new" by the renderer


def _projected(
    current: Totals,
    rate: Totals,
    usual_rate: Totals,
    profile: Profile | None,
    end_s: float,
) -> float:
    """Today so far plus the rest of the day at the current multiple of the usual profile
    (or at the current rate when nothing is usual)."""
    hours_left = max(DAY_SECONDS - end_s, 0.0) / 3600.0
    if profile is not None and usual_rate.price > 0:
        rest = profile.usual_day().price - profile.usual_by(end_s).price
        return current.price + rest * _ratio(rate, usual_rate, True)
    return current.price + rate.price * hours_left
