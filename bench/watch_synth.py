"""Synthetic Twilio usage for bench/watch_accuracy.py: every parameter is in `Synth`.

Categories with a daily cycle (a raised cosine peaking at a random hour), a weekly one (weekends
lower), day-to-day and hour-to-hour lognormal variation on top of Poisson counts, growth, a few
holidays and a few near-zero categories; incidents multiply a category's rate for a while. A
snapshot is what Usage/Records/Today would answer: each record a few minutes old, sometimes not
refreshed since the previous fetch, with the roll-ups `sms`, `calls` and `totalprice`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.watch.model import Snapshot, Totals


@dataclass(frozen=True)
class Synth:
    """Every parameter of the synthetic usage, in one place."""

    seed: int = 1
    days: int = 90  # simulated days with the bot running
    prior_days: int = 28  # days before the install: only Twilio's Daily records exist for them
    categories: int = 20
    quiet_categories: int = 4  # near-zero usage: cents a day
    start: date = date(2026, 1, 5)  # a Monday
    spend_per_day: tuple[float, float] = (5.0, 5000.0)  # log-uniform, usual daily spend per category
    quiet_spend_per_day: tuple[float, float] = (0.01, 1.0)
    unit_price: tuple[float, float] = (0.002, 0.3)  # log-uniform, dollars per event
    night_floor: tuple[float, float] = (0.05, 0.5)  # diurnal trough as a share of the peak
    weekend_factor: tuple[float, float] = (0.3, 1.0)
    day_sigma: float = 0.15  # lognormal day-to-day variation of a category's level
    hour_sigma: float = 0.10  # lognormal hour-to-hour variation on top of Poisson counts
    growth: float = 0.3  # the level grows by this share over the whole run
    holidays: int = 3  # weekdays with traffic x holiday_factor (same for every category)
    holiday_factor: float = 0.4
    incidents_per_30_days: float = 20.0  # injected into the run "with incidents"
    incident_multiplier: tuple[float, float] = (2.0, 100.0)  # log-uniform
    incident_minutes: tuple[float, float] = (15.0, 720.0)  # log-uniform duration
    incident_gap_days: float = 2.0  # at least this between two incidents of one category
    quiet_incident_share: float = 0.1  # share of incidents on quiet categories (never material)
    check_minutes: int = 5  # the scheduled pass
    lag_minutes: tuple[float, float] = (1.0, 6.0)  # a snapshot sees the data as of this long ago
    stale_probability: float = 0.15  # a category's record not refreshed since the previous pass
    grace_minutes: float = 60.0  # an alert this long after an incident ends still belongs to it


_NAMES = [
    "sms-outbound-longcode", "sms-outbound-shortcode", "sms-outbound-tollfree", "sms-inbound",
    "calls-outbound", "calls-inbound-local", "calls-inbound-tollfree", "calls-client",
    "mms-outbound-longcode", "lookups", "verify-sms", "verify-push", "recordings",
    "transcriptions", "conversations", "channels-whatsapp-outbound", "pv-room-participants",
    "fax-pages", "sip-trunking", "calleridlookups",
]  # fmt: skip


@dataclass(frozen=True)
class Category:
    name: str
    per_minute: float  # mean events per minute at level 1
    unit_price: float
    peak_hour: float
    night_floor: float
    weekend_factor: float
    quiet: bool


@dataclass(frozen=True)
class Incident:
    category: str
    onset: datetime
    minutes: float
    multiplier: float
    excess_per_hour: float  # dollars per hour above usual at onset


def make_categories(p: Synth, rng: random.Random) -> list[Category]:
    out = []
    for i in range(p.categories):
        quiet = i >= p.categories - p.quiet_categories
        lo, hi = p.quiet_spend_per_day if quiet else p.spend_per_day
        spend = _log_uniform(rng, lo, hi)
        price = _log_uniform(rng, *p.unit_price)
        name = _NAMES[i] if i < len(_NAMES) else f"custom-{i}"
        out.append(
            Category(
                name=name,
                per_minute=spend / price / 1440.0,
                unit_price=price,
                peak_hour=rng.uniform(0, 24),
                night_floor=rng.uniform(*p.night_floor),
                weekend_factor=rng.uniform(*p.weekend_factor),
                quiet=quiet,
            )
        )
    return out


def make_incidents(p: Synth, cats: list[Category], rng: random.Random) -> list[Incident]:
    t0 = datetime.combine(p.start, datetime.min.time(), tzinfo=UTC)
    out: list[Incident] = []
    loud = [c for c in cats if not c.quiet]
    quiet = [c for c in cats if c.quiet] or loud
    tries = 0
    wanted = round(p.incidents_per_30_days * p.days / 30)
    while len(out) < wanted and tries < 100 * wanted:
        tries += 1
        cat = rng.choice(quiet if rng.random() < p.quiet_incident_share else loud)
        onset = t0 + timedelta(minutes=rng.randrange(p.days * 1440 - 60))
        if any(
            i.category == cat.name and abs((i.onset - onset).total_seconds()) < p.incident_gap_days * 86400 for i in out
        ):
            continue
        mult = _log_uniform(rng, *p.incident_multiplier)
        minutes = _log_uniform(rng, *p.incident_minutes)
        usual = _mean_per_minute(p, cat, onset) * 60 * cat.unit_price
        out.append(Incident(cat.name, onset, minutes, mult, (mult - 1) * usual))
    return sorted(out, key=lambda i: i.onset)


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def holidays(p: Synth) -> set[date]:
    rng = random.Random(p.seed * 7919 + 1)
    days = [p.start + timedelta(days=d) for d in range(-p.prior_days, p.days)]
    return set(rng.sample([d for d in days if d.weekday() < 5], p.holidays))


def _shape(cat: Category, hour: float) -> float:
    """Diurnal shape, mean about 1: a raised cosine peaking at the category's peak hour."""
    bump = 0.5 * (1 + math.cos(2 * math.pi * (hour - cat.peak_hour) / 24))
    level = cat.night_floor + (1 - cat.night_floor) * bump
    return level / (cat.night_floor + (1 - cat.night_floor) * 0.5)


def _mean_per_minute(p: Synth, cat: Category, at: datetime) -> float:
    offset = (at.date() - p.start).days
    growth = 1 + p.growth * max(offset, 0) / max(p.days, 1)
    weekend = cat.weekend_factor if at.weekday() >= 5 else 1.0
    return cat.per_minute * growth * weekend * _shape(cat, at.hour + at.minute / 60)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, prod, limit = 0, rng.random(), math.exp(-lam)
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def day_counts(
    p: Synth, cats: list[Category], day: date, incidents: list[Incident], holidays: set[date]
) -> dict[str, list[float]]:
    """Cumulative events per category at the end of each minute of `day` (index 0 = 00:01)."""
    rng = random.Random(hash((p.seed, day.toordinal())) & 0xFFFFFFFF)
    t0 = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    out = {}
    holiday = p.holiday_factor if day in holidays else 1.0
    for cat in cats:
        level = holiday * math.exp(rng.gauss(0, p.day_sigma) - p.day_sigma**2 / 2)
        hits = [i for i in incidents if i.category == cat.name]
        mean = _mean_per_minute(p, cat, t0) / _shape(cat, 0.0) * level  # the day's level at shape 1
        boost = [1.0] * 1440
        for i in hits:
            first = int((i.onset - t0).total_seconds() // 60)
            for m in range(max(first, 0), min(first + math.ceil(i.minutes), 1440)):
                boost[m] *= i.multiplier
        cum, total, hour_noise = [], 0, 1.0
        for m in range(1440):
            if m % 60 == 0:
                hour_noise = math.exp(rng.gauss(0, p.hour_sigma) - p.hour_sigma**2 / 2)
            total += _poisson(rng, mean * _shape(cat, m / 60) * hour_noise * boost[m])
            cum.append(float(total))
        out[cat.name] = cum
    return out


def snapshot(
    cats: list[Category], counts: dict[str, list[float]], seen: dict[str, float], at: datetime,
    rng: random.Random, p: Synth,
) -> Snapshot:  # fmt: skip
    """What Usage/Records/Today answers at `at`: each record as of a few minutes ago, some not
    refreshed since the last pass; parents `sms`/`calls` and `totalprice` roll their children up."""
    minute = at.hour * 60 + at.minute
    totals: dict[str, Totals] = {}
    for cat in cats:
        if rng.random() < p.stale_probability and cat.name in seen:
            n = seen[cat.name]
        else:
            idx = minute - int(rng.uniform(*p.lag_minutes)) - 1
            n = counts[cat.name][idx] if idx >= 0 else 0.0
            n = max(n, seen.get(cat.name, 0.0))
        seen[cat.name] = n
        if n > 0:
            totals[cat.name] = Totals(n, round(n * cat.unit_price, 4))
    for parent in ("sms", "calls"):
        kids = [t for c, t in totals.items() if c.startswith(parent + "-")]
        if kids:
            totals[parent] = Totals(sum(t.count for t in kids), sum(t.price for t in kids))
    leaves = [t for c, t in totals.items() if c not in ("sms", "calls")]
    if leaves:
        totals["totalprice"] = Totals(0.0, sum(t.price for t in leaves))
    return Snapshot(at, totals)
