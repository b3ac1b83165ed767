"""The spike rule: the first check that can see a spike alerts, usual usage never does, one alert
a day plus one escalation, Twilio's data lag is neither a drop nor a spike, roll-ups are not
alerted twice."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import pytest

from bot.watch.baseline import profiles_for
from bot.watch.decide import decide, watched_categories
from bot.watch.detect import check
from bot.watch.model import (
    AlertKind,
    DailyTotal,
    Profile,
    Sensitivity,
    Snapshot,
    SpikeAlert,
    SpikeState,
    Totals,
    Watch,
    WatchSettings,
)
from tests.watch_data import RateFn, day_snapshots, flat, midnight, office_hours, spike

SETTINGS = WatchSettings()
DAY = date(2026, 3, 4)  # a Wednesday
SMS = "sms-outbound"
PRICE = {SMS: 0.05, "lookups": 0.001, "calls-outbound": 0.02}
EVERY = [Watch(s.value, (), s) for s in Sensitivity]


def profiles_from_history(rates: dict[str, RateFn], day: date = DAY, days: int = 14) -> dict[str, Profile]:
    snaps: list[Snapshot] = []
    for k in range(days, 0, -1):
        snaps.extend(day_snapshots(day - timedelta(days=k), rates, PRICE))
    return profiles_for(day, snaps, [], SETTINGS)


def run_day(
    watches: Sequence[Watch],
    snaps: list[Snapshot],
    profiles: dict[str, Profile],
    states: dict[tuple[str, str], SpikeState] | None = None,
) -> tuple[list[SpikeAlert], dict[tuple[str, str], SpikeState]]:
    """Every scheduled check of a day, as the scheduled pass runs them, states carried over."""
    states = dict(states or {})
    alerts: list[SpikeAlert] = []
    for k in range(len(snaps)):
        sent, new = decide(watches, snaps[: k + 1], profiles, states, now=snaps[k].taken_at, settings=SETTINGS)
        alerts.extend(sent)
        states.update(new)
    return alerts, states


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return midnight(day).replace(hour=hour, minute=minute)


def test_a_spike_alerts_on_the_first_check_that_can_see_it() -> None:
    # 2 SMS a minute ($6/h) as usual; at 14:00 it jumps to x10. The 14:05 snapshot holds the first
    # five minutes of it: that check alerts, at every sensitivity; none before.
    profiles = profiles_from_history({SMS: flat(2.0)})
    snaps = day_snapshots(DAY, {SMS: spike(flat(2.0), at(14), 10.0)}, PRICE, until=at(16))

    alerts, states = run_day(EVERY, snaps, profiles)

    first = [a for a in alerts if a.kind is AlertKind.FIRST]  # escalations: the next test
    assert {(a.channel, a.verdict.checked_at) for a in first} == {(s.value, at(14, 5)) for s in Sensitivity}
    v = first[0].verdict
    assert v.category == SMS and v.source == "history" and v.spiking and v.above_line
    assert v.started_at == at(14, 5)
    assert v.window_minutes == 5.0
    assert v.ratio == pytest.approx(10.0)  # over 14:00-14:05, all of it spike
    assert v.usual_rate_per_hour.price == pytest.approx(6.0)
    assert v.today.price == pytest.approx(14 * 6.0 + 0.05 * 100)
    assert v.excess_price == pytest.approx(0.05 * 90, rel=0.01)
    # the excess is $4.50 so far: it alerts because at $54/h above usual it passes $5 within 30 min
    assert v.projected_price > 400
    assert states[("normal", SMS)].alerted_excess == pytest.approx(v.excess_price)


def test_usage_that_follows_the_profile_never_alerts() -> None:
    # Office-hours SMS and round-the-clock calls with Poisson noise, a day like the previous 14:
    # 288 checks, three sensitivities, no alert.
    rates = {SMS: office_hours(20.0), "calls-outbound": flat(30.0)}
    snaps: list[Snapshot] = []
    noise = random.Random(7)
    for k in range(14, 0, -1):
        snaps.extend(day_snapshots(DAY - timedelta(days=k), rates, PRICE, noise=noise, lag_minutes=k % 4))
    profiles = profiles_for(DAY, snaps, [], SETTINGS)
    repeats = [at(h, m) for h in range(24) for m in (10, 35)]  # Twilio's lag: no news twice an hour
    today = day_snapshots(DAY, rates, PRICE, noise=noise, lag_minutes=3, repeats=repeats)

    alerts, states = run_day(EVERY, today, profiles)

    assert alerts == []
    assert all(s.alerted_excess is None for s in states.values())


def test_one_alert_a_day_and_one_escalation_when_the_excess_doubles() -> None:
    # x10 from 09:00 for the rest of the day: FIRST at 09:05, ESCALATION once the day's excess is
    # twice what it was at the first alert (floored at the $5 materiality), then nothing more.
    profiles = profiles_from_history({SMS: flat(2.0)})
    rate = spike(flat(2.0), at(9), 10.0)
    snaps = day_snapshots(DAY, {SMS: rate}, PRICE)
    normal = [Watch("C1", (), Sensitivity.NORMAL)]

    alerts, states = run_day(normal, snaps, profiles)

    assert [(a.kind, a.verdict.checked_at) for a in alerts] == [
        (AlertKind.FIRST, at(9, 5)),
        (AlertKind.ESCALATION, at(9, 15)),  # excess $13.50 >= 2 x max($4.50, $5)
    ]
    assert alerts[1].verdict.started_at == at(9, 5)
    assert states[("C1", SMS)].escalated

    # The next GMT day starts fresh: the same spike still going alerts again (and escalates).
    next_day = DAY + timedelta(days=1)
    tomorrow = day_snapshots(
        next_day, {SMS: spike(flat(2.0), midnight(next_day), 10.0)}, PRICE, until=at(2, 0, next_day)
    )
    alerts2, _ = run_day(normal, tomorrow, profiles_from_history({SMS: flat(2.0)}, next_day), states)
    assert [(a.kind, a.verdict.checked_at) for a in alerts2] == [
        (AlertKind.FIRST, at(0, 5, next_day)),
        (AlertKind.ESCALATION, at(0, 15, next_day)),
    ]


def test_a_check_that_sees_no_change_is_neither_a_drop_nor_a_spike() -> None:
    # Lag: the 12:05 answer repeats the 12:00 one; the 12:10 one holds ten minutes of new usage.
    profiles = profiles_from_history({SMS: flat(2.0)})
    snaps = day_snapshots(DAY, {SMS: flat(2.0)}, PRICE, until=at(12, 10), repeats=[at(12, 5)])
    kwargs = {"now": at(12, 5), "sensitivity": Sensitivity.HIGH, "settings": SETTINGS}

    before = check(SMS, snaps[:-2], profiles[SMS], **{**kwargs, "now": at(12, 0)})
    repeated = check(SMS, snaps[:-1], profiles[SMS], **kwargs)
    caught_up = check(SMS, snaps, profiles[SMS], **{**kwargs, "now": at(12, 10)})

    assert snaps[-2].totals == snaps[-3].totals  # the repeat
    assert repeated.rate_per_hour.count == pytest.approx(before.rate_per_hour.count)  # not zero
    assert repeated.rate_per_hour.count == pytest.approx(120.0)
    assert caught_up.rate_per_hour.count == pytest.approx(120.0)  # not twice the usual
    assert not (before.above_line or repeated.above_line or caught_up.above_line)
    alerts, _ = run_day(EVERY, snaps, profiles)
    assert alerts == []


def test_a_long_silence_is_quiet_not_lag() -> None:
    # Office hours end at 18:00: by 18:30 the unchanged total is taken as no usage (rate 0).
    profiles = profiles_from_history({SMS: office_hours(2.0)})
    snaps = day_snapshots(DAY, {SMS: office_hours(2.0)}, PRICE, until=at(18, 45))
    v = check(SMS, snaps, profiles[SMS], now=at(18, 45), sensitivity=Sensitivity.NORMAL, settings=SETTINGS)
    assert v.rate_per_hour.count == 0.0
    assert not v.above_line


def test_a_tiny_category_above_the_line_pages_no_one() -> None:
    # Lookups at a tenth of a cent: x20 for two hours is far above the line but only $2.28 above
    # usual. The state records that it went above the line; no alert.
    profiles = profiles_from_history({"lookups": flat(1.0)})
    snaps = day_snapshots(DAY, {"lookups": spike(flat(1.0), at(10), 20.0)}, PRICE, until=at(12))

    alerts, states = run_day(EVERY, snaps, profiles)

    assert alerts == []
    state = states[("normal", "lookups")]
    assert state.first_above_at == at(10, 5) and state.alerted_excess is None


def test_a_few_events_more_in_a_quiet_category_are_luck_not_a_spike() -> None:
    # Premium calls at $3, one every 10 minutes as usual. Six in ten minutes ($15 above usual)
    # happens by chance every few weeks; it must not page even at high sensitivity. Twenty in
    # ten minutes is no chance: it does.
    price = {**PRICE, "calls-outbound": 3.0}
    usual = flat(0.1)
    snaps: list[Snapshot] = []
    for k in range(14, 0, -1):
        snaps.extend(day_snapshots(DAY - timedelta(days=k), {"calls-outbound": usual}, price))
    profiles = profiles_for(DAY, snaps, [], SETTINGS)
    high = [Watch("C1", (), Sensitivity.HIGH)]

    def burst(per_minute: float) -> RateFn:
        return lambda t: per_minute if at(12) <= t < at(12, 10) else 0.1

    lucky = day_snapshots(DAY, {"calls-outbound": burst(0.6)}, price, until=at(13))
    assert run_day(high, lucky, profiles)[0] == []

    fraud = day_snapshots(DAY, {"calls-outbound": burst(2.0)}, price, until=at(13))
    alerts, _ = run_day(high, fraud, profiles)
    assert [a.verdict.checked_at for a in alerts if a.kind is AlertKind.FIRST] == [at(12, 5)]


def test_spend_in_a_category_never_seen_alerts_once_material() -> None:
    # Toll fraud in a category the account never used: no profile, usual is zero.
    # 20 calls a minute ($24/h) from 03:00: the first check that sees them alerts.
    profiles = profiles_from_history({SMS: flat(2.0)})
    fraud = day_snapshots(
        DAY, {SMS: flat(2.0), "calls-outbound": lambda t: 20.0 if t >= at(3) else 0.0}, PRICE, until=at(4)
    )

    alerts, _ = run_day([Watch("C1", (), Sensitivity.NORMAL)], fraud, profiles)

    v = alerts[0].verdict
    assert (alerts[0].kind, v.category, v.source, v.checked_at) == (
        AlertKind.FIRST,
        "calls-outbound",
        "none",
        at(3, 5),
    )


def test_a_spike_crossing_midnight_is_seen_in_the_new_day() -> None:
    # Counters restart at 00:00: the 00:05 snapshot's totals are five minutes of usage. A x10
    # spike running through midnight alerts at 00:05 (the new day's first check).
    profiles = profiles_from_history({SMS: flat(2.0)})
    snaps = day_snapshots(DAY, {SMS: spike(flat(2.0), at(0), 10.0)}, PRICE, until=at(1))
    alerts, _ = run_day([Watch("C1", (), Sensitivity.NORMAL)], snaps, profiles)
    assert [a.verdict.checked_at for a in alerts if a.kind is AlertKind.FIRST] == [at(0, 5)]


def test_yesterdays_state_does_not_hold_back_todays_alert() -> None:
    profiles = profiles_from_history({SMS: flat(2.0)})
    yesterday = SpikeState(first_above_at=at(9, 0, DAY - timedelta(days=1)), alerted_excess=50.0, escalated=True)
    snaps = day_snapshots(DAY, {SMS: spike(flat(2.0), at(14), 10.0)}, PRICE, until=at(14, 5))
    alerts, _ = decide(
        [Watch("C1", (SMS,), Sensitivity.NORMAL)],
        snaps,
        profiles,
        {("C1", SMS): yesterday},
        now=at(14, 5),
        settings=SETTINGS,
    )
    assert [a.kind for a in alerts] == [AlertKind.FIRST]


def test_a_fresh_install_watches_from_daily_records() -> None:
    # No snapshot history: 28 Daily records of 2,880 SMS ($144) a day. A x10 spike at 14:00 alerts
    # at 14:05 from the Daily profile; the day before it does not.
    daily = [DailyTotal(DAY - timedelta(days=k), SMS, 2880.0, 144.0) for k in range(1, 29)]
    profiles = profiles_for(DAY, [], daily, SETTINGS)
    snaps = day_snapshots(DAY, {SMS: spike(flat(2.0), at(14), 10.0)}, PRICE, until=at(15))
    alerts, _ = run_day([Watch("C1", (), Sensitivity.NORMAL)], snaps, profiles)
    first = [(a.verdict.source, a.verdict.checked_at) for a in alerts if a.kind is AlertKind.FIRST]
    assert first == [("daily", at(14, 5))]


def snapshot(**prices: float) -> Snapshot:
    return Snapshot(at(12), {k.replace("_", "-"): Totals(1.0, v) for k, v in prices.items()})


def test_every_category_with_spend_leaves_out_roll_ups() -> None:
    latest = snapshot(
        totalprice=30.0,
        sms=12.0,
        sms_outbound=10.0,
        sms_inbound=2.0,
        calls=8.0,
        calls_inbound=1.0,  # the children present cover an eighth of calls: calls stays
        lookups=0.0,
        recordings=10.0,
    )
    every = watched_categories(Watch("C1", (), Sensitivity.NORMAL), latest)
    assert every == ["calls", "calls-inbound", "recordings", "sms-inbound", "sms-outbound"]


def test_nested_roll_ups_count_leaves_once_and_named_categories_are_kept() -> None:
    latest = snapshot(calls=9.0, calls_inbound=9.0, calls_inbound_local=6.0, calls_inbound_tollfree=3.0)
    assert watched_categories(Watch("C1", (), Sensitivity.LOW), latest) == [
        "calls-inbound-local",
        "calls-inbound-tollfree",
    ]
    named = Watch("C1", ("calls", "totalprice"), Sensitivity.LOW)
    assert watched_categories(named, latest) == ["calls", "totalprice"]
