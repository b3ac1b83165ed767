"""The App Home tab: signed `app_home_opened` events and Home button clicks through
`POST /slack/events`; the views FakeSlack received, validated as Slack would; Twilio's requests
counted on FakeTwilio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests

from app import create_app
from bot.alerts.receive import AlertWriter, parse_callback
from bot.home.snapshot import HomeCache
from bot.render.formats import sparkline
from bot.reports import subscriptions
from bot.store import Store
from bot.usage.client import UsageClient
from bot.watch import manage
from tests.clocks import ManualClock
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record
from tests.servers import serving
from tests.slack_requests import sign, slash_command
from tests.slack_surfaces import check_view, home_click, home_opened, post_interaction, post_json, view_text

MONTH = "/Usage/Records/ThisMonth.json"
DAILY = "/Usage/Records/Daily.json"
TRIGGERS = "/Usage/Triggers.json"


@dataclass
class Bot:
    url: str
    store: Store
    slack: FakeSlack
    twilio: FakeTwilio
    clock: ManualClock


@pytest.fixture
def bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[Bot]:
    clock = ManualClock()
    app = create_app(make_settings(fake_slack, fake_twilio, database_url), clock=clock)
    parts = app.extensions["usage_bot"]
    with serving(app) as url:
        yield Bot(url, parts["store"], fake_slack, fake_twilio, clock)
    parts["executor"].shutdown(wait=True)
    parts["store"].dispose()


def spend(twilio: FakeTwilio) -> None:
    """This month $123.45; the last 14 days $1..$14, today $14."""
    today = datetime.now(UTC).date()
    twilio.set_records("ThisMonth", [make_record("totalprice", price="123.45", start_date=today.replace(day=1))])
    days = [
        make_record(
            "totalprice",
            price=str(14 - back),
            start_date=today - timedelta(days=back),
            end_date=today - timedelta(days=back),
        )
        for back in range(14)
    ]
    twilio.set_records("Daily", days)


def published(bot: Bot, count: int = 1) -> list[dict[str, Any]]:
    bot.slack.wait_for("views.publish", count, timeout=10)
    views = bot.slack.views("views.publish")
    for view in views:
        check_view(view)
    return views


def ask(bot: Bot, text: str, channel: str = "C0SMS") -> None:
    body = slash_command(text, bot.slack.response_url(text.replace(" ", "-")), channel_id=channel)
    assert requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=5).status_code == 200
    bot.slack.wait_for_response(text.replace(" ", "-"), timeout=10)


def test_url_verification_is_answered_with_the_challenge(bot: Bot) -> None:
    body = {
        "token": "deprecated",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    response = post_json(bot.url, body)
    assert response.status_code == 200
    assert response.json() == {"challenge": body["challenge"]}
    unsigned = requests.post(f"{bot.url}/slack/events", json=body, timeout=5)
    assert unsigned.status_code == 401


def test_home_shows_spend_triggers_budgets_digests_and_alerts(bot: Bot) -> None:
    spend(bot.twilio)
    ask(bot, "trigger sms 1000 every month name Texts")
    ask(bot, "budget $500 monthly")
    subscriptions.subscribe(
        bot.store, channel_id="C0DIG", cadence="daily", at_minutes=570, user_id="U0DIG", now=bot.clock()
    )
    manage.watch_on(bot.store, channel_id="C0WAT", categories=("sms",), sensitivity="high", user_id="U0W", now=1.0)
    # One alert with nowhere to go (failed, with its reason) and one waiting.
    writer = AlertWriter(bot.store, fallback_channel="")
    for token, channel in (("a", ""), ("b", "C0SMS")):
        params = {
            "UsageTriggerSid": "UT" + "1" * 32,
            "UsageCategory": "sms",
            "TriggerBy": "count",
            "TriggerValue": "1",
            "CurrentValue": "2",
            "IdempotencyToken": token,
        }
        alert = parse_callback(params, channel=channel)
        assert alert is not None and writer.store_alert(alert)

    response = post_json(bot.url, home_opened("U0PAT"))
    assert response.status_code == 200
    [view] = published(bot)
    [call] = bot.slack.calls_to("views.publish")
    assert call.body["user_id"] == "U0PAT"
    text = view_text(view)
    for expected in (
        "$14.00",
        "$123.45",
        "On pace for",
        "last 14 days",
        "Texts",
        "`sms`",
        "<#C0SMS>",
        "<@U0USER>",  # who set the alert
        "$500.00 a month",
        "<#C0DIG>",
        "every day at 09:30",
        "<#C0WAT> · `sms` · high",  # a spend-spike watch
        "1* waiting",
        "1* failed",
        "names no channel",
    ):
        assert expected in text, expected
    # The sparkline: the 14 days in order, today ($14) highest.
    assert f"`{sparkline([Decimal(n) for n in range(1, 15)])}` last 14 days" in text
    buttons = [e["action_id"] for b in view["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["home_new_alert", "home_new_budget", "home_new_digest", "home_refresh"]


def test_events_are_acked_before_twilio_is_asked(bot: Bot) -> None:
    spend(bot.twilio)
    bot.twilio.delay = 1.5
    response = post_json(bot.url, home_opened())
    assert response.status_code == 200
    assert bot.slack.calls_to("views.publish") == []  # the ack did not wait for Twilio
    published(bot)


def test_a_retried_event_does_not_publish_twice(bot: Bot) -> None:
    spend(bot.twilio)
    event = home_opened(event_id="Ev0RETRY01")
    assert post_json(bot.url, event).status_code == 200
    published(bot)
    retry = post_json(bot.url, event, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200
    time.sleep(0.5)
    assert len(bot.slack.calls_to("views.publish")) == 1


def test_the_messages_tab_publishes_nothing(bot: Bot) -> None:
    assert post_json(bot.url, home_opened(tab="messages")).status_code == 200
    time.sleep(0.3)
    assert bot.slack.calls_to("views.publish") == []


def test_fifty_people_opening_home_cost_two_usage_requests_and_one_triggers_request(bot: Bot) -> None:
    spend(bot.twilio)
    bot.twilio.delay = 0.2  # Twilio's answers take a while: requests pile up behind the first
    acks: list[int] = []

    def open_home(i: int) -> None:
        acks.append(post_json(bot.url, home_opened(f"U{i:04d}")).status_code)

    threads = [threading.Thread(target=open_home, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
        bot.clock.now += 0.2  # 50 people within 10 seconds
    for t in threads:
        t.join()
    assert acks == [200] * 50
    views = published(bot, 50)
    assert {c.body["user_id"] for c in bot.slack.calls_to("views.publish")} == {f"U{i:04d}" for i in range(50)}
    assert len(bot.twilio.requests_to(MONTH)) + len(bot.twilio.requests_to(DAILY)) == 2
    assert len(bot.twilio.requests_to(TRIGGERS, "GET")) == 1
    assert all("$123.45" in view_text(v) for v in views)

    bot.clock.now += 61  # a minute later Twilio is asked again, once
    post_json(bot.url, home_opened("U9999"))
    published(bot, 51)
    assert len(bot.twilio.requests_to(MONTH)) == 2
    assert len(bot.twilio.requests_to(TRIGGERS, "GET")) == 2


def test_refresh_republishes_from_the_cache_within_the_minute(bot: Bot) -> None:
    spend(bot.twilio)
    post_json(bot.url, home_opened())
    published(bot)
    assert post_interaction(bot.url, home_click("home_refresh")).status_code == 200
    published(bot, 2)
    assert len(bot.twilio.requests_to(MONTH)) == 1


def test_a_twilio_error_is_a_note_not_a_blank_home(bot: Bot) -> None:
    bot.twilio.fail_next(50, status=503)
    post_json(bot.url, home_opened())
    [view] = published(bot)
    text = view_text(view)
    assert ":warning: Spend:" in text and "unavailable" in text
    assert ":warning: Alerts set:" in text
    assert "home_new_alert" in str(view)  # the buttons still work


def test_a_twilio_error_keeps_the_last_figures(bot: Bot) -> None:
    spend(bot.twilio)
    post_json(bot.url, home_opened())
    published(bot)
    bot.clock.now += 61
    bot.twilio.fail_next(50, status=503)
    post_json(bot.url, home_opened())
    view = published(bot, 2)[1]
    text = view_text(view)
    assert "$123.45" in text and "unavailable" in text


def test_a_view_slack_refuses_is_replaced_by_a_note(bot: Bot) -> None:
    spend(bot.twilio)
    bot.slack.next_errors["views.publish"] = ["invalid_arguments"]
    post_json(bot.url, home_opened())
    bot.slack.wait_for("views.publish", 2, timeout=10)
    note = bot.slack.views("views.publish")[1]
    check_view(note)
    assert "invalid_arguments" in view_text(note) and "Refresh" in view_text(note)


def test_home_caches_across_processes_through_the_state_table(store: Store, fake_twilio: FakeTwilio) -> None:
    """Two caches on one database stand for two processes: the second uses the first's snapshot."""
    spend(fake_twilio)
    clock = ManualClock()
    with UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url, max_retries=0) as usage:
        first, second = HomeCache(store, usage, clock), HomeCache(store, usage, clock)
        a = first.get()
        clock.now += 10
        b = second.get()
        assert a is not None and b is not None and b.month == a.month == "123.45"
        assert len(fake_twilio.requests_to(MONTH)) == 1
        clock.now += 60  # the claim and the snapshot are a minute old: one of them fetches again
        second.get()
        first.get()
        assert len(fake_twilio.requests_to(MONTH)) == 2


def test_public_url_is_not_needed_for_home(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> None:
    """Home only reads: without PUBLIC_URL it still shows spend (only creating triggers needs it)."""
    spend(fake_twilio)
    app = create_app(make_settings(fake_slack, fake_twilio, sqlite_url, public_url=""))
    with serving(app) as url:
        post_json(url, home_opened())
        fake_slack.wait_for("views.publish", timeout=10)
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)
    assert "$123.45" in view_text(fake_slack.views("views.publish")[0])
    assert PUBLIC_URL not in view_text(fake_slack.views("views.publish")[0])
