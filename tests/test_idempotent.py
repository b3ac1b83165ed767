"""Doing a thing twice does it once: a Slack request handled already (a retry, the same signed body
sent twice), and a trigger, budget or digest identical to one already set. Signed requests go
through POST /slack/events over real HTTP; Twilio is FakeTwilio.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from app import create_app
from bot import audit
from bot.commands import handled
from bot.commands.answer import Invoker, UsageBot
from bot.commands.types import SetBudget, SubscribeDigest
from bot.reports import budgets, subscriptions
from bot.store import Store
from bot.store.schema import handled_requests
from bot.usage.client import UsageClient
from tests.conftest import PUBLIC_URL, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import interaction, sign, slash_command

TRIGGERS = "/Usage/Triggers.json"
OPS = Invoker(user_id="U0PAT", channel_id="C0OPS")


@dataclass
class Served:
    url: str
    app: Flask
    store: Store
    slack: FakeSlack
    twilio: FakeTwilio

    def settle(self) -> None:
        """Wait until every answer under way has been sent."""
        self.app.extensions["usage_bot"]["executor"].shutdown(wait=True)


@pytest.fixture
def served(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[Served]:
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    parts = app.extensions["usage_bot"]
    with serving(app) as url:
        yield Served(url, app, parts["store"], fake_slack, fake_twilio)
    parts["executor"].shutdown(wait=True)
    parts["store"].dispose()


def post(served: Served, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{served.url}/slack/events", data=body, headers=headers, timeout=10)


def ask(served: Served, text: str, *, user_id: str = "U0PAT", channel_id: str = "C0OPS") -> dict[str, Any]:
    key = uuid.uuid4().hex
    body = slash_command(text, served.slack.response_url(key), user_id=user_id, channel_id=channel_id)
    assert post(served, body, sign(body)).status_code == 200
    [answer] = served.slack.wait_for_response(key, timeout=10)
    return answer


def created(twilio: FakeTwilio) -> list[dict[str, str]]:
    return [r.form for r in twilio.requests_to(TRIGGERS, "POST")]


def text_of(answer: dict[str, Any]) -> str:
    return answer["text"] + str(answer.get("blocks", ""))


# --- a request handled already ----------------------------------------------------------------


def test_the_same_signed_trigger_command_posted_twice_creates_one_twilio_trigger(served: Served) -> None:
    body = slash_command("trigger sms +1000", served.slack.response_url("twice"), channel_id="C0OPS")
    headers = sign(body)

    first = post(served, body, headers)
    again = post(served, body, headers)  # a double submit: the very same signed request
    served.settle()

    assert first.status_code == again.status_code == 200
    assert "Asking Twilio" in first.text
    assert again.content == b""  # acknowledged, nothing more
    assert len(created(served.twilio)) == 1
    assert len(served.twilio.triggers) == 1
    [answer] = served.slack.responses["twice"]
    assert "Usage trigger created" in text_of(answer)


def test_a_slack_retry_of_a_handled_command_is_acknowledged_without_doing_it_again(served: Served) -> None:
    body = slash_command("trigger sms +1000", served.slack.response_url("retried"), channel_id="C0OPS")
    assert post(served, body, sign(body)).status_code == 200

    # Slack resends the same body, signed again, and says it is a retry.
    retry_headers = {**sign(body, timestamp=int(time.time()) + 1), "X-Slack-Retry-Num": "1"}
    retry_headers["X-Slack-Retry-Reason"] = "http_timeout"
    retried = post(served, body, retry_headers)
    served.settle()

    assert retried.status_code == 200 and retried.content == b""
    assert len(created(served.twilio)) == 1
    assert len(served.slack.responses["retried"]) == 1


def test_a_click_sent_twice_snoozes_once(served: Served) -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": "U0PAT"},
        "channel": {"id": "C0OPS"},
        "message": {"text": "alert", "blocks": []},
        "response_url": served.slack.response_url("click"),
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": "alert_snooze_1h", "value": "UT1|sms|monthly"}],
    }
    body = interaction(payload)
    headers = sign(body)
    assert post(served, body, headers).status_code == 200
    assert post(served, body, headers).status_code == 200
    served.settle()

    assert [e.action for e in audit.latest(served.store)] == ["snooze"]
    assert len(served.slack.responses["click"]) == 1


def test_help_is_answered_every_time_and_remembers_nothing(served: Served) -> None:
    body = slash_command("help", served.slack.response_url("help"))
    headers = sign(body)
    answers = [post(served, body, headers) for _ in range(2)]
    assert all("/usage today" in a.text for a in answers)  # a quick answer is the same each time
    with served.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(handled_requests)).scalar_one() == 0


def test_handled_requests_are_kept_an_hour_then_forgotten(store: Store) -> None:
    key = handled.request_key(b"token=x&trigger_id=1.2.3")
    assert handled.first_time(store, key, now=1000.0)
    assert not handled.first_time(store, key, now=1000.0 + handled.KEEP_SECONDS - 1)
    # Adding another key an hour later deletes the old one.
    assert handled.first_time(store, handled.request_key(b"other"), now=1001.0 + handled.KEEP_SECONDS)
    with store.engine.connect() as conn:
        assert conn.execute(select(handled_requests.c.key)).scalars().all() == [handled.request_key(b"other")]
    assert handled.first_time(store, key, now=1002.0 + handled.KEEP_SECONDS)


# --- the same trigger, budget or digest again -----------------------------------------------------


def test_an_identical_trigger_answers_with_the_existing_one(served: Served) -> None:
    first = ask(served, "trigger sms +1000 every month")
    [sid] = served.twilio.triggers

    again = ask(served, "trigger sms +1000 every month name Another name")  # the name does not count

    assert "Usage trigger created" in text_of(first)
    assert again["text"].startswith(f"Already set: `{sid}`")
    assert "Already set:" in str(again["blocks"]) and "1,000 more than now" in text_of(again)
    assert "every month" in text_of(again) and "<#C0OPS>" in text_of(again)
    assert len(created(served.twilio)) == 1
    assert served.twilio.requests_to(f"/Usage/Triggers/{sid}.json", "GET")  # Twilio still has it: asked
    assert [e.action for e in audit.latest(served.store)] == ["trigger.create"]


@pytest.mark.parametrize(
    ("second", "channel"),
    [
        ("trigger sms +1000", "C0OPS"),  # one-shot, not monthly
        ("trigger sms +1000 every month by usage", "C0OPS"),  # another measure
        ("trigger sms +2000 every month", "C0OPS"),  # another value
        ("trigger mms +1000 every month", "C0OPS"),  # another category
        ("trigger sms +1000 every month", "C0OTHER"),  # another channel
    ],
)
def test_a_trigger_that_differs_in_anything_but_the_name_is_created(served: Served, second: str, channel: str) -> None:
    ask(served, "trigger sms +1000 every month")
    answer = ask(served, second, channel_id=channel)
    assert "Usage trigger created" in text_of(answer)
    assert len(created(served.twilio)) == 2


def test_a_trigger_deleted_by_the_bot_or_on_twilio_is_created_again(served: Served) -> None:
    ask(served, "trigger sms +1000")
    [sid] = served.twilio.triggers
    ask(served, f"untrigger {sid}")
    assert "Usage trigger created" in text_of(ask(served, "trigger sms +1000"))
    [second] = served.twilio.triggers
    served.twilio.triggers.clear()  # deleted in Twilio's console
    assert "Usage trigger created" in text_of(ask(served, "trigger sms +1000"))
    assert len(created(served.twilio)) == 3 and second not in served.twilio.triggers


@pytest.fixture
def bot(store: Store, usage: UsageClient) -> UsageBot:
    return UsageBot(usage, store=store, public_url=PUBLIC_URL, timezone="Europe/Paris")


def test_the_same_budget_again_is_already_set(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    first = bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    again = bot.answer(SetBudget(Decimal("500.00"), "monthly"), OPS)
    [budget] = budgets.list_budgets(store)

    assert first.text.startswith("Budget set:")
    assert not again.error and again.text.startswith("Budget already set: $500.00 a month for total spend")
    assert budget.trigger_sid in again.text
    assert len(created(fake_twilio)) == 1 and list(fake_twilio.triggers) == [budget.trigger_sid]
    assert [e.action for e in audit.latest(store)] == ["budget.set", "trigger.create"]

    fake_twilio.triggers.clear()  # its trigger deleted in Twilio's console: set up again
    assert bot.answer(SetBudget(Decimal(500), "monthly"), OPS).text.startswith("Budget set:")
    assert len(created(fake_twilio)) == 2


def test_the_same_digest_again_is_already_subscribed(bot: UsageBot, store: Store) -> None:
    first = bot.answer(SubscribeDigest("weekly", 8 * 60), OPS)
    again = bot.answer(SubscribeDigest("weekly", 8 * 60), OPS)
    later = bot.answer(SubscribeDigest("weekly", 9 * 60), OPS)

    assert "This channel gets a *weekly*" in first.text
    assert "already subscribed" in again.text and "08:00" in again.text and not again.error
    assert "It was at 08:00" in later.text
    assert [(s.cadence, s.at_minutes) for s in subscriptions.list_subscriptions(store)] == [("weekly", 540)]
    assert [e.action for e in audit.latest(store)] == ["digest.subscribe", "digest.subscribe"]
