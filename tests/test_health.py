"""`GET /healthz`."""

from __future__ import annotations

import time

from sqlalchemy import create_engine

from app import create_app
from bot.alerts import mute
from bot.alerts.receive import AlertWriter, parse_callback
from bot.alerts.relay import AlertRelay
from bot.store import Store
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio


def test_healthz_is_ok_while_the_database_answers(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str
) -> None:
    client = create_app(make_settings(fake_slack, fake_twilio, database_url)).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_healthz_is_503_when_the_database_is_gone(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str
) -> None:
    app = create_app(make_settings(fake_slack, fake_twilio, sqlite_url))
    store: Store = app.extensions["usage_bot"]["store"]
    # Nothing listens on port 1: the database is unreachable.
    store.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"


def test_healthz_reports_undelivered_alerts_and_a_rejected_token(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str
) -> None:
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    store: Store = app.extensions["usage_bot"]["store"]
    for i, channel in enumerate(["C1", "C1", ""]):  # two deliverable, one with nowhere to go
        alert = parse_callback({"UsageTriggerSid": f"UT{i:032x}", "IdempotencyToken": str(i)}, channel=channel)
        assert alert is not None and AlertWriter(store, fallback_channel="").store_alert(alert)
    fake_slack.revoked = True
    relay: AlertRelay = app.extensions["usage_bot"]["relay"]
    relay.run_once()

    body = app.test_client().get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["alerts"]["pending"] == 2
    assert body["alerts"]["failed"] == 1
    assert body["alerts"]["slack_token"] == "rejected by Slack: token_revoked"


def test_healthz_counts_held_snoozed_alerts_beside_pending_and_failed(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str
) -> None:
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    store: Store = app.extensions["usage_bot"]["store"]
    snoozed, other = "UT" + "a" * 32, "UT" + "b" * 32
    with store.transaction() as conn:
        mute.snooze(conn, trigger_sid=snoozed, channel="C1", until=time.time() + 3600, user_id="U1", now=time.time())
    for i, sid in enumerate([snoozed, snoozed, other]):
        alert = parse_callback({"UsageTriggerSid": sid, "IdempotencyToken": str(i)}, channel="C1")
        assert alert is not None and AlertWriter(store, fallback_channel="").store_alert(alert)
    fake_slack.revoked = True  # nothing gets posted: the other alert stays pending
    relay: AlertRelay = app.extensions["usage_bot"]["relay"]
    relay.run_once()

    alerts = app.test_client().get("/healthz").get_json()["alerts"]
    assert (alerts["held"], alerts["pending"], alerts["failed"]) == (2, 1, 0)
    store.dispose()
