"""How well the spend-spike watch finds injected incidents, and how often it pages for nothing.

    PYTHONPATH=. .venv/bin/python bench/watch_accuracy.py [--seed 1] [--days 90] [--categories 20]

Generates synthetic Twilio usage (all its parameters are in `Synth` below: change them there to
run harder data), then runs the detector over it every 5 simulated minutes exactly as the
scheduled pass does: a `Snapshot` of Usage/Records/Today per pass (with Twilio's data lag),
`profiles_for()` once per simulated day from the previous 28 days of snapshots and Daily totals
(the first days are a fresh install: Daily only), and `decide()` on every pass for three watches
(low, normal, high sensitivity; every category with spend), carrying the alert states over as the
store does. Two runs, in two processes: one with incidents (recall and delay) and one on the same
usage without incidents (false alerts). Method and targets: docs/WATCH.md. Exits 0 when the
normal-sensitivity targets are met.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench.harness import format_table, median, percentile
from bot.watch.baseline import profiles_for
from bot.watch.decide import decide
from bot.watch.model import (
    AlertKind,
    DailyTotal,
    Sensitivity,
    Snapshot,
    SpikeAlert,
    SpikeState,
    Totals,
    Watch,
    WatchSettings,
)


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


def _holidays(p: Synth) -> set[date]:
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


def _snapshot(
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


SENSITIVITIES = (Sensitivity.LOW, Sensitivity.NORMAL, Sensitivity.HIGH)


@dataclass(frozen=True)
class Alert:
    sensitivity: Sensitivity
    category: str
    at: datetime
    kind: AlertKind
    source: str = ""
    window: float = 0.0
    ratio: float = 0.0
    excess: float = 0.0


def simulate(p: Synth, with_incidents: bool, settings: WatchSettings) -> tuple[list[Alert], list[Incident], float]:
    """Run the scheduled pass over the synthetic days; the alerts, the incidents, seconds spent
    in the detector (profiles_for + decide)."""
    rng = random.Random(p.seed)
    cats = make_categories(p, rng)
    incidents = make_incidents(p, cats, random.Random(p.seed + 1000)) if with_incidents else []
    holidays = _holidays(p)
    snap_rng = random.Random(p.seed + 2000)
    watches = [Watch(s.value, (), s) for s in SENSITIVITIES]
    daily: list[DailyTotal] = []
    history: list[Snapshot] = []
    alerts: list[Alert] = []
    detector = 0.0
    for offset in range(-p.prior_days, p.days):
        day = p.start + timedelta(days=offset)
        counts = day_counts(p, cats, day, incidents, holidays)
        if offset >= 0:
            started = time.perf_counter()
            profiles = profiles_for(day, history, daily, settings)
            detector += time.perf_counter() - started
            t0 = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            today: list[Snapshot] = []
            states: dict[tuple[str, str], SpikeState] = {}  # the store keeps one GMT day's states
            seen: dict[str, float] = {}
            for k in range(1440 // p.check_minutes):
                now = t0 + timedelta(minutes=k * p.check_minutes, seconds=snap_rng.uniform(0, 30))
                today.append(_snapshot(cats, counts, seen, now, snap_rng, p))
                started = time.perf_counter()
                sent, new_states = decide(watches, today, profiles, states, now=now, settings=settings)
                detector += time.perf_counter() - started
                states.update(new_states)
                alerts.extend(_alert(a, now) for a in sent)
            history.extend(today)
            cutoff = day - timedelta(days=settings.history_days - 1)
            history = [s for s in history if s.taken_at.date() >= cutoff]
        for cat in cats:
            n = counts[cat.name][-1]
            if n > 0:
                daily.append(DailyTotal(day, cat.name, n, n * cat.unit_price))
    return alerts, incidents, detector


def _alert(a: SpikeAlert, now: datetime) -> Alert:
    v = a.verdict
    return Alert(Sensitivity(a.channel), v.category, now, a.kind, v.source, v.window_minutes, v.ratio, v.excess_price)


def _run(args: tuple[Synth, bool]) -> tuple[list[Alert], list[Incident], float]:
    return simulate(args[0], args[1], WatchSettings())


@dataclass(frozen=True)
class Row:
    seed: int
    sensitivity: str
    eligible: int
    recall: float
    median_delay: float
    p90_delay: float
    slow_recall: str
    false_per_30d: float
    stray: int


def score(
    p: Synth, alerts: list[Alert], incidents: list[Incident], clean: list[Alert], settings: WatchSettings
) -> list[Row]:
    grace = timedelta(minutes=p.grace_minutes)
    big = [i for i in incidents if i.multiplier >= 5 and i.minutes >= 30]
    # Material within the lookahead: the rule can page at once. The others only once the day's
    # excess reaches min_excess_price, later by design (counted apart, as "slow").
    fast = [i for i in big if i.excess_per_hour * settings.lookahead_minutes / 60 >= settings.min_excess_price]
    slow = [
        i for i in big
        if i not in fast and i.excess_per_hour * i.minutes / 60 >= settings.min_excess_price
    ]  # fmt: skip
    rows = []
    for s in SENSITIVITIES:
        mine = [a for a in alerts if a.sensitivity is s and a.kind is AlertKind.FIRST]

        def delay(i: Incident, mine: list[Alert] = mine) -> float | None:
            hits = [
                a.at
                for a in mine
                if a.category == i.category and i.onset <= a.at <= i.onset + timedelta(minutes=i.minutes) + grace
            ]
            return (min(hits) - i.onset).total_seconds() / 60 if hits else None

        delays = [d for i in fast if (d := delay(i)) is not None]
        slow_found = sum(delay(i) is not None for i in slow)
        stray = sum(not any(_within(a, i, grace) for i in incidents) for a in mine)
        false = sum(a.sensitivity is s and a.kind is AlertKind.FIRST for a in clean)
        rows.append(
            Row(
                seed=p.seed,
                sensitivity=s.value,
                eligible=len(fast),
                recall=len(delays) / len(fast) if fast else math.nan,
                median_delay=median(delays),
                p90_delay=percentile(delays, 90),
                slow_recall=f"{slow_found}/{len(slow)}",
                false_per_30d=false / p.categories / p.days * 30,
                stray=stray,
            )
        )
    return rows


def explain(
    p: Synth, alerts: list[Alert], incidents: list[Incident], clean: list[Alert], settings: WatchSettings
) -> None:
    """The misses among the eligible incidents and the false alerts, at normal sensitivity."""
    grace = timedelta(minutes=p.grace_minutes)
    normal = [a for a in alerts if a.sensitivity is Sensitivity.NORMAL]
    for i in incidents:
        if i.multiplier >= 5 and i.minutes >= 30:
            hits = [a for a in normal if _within(a, i, grace)]
            found = f"{(hits[0].at - i.onset).total_seconds() / 60:.0f} min" if hits else "MISSED"
            print(f"  incident {i.category} {i.onset:%m-%d %H:%M} x{i.multiplier:.1f} {i.minutes:.0f} min "
                  f"${i.excess_per_hour:.2f}/h: {found}", file=sys.stderr)  # fmt: skip
    for a in clean:
        if a.sensitivity is Sensitivity.NORMAL:
            print(f"  false {a.kind} {a.category} {a.at:%m-%d %H:%M} {a.source} window {a.window:.0f} "
                  f"x{a.ratio:.1f} excess ${a.excess:.2f}", file=sys.stderr)  # fmt: skip


def _within(a: Alert, i: Incident, grace: timedelta) -> bool:
    """The alert belongs to the incident: same category, from onset until `grace` after its end."""
    return a.category == i.category and i.onset <= a.at <= i.onset + timedelta(minutes=i.minutes) + grace


HEADERS = [
    "seed", "sensitivity", "incidents", "recall", "median delay", "p90 delay", "slow found",
    "false /cat/30d", "stray",
]  # fmt: skip


def table(rows: list[Row]) -> str:
    return format_table(
        HEADERS,
        [
            [r.seed, r.sensitivity, r.eligible, f"{r.recall:.2f}", f"{r.median_delay:.0f} min",
             f"{r.p90_delay:.0f} min", r.slow_recall, f"{r.false_per_30d:.2f}", r.stray]
            for r in rows
        ],
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, action="append", help="repeatable; default 1")
    parser.add_argument("--days", type=int, default=Synth.days)
    parser.add_argument("--categories", type=int, default=Synth.categories)
    parser.add_argument("--verbose", action="store_true", help="list misses and false alerts (normal)")
    args = parser.parse_args()
    settings = WatchSettings()
    rows: list[Row] = []
    started = time.perf_counter()
    for seed in args.seed or [1]:
        quiet = max(1, round(args.categories * Synth.quiet_categories / Synth.categories))
        p = replace(Synth(), seed=seed, days=args.days, categories=args.categories, quiet_categories=quiet)
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            (alerts, incidents, t1), (clean, _, t2) = pool.map(_run, [(p, True), (p, False)])
        rows.extend(score(p, alerts, incidents, clean, settings))
        if args.verbose:
            explain(p, alerts, incidents, clean, settings)
        print(f"seed {seed}: {len(incidents)} incidents, detector {t1 + t2:.0f} s", file=sys.stderr)
    print(table(rows))
    print(f"\n{time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    normal = [r for r in rows if r.sensitivity == "normal"]
    ok = all(r.recall >= 0.95 and r.median_delay <= 10 and r.p90_delay <= 20 and r.false_per_30d <= 1 for r in normal)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
