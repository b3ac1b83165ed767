"""How well the spend-spike watch finds injected incidents, and how often it pages for nothing.

    PYTHONPATH=. .venv/bin/python bench/watch_accuracy.py [--seed 1 --seed 2 …] [--days 90]
        [--categories 20] [--verbose]

Generates synthetic Twilio usage (bench/watch_synth.py: all its parameters are in one
dataclass, `Synth`; change them there to run harder data), then runs the detector over it every
5 simulated minutes exactly as the scheduled pass does: a `Snapshot` of Usage/Records/Today per
pass (with Twilio's data lag), `profiles_for()` once per simulated day from the previous 28 days
of snapshots and Daily totals (the first days are a fresh install: Daily only), and `decide()` on
every pass for three watches (low, normal, high sensitivity; every category with spend),
carrying the alert states over as the store does. Two runs, in two processes: one with
incidents (recall and delay) and one on the same usage without incidents (false alerts).
Method and targets: docs/WATCH.md and bench/WATCH.md. Exits 0 when the normal-sensitivity
targets are met for every seed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # also runnable without PYTHONPATH=.

from bench.harness import format_table, median, percentile
from bench.watch_synth import Incident, Synth, day_counts, holidays, make_categories, make_incidents, snapshot
from bot.watch.baseline import profiles_for
from bot.watch.decide import decide
from bot.watch.model import (
    AlertKind,
    DailyTotal,
    Sensitivity,
    Snapshot,
    SpikeAlert,
    SpikeState,
    Watch,
    WatchSettings,
)

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
    days_off = holidays(p)
    snap_rng = random.Random(p.seed + 2000)
    watches = [Watch(s.value, (), s) for s in SENSITIVITIES]
    daily: list[DailyTotal] = []
    history: list[Snapshot] = []
    alerts: list[Alert] = []
    detector = 0.0
    for offset in range(-p.prior_days, p.days):
        day = p.start + timedelta(days=offset)
        counts = day_counts(p, cats, day, incidents, days_off)
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
                today.append(snapshot(cats, counts, seen, now, snap_rng, p))
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
    eligible: int  # incidents x5+, 30 min+, material within the lookahead
    recall: float
    median_delay: float  # minutes from onset to the FIRST alert
    p90_delay: float
    slow_recall: str  # found/all of the x5+, 30 min+ incidents material only later
    false_per_30d: float  # FIRST alerts per category per 30 days, on the run without incidents
    stray: int  # FIRST alerts outside every incident window, in the run with incidents


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
            hits = [a.at for a in mine if _within(a, i, grace)]
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
