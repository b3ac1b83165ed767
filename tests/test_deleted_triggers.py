"""A trigger the bot deleted keeps its row, marked deleted, and a callback Twilio still sends for
it says so in the alert: "Deleted by @x on <date>; Twilio still sent this"."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import create_app
from bot.alerts import triggers
from bot.alerts.relay import AlertRelay, DeliveryPolicy
from bot.alerts.render import render_alerts
from bot.model import Message, StoredAlert
from bot.render.limits import check_limits
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import triggers as trigger_rows
from tests.conftest import make_settings
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import sign, slash_command


@dataclass
class Served:
    url: str
    store: Store
    relay: AlertRelay
    slack: FakeSlack
    twilio: FakeTwilio


@pytest.fixture
def served(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[Served]:
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    parts = app.extensions["usage_bot"]
    store: Store = parts["store"]
    poster = SlackPoster.from_token(store, VALID_TOKEN, fake_slack.api_url)
    relay = AlertRelay(store, poster, policy=DeliveryPolicy(channel_interval=0.0))
    with serving(app) as url:
        yield Served(url, store, relay, fake_slack, fake_twilio)
    parts["executor"].shutdown(wait=True)
    store.dispose()


def ask(served: Served, text: str, *, user_id: str) -> dict[str, Any]:
    key = uuid.uuid4().hex
    body = slash_command(text, served.slack.response_url(key), user_id=user_id, channel_id="C0OPS")
    assert requests.post(f"{served.url}/slack/events", data=body, headers=sign(body), timeout=10).status_code == 200
    return served.slack.wait_for_response(key, timeout=10)[0]


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_callback_after_untrigger_says_who_deleted_the_trigger_and_when(served: Served) -> None:
    ask(served, "trigger sms +1000 name Texts", user_id="U0PAT")
    [sid] = served.twilio.triggers
    before = time.time()
    assert "Deleted usage trigger" in ask(served, f"untrigger {sid}", user_id="U0SAM")["text"]
    after = time.time()
    with served.store.engine.connect() as conn:
        [row] = conn.execute(select(trigger_rows)).all()
    assert (row.sid, row.created_by, row.deleted_by) == (sid, "U0PAT", "U0SAM")
    assert before - 1 <= row.deleted_at <= after + 1
    assert triggers.owners(served.store) == {}  # no longer one of the bot's triggers

    # Twilio still delivers a firing of the deleted trigger.
    assert sid not in served.twilio.triggers
    assert served.twilio.fire(sid, current_value="1200", via_url=served.url).status_code == 200
    served.relay.run_once()

    [posted] = served.slack.posted_to("C0OPS")
    blocks_text = str(posted.blocks)
    note = f"Deleted by <@U0SAM> on <!date^{int(row.deleted_at)}^"
    assert note in blocks_text and "; Twilio still sent this." in blocks_text
    assert note in posted.text and "Twilio still sent this" in posted.text
    assert "*Set up by*\\n<@U0PAT>" in blocks_text  # not "outside Slack": the row was kept
    assert "outside Slack" not in blocks_text
    assert action_ids(posted.blocks) == ["alert_snooze_1h", "alert_snooze_24h", "alert_show_usage"]  # no Delete
    assert check_limits(Message(text=posted.text, blocks=posted.blocks)) == []


def test_a_callback_after_a_budget_was_removed_says_so_too(served: Served) -> None:
    ask(served, "budget $500 monthly", user_id="U0PAT")
    [sid] = served.twilio.triggers
    assert "Removed the budget" in ask(served, "budget off monthly", user_id="U0SAM")["text"]

    assert served.twilio.fire(sid, via_url=served.url).status_code == 200
    served.relay.run_once()

    [posted] = served.slack.posted_to("C0OPS")
    assert "Deleted by <@U0SAM> on" in str(posted.blocks)


def test_a_trigger_still_set_shows_no_deletion(served: Served) -> None:
    ask(served, "trigger sms +1000", user_id="U0PAT")
    [sid] = served.twilio.triggers
    assert served.twilio.fire(sid, via_url=served.url).status_code == 200
    served.relay.run_once()
    [posted] = served.slack.posted_to("C0OPS")
    assert "Deleted by" not in str(posted.blocks) + posted.text
    assert action_ids(posted.blocks)[-1] == "alert_delete_trigger"


ALERT = StoredAlert(
    outbox_id=1,
    status="pending",
    batch_id=None,
    attempted_at=None,
    trigger_sid="UT" + "a" * 32,
    category="sms",
    trigger_by="count",
    trigger_value="1000",
    current_value="1200",
    recurring="monthly",
    fired_at=1_764_000_000.0,
    requested_channel="C0OPS",
    created_by="U0PAT",
    friendly_name="Texts",
    channel="C0OPS",
)


def test_grouped_alerts_name_the_deletion_and_offer_no_delete_for_a_deleted_trigger() -> None:
    deleted = replace(ALERT, deleted_at=1_764_000_100.0, deleted_by="U0SAM")
    message = render_alerts([deleted, replace(deleted, outbox_id=2, current_value="1300")])
    assert message.text.count("Twilio usage alerts") == 1
    assert str(message.blocks).count("deleted by <@U0SAM>") == 2
    assert action_ids(message.blocks) == ["alert_snooze_1h", "alert_snooze_24h", "alert_show_usage"]
    assert check_limits(message) == []


def test_a_deletion_by_someone_unknown_still_says_it_was_deleted() -> None:
    message = render_alerts([replace(ALERT, deleted_at=1_764_000_100.0, deleted_by="")])
    assert "Deleted by someone on <!date^1764000100^" in str(message.blocks)
    assert check_limits(message) == []
