"""The parameters stored with an alert are capped: Twilio's own kept whole, others within bounds.

The end-to-end test sends a signed callback from FakeTwilio to the served app over loopback HTTP;
the others call `cap_params` / `parse_callback` (pure) directly.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app import create_app
from bot.alerts.receive import (
    DROPPED,
    KNOWN_PARAMS,
    MAX_OTHER_NAME,
    MAX_OTHER_PARAMS,
    MAX_OTHER_VALUE,
    MAX_PARAMS_JSON,
    cap_params,
    parse_callback,
)
from bot.store.schema import alerts, outbox
from tests.conftest import PUBLIC_URL, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving

CALLBACK_URL = f"{PUBLIC_URL}/twilio/usage-triggers?channel=C0ALERTS"
FIRED = "Sun, 04 Oct 2026 12:00:00 +0000"

# What Twilio sends (tests/fakes/twilio.py `FakeTwilio.callback`), plus the documented extras.
TWILIO_FIELDS = {
    "AccountSid": "AC" + "a" * 32,
    "ApiVersion": "2010-04-01",
    "UsageTriggerSid": "UT" + "b" * 32,
    "DateFired": FIRED,
    "Recurring": "monthly",
    "UsageCategory": "totalprice",
    "TriggerBy": "price",
    "TriggerValue": "60",
    "CurrentValue": "60.52",
    "UsageRecordUri": "/2010-04-01/Accounts/AC" + "a" * 32 + "/Usage/Records/ThisMonth.json?Category=totalprice",
    "IdempotencyToken": "UT" + "b" * 32 + "-" + "9" * 16,
    "FriendlyName": "Monthly cap",
    "CallbackUrl": CALLBACK_URL,
    "CallbackMethod": "POST",
}


def stored_json(params: dict[str, str]) -> str:
    """The `params` column as bot/alerts/outbox.py writes it."""
    return json.dumps(params, sort_keys=True)


@pytest.fixture
def served(fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str) -> Iterator[tuple[str, object]]:
    """The app on 127.0.0.1 (no delivery loop) and its store."""
    app = create_app(make_settings(fake_slack, fake_twilio, database_url))
    parts = app.extensions["usage_bot"]
    try:
        with serving(app) as url:
            yield url, parts["store"]
    finally:
        parts["executor"].shutdown(wait=True)
        parts["store"].dispose()


def test_a_callback_with_6000_extra_parameters_stores_at_most_4_kb_and_still_stores_the_alert(
    served: tuple[str, object], fake_twilio: FakeTwilio
) -> None:
    url, store = served
    sid = fake_twilio.add_trigger("sms", "1000", callback_url=CALLBACK_URL, trigger_by="count")["sid"]
    extra = {f"P{i:04d}": str(i % 10) for i in range(6000)}  # ~50 KB of form: within the app's 64 KB
    callback = fake_twilio.callback(sid, date_fired=FIRED, extra=extra)
    assert len(callback.form) == 10 + 6000  # signed over every parameter

    response = callback.send(url)

    assert response.status_code == 200
    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        [alert] = conn.execute(select(alerts)).all()
        [row] = conn.execute(select(outbox)).all()
    assert (alert.trigger_sid, alert.current_value, row.status) == (sid, "1000", "pending")
    assert len(alert.params.encode("utf-8")) <= MAX_PARAMS_JSON
    kept = json.loads(alert.params)
    twilio_sent = {k: v for k, v in callback.params.items() if k in KNOWN_PARAMS}
    assert kept.items() >= twilio_sent.items()  # Twilio's own parameters, whole
    others = [k for k in kept if k not in KNOWN_PARAMS and k != DROPPED]
    assert len(others) == MAX_OTHER_PARAMS
    assert all(kept[k] == extra[k] for k in others)  # kept ones are kept as sent
    assert kept[DROPPED] == str(6000 - len(others))


def test_twilio_parameters_are_kept_whole_and_nothing_is_marked_dropped_when_all_fit() -> None:
    params = dict(TWILIO_FIELDS, CurrentValue="9" * 100, IdempotencyToken="t" * 300, Custom="1")
    assert cap_params(params) == params
    assert DROPPED not in cap_params(params)


def test_other_parameters_beyond_twenty_are_dropped_and_counted() -> None:
    extra = {f"X{i}": str(i) for i in range(MAX_OTHER_PARAMS + 5)}
    kept = cap_params({**TWILIO_FIELDS, **extra})
    assert [k for k in kept if k.startswith("X")] == [f"X{i}" for i in range(MAX_OTHER_PARAMS)]  # first come
    assert kept[DROPPED] == "5"


def test_overlong_names_and_values_are_dropped_at_the_limits() -> None:
    params = {
        "UsageTriggerSid": "UT1",
        "n" * MAX_OTHER_NAME: "fits",
        "n" * (MAX_OTHER_NAME + 1): "name too long",
        "v": "v" * MAX_OTHER_VALUE,
        "w": "w" * (MAX_OTHER_VALUE + 1),
    }
    kept = cap_params(params)
    assert kept == {
        "UsageTriggerSid": "UT1",
        "n" * MAX_OTHER_NAME: "fits",
        "v": "v" * MAX_OTHER_VALUE,
        DROPPED: "2",
    }


def test_twenty_long_parameters_stop_at_4_kb() -> None:
    extra = {f"Long{i:02d}": "x" * MAX_OTHER_VALUE for i in range(MAX_OTHER_PARAMS)}
    kept = cap_params({**TWILIO_FIELDS, **extra})
    assert len(stored_json(kept)) <= MAX_PARAMS_JSON
    longs = [k for k in kept if k.startswith("Long")]
    assert 0 < len(longs) < MAX_OTHER_PARAMS
    assert kept[DROPPED] == str(MAX_OTHER_PARAMS - len(longs))
    # Nearly full: one more of them would not have fitted.
    assert len(stored_json(kept)) + len(json.dumps("Long99")) + MAX_OTHER_VALUE + 6 > MAX_PARAMS_JSON


def test_a_callback_parameter_named_like_the_marker_is_not_stored_as_sent() -> None:
    kept = cap_params({"UsageTriggerSid": "UT1", DROPPED: "0"})
    assert kept == {"UsageTriggerSid": "UT1", DROPPED: "1"}


@pytest.mark.parametrize("seed", range(20))
def test_the_stored_json_never_exceeds_4_kb(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = 'abcXYZ09_-é€"\\\n😀'  # multi-byte and escaped characters cost more in JSON
    extra = {
        "".join(rng.choices(alphabet, k=rng.randint(1, 70))): "".join(rng.choices(alphabet, k=rng.randint(0, 300)))
        for _ in range(rng.randint(0, 200))
    }
    params = {**TWILIO_FIELDS, **extra}
    kept = cap_params(params)
    assert len(stored_json(kept).encode("utf-8")) <= MAX_PARAMS_JSON
    assert {k: v for k, v in kept.items() if k in KNOWN_PARAMS} == TWILIO_FIELDS
    others = [k for k in kept if k not in KNOWN_PARAMS and k != DROPPED]
    assert all(kept[k] == params[k] for k in others)
    assert int(kept.get(DROPPED, "0")) == len(params) - len(TWILIO_FIELDS) - len(others)


def test_parsing_reads_the_alert_from_every_parameter_before_the_cap() -> None:
    extra = {f"Extra{i}": "x" for i in range(100)}
    alert = parse_callback({**TWILIO_FIELDS, **extra}, channel="C0ALERTS")
    assert alert is not None
    assert (alert.trigger_sid, alert.category, alert.current_value) == (
        TWILIO_FIELDS["UsageTriggerSid"],
        "totalprice",
        "60.52",
    )
    assert alert.dedupe_key == "token:" + TWILIO_FIELDS["IdempotencyToken"]
    assert alert.params[DROPPED] == str(100 - MAX_OTHER_PARAMS)
