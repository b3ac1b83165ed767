"""`POST /slack/events` over real HTTP: signatures, acknowledgements, answers via response_url."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select

from app import create_app
from bot import audit
from bot.store.schema import handled_requests, snoozes
from handlers.slack_http import malformed, parse_slack_body, verify_slack_signature
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import interaction, sign, slash_command


@pytest.fixture
def bot_url(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[str]:
    app = create_app(make_settings(fake_slack, fake_twilio, sqlite_url))
    with serving(app) as url:
        yield url
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)


def post_command(bot_url: str, text: str, response_url: str, **kw: Any) -> requests.Response:
    body = slash_command(text, response_url, **kw)
    return requests.post(f"{bot_url}/slack/events", data=body, headers=sign(body), timeout=10)


def answer_text(answer: dict[str, Any]) -> str:
    return answer["text"] + str(answer.get("blocks", ""))


# --- signature verification ---------------------------------------------------------------


def test_slack_published_test_vector_verifies() -> None:
    # From Slack's "verifying requests" documentation (https://api.slack.com/authentication/verifying-requests-from-slack).
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = {
        "X-Slack-Request-Timestamp": "1531420618",
        "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    }
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    assert verify_slack_signature(secret, body, headers, now=lambda: 1531420618 + 10)
    assert not verify_slack_signature(secret, body + b"x", headers, now=lambda: 1531420618)
    assert not verify_slack_signature(secret, body, headers, now=lambda: 1531420618 + 301)


def _tamper(headers: dict[str, str], **changes: str | None) -> dict[str, str]:
    out = dict(headers)
    for name, value in changes.items():
        key = {"ts": "X-Slack-Request-Timestamp", "sig": "X-Slack-Signature"}[name]
        if value is None:
            out.pop(key)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    "case",
    [
        {"sig": None},
        {"ts": None},
        {"sig": None, "ts": None},
        {"sig": "v0=" + "0" * 64},
        {"sig": "v1=abc"},
        {"sig": "v0=ÿÿÿÿ"},  # non-ASCII: compare_digest would raise on str
        {"ts": "not-a-number"},
        {"ts": "1e9"},
        {"ts": ""},
        {"ts": "-5"},
        {"ts": str(int(time.time()) - 301)},  # stale
        {"ts": str(int(time.time()) + 400)},  # from the future
    ],
)
def test_bad_signatures_get_401_never_500(bot_url: str, fake_slack: FakeSlack, case: dict[str, str | None]) -> None:
    body = slash_command("today", fake_slack.response_url("x"))
    headers = {k: v.encode("utf-8").decode("latin-1") for k, v in _tamper(sign(body), **case).items()}
    response = requests.post(f"{bot_url}/slack/events", data=body, headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid request"}


def test_signature_over_another_body_is_rejected(bot_url: str, fake_slack: FakeSlack) -> None:
    body = slash_command("today", fake_slack.response_url("x"))
    headers = sign(slash_command("yesterday", fake_slack.response_url("x")))
    assert requests.post(f"{bot_url}/slack/events", data=body, headers=headers, timeout=5).status_code == 401


def test_signed_but_malformed_payload_is_400(bot_url: str) -> None:
    for body in (b"payload=%7Bnot-json", b"payload=%5B1%2C2%5D", b"\xff\xfe\x00garbage"):
        response = requests.post(f"{bot_url}/slack/events", data=body, headers=sign(body), timeout=5)
        assert response.status_code == 400, body


def test_oversized_body_is_refused(bot_url: str) -> None:
    body = b"text=" + b"a" * 200_000
    response = requests.post(f"{bot_url}/slack/events", data=body, headers=sign(body), timeout=5)
    assert response.status_code == 413


def test_parse_slack_body_keeps_a_command_that_mentions_payload() -> None:
    body = b"command=%2Fusage&text=today+payload&user_name=payload"
    assert parse_slack_body(body, "application/x-www-form-urlencoded") == {
        "command": "/usage",
        "text": "today payload",
        "user_name": "payload",
    }
    assert parse_slack_body(b'payload={"type":"block_actions"}', "application/x-www-form-urlencoded") == {
        "type": "block_actions"
    }


# --- acknowledgements and answers -----------------------------------------------------------


def test_help_is_answered_in_the_ack(bot_url: str, fake_slack: FakeSlack) -> None:
    response = post_command(bot_url, "help", fake_slack.response_url("help"))
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert "/usage today" in answer_text(body)
    assert "/usage trigger" in answer_text(body)


def test_today_is_acked_then_answered_through_response_url(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_categories(5)
    response = post_command(bot_url, "today", fake_slack.response_url("today"))
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral"
    [answer] = fake_slack.wait_for_response("today")
    assert answer["response_type"] == "ephemeral"
    assert answer["replace_original"] is True
    assert "Total spend" in answer_text(answer)
    assert any("/Usage/Records/Today.json" in r.path for r in fake_twilio.requests)


def test_public_answer_goes_to_the_channel(bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(3)
    response = post_command(bot_url, "this-month public", fake_slack.response_url("pub"))
    assert response.status_code == 200
    assert response.json() == {"response_type": "in_channel", "text": ""}
    [answer] = fake_slack.wait_for_response("pub")
    assert answer["response_type"] == "in_channel"
    assert answer["replace_original"] is False


def test_empty_command_shows_help(bot_url: str, fake_slack: FakeSlack) -> None:
    body = post_command(bot_url, "", fake_slack.response_url("empty")).json()
    assert body["response_type"] == "ephemeral"
    assert "/usage today" in answer_text(body)


def test_a_range_starting_in_the_future_is_refused_in_the_ack(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    body = post_command(bot_url, "2999-01-01..2999-01-31", fake_slack.response_url("future")).json()
    assert body["response_type"] == "ephemeral"
    assert "starts in the future" in answer_text(body)
    assert not fake_twilio.requests


def test_a_command_containing_payload_reaches_the_parser(bot_url: str, fake_slack: FakeSlack) -> None:
    response = post_command(bot_url, "today payload", fake_slack.response_url("p"))
    assert response.status_code == 200
    assert "payload" in answer_text(response.json())


@pytest.mark.parametrize(
    "text",
    [
        "a" * 4000,
        "🔥🔥 today 🚀",
        "<@U123ABC|pat> today",
        "<#C123|general>",
        "2026-02-30..2026-03-01",
        "2026-11-20..2026-11-01",
        "today\nsms",
        "trigger sms",  # `trigger` alone opens the form (tests/test_home_and_forms.py)
        "untrigger nope",
        "&lt;script&gt;",
        "today sms calls public",
    ],
)
def test_odd_input_gets_a_short_useful_reply(bot_url: str, fake_slack: FakeSlack, text: str) -> None:
    response = post_command(bot_url, text, fake_slack.response_url("odd"))
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert body["text"]
    assert len(body["text"]) < 1000
    assert "Traceback" not in response.text


def test_twilio_credentials_error_is_explained(bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fake_twilio.auth_token = "rotated"
    post_command(bot_url, "today", fake_slack.response_url("401"))
    [answer] = fake_slack.wait_for_response("401")
    assert "credentials" in answer["text"]
    assert "rotated" not in str(answer)


def test_twilio_outage_is_explained(bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    fake_twilio.fail_next(100, status=503)
    post_command(bot_url, "today", fake_slack.response_url("503"))
    [answer] = fake_slack.wait_for_response("503", timeout=30)
    assert "unavailable" in answer["text"]


def test_twenty_concurrent_slow_queries_are_all_acked_in_time_and_answered(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_categories(3)
    fake_twilio.delay = 2.5
    start = threading.Barrier(20)

    def one(i: int) -> tuple[int, float]:
        body = slash_command("today", fake_slack.response_url(f"c{i}"))
        start.wait()
        began = time.monotonic()
        status = requests.post(f"{bot_url}/slack/events", data=body, headers=sign(body), timeout=10).status_code
        return status, time.monotonic() - began

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert all(status == 200 for status, _ in results)
    assert max(elapsed for _, elapsed in results) < 3.0
    for i in range(20):
        [answer] = fake_slack.wait_for_response(f"c{i}", timeout=15)
        assert "Total spend" in answer_text(answer)


# --- signed but malformed interactivity payloads ----------------------------------------------


def _click(**changes: Any) -> dict[str, Any]:
    """A snooze click as Slack sends it, with `changes` (None: the field left out)."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": "U0PAT"},
        "channel": {"id": "C0OPS"},
        "message": {"text": "alert", "blocks": [{"type": "section", "block_id": "b"}]},
        "response_url": "",  # set by the test
        "trigger_id": "1.2.3",
        "actions": [{"type": "button", "action_id": "alert_snooze_1h", "value": "UT1|sms|monthly"}],
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


MALFORMED = {
    "no actions": _click(actions=[]),
    "actions not a list": _click(actions={"action_id": "alert_snooze_1h"}),
    "an action not an object": _click(actions=["alert_snooze_1h"]),
    "an action without action_id": _click(actions=[{"type": "button", "value": "UT1|sms|"}]),
    "an action_id not a string": _click(actions=[{"action_id": 7, "value": "UT1|sms|"}]),
    "a value not a string": _click(actions=[{"action_id": "alert_snooze_1h", "value": ["UT1"]}]),
    "block_actions without actions": _click(actions=None),
    "user not an object": _click(user="U0PAT"),
    "user id not a string": _click(user={"id": 42}),
    "channel not an object": _click(channel=["C0OPS"]),
    "message blocks not a list": _click(message={"text": "alert", "blocks": "none"}),
    "a block not an object": _click(message={"text": "alert", "blocks": ["section"]}),
    "type not a string": _click(type=["block_actions"]),
    "a view without type": {"type": "view_submission", "user": {"id": "U0PAT"}, "view": {"id": "V1"}},
    "a view not an object": {"type": "view_submission", "user": {"id": "U0PAT"}, "view": "V1"},
    "a view_closed without a view": {"type": "view_closed", "user": {"id": "U0PAT"}},
}


@pytest.fixture
def served_app(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[tuple[str, Any]]:
    app = create_app(make_settings(fake_slack, fake_twilio, sqlite_url))
    with serving(app) as url:
        yield url, app
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)


def _nothing_changed(app: Any, fake_slack: FakeSlack, fake_twilio: FakeTwilio) -> None:
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)  # whatever was started has finished
    store = app.extensions["usage_bot"]["store"]
    assert audit.latest(store) == []
    with store.engine.connect() as conn:
        for table in (snoozes, handled_requests):
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0, table.name
    assert fake_slack.calls == [] and fake_slack.responses == {}
    assert fake_twilio.requests == []


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_signed_but_malformed_interaction_is_400_and_changes_nothing(
    served_app: tuple[str, Any], fake_slack: FakeSlack, fake_twilio: FakeTwilio, payload: dict[str, Any]
) -> None:
    url, app = served_app
    if "response_url" in payload:
        payload["response_url"] = fake_slack.response_url("malformed")
    body = interaction(payload)
    response = requests.post(f"{url}/slack/events", data=body, headers=sign(body), timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "malformed request"}
    _nothing_changed(app, fake_slack, fake_twilio)


@pytest.mark.parametrize("payload", ["null", '"block_actions"', "42", "[]", "[{}]", "{not json"])
def test_a_signed_payload_that_is_not_a_json_object_is_400_and_changes_nothing(
    served_app: tuple[str, Any], fake_slack: FakeSlack, fake_twilio: FakeTwilio, payload: str
) -> None:
    url, app = served_app
    body = urlencode({"payload": payload}).encode()
    response = requests.post(f"{url}/slack/events", data=body, headers=sign(body), timeout=5)
    assert response.status_code == 400
    _nothing_changed(app, fake_slack, fake_twilio)


def test_the_well_formed_click_the_malformed_ones_are_made_from_is_handled(
    served_app: tuple[str, Any], fake_slack: FakeSlack
) -> None:
    url, app = served_app
    body = interaction(_click(response_url=fake_slack.response_url("ok")))
    assert requests.post(f"{url}/slack/events", data=body, headers=sign(body), timeout=5).status_code == 200
    [update] = fake_slack.wait_for_response("ok")
    assert "Snoozed for 1 h" in str(update["blocks"])
    assert [e.action for e in audit.latest(app.extensions["usage_bot"]["store"])] == ["snooze"]


def test_malformed_names_what_is_wrong_and_passes_what_slack_sends() -> None:
    assert malformed(_click()) is None
    assert malformed({"command": "/usage", "text": "today", "user_id": "U1"}) is None  # a slash command
    assert malformed({"type": "view_submission", "view": {"type": "modal"}, "user": {"id": "U1"}}) is None
    assert (
        malformed({"type": "block_actions", "enterprise": None, "team": None, "actions": [{"action_id": "a"}]}) is None
    )
    assert malformed(_click(actions=[])) == "actions is not a non-empty list"
    assert malformed(_click(user="U1")) == "user is not an object"
