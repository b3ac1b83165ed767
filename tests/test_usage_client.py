"""UsageClient against the fake Twilio over real loopback HTTP (requests is not patched)."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from bot.http_dates import parse_rfc2822
from bot.model import DateRange, Period
from bot.usage.client import MAX_SLEEP, UsageClient
from bot.usage.errors import TwilioError
from bot.usage.twilio_json import (
    parse_date,
    parse_decimal,
    parse_record,
    parse_trigger,
)
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, make_record

BACKOFF = 0.01
CALLBACK = "https://bot.example.com/twilio/usage-triggers?channel=C123"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(fake: FakeTwilio, sleeps: list[float]) -> Iterator[Callable[..., UsageClient]]:
    clients: list[UsageClient] = []

    def make(**kwargs: object) -> UsageClient:
        options: dict[str, object] = {
            "base_url": fake.url,
            "backoff": BACKOFF,
            "sleep": sleeps.append,  # record the backoff instead of waiting
            "timeout": (1.0, 2.0),
        }
        options.update(kwargs)
        token = options.pop("auth_token", fake.auth_token)
        client = UsageClient(fake.account_sid, token, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., UsageClient]) -> UsageClient:
    return make_client()


def account_path(fake: FakeTwilio, rest: str) -> str:
    return f"/2010-04-01/Accounts/{fake.account_sid}/{rest}"


# --- Usage Records ------------------------------------------------------------


@pytest.mark.parametrize("period", list(Period))
def test_each_period_reads_its_subresource(fake: FakeTwilio, client: UsageClient, period: Period) -> None:
    fake.set_records(period, [make_record("sms", count="12", price="0.0948"), make_record("totalprice", price="1")])

    records = client.records(period)

    assert [r.category for r in records] == ["sms", "totalprice"]
    assert records[0].count == Decimal("12")
    assert records[0].price == Decimal("0.0948")
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.path == account_path(fake, f"Usage/Records/{period.value}.json")
    assert request.query == {"PageSize": "1000"}


def test_date_range_reads_records_json_with_start_and_end(fake: FakeTwilio, client: UsageClient) -> None:
    fake.add_categories(3, period="Records")

    records = client.records(DateRange(date(2026, 11, 1), date(2026, 11, 20)))

    (request,) = fake.requests
    assert request.path == account_path(fake, "Usage/Records.json")
    assert request.query == {"StartDate": "2026-11-01", "EndDate": "2026-11-20", "PageSize": "1000"}
    assert len(records) == 3
    assert {(r.start_date, r.end_date) for r in records} == {(date(2026, 11, 1), date(2026, 11, 20))}


def test_no_period_reads_records_json_with_optional_filters(fake: FakeTwilio, client: UsageClient) -> None:
    fake.add_categories(4, period="Records")

    records = client.records(category="sms", start=date(2026, 1, 1), include_subaccounts=False)

    (request,) = fake.requests
    assert request.path == account_path(fake, "Usage/Records.json")
    assert request.query == {
        "Category": "sms",
        "StartDate": "2026-01-01",
        "IncludeSubaccounts": "false",
        "PageSize": "1000",
    }
    assert [r.category for r in records] == ["sms"]


def test_series_period_sends_dates_and_category(fake: FakeTwilio, client: UsageClient) -> None:
    days = [date(2026, 11, d) for d in range(1, 8)]
    fake.set_records(
        Period.DAILY, [make_record("sms", count=str(d.day), start_date=d, end_date=d) for d in days]
    )  # one record per day, like Daily.json

    records = client.records(Period.DAILY, "sms", start=date(2026, 11, 3), end=date(2026, 11, 5))

    assert [r.start_date for r in records] == [date(2026, 11, 3), date(2026, 11, 4), date(2026, 11, 5)]
    assert fake.requests[0].query == {
        "Category": "sms",
        "StartDate": "2026-11-03",
        "EndDate": "2026-11-05",
        "PageSize": "1000",
    }


def test_date_range_and_start_together_is_a_programming_error(client: UsageClient) -> None:
    with pytest.raises(ValueError):
        client.records(DateRange(date(2026, 1, 1), date(2026, 1, 2)), start=date(2026, 1, 1))


def test_account_sid_reads_another_accounts_path(fake: FakeTwilio, client: UsageClient) -> None:
    sub = "AC" + "b2" * 16
    fake.add_subaccount(sub)
    fake.set_records(Period.TODAY, [make_record("calls", account_sid=sub, count="3")], account_sid=sub)

    records = client.records(Period.TODAY, account_sid=sub)

    assert [(r.category, r.account_sid) for r in records] == [("calls", sub)]
    assert fake.requests[0].path == f"/2010-04-01/Accounts/{sub}/Usage/Records/Today.json"


def test_paging_follows_next_page_uri_across_three_pages(fake: FakeTwilio, client: UsageClient) -> None:
    fake.set_records(Period.THIS_MONTH, [make_record(f"cat-{i:04d}", count=str(i)) for i in range(2500)])

    records = client.records(Period.THIS_MONTH)

    assert [r.category for r in records] == [f"cat-{i:04d}" for i in range(2500)]
    assert client.request_count == 3
    first, second, third = fake.requests
    assert "PageToken" not in first.query
    assert second.query["PageToken"] and third.query["PageToken"]
    assert second.query["PageToken"] != third.query["PageToken"]
    assert {r.path for r in fake.requests} == {account_path(fake, "Usage/Records/ThisMonth.json")}


def test_thousand_categories_cost_one_request(fake: FakeTwilio, client: UsageClient) -> None:
    fake.add_categories(1000)

    records = client.records(Period.TODAY)

    assert len(records) == 1000
    assert len({r.category for r in records}) == 1000
    assert client.request_count == 1
    total = next(r for r in records if r.category == "totalprice")
    assert total.price == sum(r.price for r in records if r.category != "totalprice")


def test_next_page_uri_never_leaves_the_configured_host(client: UsageClient, fake: FakeTwilio) -> None:
    # Credentials go with every request, so an absolute next_page_uri must not redirect them.
    assert client._url("https://evil.example/2010-04-01/x.json?PageToken=PA1") == (
        fake.url + "/2010-04-01/x.json?PageToken=PA1"
    )


# --- parsing ------------------------------------------------------------------


def test_records_parse_whatever_types_twilio_sends(fake: FakeTwilio, client: UsageClient) -> None:
    weird = [
        make_record("sms", price="1.50", count="10"),
        make_record("calls", price=2, count=None, usage="7"),
        make_record("mms", price=0.25, count=""),
        make_record("lookups", price=None, start_date="not-a-date", end_date="2026-13-45"),
        make_record("recordings", price="", count="lots"),
        "not a record",
        42,
        None,
    ]
    fake.set_records(Period.TODAY, weird)  # type: ignore[arg-type]

    by_category = {r.category: r for r in client.records(Period.TODAY)}

    assert set(by_category) == {"sms", "calls", "mms", "lookups", "recordings"}
    assert by_category["sms"].price == Decimal("1.50")
    assert by_category["sms"].count == Decimal("10")
    assert by_category["calls"].price == Decimal("2")
    assert by_category["calls"].count is None
    assert by_category["calls"].usage == Decimal("7")
    assert by_category["mms"].price == Decimal("0.25")  # via str(): no binary float noise
    assert by_category["mms"].count is None
    assert by_category["lookups"].price is None
    assert by_category["lookups"].start_date is None
    assert by_category["lookups"].end_date is None
    assert by_category["recordings"].price is None
    assert by_category["recordings"].count is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2192.84855", Decimal("2192.84855")),
        (" 3 ", Decimal("3")),
        (7, Decimal("7")),
        (0.1, Decimal("0.1")),
        (None, None),
        ("", None),
        ("n/a", None),
        ("NaN", None),
        ("Infinity", None),
        (True, None),
        ({"a": 1}, None),
    ],
)
def test_parse_decimal(raw: object, expected: Decimal | None) -> None:
    assert parse_decimal(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-20", date(2026, 11, 20)),
        ("2026-11-20T00:00:00+00:00", date(2026, 11, 20)),
        ("2026-02-30", None),
        ("20/11/2026", None),
        ("", None),
        (None, None),
        (20261120, None),
    ],
)
def test_parse_date(raw: object, expected: date | None) -> None:
    assert parse_date(raw) == expected


def test_parse_rfc2822() -> None:
    assert parse_rfc2822("Sun, 06 Sep 2015 12:58:45 +0000") == datetime(2015, 9, 6, 12, 58, 45, tzinfo=UTC)
    assert parse_rfc2822("Sun, 06 Sep 2015 12:58:45 -0000").tzinfo is not None  # type: ignore[union-attr]
    for garbage in (None, "", "yesterday", "Sun, 99 Foo 2015", 12):
        assert parse_rfc2822(garbage) is None


@pytest.mark.parametrize(("raw", "expected"), [("", ""), (None, ""), ("alltime", ""), ("monthly", "monthly")])
def test_parse_trigger_normalises_recurring(raw: object, expected: str) -> None:
    trigger = parse_trigger({"sid": "UT1", "usage_category": "sms", "recurring": raw, "trigger_value": 1000})
    assert trigger.recurring == expected
    assert trigger.trigger_value == "1000"
    assert trigger.callback_method == "POST"
    assert trigger.date_fired is None


def test_parse_record_of_an_empty_dict_is_empty_not_an_error() -> None:
    record = parse_record({})
    assert record.category == ""
    assert record.price is None
    assert record.price_unit == "usd"


# --- retries ------------------------------------------------------------------


def test_503_twice_then_success(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    fake.add_categories(2, period=Period.TODAY)
    fake.fail_next(2, status=503)

    records = client.records(Period.TODAY)

    assert len(records) == 2
    assert client.request_count == 3
    assert len(fake.requests) == 3
    # Exponential backoff with up to 50 % jitter.
    assert BACKOFF <= sleeps[0] <= BACKOFF * 1.5
    assert BACKOFF * 2 <= sleeps[1] <= BACKOFF * 3


def test_429_retry_after_is_honoured(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    fake.add_categories(2, period=Period.TODAY)
    fake.fail_next(1, status=429, headers={"Retry-After": "2"})

    assert len(client.records(Period.TODAY)) == 2
    assert sleeps == [2.0]


def test_retry_after_is_capped_and_accepts_an_http_date(
    fake: FakeTwilio, client: UsageClient, sleeps: list[float]
) -> None:
    fake.add_categories(1, period=Period.TODAY)
    fake.fail_next(1, status=429, headers={"Retry-After": "120"})
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    fake.fail_next(1, status=503, headers={"Retry-After": soon})

    client.records(Period.TODAY)

    assert sleeps[0] == MAX_SLEEP
    assert 0 <= sleeps[1] <= 3.5


def test_persistent_5xx_raises_after_max_retries(
    fake: FakeTwilio, make_client: Callable[..., UsageClient], sleeps: list[float]
) -> None:
    client = make_client(max_retries=2)
    fake.fail_next(10, status=500)

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.status == 500
    assert "unavailable" in caught.value.user_message
    assert "HTTP 500" in caught.value.user_message
    assert client.request_count == 3
    assert len(sleeps) == 2


def test_html_error_page_becomes_a_twilio_error(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    client = make_client(max_retries=0)
    fake.fail_next(1, status=502, body="<html><body><h1>502 Bad Gateway</h1></body></html>")

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.status == 502
    assert caught.value.code is None
    assert caught.value.message == "HTTP 502 Bad Gateway"
    assert "unavailable" in caught.value.user_message


def test_a_success_that_is_not_json_is_a_twilio_error(fake: FakeTwilio, client: UsageClient) -> None:
    fake.fail_next(1, status=200, body="<html>captive portal</html>")

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.status == 200
    assert client.request_count == 1
    assert "did not understand" in caught.value.user_message


def test_post_is_not_retried_on_500(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    fake.fail_next(1, status=500)

    with pytest.raises(TwilioError) as caught:
        client.create_trigger("sms", "1000", callback_url=CALLBACK)

    assert caught.value.status == 500
    assert len(fake.requests_to("Usage/Triggers.json", "POST")) == 1
    assert sleeps == []


def test_post_is_retried_on_429(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    fake.fail_next(1, status=429, headers={"Retry-After": "1"})

    trigger = client.create_trigger("sms", "1000", callback_url=CALLBACK)

    assert len(fake.requests_to("Usage/Triggers.json", "POST")) == 2
    assert list(fake.triggers) == [trigger.sid]
    assert sleeps == [1.0]


def test_429_exhausted_tells_the_user_to_wait(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    client = make_client(max_retries=1)
    fake.fail_next(5, status=429)

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.code == 20429
    assert caught.value.user_message == "Twilio is rate-limiting us right now; try again in a minute."


def test_other_4xx_is_not_retried(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    with pytest.raises(TwilioError) as caught:
        client.create_trigger("no-such-category", "1000", callback_url=CALLBACK)

    assert caught.value.status == 400
    assert caught.value.user_message.startswith("Twilio refused that: ")
    assert "no-such-category" in caught.value.user_message
    assert client.request_count == 1
    assert sleeps == []


# --- auth and secrets ---------------------------------------------------------


def test_wrong_token_is_a_credentials_error_that_never_shows_the_token(
    fake: FakeTwilio, make_client: Callable[..., UsageClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-0123456789abcdef"
    client = make_client(auth_token=wrong)

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    error = caught.value
    assert (error.status, error.code) == (401, 20003)
    assert error.more_info == "https://www.twilio.com/docs/errors/20003"
    assert "TWILIO_AUTH_TOKEN" in error.user_message
    assert client.request_count == 1  # a 401 is not retried
    basic = base64.b64encode(f"{fake.account_sid}:{wrong}".encode()).decode()
    for text in (str(error), repr(error), error.user_message, repr(client), caplog.text):
        assert wrong not in text
        assert basic not in text
    assert "Records/Today.json" in caplog.text  # the request was logged, without its credentials


def test_requests_and_retries_are_logged(
    fake: FakeTwilio, client: UsageClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.usage.client")
    fake.add_categories(1, period=Period.TODAY)
    fake.fail_next(1, status=503)

    client.records(Period.TODAY)

    ours = [r for r in caplog.records if r.name == "bot.usage.client"]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    debugs = [r.getMessage() for r in ours if r.levelno == logging.DEBUG]
    assert len(warnings) == 1 and "503" in warnings[0] and "retry 1/3" in warnings[0]
    assert any("GET /2010-04-01/" in m and "-> 200" in m and " ms" in m for m in debugs)
    assert AUTH_TOKEN not in caplog.text


def test_api_key_is_used_instead_of_the_auth_token(make_client: Callable[..., UsageClient]) -> None:
    key, secret = "SK" + "c3" * 16, "api-secret-value"
    with FakeTwilio(api_key=key, api_secret=secret) as fake:
        fake.add_categories(2, period=Period.TODAY)
        # The auth token is wrong: only the key can make this work.
        with_key = make_client(base_url=fake.url, auth_token="wrong", api_key=key, api_secret=secret)
        assert len(with_key.records(Period.TODAY)) == 2
        # The token is right but the key's secret is wrong: the key must still be what is sent.
        bad_secret = make_client(base_url=fake.url, auth_token=fake.auth_token, api_key=key, api_secret="nope")
        with pytest.raises(TwilioError) as caught:
            bad_secret.records(Period.TODAY)
        assert caught.value.code == 20003


# --- no answer ----------------------------------------------------------------


def test_connection_refused_is_retried_then_raised(
    make_client: Callable[..., UsageClient], sleeps: list[float]
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}", max_retries=2)

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.status is None
    assert caught.value.message == "could not reach Twilio"
    assert caught.value.user_message.startswith("Twilio is unavailable right now (could not reach Twilio)")
    assert len(sleeps) == 2
    assert client.request_count == 3


def test_read_timeout_is_retried_then_raised(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    client = make_client(timeout=(1.0, 0.15), max_retries=2)
    fake.delay = 0.4

    with pytest.raises(TwilioError) as caught:
        client.records(Period.TODAY)

    assert caught.value.status is None
    assert "unavailable" in caught.value.user_message
    assert len(fake.requests) == 3


def test_post_is_not_resent_after_a_read_timeout(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    client = make_client(timeout=(1.0, 0.15))
    fake.delay = 0.3

    with pytest.raises(TwilioError):
        client.create_trigger("sms", "1000", callback_url=CALLBACK)

    # Twilio may still have created it, which is why the POST must not be sent twice.
    deadline = time.monotonic() + 2
    while not fake.triggers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(fake.triggers) == 1
    assert len(fake.requests_to("Usage/Triggers.json", "POST")) == 1


# --- Usage Triggers -----------------------------------------------------------


def test_create_trigger_sends_what_twilio_needs(fake: FakeTwilio, client: UsageClient) -> None:
    trigger = client.create_trigger(
        "sms",
        "+1000",
        callback_url=CALLBACK,
        trigger_by="count",
        recurring="monthly",
        friendly_name="Too many texts",
    )

    assert fake.trigger_forms[trigger.sid] == {
        "UsageCategory": "sms",
        "TriggerValue": "+1000",  # %2B on the wire; a bare + would have arrived as a space
        "CallbackUrl": CALLBACK,
        "CallbackMethod": "POST",
        "TriggerBy": "count",
        "Recurring": "monthly",
        "FriendlyName": "Too many texts",
    }
    (request,) = fake.requests
    assert (request.method, request.path) == ("POST", account_path(fake, "Usage/Triggers.json"))
    assert trigger.sid.startswith("UT") and len(trigger.sid) == 34
    assert (trigger.usage_category, trigger.trigger_value, trigger.trigger_by) == ("sms", "+1000", "count")
    assert (trigger.recurring, trigger.friendly_name, trigger.callback_url) == ("monthly", "Too many texts", CALLBACK)
    assert trigger.date_created is not None and trigger.date_created.tzinfo is not None


def test_create_one_shot_trigger_omits_recurring_and_name(fake: FakeTwilio, client: UsageClient) -> None:
    trigger = client.create_trigger("totalprice", "25.00", callback_url=CALLBACK, trigger_by="price")

    form = fake.trigger_forms[trigger.sid]
    assert "Recurring" not in form and "FriendlyName" not in form
    assert trigger.recurring == ""
    assert trigger.trigger_by == "price"


def test_create_trigger_without_callback_is_refused(fake: FakeTwilio, client: UsageClient) -> None:
    with pytest.raises(TwilioError) as caught:
        client.create_trigger("sms", "1000", callback_url="")

    assert caught.value.status == 400
    assert caught.value.code == 21201
    assert "CallbackUrl" in caught.value.user_message
    assert fake.triggers == {}


def test_list_and_delete_triggers(fake: FakeTwilio, client: UsageClient) -> None:
    sms = client.create_trigger("sms", "1000", callback_url=CALLBACK)
    calls = client.create_trigger("calls", "+50", callback_url=CALLBACK, trigger_by="usage")

    assert [t.sid for t in client.list_triggers()] == [sms.sid, calls.sid]
    assert [t.sid for t in client.list_triggers("calls")] == [calls.sid]
    assert fake.requests_to("Usage/Triggers.json", "GET")[-1].query == {"UsageCategory": "calls", "PageSize": "1000"}
    assert [t for t in client.list_triggers() if t.sid == calls.sid] == [calls]

    client.delete_trigger(sms.sid)

    assert list(fake.triggers) == [calls.sid]
    assert fake.requests[-1].method == "DELETE"
    assert fake.requests[-1].path == account_path(fake, f"Usage/Triggers/{sms.sid}.json")


def test_list_triggers_follows_pages(fake: FakeTwilio, client: UsageClient) -> None:
    template = client.create_trigger("sms", "1000", callback_url=CALLBACK)
    original = fake.triggers[template.sid]
    for i in range(1500):  # more than one page of 1,000
        sid = f"UT{i:032x}"
        fake.triggers[sid] = {**original, "sid": sid}
    client.request_count = 0

    triggers = client.list_triggers()

    assert len(triggers) == 1501
    assert client.request_count == 2


def test_unknown_trigger_is_a_404(fake: FakeTwilio, client: UsageClient, sleeps: list[float]) -> None:
    missing = "UT" + "0" * 32
    with pytest.raises(TwilioError) as caught:
        client.delete_trigger(missing)

    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert caught.value.user_message.startswith("Twilio has no such resource: ")
    assert missing in caught.value.user_message
    assert sleeps == []


def test_a_sid_cannot_walk_to_another_path(fake: FakeTwilio, client: UsageClient) -> None:
    fake.add_categories(2, period="Records")

    with pytest.raises(TwilioError) as caught:
        client.delete_trigger("../Records")

    assert caught.value.status == 404
    assert fake.requests[0].path == account_path(fake, "Usage/Triggers/..%2FRecords.json")


# --- threads ------------------------------------------------------------------


def test_one_client_is_safe_to_share_between_threads(fake: FakeTwilio, client: UsageClient) -> None:
    fake.add_categories(20, period=Period.TODAY)
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(len(client.records(Period.TODAY)))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert results == [20] * 80
    assert client.request_count == 80 == len(fake.requests)
