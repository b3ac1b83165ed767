"""`/twilio/usage-triggers` over real HTTP: FakeTwilio fires signed callbacks at the served app.

The fake signs over the trigger's registered public callback URL (https://usage-bot.example.com/…)
and delivers to the app on 127.0.0.1 — what a PaaS router does. The relay is not running
(`delivery_in_web=False`), so the tests see exactly what the callback stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, create_engine, select

from app import create_app
from bot.config import normalize_database_url
from bot.store import Store
from bot.store.schema import alerts, channels, outbox, triggers
from tests.conftest import _DATABASES, ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, make_settings
from tests.databases import postgres_schema
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import Callback, FakeTwilio, callback_get_url, twilio_signature
from tests.servers import serving

CALLBACK_URL = f"{PUBLIC_URL}/twilio/usage-triggers"
FIRED = "Sun, 04 Oct 2026 12:00:00 +0000"
FIRED_LATER = "Sun, 04 Oct 2026 12:05:00 +0000"


@dataclass
class Bot:
    url: str
    store: Store
    database_url: str


Starter = Callable[..., Bot]


def _starter(stack: ExitStack, fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Starter:
    def start(**overrides: Any) -> Bot:
        app = create_app(make_settings(fake_slack, fake_twilio, database_url, **overrides))
        parts = app.extensions["usage_bot"]
        stack.callback(parts["store"].dispose)  # PostgreSQL: no open connection may block DROP SCHEMA
        stack.callback(parts["executor"].shutdown, wait=True)
        return Bot(stack.enter_context(serving(app)), parts["store"], database_url)

    return start


def _shared_bot(kind: str, tmp: Path) -> Iterator[Bot]:
    """One app for a whole module (stopping a served app costs half a second), on `kind`'s database."""
    with ExitStack() as stack:
        slack = stack.enter_context(FakeSlack())
        twilio = stack.enter_context(FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN))
        if kind == "sqlite":
            url = f"sqlite:///{tmp}/usage-bot.db"
        else:
            url, _ = stack.enter_context(postgres_schema(os.environ["TEST_DATABASE_URL"], "t_"))
        yield _starter(stack, slack, twilio, url)()


def _emptied(bot: Bot) -> Bot:
    with bot.store.transaction() as conn:
        for table in (outbox, alerts, channels, triggers):
            conn.execute(table.delete())
    return bot


@pytest.fixture(scope="module", params=_DATABASES)
def _bot_on_each_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    yield from _shared_bot(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
def _bot_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    yield from _shared_bot("sqlite", tmp_path_factory.mktemp("db"))


@pytest.fixture
def bot(_bot_on_each_database: Bot) -> Bot:
    """The app with default settings and an empty database: SQLite, and PostgreSQL when
    TEST_DATABASE_URL is set. The relay does not run, so stored alerts stay as stored."""
    return _emptied(_bot_on_each_database)


@pytest.fixture
def sqlite_bot(_bot_on_sqlite: Bot) -> Bot:
    """The app with default settings and an empty SQLite database (for the signature checks)."""
    return _emptied(_bot_on_sqlite)


@pytest.fixture
def start_bot(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[Starter]:
    """An app of its own, for tests that need other settings."""
    with ExitStack() as stack:
        yield _starter(stack, fake_slack, fake_twilio, sqlite_url)


def stored(store: Store) -> tuple[list[Row[Any]], list[Row[Any]]]:
    """Every alert row and every outbox row, oldest first."""
    with store.engine.connect() as conn:
        return (
            conn.execute(select(alerts).order_by(alerts.c.id)).all(),
            conn.execute(select(outbox).order_by(outbox.c.id)).all(),
        )


def assert_nothing_stored(store: Store) -> None:
    assert stored(store) == ([], [])


def sms_trigger(fake: FakeTwilio, *, channel: str | None = "C0ALERTS", method: str = "POST") -> str:
    url = CALLBACK_URL + (f"?channel={channel}" if channel is not None else "")
    trigger = fake.add_trigger(
        "sms", "1000", callback_url=url, callback_method=method, trigger_by="count", recurring="monthly"
    )
    return trigger["sid"]


# --- the fake's signer against Twilio's published vectors -----------------------------------------
# https://www.twilio.com/docs/usage/security#validating-requests

VECTOR_URL = "https://bot.example.com/twilio/usage-trigger"
VECTOR_PARAMS = {
    "AccountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "UsageTriggerSid": "UTbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "DateFired": "Sun, 04 Oct 2026 12:00:00 +0000",
    "Recurring": "monthly",
    "UsageCategory": "totalprice",
    "TriggerBy": "price",
    "TriggerValue": "60",
    "CurrentValue": "60.52",
    "UsageRecordUri": (
        "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Usage/Records/ThisMonth.json?Category=totalprice"
    ),
    "IdempotencyToken": "tok-1",
}


def test_the_fakes_signer_reproduces_twilios_published_vectors() -> None:
    # twilio-python's own test vector, and its :443 variant.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature("12345", url.replace(".com/", ".com:443/"), params) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    # Usage-trigger-shaped vectors: POST, POST over :443, GET with the parameters in the query.
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "OI/sH8JgVW6VM//TWO0Tc64o52c="
    with_port = VECTOR_URL.replace(".com/", ".com:443/")
    assert twilio_signature("12345", with_port, VECTOR_PARAMS) == "dcrbXm6yxvPZ3Eg7z4jdGuqTEI4="
    assert twilio_signature("12345", callback_get_url(VECTOR_URL, VECTOR_PARAMS)) == "c2rG/C+E11ABUFfsdpEx3kZvslQ="


# --- a valid callback is stored, with its outbox row ---------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_valid_callback_is_stored_with_a_pending_outbox_row(bot: Bot, fake_twilio: FakeTwilio, method: str) -> None:
    sid = sms_trigger(fake_twilio, method=method)
    callback = fake_twilio.callback(sid, current_value="1012", idempotency_token="tok-1", date_fired=FIRED)
    assert callback.method == method
    assert callback.url.startswith(CALLBACK_URL)  # signed over the public URL, delivered to 127.0.0.1

    response = callback.send(bot.url)

    assert response.status_code == 200
    [alert], [row] = stored(bot.store)
    assert alert.trigger_sid == sid
    assert alert.account_sid == fake_twilio.account_sid
    assert (alert.category, alert.trigger_by, alert.trigger_value) == ("sms", "count", "1000")
    assert (alert.current_value, alert.recurring) == ("1012", "monthly")
    assert alert.date_fired == FIRED
    assert alert.fired_at == parsedate_to_datetime(FIRED).timestamp()
    assert alert.requested_channel == "C0ALERTS"
    kept = json.loads(alert.params)
    assert kept.items() >= callback.params.items()  # every parameter Twilio sent, as sent
    assert (row.alert_id, row.channel, row.status) == (alert.id, "C0ALERTS", "pending")


def test_fire_delivers_through_a_router_and_records_the_firing(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    assert fake_twilio.fire(sid, current_value="1001", via_url=bot.url).status_code == 200
    [alert], [row] = stored(bot.store)
    assert (alert.trigger_sid, alert.current_value, row.channel) == (sid, "1001", "C0ALERTS")
    assert fake_twilio.triggers[sid]["current_value"] == "1001"
    assert fake_twilio.triggers[sid]["date_fired"] == alert.date_fired


def test_a_signature_over_the_default_port_is_accepted(sqlite_bot: Bot, fake_twilio: FakeTwilio) -> None:
    bot = sqlite_bot
    # twilio-python's validator accepts a signature over https://host:443/… for https://host/….
    sid = sms_trigger(fake_twilio)
    callback = fake_twilio.callback(sid)
    with_port = callback.url.replace("usage-bot.example.com/", "usage-bot.example.com:443/")
    assert with_port != callback.url
    callback.headers["X-Twilio-Signature"] = fake_twilio.signature(with_port, callback.form)
    assert callback.send(bot.url).status_code == 200
    assert len(stored(bot.store)[0]) == 1


def test_a_callback_without_a_trigger_sid_is_acknowledged_and_ignored(sqlite_bot: Bot, fake_twilio: FakeTwilio) -> None:
    bot = sqlite_bot
    sid = sms_trigger(fake_twilio)
    callback = fake_twilio.callback(sid)
    callback.form = [(k, v) for k, v in callback.form if k != "UsageTriggerSid"]
    callback.headers["X-Twilio-Signature"] = fake_twilio.signature(callback.url, callback.form)
    assert callback.send(bot.url).status_code == 200
    assert_nothing_stored(bot.store)


# --- duplicates --------------------------------------------------------------------------------


def test_a_repeated_callback_is_stored_once(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    first = fake_twilio.fire(sid, idempotency_token="tok-1", date_fired=FIRED, via_url=bot.url)
    # Twilio's retry: same body, plus the idempotency header.
    again = fake_twilio.fire(sid, idempotency_token="tok-1", date_fired=FIRED, header_token="tok-1", via_url=bot.url)
    assert (first.status_code, again.status_code) == (200, 200)
    alerts_, rows = stored(bot.store)
    assert (len(alerts_), len(rows)) == (1, 1)


def test_the_same_firing_with_another_token_is_stored_once(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    assert fake_twilio.fire(sid, idempotency_token="tok-1", date_fired=FIRED, via_url=bot.url).status_code == 200
    assert fake_twilio.fire(sid, idempotency_token="tok-2", date_fired=FIRED, via_url=bot.url).status_code == 200
    alerts_, rows = stored(bot.store)
    assert (len(alerts_), len(rows)) == (1, 1)
    assert alerts_[0].dedupe_key == "token:tok-1"


def test_the_idempotency_header_is_used_when_the_body_has_no_token(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    # Different DateFired values: only the header can make these one alert.
    for fired in (FIRED, FIRED_LATER):
        response = fake_twilio.fire(sid, idempotency_token="", header_token="hdr-1", date_fired=fired, via_url=bot.url)
        assert response.status_code == 200
    alerts_, rows = stored(bot.store)
    assert (len(alerts_), len(rows)) == (1, 1)
    assert "IdempotencyToken" not in json.loads(alerts_[0].params)


def test_without_any_token_the_firing_time_deduplicates(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    for _ in range(2):
        assert fake_twilio.fire(sid, idempotency_token="", date_fired=FIRED, via_url=bot.url).status_code == 200
    assert len(stored(bot.store)[0]) == 1


def test_two_firings_are_two_alerts(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    other = sms_trigger(fake_twilio, channel="C0OTHER")
    assert fake_twilio.fire(sid, date_fired=FIRED, via_url=bot.url).status_code == 200
    assert fake_twilio.fire(sid, date_fired=FIRED_LATER, via_url=bot.url).status_code == 200
    assert fake_twilio.fire(other, date_fired=FIRED, via_url=bot.url).status_code == 200
    alerts_, rows = stored(bot.store)
    assert [a.trigger_sid for a in alerts_] == [sid, sid, other]
    assert [(r.channel, r.status) for r in rows] == [("C0ALERTS", "pending")] * 2 + [("C0OTHER", "pending")]


def test_over_long_values_are_stored_not_refused(bot: Bot, fake_twilio: FakeTwilio) -> None:
    # PostgreSQL refuses a value longer than its column; a 503 on every retry would lose the alert.
    bot_sid = sms_trigger(fake_twilio)
    long_token = "t" * 300
    for fired in (FIRED, FIRED_LATER):  # a retry with the same long token is still one alert
        response = fake_twilio.fire(
            bot_sid, idempotency_token=long_token, date_fired=fired, current_value="9" * 100, via_url=bot.url
        )
        assert response.status_code == 200
    # Another long token sharing the first 300 characters is another firing.
    other = fake_twilio.fire(bot_sid, idempotency_token=long_token + "-2", date_fired="", via_url=bot.url)
    assert other.status_code == 200
    alerts_, rows = stored(bot.store)
    assert (len(alerts_), len(rows)) == (2, 2)
    assert alerts_[0].current_value == "9" * 64  # cut to the column; the parameters keep it whole
    assert json.loads(alerts_[0].params)["CurrentValue"] == "9" * 100


# --- refused callbacks change nothing ------------------------------------------------------------


def _no_signature(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    del cb.headers["X-Twilio-Signature"]
    return cb, bot_url


def _wrong_signature(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    cb.headers["X-Twilio-Signature"] = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    return cb, bot_url


def _empty_signature(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    cb.headers["X-Twilio-Signature"] = ""
    return cb, bot_url


def _another_token(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    cb.headers["X-Twilio-Signature"] = fake.signature(cb.url, cb.form, auth_token="some-other-accounts-token")
    return cb, bot_url


def _tampered_value(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    form = [(k, "999999" if k == "CurrentValue" else v) for k, v in cb.form]
    assert form != cb.form
    return replace(cb, form=form), bot_url


def _added_parameter(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    return replace(cb, form=[*cb.form, ("Extra", "1")]), bot_url


def _tampered_channel(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    assert "channel=C0ALERTS" in cb.url
    return replace(cb, url=cb.url.replace("channel=C0ALERTS", "channel=C0EVIL")), bot_url


def _extra_query(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    return replace(cb, url=cb.url + "&x=1"), bot_url


def _signed_over_the_delivery_url(fake: FakeTwilio, cb: Callback, bot_url: str) -> tuple[Callback, str]:
    # Twilio signs the public URL; a signature over where the request arrived proves nothing.
    local = cb.target(bot_url)
    cb.headers["X-Twilio-Signature"] = fake.signature(local, cb.form)
    return cb, bot_url


REFUSED = [
    _no_signature,
    _empty_signature,
    _wrong_signature,
    _another_token,
    _tampered_value,
    _added_parameter,
    _tampered_channel,
    _extra_query,
    _signed_over_the_delivery_url,
]


@pytest.mark.parametrize("tamper", REFUSED, ids=[f.__name__.strip("_") for f in REFUSED])
def test_a_callback_that_does_not_verify_gets_403_and_changes_nothing(
    sqlite_bot: Bot, fake_twilio: FakeTwilio, tamper: Callable[..., tuple[Callback, str]]
) -> None:
    bot = sqlite_bot
    callback, via = tamper(fake_twilio, fake_twilio.callback(sms_trigger(fake_twilio)), bot.url)
    response = callback.send(via)
    assert response.status_code == 403
    assert_nothing_stored(bot.store)


def test_a_callback_replayed_to_another_path_is_refused(sqlite_bot: Bot, fake_twilio: FakeTwilio) -> None:
    bot = sqlite_bot
    callback = fake_twilio.callback(sms_trigger(fake_twilio))
    # Signed for /twilio/usage-triggers, sent to /twilio/usage-triggers/ : no such route.
    response = callback.send(f"{bot.url}/twilio/usage-triggers/?channel=C0ALERTS")
    assert response.status_code == 404
    assert_nothing_stored(bot.store)


@pytest.mark.parametrize("case", ["query not signed", "query signed twice", "query tampered"])
def test_a_get_callback_must_be_signed_over_its_full_query(sqlite_bot: Bot, fake_twilio: FakeTwilio, case: str) -> None:
    bot = sqlite_bot
    callback = fake_twilio.callback(sms_trigger(fake_twilio, method="GET"))
    if case == "query not signed":
        callback.headers["X-Twilio-Signature"] = fake_twilio.signature(f"{CALLBACK_URL}?channel=C0ALERTS")
    elif case == "query signed twice":  # the parameters appended again, as a POST body would be
        callback.headers["X-Twilio-Signature"] = fake_twilio.signature(callback.url, callback.params)
    else:
        callback.url = callback.url.replace("CurrentValue=1000", "CurrentValue=5")
    assert callback.send(bot.url).status_code == 403
    assert_nothing_stored(bot.store)


def test_an_oversized_callback_is_refused_with_413(sqlite_bot: Bot, fake_twilio: FakeTwilio) -> None:
    bot = sqlite_bot
    callback = fake_twilio.callback(sms_trigger(fake_twilio), extra={"Padding": "x" * (70 * 1024)})
    response = callback.send(bot.url)
    assert response.status_code == 413
    assert_nothing_stored(bot.store)


# --- which channel ---------------------------------------------------------------------------------


def test_a_callback_naming_no_channel_goes_to_alert_channel(start_bot: Starter, fake_twilio: FakeTwilio) -> None:
    bot = start_bot(alert_channel="C0FALLBACK")
    sid = sms_trigger(fake_twilio, channel=None)
    assert fake_twilio.fire(sid, via_url=bot.url).status_code == 200
    [alert], [row] = stored(bot.store)
    assert alert.requested_channel == ""
    assert (row.channel, row.status) == ("C0FALLBACK", "pending")
    # The callback's own channel still wins over ALERT_CHANNEL.
    assert fake_twilio.fire(sms_trigger(fake_twilio), via_url=bot.url).status_code == 200
    assert [r.channel for r in stored(bot.store)[1]] == ["C0FALLBACK", "C0ALERTS"]


def test_with_no_channel_anywhere_the_alert_is_kept_as_failed(bot: Bot, fake_twilio: FakeTwilio) -> None:
    # The shared app has no ALERT_CHANNEL.
    sid = sms_trigger(fake_twilio, channel=None)
    assert fake_twilio.fire(sid, via_url=bot.url).status_code == 200
    [alert], [row] = stored(bot.store)
    assert alert.trigger_sid == sid
    assert (row.alert_id, row.status, row.channel) == (alert.id, "failed", "")
    assert "ALERT_CHANNEL" in row.last_error


# --- durability ------------------------------------------------------------------------------------


def test_a_database_failure_answers_503_and_twilios_retry_is_stored(bot: Bot, fake_twilio: FakeTwilio) -> None:
    callback = fake_twilio.callback(sms_trigger(fake_twilio), idempotency_token="tok-1", date_fired=FIRED)
    working = bot.store.engine
    # Nothing listens on port 1: every write fails.
    bot.store.engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    try:
        response = callback.send(bot.url)
    finally:
        bot.store.engine.dispose()
        bot.store.engine = working
    assert response.status_code == 503
    assert_nothing_stored(bot.store)

    retry = replace(callback, headers={**callback.headers, "I-Twilio-Idempotency-Token": "tok-1"})
    assert retry.send(bot.url).status_code == 200
    alerts_, rows = stored(bot.store)
    assert (len(alerts_), len(rows)) == (1, 1)


def test_the_200_comes_after_the_commit(bot: Bot, fake_twilio: FakeTwilio) -> None:
    sid = sms_trigger(fake_twilio)
    assert fake_twilio.fire(sid, via_url=bot.url).status_code == 200
    # Another connection pool, as another worker would have: it must see the committed rows.
    fresh = Store.connect(normalize_database_url(bot.database_url))
    try:
        alerts_, rows = stored(fresh)
    finally:
        fresh.dispose()
    assert [a.trigger_sid for a in alerts_] == [sid]
    assert [(r.channel, r.status) for r in rows] == [("C0ALERTS", "pending")]
