"""Socket Mode: slack_sdk's real SocketModeClient connects to a fake Socket Mode server on
loopback (apps.connections.open → WebSocket → hello → envelopes → acks), and the same listeners
as over HTTP answer a slash command, a button, an event and a form.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from app import Core, create_socket_mode
from bot.config import ConfigError, Settings
from tests.conftest import make_settings
from tests.fakes.slack import APP_TOKEN, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.twilio import FakeTwilio, make_record
from tests.slack_requests import slash_command
from tests.slack_surfaces import check_view, home_click, home_opened, submission, trigger_form_values


@dataclass
class Socket:
    server: FakeSocketMode
    slack: FakeSlack
    twilio: FakeTwilio
    core: Core


@pytest.fixture
def socket(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[Socket]:
    settings = make_settings(fake_slack, fake_twilio, sqlite_url, slack_app_token=APP_TOKEN, slack_signing_secret="")
    with FakeSocketMode(fake_slack) as server:
        handler, core = create_socket_mode(settings)
        handler.connect()
        server.wait_connected()
        yield Socket(server, fake_slack, fake_twilio, core)
        handler.close()
        core.executor.shutdown(wait=True)
        core.store.dispose()


def test_the_client_asks_for_its_url_with_the_app_token(socket: Socket) -> None:
    [call] = socket.slack.calls_to("apps.connections.open")
    assert call.token == APP_TOKEN
    assert socket.server.hellos == 1


def test_a_slash_command_over_the_socket_is_acked_and_answered(socket: Socket) -> None:
    socket.twilio.set_records("Today", [make_record("totalprice", price="42.50")])
    payload = dict(parse_qsl(slash_command("today", socket.slack.response_url("sock")).decode()))
    envelope = socket.server.send("slash_commands", payload)
    ack = socket.server.wait_ack(envelope)
    assert ack.payload is not None and "Asking Twilio" in ack.payload["text"]  # the same ack as over HTTP
    [answer] = socket.slack.wait_for_response("sock", timeout=10)
    assert "$42.50" in answer["text"] + str(answer["blocks"])


def test_help_over_the_socket_is_answered_in_the_ack(socket: Socket) -> None:
    payload = dict(parse_qsl(slash_command("help", socket.slack.response_url("help")).decode()))
    ack = socket.server.wait_ack(socket.server.send("slash_commands", payload))
    assert ack.payload is not None and "/usage" in ack.payload["text"]


def test_a_button_over_the_socket_is_acked_and_answered(socket: Socket) -> None:
    click = home_click("home_new_alert")
    ack = socket.server.wait_ack(socket.server.send("interactive", click))
    assert not ack.payload  # an empty ack, as over HTTP
    [call] = socket.slack.wait_for("views.open", timeout=10)
    assert call.body["trigger_id"] == click["trigger_id"]
    check_view(socket.slack.views("views.open")[0])


def test_home_over_the_socket_is_published_once_despite_a_retry(socket: Socket) -> None:
    event = home_opened(event_id="Ev0SOCKET1")
    socket.server.wait_ack(socket.server.send("events_api", event))
    socket.server.wait_ack(socket.server.send("events_api", event, retry_attempt=1))
    [call] = socket.slack.wait_for("views.publish", timeout=10)
    check_view(socket.slack.views("views.publish")[0])
    assert call.body["user_id"] == "U0PAT"
    assert len(socket.slack.calls_to("views.publish")) == 1


def test_a_form_over_the_socket_gets_inline_errors_in_its_ack(socket: Socket) -> None:
    bad = submission("usage_trigger_form", trigger_form_values("lots"))
    ack = socket.server.wait_ack(socket.server.send("interactive", bad))
    assert ack.payload is not None and ack.payload["response_action"] == "errors"
    assert list(ack.payload["errors"]) == ["threshold"]


def test_a_malformed_envelope_is_acked_and_ignored(socket: Socket) -> None:
    ack = socket.server.wait_ack(socket.server.send("interactive", {"type": "block_actions", "actions": []}))
    assert not ack.payload
    assert socket.slack.calls_to("views.open") == []


def test_socket_mode_needs_an_app_level_token() -> None:
    with pytest.raises(ConfigError, match="xapp-"):
        Settings.from_env({"SLACK_APP_TOKEN": "xoxb-not-an-app-token"}, required=())


def test_python_m_bot_socket_says_what_is_missing(tmp_path: object) -> None:
    root = str(Path(__file__).resolve().parent.parent)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "socket"], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "SLACK_APP_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr
