"""One scheduled check of every watch: which categories, which alerts, what state to keep.

Pure: the scheduled pass and bench/watch_accuracy.py both call `decide`. The roll-up rule of
`watched_categories` is in docs/WATCH.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime

from bot.model import TOTAL_SPEND
from bot.watch.detect import Measurement, judge, measure, next_alert
from bot.watch.model import (
    AlertKind,
    Profile,
    Sensitivity,
    Snapshot,
    SpikeAlert,
    SpikeState,
    Verdict,
    Watch,
    WatchSettings,
)

# A parent is left out when the children present hold at least this share of its spend (the rest
# is rounding); otherwise its spend is not all broken down and the parent is watched too.
CHILDREN_COVER = 0.9

# The state `decide` returns for a category that fell back below the line before any alert.
CLEAR = SpikeState(first_above_at=None, alerted_excess=None, escalated=False)


def watched_categories(watch: Watch, latest: Snapshot) -> list[str]:
    """The categories to check for one watch (empty watch.categories = every category with spend,
    leaving out roll-ups that would repeat an alert — e.g. totalprice, and a parent when its
    children are present — documented in docs/WATCH.md)."""
    if watch.categories:
        return list(watch.categories)
    spend = {c: t.price for c, t in latest.totals.items() if t.price > 0 and c != TOTAL_SPEND}
    out = []
    for category in sorted(spend):
        prefix = category + "-"
        descendants = [c for c in spend if c.startswith(prefix)]
        # Leaves only, so that calls-inbound and calls-inbound-local are not both counted.
        leaves = [c for c in descendants if not any(d.startswith(c + "-") for d in descendants)]
        if leaves and sum(spend[c] for c in leaves) >= CHILDREN_COVER * spend[category]:
            continue
        out.append(category)
    return out


def decide(
    watches: Sequence[Watch],
    today: Sequence[Snapshot],
    profiles: Mapping[str, Profile],
    states: Mapping[tuple[str, str], SpikeState],
    *,
    now: datetime,
    settings: WatchSettings,
) -> tuple[list[SpikeAlert], dict[tuple[str, str], SpikeState]]:
    """One scheduled check: the alerts to send and the new state per (channel, category)
    (first_above_at set when a category first goes above the line, even before it is material).
    Pure: the scheduled pass and bench/watch_accuracy.py both call exactly this."""
    day = now.date()
    latest = today[-1] if today else Snapshot(now, {})
    measured: dict[str, Measurement] = {}
    verdicts: dict[tuple[str, Sensitivity], Verdict] = {}
    alerts: list[SpikeAlert] = []
    new_states: dict[tuple[str, str], SpikeState] = {}
    every: list[str] | None = None  # the default set is the same for every watch
    for watch in watches:
        if watch.categories:
            categories = list(watch.categories)
        else:
            every = watched_categories(watch, latest) if every is None else every
            categories = every
        for category in categories:
            key = (watch.channel, category)
            state = states.get(key)
            if state is not None and (state == CLEAR or not _same_day(state, day)):
                state = None  # a new GMT day starts fresh: a new incident may alert again
            if category not in measured:
                measured[category] = measure(category, today, profiles.get(category), now=now, settings=settings)
            if state is None and not measured[category].above(watch.sensitivity, settings):
                continue  # the common case: below the line, nothing stored, nothing to say
            cache_key = (category, watch.sensitivity)
            verdict = verdicts.get(cache_key)
            if verdict is None:
                verdict = judge(measured[category], sensitivity=watch.sensitivity, settings=settings)
                verdicts[cache_key] = verdict
            verdict = _with_start(verdict, state)
            kind = next_alert(state, verdict, settings=settings)
            new_state = _next_state(state, verdict, kind)
            if kind is not None:
                alerts.append(SpikeAlert(watch.channel, day, kind, verdict))
            if new_state is not None:
                new_states[key] = new_state
            elif state is not None:
                new_states[key] = CLEAR  # it dropped back below the line: the store forgets it
    return alerts, new_states


def _same_day(state: SpikeState, day: date) -> bool:
    return state.first_above_at is None or state.first_above_at.date() == day


def _with_start(verdict: Verdict, state: SpikeState | None) -> Verdict:
    """The verdict with this channel's start of the spike (first check above the line)."""
    since = state.first_above_at if state else None
    if verdict.above_line:
        started = since or verdict.checked_at
    else:
        started = since if state and state.alerted_excess is not None else None
    return verdict if started == verdict.started_at else dataclasses.replace(verdict, started_at=started)


def _next_state(state: SpikeState | None, verdict: Verdict, kind: AlertKind | None) -> SpikeState | None:
    alerted = state.alerted_excess if state else None
    escalated = state.escalated if state else False
    first = state.first_above_at if state else None
    if kind is AlertKind.FIRST:
        alerted = verdict.excess_price
    elif kind is AlertKind.ESCALATION:
        escalated = True
    if verdict.above_line:
        first = first or verdict.checked_at
    elif alerted is None:
        first = None  # dropped back below the line before anyone was told: a later rise is new
    if first is None and alerted is None and not escalated:
        return None
    return SpikeState(first_above_at=first, alerted_excess=alerted, escalated=escalated)
