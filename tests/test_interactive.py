"""Buttons on alerts and on the trigger list, clicked through POST /slack/events as Slack sends them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask

from app import create_app
from bot import audit
from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.slack import SlackPoster
from bot.store import Store
from bot.usage.client import UsageClient
from tests.clocks import ManualClock
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, make_settings
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import interaction, sign, slash_command

CHANNEL = "C0ALERTS"


@dataclass
class Bot:
    url: str
    app: Flask
    store: Store
    relay: AlertRelay
    clock: ManualClock


@pytest.fixture
def bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[Bot]:
    clock = ManualClock()  # one clock for the app and the relay, as in production
    settings = make_settings(fake_slack, fake_twilio, sqlite_url, usage_admins=frozenset({"UADMIN"}))
    app = create_app(settings, clock=clock)
    store: Store = app.extensions["usage_bot"]["store"]
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url, clock=clock)
    relay = AlertRelay(store, poster, policy=DeliveryPolicy(channel_interval=0.0), clock=clock)
    with serving(app) as url:
        yield Bot(url, app, store, relay, clock)
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)


def create_trigger(fake_twilio: FakeTwilio, category: str = "sms", name: str = "") -> str:
    client = UsageClient(ACCOUNT_SID, AUTH_TOKEN, base_url=fake_twilio.url)
    callback = f"https://usage-bot.example.com/twilio/usage-triggers?channel={CHANNEL}"
    return client.create_trigger(category, "1000", callback_url=callback, friendly_name=name, recurring="monthly").sid


def fire(bot: Bot, sid: str, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        params = {
            "UsageTriggerSid": sid,
            "UsageCategory": "sms",
            "TriggerBy": "count",
            "TriggerValue": "1000",
            "CurrentValue": str(1000 + i),
            "Recurring": "monthly",
            "IdempotencyToken": f"{sid}-{i}",
        }
        alert = parse_callback(params, channel=CHANNEL)
        assert alert is not None and AlertWriter(bot.store, fallback_channel="").store_alert(alert)


def deliver(bot: Bot) -> None:
    for _ in range(5):
        bot.relay.run_once()


def click(bot: Bot, slack: FakeSlack, message: dict[str, Any], action_id: str, *, user: str = "UADMIN") -> str:
    """Click a button of `message` as `user`; the key under which Slack's response_url collects answers."""
    [button] = [
        element
        for block in message["blocks"]
        for element in [*block.get("elements", []), *([block["accessory"]] if "accessory" in block else [])]
        if element.get("action_id") == action_id
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
        "actions": [{"type": "button", "action_id": action_id, "value": button["value"], "block_id": "b"}],
    }
    body = interaction(payload)
    response = requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=10)
    assert response.status_code == 200
    return key


def slash(bot: Bot, slack: FakeSlack, text: str, *, user: str = "UADMIN") -> dict[str, Any]:
    key = f"cmd-{time.monotonic_ns()}"
    body = slash_command(text, slack.response_url(key), user_id=user, channel_id=CHANNEL)
    ack = requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=10).json()
    if ack.get("blocks"):
        return ack
    return slack.wait_for_response(key)[0]


def posted_message(slack: FakeSlack, index: int = -1) -> dict[str, Any]:
    post = slack.posted[index]
    return {"text": post.text, "blocks": post.blocks, "ts": post.ts}


def texts(message: dict[str, Any]) -> str:
    return str(message.get("blocks")) + message.get("text", "")


def test_an_alert_carries_its_buttons(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fire(bot, create_trigger(fake_twilio), 1)
    deliver(bot)
    [actions] = [b for b in posted_message(fake_slack)["blocks"] if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["alert_snooze_1h", "alert_snooze_24h", "alert_show_usage", "alert_delete_trigger"]
    assert actions["elements"][-1]["confirm"]["title"]["text"] == "Delete this trigger?"


def test_snooze_holds_repeats_back_and_summarises_them_when_it_ends(
    bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    sid = create_trigger(fake_twilio, name="Texts")
    fire(bot, sid, 1)
    deliver(bot)
    key = click(bot, fake_slack, posted_message(fake_slack), "alert_snooze_1h", user="U0PAT")
    [update] = fake_slack.wait_for_response(key)
    assert update["replace_original"] is True
    assert "Snoozed for 1 h by <@U0PAT>" in texts(update)
    assert "alert_unsnooze" in str(update["blocks"]) and "alert_snooze_1h" not in str(update["blocks"])

    fire(bot, sid, 4, start=1)
    deliver(bot)
    assert len(fake_slack.posted) == 1  # held back, still stored

    bot.clock.now += 3601
    deliver(bot)
    assert len(fake_slack.posted) == 2
    summary = posted_message(fake_slack)
    assert "3 more times while snoozed" in texts(summary)
    assert "1,004" in texts(summary)  # the latest value
    assert [e.action for e in audit.latest(bot.store)] == ["snooze"]


def test_unsnooze_releases_what_was_held(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    sid = create_trigger(fake_twilio)
    fire(bot, sid, 1)
    deliver(bot)
    key = click(bot, fake_slack, posted_message(fake_slack), "alert_snooze_24h")
    [snoozed] = fake_slack.wait_for_response(key)
    fire(bot, sid, 2, start=1)
    deliver(bot)
    assert len(fake_slack.posted) == 1
    key = click(bot, fake_slack, {"text": snoozed["text"], "blocks": snoozed["blocks"]}, "alert_unsnooze")
    [unsnoozed] = fake_slack.wait_for_response(key)
    assert "Unsnoozed by <@UADMIN>" in texts(unsnoozed)
    assert "Snoozed for 24 h" in texts(unsnoozed)  # the earlier note stays: who did what, when
    deliver(bot)
    assert len(fake_slack.posted) == 2
    assert "1 more time while snoozed" in texts(posted_message(fake_slack))
    assert [e.action for e in audit.latest(bot.store)] == ["unsnooze", "snooze"]


def test_show_usage_answers_privately(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(6)
    fire(bot, create_trigger(fake_twilio), 1)
    deliver(bot)
    key = click(bot, fake_slack, posted_message(fake_slack), "alert_show_usage")
    [reply] = fake_slack.wait_for_response(key)
    assert reply["response_type"] == "ephemeral"
    assert reply["replace_original"] is False
    assert any("/Usage/Records/ThisMonth.json" in r.path for r in fake_twilio.requests)


def test_delete_from_an_alert_is_for_admins(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    sid = create_trigger(fake_twilio)
    fire(bot, sid, 1)
    deliver(bot)
    key = click(bot, fake_slack, posted_message(fake_slack), "alert_delete_trigger", user="U0NOBODY")
    [refusal] = fake_slack.wait_for_response(key)
    assert refusal["response_type"] == "ephemeral" and "admins" in refusal["text"]
    assert sid in fake_twilio.triggers

    key = click(bot, fake_slack, posted_message(fake_slack), "alert_delete_trigger")
    [update] = fake_slack.wait_for_response(key)
    assert "Trigger deleted by <@UADMIN>" in texts(update)
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert sid not in fake_twilio.triggers
    entry, refused = audit.latest(bot.store)  # newest first: the refusal is audited too
    assert (entry.action, entry.target, entry.user_id) == ("trigger.delete", sid, "UADMIN")
    assert (refused.action, refused.target, refused.user_id, refused.channel_id) == (
        "refused.trigger.delete",
        sid,
        "U0NOBODY",
        CHANNEL,
    )


def test_trigger_list_pages_and_deletes(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    sids = [create_trigger(fake_twilio, name=f"T{i:02d}") for i in range(25)]
    first = slash(bot, fake_slack, "triggers")
    assert "page 1 of 2" in texts(first)
    key = click(bot, fake_slack, first, "triggers_page_next", user="U0NOBODY")  # paging is for everyone
    [second] = fake_slack.wait_for_response(key)
    assert second["replace_original"] is True
    assert "page 2 of 2" in texts(second)
    assert "triggers_page_prev" in str(second["blocks"])

    victim = next(b for b in second["blocks"] if "accessory" in b)
    victim_sid = victim["accessory"]["value"].split("|")[0]
    key = click(bot, fake_slack, {"text": "", "blocks": [victim]}, "triggers_delete")
    [after] = fake_slack.wait_for_response(key)
    assert f"Deleted `{victim_sid}`" in texts(after)
    assert "Usage triggers (24)" in texts(after)
    assert victim_sid not in fake_twilio.triggers
    assert len(set(sids) & set(fake_twilio.triggers)) == 24


def test_audit_lists_who_did_what(bot: Bot, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(3)
    created = slash(bot, fake_slack, "trigger sms +1000")
    assert "Usage trigger created" in texts(created)
    sid = next(iter(fake_twilio.triggers))
    slash(bot, fake_slack, f"untrigger {sid}")
    report = slash(bot, fake_slack, "audit 5", user="U0NOBODY")
    text = texts(report)
    assert text.index("trigger.delete") < text.index("trigger.create")  # newest first
    assert sid in text and "<@UADMIN>" in text
