"""SIGKILL the app and start it again: acknowledged alerts are still delivered, and only once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import requests
from sqlalchemy import select

from bot.alerts.signature import compute_signature
from bot.store import Store
from bot.store.schema import outbox
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
from tests.fakes.slack import VALID_TOKEN, FakeSlack
from tests.slack_requests import SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
CALLBACK = "/twilio/usage-triggers?channel=C0CRASH"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_process(database_url: str, slack: FakeSlack, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "PORT": str(port),
        "SLACK_BOT_TOKEN": VALID_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_URL": PUBLIC_URL,
        "DATABASE_URL": database_url,
        "SLACK_API_URL": slack.api_url,
        "TWILIO_API_URL": "http://127.0.0.1:9",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        cwd=ROOT / "tests",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, "the app exited during start-up"
            assert time.monotonic() < deadline, "the app did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def send_callback(port: int, token: str) -> int:
    params = {
        "AccountSid": ACCOUNT_SID,
        "UsageTriggerSid": "UT" + "c" * 32,
        "UsageCategory": "totalprice",
        "TriggerBy": "price",
        "TriggerValue": "100",
        "CurrentValue": "100.42",
        "DateFired": "Wed, 25 Nov 2026 12:00:00 +0000",
        "IdempotencyToken": token,
    }
    signature = compute_signature(AUTH_TOKEN, PUBLIC_URL + CALLBACK, params.items())
    response = requests.post(
        f"http://127.0.0.1:{port}{CALLBACK}",
        data=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    return response.status_code


def wait_until(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def outbox_statuses(database_url: str) -> list[str]:
    store = Store.connect(database_url)
    try:
        with store.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(outbox.c.status))]
    finally:
        store.dispose()


def test_an_acknowledged_alert_survives_sigkill_and_restart(database_url: str, fake_slack: FakeSlack) -> None:
    port = free_port()
    fake_slack.down_status = 503  # nothing can be delivered before the crash
    with app_process(database_url, fake_slack, port) as proc:
        assert send_callback(port, "crash-1") == 200
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert fake_slack.posted == []
    fake_slack.down_status = None
    with app_process(database_url, fake_slack, port):
        wait_until(lambda: len(fake_slack.posted) == 1, timeout=20)
        time.sleep(1.0)
    assert len(fake_slack.posted) == 1
    assert "100.42" in fake_slack.posted[0].text
    assert outbox_statuses(database_url) == ["sent"]


def test_a_crash_while_slack_holds_the_post_does_not_double_it(database_url: str, fake_slack: FakeSlack) -> None:
    port = free_port()
    fake_slack.post_delay = 5.0  # Slack has the message; the app has not heard back
    with app_process(database_url, fake_slack, port) as proc:
        assert send_callback(port, "crash-2") == 200
        wait_until(lambda: len(fake_slack.posted) == 1, timeout=10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    fake_slack.post_delay = 0.0
    assert outbox_statuses(database_url) == ["sending"]
    with app_process(database_url, fake_slack, port):
        # The dead worker's lease (20 s) must run out before anyone touches the channel again.
        wait_until(lambda: outbox_statuses(database_url) == ["sent"], timeout=40)
    assert len(fake_slack.posted) == 1
    assert len(fake_slack.calls_to("conversations.history")) >= 1
