"""`/usage watch on|off|(show)` and the buttons of a spike alert, through signed Slack requests to
the app (tests/fakes for Slack and Twilio); the grammar; the alert message within Slack's limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from app import create_app
from bot import audit
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.alerts.render import ALERTS_PER_MESSAGE, render_alerts
from bot.commands.grammar import parse_command
from bot.commands.types import ParseError, ShowWatch, WatchOff, WatchOn
from bot.model import StoredAlert
from bot.slack import SlackPoster
from bot.store import Store
from bot.usage.categories import known_categories
from bot.usage.client import UsageClient
from bot.watch import manage
from bot.watch import store as watch_store
from bot.watch.model import AlertKind, SpikeAlert, Totals, Verdict, WatchSettings
from bot.watch.render import proposed_trigger, render_spike, spike_sid
from bot.watch.watcher import run_watch
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, make_settings
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import interaction, sign, slash_command
from tests.watch_helpers import DAY, assert_valid_message, at, seed_checks, today_at, usual_account

CHANNEL = "C0WATCH"
ADMIN = "UADMIN"


# --- the grammar --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("watch", ShowWatch()),
        ("watches", ShowWatch()),
        ("watch on", WatchOn()),
        ("watch on sms", WatchOn(("sms",))),
        ("watch on texts calls sms", WatchOn(("sms", "calls"))),  # aliases resolve, repeats go
        ("watch on sms sensitivity high", WatchOn(("sms",), "high")),
        ("watch on sensitivity LOW", WatchOn((), "low")),
        ("watch start sms_inbound", WatchOn(("sms-inbound",))),
        ("watch off", WatchOff()),
        ("watch off sms calls", WatchOff(("sms", "calls"))),
        ("WATCH stop spend", WatchOff(("totalprice",))),
    ],
)
def test_watch_forms(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("watch smss", "I don't understand `smss` after `watch`"),
        ("watch sms", "Say `on` first, e.g. `/usage watch on sms`"),
        ("watch on smss", "Unknown category `smss`"),
        ("watch on sms sensitivity", "Say `low`, `normal` or `high` after `sensitivity`"),
        ("watch on sms sensitivity extreme", "Sensitivity is `low`, `normal` or `high`, not `extreme`"),
        ("watch on sensitivity low sensitivity high", "Say the sensitivity only once"),
        ("watch on high", "Say `sensitivity high`"),
        ("watch off sensitivity low", "`watch off` takes categories only"),
        ("watch on <@U123|bob>", "mentions, channels and links aren't part of `/usage`"),
        ("watch on " + " ".join(["sms", "calls", "mms"] * 3 + [f"sms-{x}" for x in ("inbound", "outbound")]), ""),
    ],
)
def test_watch_errors(text: str, says: str) -> None:
    result = parse_command(text)
    if not says:  # repeats of a few categories are fine
        assert isinstance(result, WatchOn)
        return
    assert isinstance(result, ParseError), result
    assert says in result.message
    assert result.usage.startswith("/usage watch")


WATCH_WORDS = ["watch", "on", "off", "start", "stop", "sensitivity", "low", "normal", "high", "sms", "spend", "x", "`"]


@settings(max_examples=300)
@given(st.lists(st.one_of(st.sampled_from(WATCH_WORDS), st.text(max_size=6)), max_size=8).map(" ".join))
def test_the_watch_grammar_never_raises(text: str) -> None:
    result = parse_command("watch " + text)
    assert isinstance(result, (WatchOn, WatchOff, ShowWatch, ParseError))
    if isinstance(result, ParseError):
        assert result.message.strip() and "\n" not in result.message and len(result.message) < 300


# --- commands and clicks through Slack -------------------------------------------------------


@dataclass
class Bot:
    url: str
    store: Store
    relay: AlertRelay
    usage: UsageClient


@pytest.fixture
def bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[Bot]:
    # The bot's clock stands on the test day (Slack's signatures keep the real time).
    app = create_app(
        make_settings(fake_slack, fake_twilio, database_url, usage_admins=frozenset({ADMIN})),
        clock=lambda: at(10, 30).timestamp(),
    )
    store: Store = app.extensions["usage_bot"]["store"]
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url)
    relay = AlertRelay(store, poster, policy=DeliveryPolicy(channel_interval=0.0), clock=lambda: at(10, 30).timestamp())
    with serving(app) as url, UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url) as usage:
        yield Bot(url, store, relay, usage)
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)
    store.dispose()


def slash(bot: Bot, slack: FakeSlack, text: str, *, user: str = ADMIN) -> dict[str, Any]:
    key = f"cmd-{time.monotonic_ns()}"
    body = slash_command(text, slack.response_url(key), user_id=user, channel_id=CHANNEL)
    ack = requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=10).json()
    if ack.get("blocks"):
        return ack
    return slack.wait_for_response(key, timeout=10)[0]


def click(bot: Bot, slack: FakeSlack, message: dict[str, Any], action_id: str, *, user: str = ADMIN) -> str:
    [button] = [
        e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id
    ]
    key = f"{action_id}-{time.monotonic_ns()}"
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "api_app_id": "A0001",
        "user": {"id": user},
        "channel": {"id": CHANNEL},
        "message": message,
        "response_url": slack.response_url(key),
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": action_id, "value": button.get("value", ""), "block_id": "b"}],
    }
    body = interaction(payload)
    assert requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=10).status_code == 200
    return key


def test_watch_on_off_and_show_through_slack(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    on = slash(bot, fake_slack, "watch on")
    assert "Now watching every category with spend here (normal sensitivity)" in on["text"]
    again = slash(bot, fake_slack, "watch on")
    assert "Already watching every category with spend here (normal sensitivity); nothing changed" in again["text"]
    sms = slash(bot, fake_slack, "watch on sms texts sensitivity high")
    assert "Now watching `sms` here (high sensitivity)" in sms["text"]
    assert "Sensitivity of `sms` now low" in slash(bot, fake_slack, "watch on sms sensitivity low")["text"]
    assert [(w.category, w.sensitivity) for w in watch_store.list_watches(bot.store, CHANNEL)] == [
        ("", "normal"),
        ("sms", "low"),
    ]

    empty = slash(bot, fake_slack, "watch")
    assert "No check has run today yet" in str(empty["blocks"])
    usual_account(fake_twilio)
    today_at(fake_twilio, 10.0)
    run_watch(bot.store, bot.usage, now=at(10), settings=WatchSettings())
    shown = slash(bot, fake_slack, "watch")
    text = str(shown["blocks"])
    assert "`sms` (low) — today $10.00 · usual now $1.00/h, $10.50 by now" in text
    assert "Last check" in text and "every category with spend` (normal)" not in text
    assert_valid_message(shown)

    assert "Stopped watching `sms` here" in slash(bot, fake_slack, "watch off sms")["text"]
    calls = slash(bot, fake_slack, "watch off calls")
    assert "`calls` is not watched on its own here" in calls["text"]
    assert "still watches every category with spend" in calls["text"]
    assert "Stopped watching every category with spend here" in slash(bot, fake_slack, "watch off")["text"]
    assert "Nothing is watched here" in slash(bot, fake_slack, "watch")["text"]
    # Changes are audited; "already" answers change nothing, not even the audit trail.
    actions = [(e.action, e.target) for e in reversed(audit.latest(bot.store, 20))]
    assert actions == [
        ("watch.on", "every-category"),
        ("watch.on", "sms"),
        ("watch.on", "sms"),
        ("watch.off", "sms"),
        ("watch.off", "every-category"),
    ]


def test_only_admins_start_or_stop_watches_and_refusals_are_audited(bot: Bot, fake_slack: FakeSlack) -> None:
    slash(bot, fake_slack, "watch on sms")
    refused_on = slash(bot, fake_slack, "watch on", user="U0PAT")
    refused_off = slash(bot, fake_slack, "watch off sms", user="U0PAT")
    for refusal in (refused_on, refused_off):
        assert refusal["response_type"] == "ephemeral"
        assert "Only usage admins (USAGE_ADMINS) can start or stop spend-spike watches" in refusal["text"]
    assert [w.category for w in watch_store.list_watches(bot.store)] == ["sms"]
    entries = [(e.action, e.user_id, e.target) for e in audit.latest(bot.store, 3)]
    assert entries == [
        ("refused.watch.off", "U0PAT", "sms"),
        ("refused.watch.on", "U0PAT", "every category"),
        ("watch.on", ADMIN, "sms"),
    ]
    assert "`sms`" in str(slash(bot, fake_slack, "watch", user="U0PAT")["blocks"])  # reading stays open


def spike_alert(bot: Bot, fake_twilio: FakeTwilio, fake_slack: FakeSlack) -> dict[str, Any]:
    """Watch sms here, spike it, deliver: the posted alert message."""
    usual_account(fake_twilio)
    watch_store_on(bot.store)
    seed_checks(bot.store, until=at(10, 10))
    for minute, price in ((10, 10.17), (15, 20.0)):
        today_at(fake_twilio, price)
        run_watch(bot.store, bot.usage, now=at(10, minute), settings=WatchSettings())
    for _ in range(3):
        bot.relay.run_once()
    [posted] = fake_slack.posted_to(CHANNEL)
    return {"text": posted.text, "blocks": posted.blocks, "ts": posted.ts}


def watch_store_on(store: Store) -> None:
    manage.watch_on(store, channel_id=CHANNEL, categories=("sms",), sensitivity=None, user_id=ADMIN, now=1.0)


def test_set_a_trigger_from_a_spike_alert(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    message = spike_alert(bot, fake_twilio, fake_slack)
    [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if "confirm" in e]
    assert button["action_id"] == "alert_set_trigger"
    assert button["confirm"]["title"]["text"] == "Set a daily trigger?" and "$" in button["text"]["text"]

    refused = fake_slack.wait_for_response(click(bot, fake_slack, message, "alert_set_trigger", user="U0PAT"))[0]
    assert "USAGE_ADMINS" in refused["text"] and refused["replace_original"] is False
    assert fake_twilio.triggers == {}

    replies = fake_slack.wait_for_response(click(bot, fake_slack, message, "alert_set_trigger"), count=2)
    [trigger] = fake_twilio.triggers.values()
    form = next(iter(fake_twilio.trigger_forms.values()))
    amount = button["value"].rsplit("|", 1)[1]
    assert (trigger["usage_category"], trigger["trigger_by"], trigger["recurring"]) == ("sms", "price", "daily")
    assert form["TriggerValue"] == amount and float(amount) >= 20.0
    assert f"channel={CHANNEL}" in trigger["callback_url"]
    updated = next(r for r in replies if r.get("replace_original"))
    assert f"Daily trigger at ${amount} set by <@{ADMIN}>" in str(updated["blocks"])
    assert "alert_set_trigger" not in str(updated["blocks"])  # offered once
    assert "alert_snooze_1h" in str(updated["blocks"])
    assert any("Usage trigger created" in str(r) for r in replies)
    assert [e.action for e in audit.latest(bot.store, 2)] == ["trigger.create", "refused.trigger.create"]


def test_snooze_a_spike_alert_holds_its_escalation(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    message = spike_alert(bot, fake_twilio, fake_slack)
    [update] = fake_slack.wait_for_response(click(bot, fake_slack, message, "alert_snooze_1h", user="U0PAT"))
    assert "Snoozed for 1 h by <@U0PAT>" in str(update["blocks"])
    ids = [e["action_id"] for b in update["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ids[:3] == ["alert_unsnooze", "alert_show_usage", "alert_set_trigger"]
    assert [(e.action, e.target) for e in audit.latest(bot.store, 1)] == [("snooze", spike_sid("sms"))]
    today_at(fake_twilio, 60.0)
    assert run_watch(bot.store, bot.usage, now=at(10, 20), settings=WatchSettings()).alerts == 1
    bot.relay.run_once()
    assert len(fake_slack.posted_to(CHANNEL)) == 1  # the escalation is held while snoozed

    key = click(bot, fake_slack, message, "alert_show_usage")
    [usage] = fake_slack.wait_for_response(key)
    assert usage["response_type"] == "ephemeral"
    assert fake_twilio.requests_to("/Usage/Records/Today.json")[-1].query.get("Category") == "sms"
    key = click(bot, fake_slack, message, "alert_console_geo")  # a link: acknowledged, nothing else
    time.sleep(0.5)
    assert not fake_slack.responses.get(key)


# --- the message --------------------------------------------------------------------------------


def verdict(category: str = "sms", *, price: float = 20.0) -> Verdict:
    return Verdict(
        category=category,
        checked_at=at(10, 15),
        spiking=True,
        today=Totals(2000.0, price),
        usual_by_now=Totals(1025.0, 10.25),
        rate_per_hour=Totals(5900.0, 59.0),
        usual_rate_per_hour=Totals(100.0, 1.0),
        ratio=59.0,
        projected_price=838.4,
        excess_price=price - 10.25,
        started_at=at(10, 15),
        source="daily",
        above_line=True,
    )


def stored(details: dict[str, Any], n: int, category: str) -> StoredAlert:
    return StoredAlert(
        outbox_id=n,
        status="pending",
        batch_id=None,
        attempted_at=None,
        trigger_sid=spike_sid(category),
        category=category,
        trigger_by="price",
        trigger_value="10.25",
        current_value="20.00",
        recurring="daily",
        fired_at=at(10, 15).timestamp(),
        requested_channel=CHANNEL,
        created_by="",
        friendly_name="",
        kind="spike",
        details=json.dumps(details),
    )


@pytest.mark.parametrize("kind", list(AlertKind))
def test_a_spike_alert_is_block_kit_valid_and_within_limits(kind: AlertKind) -> None:
    long = "x" * 120
    alert = SpikeAlert(CHANNEL, DAY, kind, verdict(f"sms-{long}"))
    days = [(DAY - timedelta(days=n), float(n)) for n in range(14, 0, -1)]
    details = render_spike(alert, description="<Hostile> & *bold* " * 20, days=days)
    message = render_alerts([stored(details, 1, f"sms-{long}")])
    assert_valid_message(message)
    assert ("doubled again" in message.text) == (kind is AlertKind.ESCALATION)
    assert "&lt;Hostile&gt;" in str(message.blocks[1]) and "<Hostile>" not in str(message.blocks[1:])
    assert "<Hostile>" not in message.text  # the notification text is mrkdwn too


def test_a_storm_of_spike_alerts_groups_within_limits() -> None:
    batch = []
    for n in range(ALERTS_PER_MESSAGE):
        category = f"fake-category-{n:04d}-" + "y" * 90
        details = render_spike(SpikeAlert(CHANNEL, DAY, AlertKind.FIRST, verdict(category)), description="Z" * 200)
        batch.append(stored(details, n, category))
    message = render_alerts(batch)
    assert message.text.startswith(f"{ALERTS_PER_MESSAGE} Twilio usage alerts")
    assert_valid_message(message)
    assert all(f"fake-category-{n:04d}" in str(message.blocks) for n in range(ALERTS_PER_MESSAGE))
    assert "alert_delete_trigger" not in str(message.blocks)


@pytest.mark.parametrize(
    ("pace", "today", "expected"),
    [
        (838.4, 20.0, "840"),
        (143.2, 20.0, "150"),
        (9.87, 5.0, "9.9"),
        (0.2, 0.1, "1"),
        (10.0, 12.0, "12"),
        (1234, 1, "1300"),
    ],
)
def test_proposed_trigger_rounds_the_pace_up(pace: float, today: float, expected: str) -> None:
    assert proposed_trigger(pace, today) == expected


def test_at_most_20_categories_in_one_command() -> None:
    names = list(known_categories())[:21]
    assert isinstance(parse_command("watch on " + " ".join(names[:20])), WatchOn)
    too_many = parse_command("watch off " + " ".join(names))
    assert isinstance(too_many, ParseError) and too_many.message == "Name at most 20 categories in one command."
