"""Value types of the spend-spike watch: snapshots, profiles, verdicts, alert state.

Plain data only (stdlib): the detector's method and its reasons are in docs/WATCH.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

DAY_SECONDS = 86_400.0


class Sensitivity(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass(frozen=True)
class Totals:
    """Cumulative usage for the GMT day so far, as Twilio's Usage/Records/Today gives it (or a
    per-hour rate of the same two quantities)."""

    count: float
    price: float  # in the account's currency (USD), positive


ZERO = Totals(0.0, 0.0)


@dataclass(frozen=True)
class Snapshot:
    """One fetch of Usage/Records/Today."""

    taken_at: datetime  # aware, UTC
    totals: Mapping[str, Totals]  # category code -> totals; only categories with count or price > 0


@dataclass(frozen=True)
class DailyTotal:
    """One record of Usage/Records/Daily."""

    day: date
    category: str
    count: float
    price: float


@dataclass(frozen=True)
class WatchSettings:
    """Every threshold of the watch in one place; docs/WATCH.md says why each has its value."""

    min_excess_price: float = 5.0  # dollars above usual today before anyone is paged (WATCH_MIN_EXCESS)
    # Detection: a spike is a rate over one of these data-time windows above the line.
    windows_minutes: tuple[float, ...] = (5.0, 10.0, 30.0, 90.0)
    min_window_minutes: float = 4.0  # a window clipped by midnight shorter than this is not used
    lag_jitter_minutes: float = 3.0  # how much Twilio's lag varies between two fetches
    stale_after_minutes: float = 60.0  # a value unchanged this long is quiet even where usage was usual
    lag_evidence_events: float = 3.0  # a repeat is lag only if this many events were usual meanwhile
    # Per sensitivity: (z, ratio): the line is max(usual + z * dispersion, ratio * usual).
    z_low: float = 7.0
    ratio_low: float = 4.0
    z_normal: float = 5.0
    ratio_normal: float = 3.0
    z_high: float = 4.0
    ratio_high: float = 2.0
    lookahead_minutes: float = 30.0  # a rate excess that will be material this soon alerts now
    escalation_factor: float = 2.0  # one escalation when the excess has doubled again
    # Baseline.
    slot_minutes: int = 30
    history_days: int = 28
    min_history_days: int = 7  # per kind of day (weekday/weekend) for a split profile
    new_category_days: int = 3  # a category used only lately is judged by its days of use once it has this many
    min_day_coverage: float = 0.9  # share of a day's slots with snapshots for it to count
    max_snapshot_gap_minutes: float = 20.0  # a slot boundary further than this from a snapshot is unknown
    dispersion_floor_fraction: float = 0.25  # dispersion is at least this share of the usual rate
    min_count_per_hour: float = 1.0  # Poisson floor: never assume fewer than this many per hour
    daily_dispersion_factor: float = 4.0  # Daily totals spread flat: how much wider the band is

    def thresholds(self, sensitivity: Sensitivity) -> tuple[float, float]:
        """(z, ratio) for a sensitivity."""
        return {
            Sensitivity.LOW: (self.z_low, self.ratio_low),
            Sensitivity.NORMAL: (self.z_normal, self.ratio_normal),
            Sensitivity.HIGH: (self.z_high, self.ratio_high),
        }[Sensitivity(sensitivity)]


@dataclass(frozen=True)
class Profile:
    """What is usual for one category on one kind of day, per time slot of the GMT day.

    `rate[i]` is the usual per-hour rate in slot i (median over days), `spread[i]` its robust
    dispersion (scaled MAD, per hour). Both are (count, price) Totals.
    """

    category: str
    source: str  # "history" (stored snapshots) | "daily" (Usage/Records/Daily spread over the day)
    kind: str  # "weekday" | "weekend" | "all"
    days: int  # how many days it was built from
    slot_seconds: int
    rate: tuple[Totals, ...]
    spread: tuple[Totals, ...]
    _cumulative: tuple[Totals, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.rate or len(self.rate) != len(self.spread):
            raise ValueError("a profile needs one rate and one spread per slot")
        hours = self.slot_seconds / 3600.0
        count = price = 0.0
        cumulative = [ZERO]
        for r in self.rate:
            count += r.count * hours
            price += r.price * hours
            cumulative.append(Totals(count, price))
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    def _slot(self, seconds_into_day: float) -> int:
        return min(max(int(seconds_into_day // self.slot_seconds), 0), len(self.rate) - 1)

    def usual_by(self, seconds_into_day: float) -> Totals:
        """Usual cumulative usage by that time of the GMT day."""
        s = min(max(seconds_into_day, 0.0), self.slot_seconds * len(self.rate))
        i = min(int(s // self.slot_seconds), len(self.rate))
        base = self._cumulative[i]
        if i == len(self.rate):
            return base
        part = (s - i * self.slot_seconds) / 3600.0
        return Totals(base.count + self.rate[i].count * part, base.price + self.rate[i].price * part)

    def usual_rate(self, seconds_into_day: float) -> Totals:
        """Usual per-hour rate in the slot holding that time."""
        return self.rate[self._slot(seconds_into_day)]

    def usual_spread(self, seconds_into_day: float) -> Totals:
        """Dispersion (per hour) of the rate in the slot holding that time."""
        return self.spread[self._slot(seconds_into_day)]

    def usual_day(self) -> Totals:
        return self._cumulative[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "source": self.source,
            "kind": self.kind,
            "days": self.days,
            "slot_seconds": self.slot_seconds,
            "rate": [[t.count, t.price] for t in self.rate],
            "spread": [[t.count, t.price] for t in self.spread],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        return cls(
            category=str(data["category"]),
            source=str(data["source"]),
            kind=str(data["kind"]),
            days=int(data["days"]),
            slot_seconds=int(data["slot_seconds"]),
            rate=tuple(Totals(float(c), float(p)) for c, p in data["rate"]),
            spread=tuple(Totals(float(c), float(p)) for c, p in data["spread"]),
        )


@dataclass(frozen=True)
class Verdict:
    category: str
    checked_at: datetime
    spiking: bool  # above the line AND material: worth an alert
    today: Totals  # so far today (latest snapshot)
    usual_by_now: Totals  # from the profile
    rate_per_hour: Totals  # over the detection window
    usual_rate_per_hour: Totals
    ratio: float  # rate / usual rate (price, or count when price is 0); finite
    projected_price: float  # "on pace for" the GMT day
    excess_price: float  # today.price - usual_by_now.price
    started_at: datetime | None  # first check above the line today
    source: str  # the profile's source, or "none"
    above_line: bool = False  # the rate is above the line, material or not
    window_minutes: float = 0.0  # the data-time window the rate was measured over


class AlertKind(enum.StrEnum):
    FIRST = "first"
    ESCALATION = "escalation"


@dataclass(frozen=True)
class SpikeState:
    """Per (channel, category, GMT day), stored by the integration side."""

    first_above_at: datetime | None
    alerted_excess: float | None  # excess_price when the FIRST alert went out
    escalated: bool


@dataclass(frozen=True)
class Watch:
    channel: str
    categories: tuple[str, ...]  # empty = every category with spend (see decide.watched_categories)
    sensitivity: Sensitivity


@dataclass(frozen=True)
class SpikeAlert:
    channel: str
    day: date
    kind: AlertKind
    verdict: Verdict


def seconds_into_day(at: datetime) -> float:
    """Seconds since GMT midnight of `at`'s day."""
    return at.hour * 3600.0 + at.minute * 60.0 + at.second + at.microsecond / 1e6
