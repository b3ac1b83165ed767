"""Usage digests: when they are due (across time zones and DST), what they say, and that each
goes out exactly once — with several instances, after crashes, through Slack and Twilio trouble.

Twilio is FakeTwilio and Slack is FakeSlack, both over loopback HTTP; time is passed in (`now`).
The `now`s used are in the past, so the channel history FakeSlack keeps (real timestamps) lies
after them, as it would in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from app import create_app
from bot import audit
from bot.commands.answer import Invoker, UsageBot
from bot.commands.types import ListDigests, SubscribeDigest, UnsubscribeDigest
from bot.model import Message, UsageRecord
from bot.render.formats import sparkline
from bot.render.limits import check_limits
from bot.render.plain import render_plain
from bot.reports import subscriptions as digests
from bot.reports.digests import build_digest
from bot.reports.model import DigestReport, Mover, Subscription
from bot.reports.render_digests import render_digest, render_digests_list
from bot.reports.runs import STALE_CLAIM_SECONDS
from bot.reports.schedule import due_period, next_due, period_range, previous_range
from bot.reports.scheduler import run_due
from bot.slack import SlackPoster, make_slack_clients
from bot.store import Store
from bot.store.schema import digests as subscriptions
from bot.store.schema import report_runs
from bot.usage.client import UsageClient
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, make_settings
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record

UTC_TZ = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
TOKYO = ZoneInfo("Asia/Tokyo")
NINE = 9 * 60
# Tuesday 24 November 2026, 09:30 GMT: the daily digest at 09:00 UTC covers Monday the 23rd.
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- fixtures and helpers ------------------------------------------------------------------


def spend_by_day(day: date) -> dict[str, Decimal]:
    """A plausible account: SMS grows a dollar a day, calls shrink, a steady phone-number fee."""
    n = (day - date(2026, 9, 1)).days
    return {
        "sms": Decimal(10 + n),
        "sms-outbound": Decimal(10 + n),  # part of `sms`: must not count twice
        "calls": Decimal(100 - n) / 2,
        "phonenumbers": Decimal("1.15"),
    }


def load_daily(twilio: FakeTwilio, start: date, end: date, prices=spend_by_day) -> None:  # type: ignore[no-untyped-def]
    """Daily records (one per category per day, totalprice their sum without sub-categories)."""
    records = []
    day = start
    while day <= end:
        prices_today = prices(day)
        total = sum((v for k, v in prices_today.items() if "-" not in k), Decimal(0))
        records.append(make_record("totalprice", price=str(total), start_date=day, end_date=day))
        for category, price in prices_today.items():
            records.append(make_record(category, price=str(price), start_date=day, end_date=day))
        day += timedelta(days=1)
    twilio.set_records("Daily", records)


def subscribe_many(store: Store, n: int, cadence: str = "daily", at_minutes: int = NINE) -> list[str]:
    channels = [f"C{i:05d}" for i in range(n)]
    for channel in channels:
        digests.subscribe(
            store, channel_id=channel, cadence=cadence, at_minutes=at_minutes, user_id="U0PAT", now=time.time()
        )
    return channels


def run(store: Store, usage: UsageClient, clients: tuple[WebClient, WebClient], now: datetime = NOW, tz=UTC_TZ):  # type: ignore[no-untyped-def]
    poster, lookup = clients
    return run_due(store, usage, SlackPoster(store, poster, lookup, clock=now.timestamp), now=now, tz=tz)


def runs(store: Store) -> list[tuple[str, int, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(report_runs.c.kind, report_runs.c.subject_id, report_runs.c.period_key, report_runs.c.status)
        ).all()
    return sorted(tuple(r) for r in rows)  # type: ignore[misc]


def twilio_gets(twilio: FakeTwilio) -> int:
    return len([r for r in twilio.requests if r.method == "GET"])


# --- when: due_period, pure -------------------------------------------------------------------


def test_daily_is_due_from_the_time_until_the_end_of_the_day_and_covers_yesterday() -> None:
    assert due_period(at("2026-11-24T08:59:59+00:00"), UTC_TZ, "daily", NINE) is None
    assert due_period(at("2026-11-24T09:00:00+00:00"), UTC_TZ, "daily", NINE) == "2026-11-23"
    # Missed at 09:00 (nothing ran): still sent later the same day ...
    assert due_period(at("2026-11-24T23:59:00+00:00"), UTC_TZ, "daily", NINE) == "2026-11-23"
    # ... but the next day only the next digest is due, never the missed one.
    assert due_period(at("2026-11-25T00:30:00+00:00"), UTC_TZ, "daily", NINE) is None
    assert due_period(at("2026-11-25T09:00:00+00:00"), UTC_TZ, "daily", NINE) == "2026-11-24"


def test_times_are_local_to_usage_timezone() -> None:
    # Paris is GMT+1 in November: 09:00 there is 08:00 GMT.
    assert due_period(at("2026-11-24T07:59:00+00:00"), PARIS, "daily", NINE) is None
    assert due_period(at("2026-11-24T08:00:00+00:00"), PARIS, "daily", NINE) == "2026-11-23"
    # Los Angeles is GMT-8: at 03:00 GMT on the 25th it is still the evening of the 24th there.
    assert due_period(at("2026-11-25T03:00:00+00:00"), LOS_ANGELES, "daily", NINE) == "2026-11-23"
    assert due_period(at("2026-11-24T16:59:00+00:00"), LOS_ANGELES, "daily", NINE) is None
    assert due_period(at("2026-11-24T17:00:00+00:00"), LOS_ANGELES, "daily", NINE) == "2026-11-23"


def test_a_send_time_skipped_by_spring_forward_is_sent_when_the_clock_passes_it() -> None:
    # Europe/Paris, 29 March 2026: 02:00 CET becomes 03:00 CEST; 02:30 never happens.
    half_past_two = 2 * 60 + 30
    assert due_period(at("2026-03-29T00:59:00+00:00"), PARIS, "daily", half_past_two) is None  # 01:59 CET
    assert due_period(at("2026-03-29T01:00:00+00:00"), PARIS, "daily", half_past_two) == "2026-03-28"  # 03:00


def test_a_send_time_repeated_by_fall_back_gives_one_key() -> None:
    # Europe/Paris, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    half_past_two = 2 * 60 + 30
    first = due_period(at("2026-10-25T00:30:00+00:00"), PARIS, "daily", half_past_two)
    second = due_period(at("2026-10-25T01:30:00+00:00"), PARIS, "daily", half_past_two)
    assert first == second == "2026-10-24"
    assert due_period(at("2026-10-25T00:29:00+00:00"), PARIS, "daily", half_past_two) is None


def test_weekly_is_due_on_local_mondays_and_covers_the_previous_monday_to_sunday() -> None:
    # Los Angeles, Monday 9 March 2026 (the day after spring forward): 09:00 PDT is 16:00 GMT.
    assert due_period(at("2026-03-09T15:59:00+00:00"), LOS_ANGELES, "weekly", NINE) is None
    key = due_period(at("2026-03-09T16:00:00+00:00"), LOS_ANGELES, "weekly", NINE)
    assert key == "2026-W10"
    assert period_range("weekly", key) == (date(2026, 3, 2), date(2026, 3, 8))
    # Sunday evening in Los Angeles is already Monday in GMT: not due.
    assert due_period(at("2026-11-23T07:00:00+00:00"), LOS_ANGELES, "weekly", 0) is None
    # Monday morning in Tokyo is still Sunday in GMT: due.
    assert due_period(at("2026-11-22T23:30:00+00:00"), TOKYO, "weekly", NINE - 60) == "2026-W47"
    assert due_period(at("2026-11-24T09:00:00+00:00"), UTC_TZ, "weekly", NINE) is None  # a Tuesday


def test_weekly_across_the_new_year_uses_iso_weeks() -> None:
    key = due_period(at("2027-01-04T10:00:00+00:00"), UTC_TZ, "weekly", NINE)
    assert key == "2026-W53"
    assert period_range("weekly", key) == (date(2026, 12, 28), date(2027, 1, 3))
    assert previous_range("weekly", date(2026, 12, 28), date(2027, 1, 3)) == (date(2026, 12, 21), date(2026, 12, 27))


def test_monthly_is_due_on_the_local_first_and_covers_the_previous_month() -> None:
    # 00:30 on 1 December in Paris is still 30 November in GMT.
    assert due_period(at("2026-11-30T23:30:00+00:00"), PARIS, "monthly", 0) == "2026-11"
    assert due_period(at("2026-11-30T23:30:00+00:00"), UTC_TZ, "monthly", 0) is None
    assert due_period(at("2026-12-02T09:00:00+00:00"), UTC_TZ, "monthly", NINE) is None
    assert period_range("monthly", "2026-02") == (date(2026, 2, 1), date(2026, 2, 28))
    assert previous_range("monthly", date(2026, 3, 1), date(2026, 3, 31)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert due_period(at("2027-01-01T09:00:00+00:00"), UTC_TZ, "monthly", NINE) == "2026-12"


def test_due_period_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        due_period(datetime(2026, 11, 24, 9, 30), UTC_TZ, "daily", NINE)


def test_next_due() -> None:
    before = at("2026-11-24T08:00:00+00:00")  # Tuesday
    assert next_due(before, UTC_TZ, "daily", NINE) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC_TZ)
    assert next_due(NOW, UTC_TZ, "daily", NINE) == NOW  # due now, not sent yet
    assert next_due(NOW, UTC_TZ, "daily", NINE, current_sent=True) == datetime(2026, 11, 25, 9, 0, tzinfo=UTC_TZ)
    assert next_due(NOW, UTC_TZ, "weekly", NINE) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC_TZ)
    assert next_due(NOW, PARIS, "monthly", NINE) == datetime(2026, 12, 1, 9, 0, tzinfo=PARIS)


# --- what: the digest ------------------------------------------------------------------------


def _record(category: str, price: str, day: date | None = None) -> UsageRecord:
    return UsageRecord(category, price=Decimal(price), start_date=day, end_date=day)


def test_build_digest_compares_with_the_period_before_and_finds_the_movers() -> None:
    current = [
        _record("totalprice", "160"),
        _record("sms", "58"),
        _record("sms-outbound", "58"),  # its parent `sms` is there: not a mover of its own
        _record("calls", "40"),
        _record("lookups", "2"),
        _record("mms", "60"),  # new this week
    ]
    previous = [_record("totalprice", "100"), _record("sms", "40"), _record("calls", "50"), _record("lookups", "2")]
    daily = [_record("totalprice", str(10 + i), date(2026, 11, 16) + timedelta(days=i)) for i in range(7)]
    report = build_digest("weekly", "2026-W47", current, previous, daily, now=NOW)
    assert (report.start, report.end) == (date(2026, 11, 16), date(2026, 11, 22))
    assert (report.previous_start, report.previous_end) == (date(2026, 11, 9), date(2026, 11, 15))
    assert report.total == Decimal(160) and report.previous_total == Decimal(100)
    assert [(m.category, m.change) for m in report.movers] == [("mms", 60), ("sms", 18), ("calls", -10)]
    assert len(report.daily) == 7 and report.complete

    message = render_digest(report)
    assert check_limits(message) == []
    plain = render_plain(message)
    assert "Twilio usage digest · week of 16–22 November 2026 (GMT)" in plain
    assert "Total spend: $160.00 · ▲ 60% vs $100.00 the week before" in plain
    assert "`mms` +$60.00 (new)" in plain
    assert "`sms` +$18.00 (+45%)" in plain
    assert "`calls` -$10.00 (-20%)" in plain
    assert "totalprice" not in plain and "sms-outbound" not in plain
    assert f"`{sparkline([Decimal(10 + i) for i in range(7)])}`  low $10.00 · high $16.00" in plain
    assert "Biggest movers" in message.text and "Daily spend: " in message.text


def test_digest_wording_for_falls_new_spend_and_no_figures() -> None:
    down = build_digest(
        "daily", "2026-11-23", [_record("totalprice", "90")], [_record("totalprice", "100")], [], now=NOW
    )
    assert "▼ 10% vs $100.00 the day before" in render_plain(render_digest(down))
    new = build_digest("daily", "2026-11-23", [_record("totalprice", "5")], [_record("totalprice", "0")], [], now=NOW)
    assert "new: nothing was spent the day before" in render_plain(render_digest(new))
    empty = build_digest("monthly", "2026-10", [], [], [], now=NOW)
    plain = render_plain(render_digest(empty))
    assert "Twilio usage digest · October 2026 (GMT)" in plain and "Twilio sent no total" in plain
    assert len(empty.daily) == 31  # one bar per day of the month, '·' where Twilio has none
    assert "·" * 31 in plain


def test_a_digest_of_an_unfinished_gmt_day_says_so() -> None:
    # Tokyo, 09:00 on the 24th is 00:00 GMT on the 24th ... and 08:00 there is still the 23rd GMT.
    report = build_digest("daily", "2026-11-23", [], [], [], now=at("2026-11-23T23:00:00+00:00"))
    assert not report.complete
    assert "partial" in render_plain(render_digest(report))


def test_the_digest_stays_within_slacks_limits_with_long_names() -> None:
    movers = tuple(Mover("x" * 300 + str(i), "d" * 500, Decimal(10**15), Decimal(1)) for i in range(5))
    report = DigestReport(
        "monthly", "2026-10", date(2026, 10, 1), date(2026, 10, 31), date(2026, 9, 1), date(2026, 9, 30),
        Decimal("1e20"), Decimal("0.001"), "usd", movers,
        tuple((date(2026, 10, 1) + timedelta(days=i), Decimal(i)) for i in range(31)), "garbage" * 50,
    )  # fmt: skip
    assert check_limits(render_digest(report)) == []


# --- sending: run_due against the fakes --------------------------------------------------------


def test_a_due_digest_is_posted_once_with_its_run_id(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 1)
    report = run(store, usage, clients)
    assert (report.digests_due, report.posted) == (1, 1)
    [post] = fake_slack.posted
    assert post.channel == "C00000"
    plain = render_plain(Message(post.text, post.blocks))
    # 23 Nov: sms $93 + calls $8.50 + numbers $1.15 = $102.65; 22 Nov: $92 + $9 + $1.15 = $102.15.
    assert "Twilio usage digest · Monday 23 November 2026 (GMT)" in plain
    assert "Total spend: $102.65 · ▲ 0.5% vs $102.15 the day before" in plain
    assert "`sms` +$1.00 (+1.1%)" in plain and "`calls` -$0.50 (-5.6%)" in plain
    assert "sms-outbound" not in plain and "phonenumbers" not in plain  # unchanged: not a mover
    assert check_limits(Message(post.text, post.blocks)) == []
    with store.engine.connect() as conn:
        run_id = conn.execute(select(report_runs.c.id)).scalar_one()
    assert post.metadata == {"event_type": "usage_digest", "event_payload": {"run": run_id}}
    assert runs(store) == [("digest", 1, "2026-11-23", "sent")]

    # Later passes the same day: nothing more, and no Twilio requests either.
    requests_before = twilio_gets(fake_twilio)
    again = run(store, usage, clients, NOW + timedelta(hours=5))
    assert (again.posted, again.skipped) == (0, 1)
    assert twilio_gets(fake_twilio) == requests_before
    assert len(fake_slack.posted) == 1


def test_not_due_yet_posts_nothing(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    subscribe_many(store, 3, at_minutes=10 * 60)
    report = run(store, usage, clients)  # 09:30
    assert (report.digests_due, report.posted) == (0, 0)
    assert fake_slack.posted == [] and fake_twilio.requests == []


def test_twilio_requests_are_shared_by_every_channel(
    database_url: str,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    counts = {}
    for n in (1, 50):
        fresh = Store.connect(database_url)
        fresh.migrate()
        with fresh.transaction() as conn:  # the same database for both rounds: start empty
            conn.execute(report_runs.delete())
            conn.execute(subscriptions.delete())
        subscribe_many(fresh, n)
        fake_twilio.reset_requests()
        report = run(fresh, usage, clients)
        assert report.posted == n
        counts[n] = twilio_gets(fake_twilio)
        fresh.dispose()
    # The day, the day before (Records.json) and the 14-day sparkline (Daily.json).
    assert counts == {1: 3, 50: 3}
    assert len({p.channel for p in fake_slack.posted}) == 50


def test_each_cadence_costs_at_most_three_requests(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 10, 1), date(2026, 11, 30))
    for cadence in ("daily", "weekly", "monthly"):
        subscribe_many(store, 5, cadence)
    report = run(store, usage, clients, at("2026-12-07T10:00:00+00:00"))  # a Monday: daily and weekly
    assert report.posted == 10
    assert twilio_gets(fake_twilio) == 6
    monthly = run(store, usage, clients, at("2027-01-01T10:00:00+00:00"))
    assert monthly.posted == 10  # daily and monthly
    weekly_sparks = [p for p in fake_slack.posted if "week of" in p.text]
    assert len(weekly_sparks) == 5
    plain = render_plain(Message(weekly_sparks[0].text, weekly_sparks[0].blocks))
    assert "Monday to Sunday" in plain


def test_two_instances_racing_post_each_digest_once(
    database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 30))
    setup = Store.connect(database_url)
    setup.migrate()
    channels = subscribe_many(setup, 20, "daily") + subscribe_many(setup, 20, "weekly")
    setup.dispose()
    monday = at("2026-11-30T10:00:00+00:00")
    barrier = threading.Barrier(2)
    reports = []

    def instance() -> None:
        own = Store.connect(database_url)  # as a second process would: its own engine
        client = UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url, max_retries=0)
        poster, lookup = make_slack_clients(VALID_TOKEN, fake_slack.api_url)
        barrier.wait()
        reports.append(run_due(own, client, SlackPoster(own, poster, lookup), now=monday, tz=UTC_TZ))
        own.dispose()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(reports) == 2
    assert sum(r.posted for r in reports) == 40
    assert len(fake_slack.posted) == 40  # 20 channels × daily + weekly, once each
    per_channel = {c: sorted("week" in p.text for p in fake_slack.posted_to(c)) for c in set(channels)}
    assert all(kinds == [False, True] for kinds in per_channel.values())


def test_a_claim_that_died_before_posting_is_posted_by_a_later_pass(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 1)
    claimed_at = NOW.timestamp()
    with store.transaction() as conn:  # what a crash right after claiming leaves behind
        conn.execute(
            report_runs.insert().values(
                kind="digest", subject_id=1, period_key="2026-11-23", status="claimed", claimed_at=claimed_at
            )
        )
    soon = run(store, usage, clients, NOW + timedelta(minutes=5))
    assert (soon.posted, soon.skipped) == (0, 1)  # it may still be alive: leave it
    later = run(store, usage, clients, NOW + timedelta(seconds=STALE_CLAIM_SECONDS + 60))
    assert (later.posted, later.settled) == (1, 0)
    assert len(fake_slack.posted) == 1
    assert fake_slack.calls_to("conversations.history")  # it looked before posting
    assert runs(store) == [("digest", 1, "2026-11-23", "sent")]


def test_a_post_that_landed_before_a_timeout_is_not_posted_again(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 1)
    fake_slack.post_delay = 1.0  # Slack takes the message, the answer comes too late
    impatient = WebClient(token=VALID_TOKEN, base_url=fake_slack.api_url, timeout=0.3, retry_handlers=[])
    _, lookup = make_slack_clients(VALID_TOKEN, fake_slack.api_url)
    first = run(store, usage, (impatient, lookup))
    assert (first.posted, first.retry_later) == (0, 1)
    assert len(fake_slack.posted) == 1
    assert runs(store) == [("digest", 1, "2026-11-23", "claimed")]
    fake_slack.post_delay = 0.0
    later = run(store, usage, (impatient, lookup), NOW + timedelta(seconds=STALE_CLAIM_SECONDS + 1))
    assert (later.posted, later.settled) == (0, 1)
    assert len(fake_slack.posted) == 1
    assert runs(store) == [("digest", 1, "2026-11-23", "sent")]


def test_a_gone_channel_is_noted_and_not_retried(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 2)
    fake_slack.channel_errors["C00000"] = "is_archived"
    report = run(store, usage, clients)
    assert (report.posted, report.undeliverable) == (1, 1)
    assert runs(store) == [("digest", 1, "2026-11-23", "sent"), ("digest", 2, "2026-11-23", "sent")]
    [entry] = [e for e in audit.latest(store) if e.action == "digest.undelivered"]
    assert entry.channel_id == "C00000" and "is_archived" in entry.detail
    again = run(store, usage, clients, NOW + timedelta(minutes=30))
    assert again.posted == 0 and len(fake_slack.calls_to("chat.postMessage")) == 2


def test_the_bot_joins_a_public_channel_it_is_not_in(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 1)
    fake_slack.members = set()
    fake_slack.public_channels = {"C00000"}
    assert run(store, usage, clients).posted == 1
    assert fake_slack.calls_to("conversations.join")


def test_rate_limited_and_down_slack_are_retried_later(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 2)
    fake_slack.fail_next_posts.append((429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}))
    fake_slack.fail_next_posts.append((503, {"ok": False, "error": "service_unavailable"}, {}))
    first = run(store, usage, clients)
    assert (first.posted, first.retry_later) == (0, 2)
    # The 429 certainly did not land: released, the next pass posts it. The 503 may have: it is
    # settled once its claim is stale (history, then a post).
    second = run(store, usage, clients, NOW + timedelta(minutes=5))
    assert second.posted == 1
    third = run(store, usage, clients, NOW + timedelta(minutes=5, seconds=STALE_CLAIM_SECONDS + 1))
    assert third.posted == 1
    assert sorted(p.channel for p in fake_slack.posted) == ["C00000", "C00001"]


def test_a_token_rejected_during_a_digest_pass_shows_in_healthz(
    store: Store,
    database_url: str,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 1)
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    fake_slack.revoked = True
    assert run(store, usage, clients).retry_later == 1
    health = app.test_client().get("/healthz").get_json()
    assert health["alerts"]["slack_token"] == "rejected by Slack: token_revoked"
    fake_slack.revoked = False
    assert run(store, usage, clients, NOW + timedelta(minutes=5)).posted == 1
    assert app.test_client().get("/healthz").get_json()["alerts"]["slack_token"] == "ok"
    app.extensions["usage_bot"]["store"].dispose()


def test_twilio_trouble_claims_nothing_and_costs_one_request_per_list(
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    load_daily(fake_twilio, date(2026, 11, 1), date(2026, 11, 23))
    subscribe_many(store, 10)
    fake_twilio.fail_next(1, 503)
    report = run(store, usage, clients)
    assert (report.posted, report.retry_later) == (0, 10)
    assert twilio_gets(fake_twilio) == 1 and runs(store) == []
    assert report.errors
    later = run(store, usage, clients, NOW + timedelta(minutes=5))
    assert later.posted == 10


# --- subscriptions through the service -----------------------------------------------------------


@pytest.fixture
def bot(store: Store, usage: UsageClient) -> UsageBot:
    return UsageBot(
        usage,
        store=store,
        public_url=PUBLIC_URL,
        # Subscribing and stopping digests are for usage admins (tests/test_permissions.py).
        admins=frozenset({"U0ADMIN", "U0PAT", "U0SAM"}),
        timezone="Europe/Paris",
    )


def test_subscribing_replaces_the_time(bot: UsageBot, store: Store) -> None:
    here = Invoker(user_id="U0PAT", channel_id="C0OPS")
    first = bot.answer(SubscribeDigest("daily", 8 * 60 + 30), here)
    assert not first.error
    assert "*daily*" in first.text and "08:30" in first.text and "Europe/Paris" in first.text
    second = bot.answer(SubscribeDigest("daily", 17 * 60), here)
    assert "17:00" in second.text and "It was at 08:30" in second.text
    bot.answer(SubscribeDigest("monthly"), here)
    subs = digests.list_subscriptions(store)
    assert [(s.channel_id, s.cadence, s.at_minutes) for s in subs] == [
        ("C0OPS", "daily", 1020),
        ("C0OPS", "monthly", 540),
    ]
    assert [e.action for e in audit.latest(store)][:3] == ["digest.subscribe"] * 3


def test_listing_and_stopping_digests(bot: UsageBot, store: Store) -> None:
    bot.answer(SubscribeDigest("weekly"), Invoker("U0PAT", "C0OPS"))
    bot.answer(SubscribeDigest("daily"), Invoker("U0PAT", "C0OPS"))
    bot.answer(SubscribeDigest("monthly"), Invoker("U0SAM", "C0FIN"))
    listed = bot.answer(ListDigests(), Invoker("U0SAM", "C0FIN"))
    plain = render_plain(listed)
    assert "Usage digests (3)" in plain
    assert plain.index("#C0FIN (this channel)") < plain.index("#C0OPS")
    assert "every Monday at 09:00" in plain and "Europe/Paris" in plain
    stopped = bot.answer(UnsubscribeDigest(), Invoker("U0PAT", "C0OPS"))
    assert "daily and weekly digests" in stopped.text
    assert [s.channel_id for s in digests.list_subscriptions(store)] == ["C0FIN"]
    assert "no digests" in bot.answer(UnsubscribeDigest(), Invoker("U0PAT", "C0OPS")).text
    assert audit.latest(store, 1)[0].action == "digest.unsubscribe"


def test_a_long_list_of_digests_fits_in_one_message() -> None:
    subs = [Subscription(i, f"C{i:05d}", "weekly", 1439, "U0PAT", 0.0) for i in range(600)]
    message = render_digests_list(subs, tz_name="Europe/Paris", channel_id="C00007")
    assert check_limits(message) == []
    assert "more" in render_plain(message)


# --- the command line --------------------------------------------------------------------------


def _cli_env(database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_URL": fake_twilio.url,
        "SLACK_API_URL": fake_slack.api_url,
        "DATABASE_URL": database_url,
        "USAGE_TIMEZONE": "UTC",
    }


def test_python_m_bot_digests_sends_what_is_due_and_exits_0(
    store: Store, database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    today = datetime.now(UTC).date()
    load_daily(fake_twilio, today - timedelta(days=20), today)
    subscribe_many(store, 2, at_minutes=0)  # due from midnight: due now, whatever the time
    env = _cli_env(database_url, fake_twilio, fake_slack)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "digests"],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "posted 2" in result.stdout
    assert len(fake_slack.posted) == 2
    again = subprocess.run(
        [sys.executable, "-m", "bot", "digests"],
        cwd=ROOT / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and "posted 0" in again.stdout and len(fake_slack.posted) == 2


def test_python_m_bot_digests_loop_runs_until_sigterm(
    store: Store, database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    today = datetime.now(UTC).date()
    load_daily(fake_twilio, today - timedelta(days=20), today)
    subscribe_many(store, 1, at_minutes=0)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "digests", "--loop", "1"],
        cwd=ROOT / "tests",
        env=_cli_env(database_url, fake_twilio, fake_slack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not fake_slack.posted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake_slack.posted) == 1
        subscribe_many(store, 2, at_minutes=0)  # C00001 is new; the next pass picks it up
        while len(fake_slack.posted) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake_slack.posted) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
