"""The watch stage of the scheduled pass (bot/watch/watcher.py) against the fakes: one Twilio
request per pass, a spike becoming one alert through the relay, escalation, concurrent passes,
pruning, and the `scheduled` command with its old name."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.reports import retention
from bot.reports.scheduler import run_due
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import alerts, outbox, spike_states, usage_snapshots
from bot.usage.client import UsageClient
from bot.usage.twilio_json import parse_records
from bot.watch import manage
from bot.watch import store as watch_store
from bot.watch.model import Snapshot, Totals, WatchSettings
from bot.watch.watcher import run_watch, snapshot_of, watches_of
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record
from tests.test_cli import run_cli
from tests.watch_helpers import DAY, MIDNIGHT, assert_valid_message, at, seed_checks, today_at, usual_account

CHANNEL = "C0WATCH"
SETTINGS = WatchSettings()


def watch(store: Store, channel: str = CHANNEL, *categories: str, sensitivity: str | None = None) -> None:
    manage.watch_on(store, channel_id=channel, categories=categories, sensitivity=sensitivity, user_id="U1", now=1.0)


def count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


@pytest.fixture
def relay(store: Store, fake_slack: FakeSlack) -> Iterator[AlertRelay]:
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url)
    yield AlertRelay(store, poster, policy=DeliveryPolicy(channel_interval=0.0), clock=lambda: at(12).timestamp())


def deliver(relay: AlertRelay) -> None:
    for _ in range(3):
        relay.run_once()


def test_nothing_watched_means_no_request(store: Store, usage: UsageClient, fake_twilio: FakeTwilio) -> None:
    report = run_watch(store, usage, now=at(10), settings=SETTINGS)
    assert report.watches == 0 and fake_twilio.requests == []
    assert count(store, usage_snapshots) == 0


def test_one_today_request_per_pass_with_50_watched_channels(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio
) -> None:
    usual_account(fake_twilio)
    for n in range(50):
        watch(store, f"C{n:04d}")
        watch(store, f"C{n:04d}", "sms", "calls", "mms", sensitivity="high")
    for minute, price in ((0, 10.0), (5, 10.1), (10, 10.2)):
        today_at(fake_twilio, price)
        report = run_watch(store, usage, now=at(10, minute), settings=SETTINGS)
        assert report.error == "" and report.watches == 200
    today = fake_twilio.requests_to("/Usage/Records/Today.json")
    daily = fake_twilio.requests_to("/Usage/Records/Daily.json")
    assert len(today) == 3  # one per pass, whatever the number of channels and categories
    assert all(r.query.get("PageSize") == "1000" and "Category" not in r.query for r in today)
    assert len(daily) == 1  # once for the GMT day, cached for every later pass
    assert (daily[0].query["StartDate"], daily[0].query["EndDate"]) == ("2026-10-28", "2026-11-24")
    assert len(fake_twilio.requests) == 4
    [first, *_] = watch_store.snapshots_between(store, DAY, DAY)
    # the categories with usage only (calls, mms and recordings were zero)
    assert first.totals == {"sms": Totals(1000.0, 10.0), "totalprice": Totals(0.0, 10.0)}


def test_a_spike_becomes_one_alert_through_the_relay_and_not_again(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio, fake_slack: FakeSlack, relay: AlertRelay
) -> None:
    usual_account(fake_twilio)
    watch(store)
    seed_checks(store, until=at(10))
    for minute, price in ((0, 10.0), (5, 10.08), (10, 10.17)):
        today_at(fake_twilio, price)
        assert run_watch(store, usage, now=at(10, minute), settings=SETTINGS).alerts == 0
    today_at(fake_twilio, 20.0)  # $10 in five minutes: ×120 the usual $1 an hour
    report = run_watch(store, usage, now=at(10, 15), settings=SETTINGS)
    assert report.alerts == 1
    deliver(relay)
    [posted] = fake_slack.posted_to(CHANNEL)
    text = str(posted.blocks) + posted.text
    assert "Spend spike" in posted.text and "`sms`" in text
    assert "$20.00" in text and "usual $10.25 by now" in posted.text  # today so far against usual by now
    # $9.83 in the last 5 minutes (the shortest window, docs/WATCH.md): $118 an hour, and at that
    # rate $20.00 + 13.75 h x $117.96 by midnight.
    assert "×118" in text and "on pace for $1,641.95" in posted.text
    assert "*Last 14 days and today*  `" + "█" * 14 + "▇`  ($24.00–$24.00 a day" in text
    assert "<!date^" + str(int(at(10, 15).timestamp())) in text  # when it started
    ids = [e["action_id"] for b in posted.blocks if b["type"] == "actions" for e in b["elements"]]
    assert ids == [
        "alert_snooze_1h",
        "alert_snooze_24h",
        "alert_show_usage",
        "alert_set_trigger",
        "alert_console_geo",
        "alert_console_pumping",
    ]
    assert_valid_message({"text": posted.text, "blocks": posted.blocks})

    today_at(fake_twilio, 25.0)  # still far above usual, not yet doubled again
    assert run_watch(store, usage, now=at(10, 20), settings=SETTINGS).alerts == 0
    deliver(relay)
    assert len(fake_slack.posted_to(CHANNEL)) == 1


def test_one_escalation_when_the_excess_doubles_again(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio, fake_slack: FakeSlack, relay: AlertRelay
) -> None:
    usual_account(fake_twilio)
    watch(store)
    seed_checks(store, until=at(10, 10))
    for minute, price in ((10, 10.17), (15, 20.0), (20, 30.0), (25, 60.0), (30, 120.0)):
        today_at(fake_twilio, price)
        run_watch(store, usage, now=at(10, minute), settings=SETTINGS)
        deliver(relay)
    posts = fake_slack.posted_to(CHANNEL)
    assert len(posts) == 2  # the first alert and one escalation, however far it climbs
    assert "Spend spike" in posts[0].text
    assert "Spend rate doubled again" in posts[1].text
    [state] = watch_store.load_states(store, DAY).values()
    assert state.escalated and state.alerted_excess == pytest.approx(9.75, abs=0.1)


def test_the_next_gmt_day_may_alert_again(store: Store, usage: UsageClient, fake_twilio: FakeTwilio) -> None:
    usual_account(fake_twilio)
    watch(store)
    seed_checks(store, until=at(10, 10))
    for minute, price in ((10, 10.17), (15, 20.0)):
        today_at(fake_twilio, price)
        run_watch(store, usage, now=at(10, minute), settings=SETTINGS)
    assert count(store, alerts) == 1
    assert watch_store.load_states(store, DAY + timedelta(days=1)) == {}


def _pass(url: str, twilio_url: str, now: datetime, barrier: threading.Barrier, reports: list[object]) -> None:
    store = Store.connect(url)
    client = UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=twilio_url, max_retries=0)
    barrier.wait()
    reports.append(run_watch(store, client, now=now, settings=SETTINGS))
    store.dispose()


def test_two_passes_at_once_store_each_alert_once(
    store: Store, database_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack, relay: AlertRelay
) -> None:
    usual_account(fake_twilio)
    for n in range(5):
        watch(store, f"C{n}")
    seed_checks(store, until=at(10, 10))
    today_at(fake_twilio, 10.17)
    run_watch(store, UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url), now=at(10, 10), settings=SETTINGS)
    today_at(fake_twilio, 20.0)
    for round_, (now, expected) in enumerate(((at(10, 15), "first"), (at(10, 20), "escalation"))):
        if round_:
            today_at(fake_twilio, 40.0)
        barrier = threading.Barrier(4)
        reports: list[object] = []
        threads = [
            threading.Thread(target=_pass, args=(database_url, fake_twilio.url, now, barrier, reports))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert len(reports) == 4
        assert sum(r.alerts for r in reports) == 5  # type: ignore[attr-defined]  # one per channel, not four
        with store.engine.connect() as conn:
            keys = sorted(
                conn.execute(select(alerts.c.dedupe_key).where(alerts.c.dedupe_key.like(f"%:{expected}"))).scalars()
            )
        assert keys == [f"spike:C{n}:sms:2026-11-25:{expected}" for n in range(5)]
    assert count(store, outbox) == 10
    deliver(relay)
    # Both alerts of a channel waited for the relay, so they went out grouped, each named once.
    assert [len(fake_slack.posted_to(f"C{n}")) for n in range(5)] == [1] * 5
    assert all(fake_slack.posted_to(f"C{n}")[0].text.startswith("2 Twilio usage alerts") for n in range(5))
    for n in range(5):
        assert_valid_message(
            {"text": fake_slack.posted_to(f"C{n}")[0].text, "blocks": fake_slack.posted_to(f"C{n}")[0].blocks}
        )


def test_a_twilio_error_reaches_no_one_and_the_next_pass_retries(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    usual_account(fake_twilio)
    watch(store)
    fake_twilio.fail_next(1, status=503)
    report = run_watch(store, usage, now=at(10), settings=SETTINGS)
    assert report.error == "Twilio: 503" and report.alerts == 0
    assert "watch: Twilio's Usage Records could not be fetched" in caplog.text  # logged ...
    assert AUTH_TOKEN not in caplog.text  # ... without the secret
    assert count(store, usage_snapshots) == 0
    today_at(fake_twilio, 10.0)
    assert run_watch(store, usage, now=at(10, 5), settings=SETTINGS).error == ""
    assert count(store, usage_snapshots) == 1


def test_the_scheduled_pass_runs_the_watch_and_digests_go_on_when_twilio_fails(
    store: Store, usage: UsageClient, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    usual_account(fake_twilio)
    watch(store)
    today_at(fake_twilio, 10.0)
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url)
    report = run_due(store, usage, poster, now=at(10), tz=ZoneInfo("UTC"))
    assert report.watch is not None and report.watch.categories == 2  # sms and totalprice
    assert report.watch.alerts == 0  # first check of a day that follows the usual: no alert
    assert "watch: 1 watches, 2 categories with usage, 0 spike alerts" in report.summary()
    fake_twilio.fail_next(5, status=500)
    failed = run_due(store, usage, poster, now=at(10, 5), tz=ZoneInfo("UTC"))
    assert failed.watch is not None and failed.watch.error and failed.errors


def test_snapshots_and_spike_states_older_than_35_days_are_pruned(store: Store) -> None:
    for days_ago in (40, 36, 35, 1):
        taken = MIDNIGHT - timedelta(days=days_ago) + timedelta(hours=1)
        for n in range(3):
            watch_store.save_snapshot(store, Snapshot(taken + timedelta(minutes=5 * n), {"sms": Totals(1, 0.01)}))
        with store.transaction() as conn:
            watch_store.save_first_above(conn, taken.date(), {("C1", "sms"): taken})
    now = at(12).timestamp()
    pruned = retention.prune(store, retention.cutoffs(90, now))  # type: ignore[arg-type]
    assert (pruned.usage_snapshots, pruned.spike_states) == (6, 2)
    with store.engine.connect() as conn:
        days = sorted(set(conn.execute(select(usage_snapshots.c.day)).scalars()))
        state_days = sorted(conn.execute(select(spike_states.c.day)).scalars())
    assert days == state_days == [(DAY - timedelta(days=35)).isoformat(), (DAY - timedelta(days=1)).isoformat()]
    assert "6 usage snapshots, 2 spike states" in pruned.summary()


def test_a_named_category_keeps_its_own_sensitivity_and_is_checked_once() -> None:
    rows = [
        watch_store.WatchRow("C1", "", "normal", "U1", 1.0),
        watch_store.WatchRow("C1", "sms", "high", "U1", 1.0),
        watch_store.WatchRow("C2", "calls", "low", "U1", 1.0),
    ]
    latest = Snapshot(at(10), {"sms": Totals(10, 1.0), "mms": Totals(1, 0.5), "totalprice": Totals(0, 1.5)})
    found = [(w.channel, w.categories, str(w.sensitivity)) for w in watches_of(rows, latest)]
    assert found == [("C1", ("sms",), "high"), ("C1", ("mms",), "normal"), ("C2", ("calls",), "low")]


def test_snapshot_of_keeps_categories_with_usage_only() -> None:
    records = parse_records(
        [
            make_record("sms", count="12", price="0.09"),
            make_record("calls", count="0", price="0"),
            make_record("x", count=None, price="-0.5"),
        ]
    )
    snapshot = snapshot_of(records, datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert snapshot.totals == {"sms": Totals(12.0, 0.09), "x": Totals(0.0, 0.5)}


def test_python_m_bot_scheduled_and_its_old_name_digests(
    sqlite_url: str, fake_twilio: FakeTwilio, fake_slack: FakeSlack
) -> None:
    env = {
        "DATABASE_URL": sqlite_url,
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "SLACK_API_URL": fake_slack.api_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_URL": fake_twilio.url,
        "WATCH_MIN_EXCESS": "10",
    }
    for name in ("scheduled", "digests"):
        result = run_cli(name, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage-bot: digests due 0"), result.stdout
    help_text = run_cli("--help", env=env).stdout
    assert "scheduled (digests)" in help_text or "{usage,migrate,worker,scheduled,digests}" in help_text
