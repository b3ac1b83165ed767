"""Forms (modals): opened by `/usage trigger`, the Home buttons and the global shortcut; the
category search; submissions answered within Slack's 3 seconds, with inline errors or the
outcome afterwards. Signed payloads through `POST /slack/events`; FakeSlack records the views.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import create_app
from bot import audit
from bot.store import Store
from bot.store.schema import budgets, digests, triggers
from tests.conftest import PUBLIC_URL, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import sign, slash_command
from tests.slack_surfaces import (
    check_view,
    conversation,
    external,
    home_click,
    option,
    post_interaction,
    shortcut,
    submission,
    suggestion,
    text_value,
    trigger_form_values,
    view_text,
)

TRIGGERS = "/Usage/Triggers.json"
ACK_DEADLINE = 3.0  # Slack's: https://api.slack.com/interactivity/handling#acknowledgment_response


@dataclass
class Bot:
    url: str
    store: Store
    slack: FakeSlack
    twilio: FakeTwilio


@pytest.fixture
def start_bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[Callable[..., Bot]]:
    with ExitStack() as stack:

        def start(**overrides: Any) -> Bot:
            app = create_app(make_settings(fake_slack, fake_twilio, database_url, **overrides))
            parts = app.extensions["usage_bot"]
            stack.callback(parts["store"].dispose)
            stack.callback(parts["executor"].shutdown, wait=True)
            return Bot(stack.enter_context(serving(app)), parts["store"], fake_slack, fake_twilio)

        yield start


@pytest.fixture
def bot(start_bot: Callable[..., Bot]) -> Bot:
    return start_bot()


def opened(bot: Bot, count: int = 1) -> list[dict[str, Any]]:
    bot.slack.wait_for("views.open", count, timeout=10)
    views = bot.slack.views("views.open")
    for view in views:
        check_view(view)
    return views


def updated(bot: Bot, count: int = 1) -> list[dict[str, Any]]:
    bot.slack.wait_for("views.update", count, timeout=15)
    views = bot.slack.views("views.update")
    for view in views:
        check_view(view)
    return views


def element(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b["element"] for b in view["blocks"] if b.get("block_id") == block_id)


def submit(bot: Bot, callback_id: str, values: dict[str, dict[str, Any]], **kw: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = post_interaction(bot.url, submission(callback_id, values, **kw))
    return response, time.monotonic() - started


# --- opening -------------------------------------------------------------------------------


def test_usage_trigger_alone_opens_the_form_in_this_channel(bot: Bot) -> None:
    body = slash_command("trigger", bot.slack.response_url("form"), channel_id="C0HERE")
    response = requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=5)
    assert response.status_code == 200
    assert response.text == ""  # nothing in the channel: the form opens instead
    [view] = opened(bot)
    [call] = bot.slack.calls_to("views.open")
    assert call.body["trigger_id"] == "1.2.3"  # the command's own trigger_id
    assert view["callback_id"] == "usage_trigger_form"
    assert element(view, "channel")["initial_conversation"] == "C0HERE"
    assert element(view, "category")["type"] == "external_select"
    assert [b["block_id"] for b in view["blocks"]] == [
        "category",
        "threshold",
        "measure",
        "recurring",
        "name",
        "channel",
    ]


def test_a_form_slack_will_not_open_is_explained_privately(bot: Bot) -> None:
    bot.slack.next_errors["views.open"] = ["expired_trigger_id"]
    body = slash_command("trigger", bot.slack.response_url("late"), channel_id="C0HERE")
    assert requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=5).status_code == 200
    [note] = bot.slack.wait_for_response("late", timeout=10)
    assert note["response_type"] == "ephemeral"
    assert "did not open the form" in note["text"] and "/usage help trigger" in note["text"]


@pytest.mark.parametrize(("word", "callback_id"), [("budget", "usage_budget_form"), ("Digest", "usage_digest_form")])
def test_usage_budget_or_digest_alone_opens_its_form(bot: Bot, word: str, callback_id: str) -> None:
    body = slash_command(word, bot.slack.response_url("form"), channel_id="C0HERE")
    assert requests.post(f"{bot.url}/slack/events", data=body, headers=sign(body), timeout=5).text == ""
    [view] = opened(bot)
    assert view["callback_id"] == callback_id
    assert element(view, "channel")["initial_conversation"] == "C0HERE"


@pytest.mark.parametrize(
    ("action_id", "callback_id"),
    [
        ("home_new_alert", "usage_trigger_form"),
        ("home_new_budget", "usage_budget_form"),
        ("home_new_digest", "usage_digest_form"),
    ],
)
def test_home_buttons_open_their_form_with_no_channel_chosen(bot: Bot, action_id: str, callback_id: str) -> None:
    click = home_click(action_id)
    assert post_interaction(bot.url, click).status_code == 200
    [view] = opened(bot)
    assert bot.slack.calls_to("views.open")[0].body["trigger_id"] == click["trigger_id"]
    assert view["callback_id"] == callback_id
    channel = next(b for b in view["blocks"] if b["block_id"] == "channel")
    assert "initial_conversation" not in channel["element"]
    assert not channel.get("optional")  # required: Slack will not submit without one


def test_the_global_shortcut_opens_the_alert_form(bot: Bot) -> None:
    payload = shortcut("new_usage_alert")
    assert post_interaction(bot.url, payload).status_code == 200
    [view] = opened(bot)
    assert view["callback_id"] == "usage_trigger_form"
    assert bot.slack.calls_to("views.open")[0].body["trigger_id"] == payload["trigger_id"]


# --- the category search --------------------------------------------------------------------


def test_the_category_search_answers_matches_within_slacks_limits(bot: Bot) -> None:
    response = post_interaction(bot.url, suggestion("text"))
    assert response.status_code == 200
    options = response.json()["options"]
    assert options[0] == {"text": {"type": "plain_text", "text": "text → sms", "emoji": True}, "value": "sms"}
    assert {o["value"] for o in options} >= {"sms"}
    spend = post_interaction(bot.url, suggestion("spend")).json()["options"]
    assert spend[0]["value"] == "totalprice"


@pytest.mark.parametrize("typed", ["", "s", "-", "a" * 500])
def test_the_category_search_never_answers_more_than_100_options(bot: Bot, typed: str) -> None:
    options = post_interaction(bot.url, suggestion(typed)).json()["options"]
    assert len(options) <= 100
    if typed in ("", "s"):
        assert len(options) == 100  # the list has far more: cut at Slack's limit
    assert len({o["value"] for o in options}) == len(options)  # one option per category
    for o in options:
        assert len(o["text"]["text"]) <= 75 and len(o["value"]) <= 150


# --- submitting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "block", "words"),
    [
        (trigger_form_values("lots"), "threshold", "isn't a trigger value"),
        (trigger_form_values("-5"), "threshold", "more than zero"),
        (trigger_form_values("$25.001"), "threshold", "fractions of a cent"),
        (trigger_form_values("$25", measure=option("count")), "measure", "is money"),
        (trigger_form_values("", category=external("nonsense")), "category", "Choose what to watch"),
    ],
)
def test_bad_input_is_shown_under_its_input_and_changes_nothing(
    bot: Bot, values: dict[str, Any], block: str, words: str
) -> None:
    response, _ = submit(bot, "usage_trigger_form", values)
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [block]
    assert words in answer["errors"][block]
    assert "`" not in answer["errors"][block]  # plain text under an input
    assert not bot.twilio.requests_to(TRIGGERS, "POST")
    assert audit.latest(bot.store) == []


def test_a_submitted_alert_is_created_as_the_slash_command_creates_it(bot: Bot) -> None:
    values = trigger_form_values("+1000", name=text_value("Too many texts"))
    response, took = submit(bot, "usage_trigger_form", values, user="U0FORM")
    assert response.status_code == 200 and took < ACK_DEADLINE
    assert response.json()["response_action"] == "update"
    check_view(response.json()["view"])
    assert "Asking Twilio" in view_text(response.json()["view"])

    [view] = updated(bot)
    assert "Usage trigger created" in view_text(view)
    [form] = [r.form for r in bot.twilio.requests_to(TRIGGERS, "POST")]
    assert form == {
        "UsageCategory": "sms",
        "TriggerValue": "+1000",
        "TriggerBy": "count",
        "Recurring": "monthly",
        "FriendlyName": "Too many texts",
        "CallbackUrl": f"{PUBLIC_URL}/twilio/usage-triggers?channel=C0FORM",
        "CallbackMethod": "POST",
    }
    [entry] = audit.latest(bot.store)
    assert (entry.action, entry.user_id, entry.channel_id) == ("trigger.create", "U0FORM", "C0FORM")
    assert entry.detail == "sms +1000 by count monthly"  # the same detail the slash command records
    # The channel gets a short confirmation.
    deadline = time.monotonic() + 5
    while not bot.slack.posted_to("C0FORM") and time.monotonic() < deadline:
        time.sleep(0.02)
    [posted] = bot.slack.posted_to("C0FORM")
    assert "<@U0FORM>" in posted.text and "Usage trigger created" in posted.text

    # The same alert again (a new submission, not a retry) is "already set": Twilio is not asked twice.
    submit(bot, "usage_trigger_form", values, user="U0FORM")
    second = updated(bot, 2)[1]
    assert "lready" in view_text(second)
    assert len(bot.twilio.requests_to(TRIGGERS, "POST")) == 1


def test_a_submission_is_answered_in_time_however_slow_twilio_is(bot: Bot) -> None:
    bot.twilio.delay = ACK_DEADLINE + 1
    response, took = submit(bot, "usage_trigger_form", trigger_form_values())
    assert response.status_code == 200 and took < ACK_DEADLINE
    assert response.json()["response_action"] == "update"
    [view] = updated(bot)
    assert "Usage trigger created" in view_text(view)


def test_a_repeated_submission_is_worked_once(bot: Bot) -> None:
    payload = submission("usage_trigger_form", trigger_form_values())
    for _ in range(2):
        assert post_interaction(bot.url, payload).status_code == 200
    updated(bot)
    time.sleep(0.3)
    assert len(bot.slack.calls_to("views.update")) == 1
    assert len(bot.twilio.requests_to(TRIGGERS, "POST")) == 1


def test_a_twilio_error_reaches_the_user_in_the_modal(bot: Bot) -> None:
    bot.twilio.fail_next(20, status=503)
    submit(bot, "usage_trigger_form", trigger_form_values())
    [view] = updated(bot)
    assert ":warning:" in view_text(view) and "unavailable" in view_text(view)
    assert not bot.slack.posted_to("C0FORM")  # nothing to confirm
    assert not bot.twilio.triggers


def test_when_the_modal_is_gone_the_outcome_comes_as_an_ephemeral_message(bot: Bot) -> None:
    bot.twilio.fail_next(20, status=503)
    bot.slack.method_errors["views.update"] = "not_found"
    submit(bot, "usage_trigger_form", trigger_form_values(), user="U0GONE")
    [call] = bot.slack.wait_for("chat.postEphemeral", timeout=15)
    assert (call.body["channel"], call.body["user"]) == ("C0FORM", "U0GONE")
    assert "unavailable" in call.body["text"]


def test_when_no_ephemeral_message_can_be_sent_the_outcome_comes_as_a_dm(bot: Bot) -> None:
    bot.twilio.fail_next(20, status=503)
    bot.slack.method_errors["views.update"] = "not_found"
    bot.slack.method_errors["chat.postEphemeral"] = "channel_not_found"
    submit(bot, "usage_trigger_form", trigger_form_values(), user="U0GONE")
    deadline = time.monotonic() + 15
    while not bot.slack.posted_to("U0GONE") and time.monotonic() < deadline:
        time.sleep(0.02)
    [dm] = bot.slack.posted_to("U0GONE")
    assert "unavailable" in dm.text


def test_the_admin_rule_holds_for_forms(start_bot: Callable[..., Bot]) -> None:
    bot = start_bot(usage_admins=frozenset({"U0ADMIN"}))
    submit(bot, "usage_trigger_form", trigger_form_values(), user="U0PAT")
    [view] = updated(bot)
    assert "admin" in view_text(view).lower()
    assert not bot.twilio.requests_to(TRIGGERS, "POST")
    [entry] = audit.latest(bot.store)
    assert entry.user_id == "U0PAT" and "refused" in entry.action


def test_a_channel_the_bot_cannot_post_in_is_named_in_the_outcome(bot: Bot) -> None:
    bot.slack.channel_errors["C0FORM"] = "channel_not_found"  # private, and the bot is not in it
    submit(bot, "usage_trigger_form", trigger_form_values())
    [view] = updated(bot)
    text = view_text(view)
    assert "Usage trigger created" in text
    assert "could not post in <#C0FORM>" in text and "/invite" in text


def test_a_budget_form_sets_a_budget(bot: Bot) -> None:
    values = {"amount": text_value("$500"), "period": option("monthly"), "channel": conversation("C0BUDGET")}
    response, _ = submit(bot, "usage_budget_form", values)
    assert response.json()["response_action"] == "update"
    [view] = updated(bot)
    assert "Budget set" in view_text(view)
    with bot.store.engine.connect() as conn:
        [row] = conn.execute(select(budgets)).all()
    assert (row.channel_id, row.period, row.category, row.amount) == ("C0BUDGET", "monthly", "totalprice", "500")
    [form] = [r.form for r in bot.twilio.requests_to(TRIGGERS, "POST")]
    assert form["TriggerBy"] == "price" and form["CallbackUrl"].endswith("channel=C0BUDGET")


def test_a_budget_form_with_a_bad_amount_says_so_inline(bot: Bot) -> None:
    values = {"amount": text_value("lots"), "period": option("daily"), "channel": conversation("C0BUDGET")}
    response, _ = submit(bot, "usage_budget_form", values)
    assert response.json()["response_action"] == "errors"
    assert list(response.json()["errors"]) == ["amount"]


def test_a_digest_form_subscribes_the_channel(bot: Bot) -> None:
    values = {
        "cadence": option("weekly"),
        "time": {"type": "timepicker", "selected_time": "08:15"},
        "channel": conversation("C0DIG"),
    }
    submit(bot, "usage_digest_form", values)
    [view] = updated(bot)
    assert "every Monday at 08:15" in view_text(view)
    with bot.store.engine.connect() as conn:
        [row] = conn.execute(select(digests)).all()
    assert (row.channel_id, row.cadence, row.at_minutes) == ("C0DIG", "weekly", 8 * 60 + 15)


def test_a_form_opened_from_home_republishes_home(bot: Bot) -> None:
    submit(bot, "usage_trigger_form", trigger_form_values(), private_metadata='{"origin": "home"}', user="U0HOME")
    updated(bot)
    [call] = bot.slack.wait_for("views.publish", timeout=10)
    assert call.body["user_id"] == "U0HOME"
    with bot.store.engine.connect() as conn:
        assert conn.execute(select(triggers.c.channel_id)).scalar_one() == "C0FORM"
