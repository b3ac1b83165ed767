"""`/usage trigger`, `triggers`, `untrigger` and `alerts failed`: signed slash commands through
`POST /slack/events` over real HTTP, the answers read at FakeSlack's response_url, Twilio played
by FakeTwilio.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Row, select

from app import create_app
from bot.store import Store
from bot.store.schema import alerts, channels, outbox, triggers
from tests.conftest import _DATABASES, ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, make_settings
from tests.databases import postgres_schema
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, error_body, make_record
from tests.servers import serving
from tests.slack_requests import sign, slash_command

TRIGGERS_PATH = "/Usage/Triggers.json"
CALLBACK_URL = f"{PUBLIC_URL}/twilio/usage-triggers"


@dataclass
class Bot:
    url: str
    store: Store
    slack: FakeSlack
    twilio: FakeTwilio


def _starter(stack: ExitStack, slack: FakeSlack, twilio: FakeTwilio, database_url: str) -> Callable[..., Bot]:
    def start(**overrides: Any) -> Bot:
        app = create_app(make_settings(slack, twilio, database_url, **overrides))
        parts = app.extensions["usage_bot"]
        stack.callback(parts["store"].dispose)  # PostgreSQL: no open connection may block DROP SCHEMA
        stack.callback(parts["executor"].shutdown, wait=True)
        return Bot(stack.enter_context(serving(app)), parts["store"], slack, twilio)

    return start


@pytest.fixture(scope="module", params=_DATABASES)
def _shared_bot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    # One app for the module: stopping a served app costs half a second.
    with ExitStack() as stack:
        slack = stack.enter_context(FakeSlack())
        twilio = stack.enter_context(FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN))
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('db')}/usage-bot.db"
        else:
            url, _ = stack.enter_context(postgres_schema(os.environ["TEST_DATABASE_URL"], "t_"))
        yield _starter(stack, slack, twilio, url)()


@pytest.fixture
def bot(_shared_bot: Bot) -> Bot:
    """The app with default settings (PUBLIC_URL set, no admins, no ALERT_CHANNEL), an empty
    database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set) and an empty Twilio account."""
    _shared_bot.twilio.reset()
    with _shared_bot.store.transaction() as conn:
        for table in (outbox, alerts, channels, triggers):
            conn.execute(table.delete())
    return _shared_bot


@pytest.fixture
def start_bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, tmp_path: Path) -> Iterator[Callable[..., Bot]]:
    """An app of its own, for tests that need other settings."""
    with ExitStack() as stack:
        yield _starter(stack, fake_slack, fake_twilio, f"sqlite:///{tmp_path}/usage-bot.db")


def ask(bot: Bot, text: str, *, user_id: str = "U0PAT", channel_id: str = "C0SMS") -> dict[str, Any]:
    """Send `/usage <text>` as Slack would; the answer posted to response_url."""
    key = uuid.uuid4().hex
    body = slash_command(text, bot.slack.response_url(key), user_id=user_id, channel_id=channel_id)
    ack = requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=5)
    assert ack.status_code == 200
    [answer] = bot.slack.wait_for_response(key, timeout=10)
    return answer


def text_of(answer: dict[str, Any]) -> str:
    return answer["text"] + str(answer.get("blocks", ""))


def created(bot: Bot) -> list[dict[str, str]]:
    """The forms of the trigger creations Twilio received."""
    return [r.form for r in bot.twilio.requests_to(TRIGGERS_PATH, "POST")]


def saved_triggers(bot: Bot) -> list[Row[Any]]:
    """The triggers the bot holds as its own: rows of triggers it deleted stay, marked (see
    `deleted_triggers`)."""
    with bot.store.engine.connect() as conn:
        query = select(triggers).where(triggers.c.deleted_at.is_(None)).order_by(triggers.c.created_at)
        return conn.execute(query).all()


def deleted_triggers(bot: Bot) -> list[Row[Any]]:
    with bot.store.engine.connect() as conn:
        query = select(triggers).where(triggers.c.deleted_at.is_not(None)).order_by(triggers.c.created_at)
        return conn.execute(query).all()


def assert_clean_error(answer: dict[str, Any]) -> None:
    text = text_of(answer)
    assert answer["response_type"] == "ephemeral"
    assert text.startswith(":warning:")
    assert "Traceback" not in text
    assert AUTH_TOKEN not in text


# --- creating --------------------------------------------------------------------------------------


def test_a_relative_count_trigger_is_created_for_this_channel(bot: Bot) -> None:
    answer = ask(bot, "trigger sms +1000", user_id="U0PAT", channel_id="C0SMS")

    [form] = created(bot)
    assert form == {
        "UsageCategory": "sms",
        "TriggerValue": "+1000",  # the plus survives the form encoding
        "TriggerBy": "count",
        "CallbackUrl": f"{CALLBACK_URL}?channel=C0SMS",
        "CallbackMethod": "POST",
    }  # no Recurring: a one-shot trigger; no FriendlyName
    [sid] = bot.twilio.triggers
    text = text_of(answer)
    assert answer["response_type"] == "ephemeral"
    for expected in ("Usage trigger created", "`sms`", "1,000 more than now", "Measured by", "count", "once"):
        assert expected in text, expected
    assert "<#C0SMS>" in text
    assert sid in text
    [row] = saved_triggers(bot)
    assert (row.sid, row.channel_id, row.created_by) == (sid, "C0SMS", "U0PAT")
    assert (row.category, row.value_requested) == ("sms", "+1000")


def test_the_created_triggers_alert_comes_back_to_its_channel(bot: Bot) -> None:
    ask(bot, "trigger sms +1000", channel_id="C0SMS")
    [sid] = bot.twilio.triggers
    # Twilio calls the registered public URL; the request reaches the app on 127.0.0.1.
    assert bot.twilio.fire(sid, via_url=bot.url).status_code == 200
    with bot.store.engine.connect() as conn:
        [row] = conn.execute(select(outbox.c.channel, outbox.c.status)).all()
    assert tuple(row) == ("C0SMS", "pending")


@pytest.mark.parametrize(
    ("text", "form", "shown"),
    [
        ("trigger totalprice $25", {"TriggerBy": "price", "TriggerValue": "25"}, ["$25.00", "price", "once"]),
        (
            "trigger totalprice 25usd every month name Monthly cap",
            {"TriggerBy": "price", "TriggerValue": "25", "Recurring": "monthly", "FriendlyName": "Monthly cap"},
            ["$25.00", "price", "every month", "Monthly cap"],
        ),
        ("trigger calls 500 by usage", {"TriggerBy": "usage", "TriggerValue": "500"}, ["500", "usage", "`calls`"]),
        (
            "trigger sms 1,000 every day",
            {"TriggerBy": "count", "TriggerValue": "1000", "Recurring": "daily"},
            ["1,000", "every day"],
        ),
    ],
)
def test_trigger_values_measures_periods_and_names(bot: Bot, text: str, form: dict[str, str], shown: list[str]) -> None:
    answer = ask(bot, text)
    [sent] = created(bot)
    assert sent.items() >= form.items()
    assert ("Recurring" in sent) == ("Recurring" in form)
    assert ("FriendlyName" in sent) == ("FriendlyName" in form)
    assert "Usage trigger created" in text_of(answer)
    for expected in shown:
        assert expected in text_of(answer), expected
    [row] = saved_triggers(bot)
    assert row.friendly_name == form.get("FriendlyName", "")


# --- listing ---------------------------------------------------------------------------------------


def test_triggers_lists_every_trigger_with_channel_creator_and_progress(bot: Bot) -> None:
    bot.twilio.set_records("AllTime", [make_record("sms", count="250"), make_record("calls", count="40")])
    ask(bot, "trigger sms +1000", user_id="U0PAT", channel_id="C0SMS")
    ask(bot, "trigger calls 500 name Calls cap", user_id="U0SAM", channel_id="C0CALLS")
    outside = bot.twilio.add_trigger("mms", "10", callback_url=f"{CALLBACK_URL}?channel=C0MMS", trigger_by="count")
    sms_sid, calls_sid = (sid for sid in bot.twilio.triggers if sid != outside["sid"])

    answer = ask(bot, "triggers", user_id="U0SOMEONE")

    text = text_of(answer)
    assert "Usage triggers (3)" in text
    for sid in (sms_sid, calls_sid, outside["sid"]):
        assert sid in text
    lines = {sid: next(line for line in answer["text"].splitlines() if sid in line) for sid in bot.twilio.triggers}
    assert "<#C0SMS>" in lines[sms_sid] and "<@U0PAT>" in lines[sms_sid]
    assert "count 250 of 1,000 more than at creation" in lines[sms_sid]
    assert "<#C0CALLS>" in lines[calls_sid] and "<@U0SAM>" in lines[calls_sid]
    assert "count 40 of 500" in lines[calls_sid] and "Calls cap" in lines[calls_sid]
    # Made outside the bot: the channel comes from its callback URL, and nobody is named.
    assert "<#C0MMS>" in lines[outside["sid"]] and "<@" not in lines[outside["sid"]]


def test_triggers_with_a_category_lists_only_that_category(bot: Bot) -> None:
    ask(bot, "trigger sms +1000")
    ask(bot, "trigger calls 500")
    sms_sid, calls_sid = bot.twilio.triggers

    answer = ask(bot, "triggers sms")

    assert "Usage triggers (1)" in text_of(answer)
    assert sms_sid in text_of(answer)
    assert calls_sid not in text_of(answer)
    assert bot.twilio.requests_to(TRIGGERS_PATH, "GET")[-1].query["UsageCategory"] == "sms"


def test_triggers_when_there_are_none(bot: Bot) -> None:
    assert "No usage triggers yet" in text_of(ask(bot, "triggers"))


# --- deleting --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "shouted"),
    [("untrigger", False), ("trigger delete", False), ("trigger delete", True)],
    ids=["untrigger", "trigger-delete", "upper-case-sid"],
)
def test_deleting_a_trigger(bot: Bot, verb: str, shouted: bool) -> None:
    ask(bot, "trigger sms +1000")
    [sid] = bot.twilio.triggers
    typed = "UT" + sid[2:].upper() if shouted else sid

    answer = ask(bot, f"{verb} {typed}")

    assert "Deleted usage trigger" in text_of(answer)
    assert sid in text_of(answer)
    assert sid not in bot.twilio.triggers
    assert [r.path.rsplit("/", 1)[-1] for r in bot.twilio.requests_to(".json", "DELETE")] == [f"{sid}.json"]
    assert saved_triggers(bot) == []
    [kept] = deleted_triggers(bot)  # kept, so that a late callback can say who deleted it
    assert (kept.sid, kept.deleted_by, kept.created_by) == (sid, "U0PAT", "U0PAT")


def test_deleting_an_unknown_trigger_says_so(bot: Bot) -> None:
    ask(bot, "trigger sms +1000")
    unknown = "UT" + "0" * 32

    answer = ask(bot, f"untrigger {unknown}")

    assert_clean_error(answer)
    assert "no such" in text_of(answer).lower()
    assert unknown in text_of(answer)
    assert len(bot.twilio.triggers) == 1
    assert len(saved_triggers(bot)) == 1


# --- who may manage triggers -------------------------------------------------------------------------


def test_only_usage_admins_create_and_delete_triggers(start_bot: Callable[..., Bot]) -> None:
    bot = start_bot(usage_admins=frozenset({"UADMIN"}))
    existing = bot.twilio.add_trigger("sms", "100", callback_url=f"{CALLBACK_URL}?channel=C0SMS")["sid"]

    refused_create = ask(bot, "trigger sms +1000", user_id="U0PAT")
    refused_delete = ask(bot, f"untrigger {existing}", user_id="U0PAT")
    refused_delete_2 = ask(bot, f"trigger delete {existing}", user_id="U0PAT")

    for answer in (refused_create, refused_delete, refused_delete_2):
        assert_clean_error(answer)
        assert "admins" in text_of(answer).lower()
    assert created(bot) == []
    assert bot.twilio.requests_to(".json", "DELETE") == []
    assert list(bot.twilio.triggers) == [existing]

    # Listing is for everyone.
    listing = ask(bot, "triggers", user_id="U0PAT")
    assert existing in text_of(listing)

    assert "Usage trigger created" in text_of(ask(bot, "trigger sms +1000", user_id="UADMIN"))
    assert len(created(bot)) == 1
    assert [row.created_by for row in saved_triggers(bot)] == ["UADMIN"]
    assert "Deleted usage trigger" in text_of(ask(bot, f"untrigger {existing}", user_id="UADMIN"))
    assert existing not in bot.twilio.triggers


def test_without_public_url_no_trigger_is_created(start_bot: Callable[..., Bot]) -> None:
    bot = start_bot(public_url="")
    answer = ask(bot, "trigger sms +1000")
    assert_clean_error(answer)
    assert "PUBLIC_URL" in text_of(answer)
    assert created(bot) == []
    assert bot.twilio.triggers == {}
    assert saved_triggers(bot) == []


# --- Twilio errors ---------------------------------------------------------------------------------


def _rejects_the_category(twilio: FakeTwilio) -> None:
    # Our parser knows `sms`, so Twilio's own refusal is simulated.
    message = "UsageCategory 'sms' is not a valid usage category"
    twilio.fail_next(1, 400, body=error_body(400, 21202, message))


def _rotated_credentials(twilio: FakeTwilio) -> None:
    twilio.auth_token = "rotated-" + "9" * 24


def _rate_limited(twilio: FakeTwilio) -> None:
    # A 429 was not processed, so the client resends even a POST: keep refusing (1 + 3 retries).
    twilio.fail_next(4, 429, headers={"Retry-After": "0"})


def _server_error(twilio: FakeTwilio) -> None:
    twilio.fail_next(1, 500)


def _load_balancer_page(twilio: FakeTwilio) -> None:
    twilio.fail_next(1, 502, body="<html><body>502 Bad Gateway</body></html>")


@pytest.mark.parametrize(
    ("breakage", "explained"),
    [
        (_rejects_the_category, "Twilio refused that: UsageCategory 'sms' is not a valid usage category"),
        (_rotated_credentials, "Twilio rejected the credentials"),
        (_rate_limited, "rate-limiting"),
        (_server_error, "Twilio is unavailable right now (HTTP 500)"),
        (_load_balancer_page, "Twilio is unavailable right now (HTTP 502)"),
    ],
    ids=["400", "401", "429", "500", "502-html"],
)
def test_twilio_errors_on_create_are_explained(
    bot: Bot, breakage: Callable[[FakeTwilio], None], explained: str
) -> None:
    breakage(bot.twilio)
    answer = ask(bot, "trigger sms +1000")
    assert_clean_error(answer)
    assert explained in text_of(answer)
    assert bot.twilio.auth_token not in text_of(answer)
    assert bot.twilio.triggers == {}
    assert saved_triggers(bot) == []


# --- alerts that could not be delivered --------------------------------------------------------------


def test_alerts_failed_lists_an_alert_with_nowhere_to_go(bot: Bot) -> None:
    assert "No undelivered alerts" in text_of(ask(bot, "alerts failed"))

    # A trigger whose callback names no channel, and no ALERT_CHANNEL is set.
    sid = bot.twilio.add_trigger("sms", "1000", callback_url=CALLBACK_URL, trigger_by="count")["sid"]
    assert bot.twilio.fire(sid, current_value="1200", via_url=bot.url).status_code == 200

    answer = ask(bot, "alerts failed")
    text = text_of(answer)
    assert "Undelivered alerts (1)" in text
    assert sid in text
    assert "1,200 messages" in text
    assert "the callback names no channel and ALERT_CHANNEL is not set" in text
    assert "no channel" in text
