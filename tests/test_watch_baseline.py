"""What is usual: profiles from Daily totals (a fresh install) and from stored snapshots."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.watch.baseline import profiles_for
from bot.watch.model import DailyTotal, Profile, Snapshot, WatchSettings
from tests.watch_data import day_snapshots, flat, office_hours, spike

SETTINGS = WatchSettings()
MONDAY = date(2026, 3, 2)
H = 3600.0


def history(days: int, before: date, rates: dict, prices: dict, weekend_rates: dict | None = None) -> list[Snapshot]:
    out: list[Snapshot] = []
    for k in range(days, 0, -1):
        day = before - timedelta(days=k)
        use = weekend_rates if weekend_rates is not None and day.weekday() >= 5 else rates
        out.extend(day_snapshots(day, use, prices))
    return out


def daily(category: str, per_day: list[float], before: date, price: float) -> list[DailyTotal]:
    return [
        DailyTotal(before - timedelta(days=len(per_day) - i), category, n, n * price) for i, n in enumerate(per_day)
    ]


def test_fresh_install_spreads_the_median_daily_total_flat_over_the_day() -> None:
    # 28 days of Daily records and no snapshot yet; one day had an incident (10x): the median
    # ignores it.
    counts = [1440.0] * 28
    counts[10] = 14400.0
    profiles = profiles_for(MONDAY, [], daily("sms-outbound", counts, MONDAY, 0.01), SETTINGS)

    p = profiles["sms-outbound"]
    assert p.source == "daily"
    assert p.usual_rate(3 * H).count == pytest.approx(60.0)  # 1,440 a day = 60 an hour, night and day
    assert p.usual_rate(15 * H).price == pytest.approx(0.60)
    assert p.usual_by(12 * H).price == pytest.approx(7.20)
    assert p.usual_day().count == pytest.approx(1440.0)


def test_fresh_install_splits_weekdays_from_weekends_when_daily_has_enough_of_each() -> None:
    per_day = [100.0 if (MONDAY - timedelta(days=28 - i)).weekday() >= 5 else 1000.0 for i in range(28)]
    records = daily("calls-outbound", per_day, MONDAY, 0.02)

    weekday = profiles_for(MONDAY, [], records, SETTINGS)["calls-outbound"]
    saturday = profiles_for(MONDAY + timedelta(days=5), [], records, SETTINGS)["calls-outbound"]

    assert (weekday.kind, weekday.usual_day().count) == ("weekday", pytest.approx(1000.0))
    assert (saturday.kind, saturday.usual_day().count) == ("weekend", pytest.approx(100.0))


def test_history_gives_the_time_of_day_profile() -> None:
    # 10 days of office-hours usage: 6 a minute from 08:00 to 18:00, none at night.
    snaps = history(10, MONDAY, {"sms-outbound": office_hours(6.0)}, {"sms-outbound": 0.05})
    daily_records = daily("sms-outbound", [3600.0] * 28, MONDAY, 0.05)

    p = profiles_for(MONDAY, snaps, daily_records, SETTINGS)["sms-outbound"]

    assert p.source == "history"
    assert p.kind == "all"  # 10 days hold 2-4 weekend days: not enough to split
    assert p.days == 10
    assert p.usual_rate(3 * H).count == 0.0
    assert p.usual_rate(12 * H).count == pytest.approx(360.0)
    assert p.usual_rate(12 * H).price == pytest.approx(18.0)
    assert p.usual_by(8 * H).count == 0.0
    assert p.usual_by(18 * H).count == pytest.approx(3600.0)


def test_the_first_snapshot_of_a_day_counts_from_midnight() -> None:
    # Counters restart at GMT midnight: the 00:05 snapshot's totals are the usage since 00:00,
    # not a drop from yesterday's total.
    snaps = history(8, MONDAY, {"lookups": flat(2.0)}, {"lookups": 0.01})
    p = profiles_for(MONDAY, snaps, [], SETTINGS)["lookups"]
    assert p.usual_rate(0.0).count == pytest.approx(120.0)
    assert p.usual_rate(23.9 * H).count == pytest.approx(120.0)


def test_history_splits_weekdays_from_weekends_when_each_has_seven_days() -> None:
    snaps = history(
        28, MONDAY, {"calls-outbound": flat(4.0)}, {"calls-outbound": 0.02}, weekend_rates={"calls-outbound": flat(1.0)}
    )
    weekday = profiles_for(MONDAY, snaps, [], SETTINGS)["calls-outbound"]
    sunday = profiles_for(MONDAY - timedelta(days=1), snaps, [], SETTINGS)["calls-outbound"]

    assert (weekday.kind, weekday.usual_rate(10 * H).count) == ("weekday", pytest.approx(240.0))
    # For Sunday only the days before it count: 27 days, 7 of them weekend days.
    assert (sunday.kind, sunday.usual_rate(10 * H).count) == ("weekend", pytest.approx(60.0))


def test_one_incident_day_in_history_does_not_move_the_usual_rate() -> None:
    snaps: list[Snapshot] = []
    for k in range(10, 0, -1):
        day = MONDAY - timedelta(days=k)
        rate = flat(3.0)
        if k == 4:
            rate = spike(rate, day_snapshots(day, {}, {})[0].taken_at.replace(hour=2), 50.0, minutes=600)
        snaps.extend(day_snapshots(day, {"sms-outbound": rate}, {"sms-outbound": 0.05}))

    p = profiles_for(MONDAY, snaps, [], SETTINGS)["sms-outbound"]

    assert p.usual_rate(5 * H).count == pytest.approx(180.0)
    assert p.usual_spread(5 * H).count == pytest.approx(0.0)


def test_a_category_new_to_the_snapshots_uses_daily_shaped_like_the_account() -> None:
    # The account's history is all office hours; mms appears only in Daily records (it was used
    # before the bot was installed). Its day is spread by the account's shape, not flat.
    snaps = history(10, MONDAY, {"sms-outbound": office_hours(6.0)}, {"sms-outbound": 0.05})
    records = daily("mms-outbound", [500.0] * 28, MONDAY, 0.02)

    p = profiles_for(MONDAY, snaps, records, SETTINGS)["mms-outbound"]

    assert p.source == "daily"
    assert p.usual_day().count == pytest.approx(500.0)
    assert p.usual_rate(12 * H).count > 5 * p.usual_rate(3 * H).count


def test_a_category_in_use_for_a_few_days_is_judged_by_those_days() -> None:
    # 14 days of SMS; WhatsApp started 4 days ago at a steady rate (and so is not in the 28 days
    # of Daily before that). Its usual rate is its rate of those days, not the median "nothing" of
    # the days before it existed; a category started yesterday is still usually nothing.
    snaps: list[Snapshot] = []
    for k in range(14, 0, -1):
        day = MONDAY - timedelta(days=k)
        rates = {"sms-outbound": flat(2.0)}
        if k <= 4:
            rates["channels-whatsapp"] = flat(3.0)
        if k <= 1:
            rates["verify-push"] = flat(3.0)
        snaps.extend(day_snapshots(day, rates, {"sms-outbound": 0.05, "channels-whatsapp": 0.01, "verify-push": 0.01}))
    records = daily("sms-outbound", [2880.0] * 28, MONDAY, 0.05)

    profiles = profiles_for(MONDAY, snaps, records, SETTINGS)

    assert profiles["channels-whatsapp"].usual_rate(12 * H).count == pytest.approx(180.0)
    assert profiles["verify-push"].usual_rate(12 * H).count == 0.0
    assert profiles["sms-outbound"].days == 14


def test_days_the_bot_mostly_missed_are_not_history() -> None:
    # Installed on Friday at 20:00: that day is not a day of history; with 6 full days there are
    # too few, so Daily is used.
    rates, prices = {"sms-outbound": flat(1.0)}, {"sms-outbound": 0.05}
    snaps = [s for s in day_snapshots(MONDAY - timedelta(days=7), rates, prices) if s.taken_at.hour >= 20]
    snaps += history(6, MONDAY, rates, prices)

    p = profiles_for(MONDAY, snaps, daily("sms-outbound", [1440.0] * 28, MONDAY, 0.05), SETTINGS)["sms-outbound"]

    assert p.source == "daily"


def test_a_profile_survives_its_json() -> None:
    snaps = history(8, MONDAY, {"sms-outbound": office_hours(6.0)}, {"sms-outbound": 0.05})
    p = profiles_for(MONDAY, snaps, [], SETTINGS)["sms-outbound"]
    again = Profile.from_json(p.to_json())
    assert again == p
    assert again.usual_by(13.25 * H) == p.usual_by(13.25 * H)
