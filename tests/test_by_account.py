"""`/usage … by-account`: the Accounts list, per-subaccount usage, and the rendered breakdown.

Everything runs over real loopback HTTP against the fakes: the client against FakeTwilio, and the
whole app through a signed slash command whose answer arrives at FakeSlack's response_url.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from app import create_app
from bot.commands.answer import QueryBot
from bot.commands.queries import ACCOUNT_THREADS
from bot.commands.types import UsageQuery
from bot.model import Account, DateRange, Message, Period, UsageRecord
from bot.render.limits import check_limits
from bot.usage.client import UsageClient
from bot.usage.errors import TwilioError
from bot.usage.render_accounts import render_by_account
from bot.usage.sandbox import SampleAccount
from tests.conftest import ACCOUNT_SID, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record
from tests.servers import serving
from tests.slack_requests import sign, slash_command

ACCOUNTS_PATH = "/2010-04-01/Accounts.json"


def sub_sid(i: int) -> str:
    return f"AC{i:032x}"


def set_spend(fake: FakeTwilio, sid: str, total: str, *, sms: str | None = None, period: str = "Today") -> None:
    """An account's own usage: `totalprice`, and an `sms` record when given (price; 10 per cent)."""
    records = [
        make_record(
            "totalprice", account_sid=sid, count=None, usage=total, usage_unit="usd", price=total, description="Total"
        )
    ]
    if sms is not None:
        count = str(int(Decimal(sms) * 100))
        records.append(make_record("sms", account_sid=sid, count=count, count_unit="messages", price=sms))
    fake.set_records(period, records, account_sid=sid)


# --- the client: Accounts.json ----------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def make_client(fake: FakeTwilio) -> Iterator[Callable[..., UsageClient]]:
    clients: list[UsageClient] = []

    def make(sleeps: list[float] | None = None, **kwargs: Any) -> UsageClient:
        sleep = sleeps.append if sleeps is not None else (lambda _: None)
        client = UsageClient(fake.account_sid, fake.auth_token, base_url=fake.url, backoff=0.01, sleep=sleep, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_subaccounts_lists_every_subaccount_with_name_and_status(
    fake: FakeTwilio, make_client: Callable[..., UsageClient]
) -> None:
    fake.add_subaccount(sub_sid(1), friendly_name="Acme EU", status="active")
    fake.add_subaccount(sub_sid(2), friendly_name="Old client", status="closed")
    fake.add_subaccount(sub_sid(3), friendly_name="Paused", status="suspended")

    accounts = make_client().subaccounts()

    # The main account is in Twilio's list too, but it is not a subaccount.
    assert accounts == [
        Account(sub_sid(1), "Acme EU", "active"),
        Account(sub_sid(2), "Old client", "closed"),
        Account(sub_sid(3), "Paused", "suspended"),
    ]
    (request,) = fake.requests
    assert (request.method, request.path, request.query) == ("GET", ACCOUNTS_PATH, {"PageSize": "1000"})
    # Twilio lists each account's auth token; the parsed account has no place for it.
    assert [f.name for f in dataclasses.fields(Account)] == ["sid", "friendly_name", "status"]


def test_subaccounts_follow_next_page_uri(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    for i in range(1, 1501):  # with the main account, 1,501 accounts: two pages of 1,000
        fake.add_subaccount(sub_sid(i))

    client = make_client()
    accounts = client.subaccounts()

    assert [a.sid for a in accounts] == [sub_sid(i) for i in range(1, 1501)]
    assert client.request_count == 2
    first, second = fake.requests
    assert "PageToken" not in first.query and second.query["PageToken"]
    assert {r.path for r in fake.requests} == {ACCOUNTS_PATH}


def test_subaccounts_without_any_is_empty(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    assert make_client().subaccounts() == []


def test_subaccounts_retries_like_the_other_gets(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    fake.add_subaccount(sub_sid(1), friendly_name="Acme")
    fake.fail_next(2, status=503)
    sleeps: list[float] = []

    accounts = make_client(sleeps).subaccounts()

    assert [a.friendly_name for a in accounts] == ["Acme"]
    assert len(sleeps) == 2
    assert len(fake.requests_to("/Accounts.json")) == 3


def test_subaccounts_errors_become_twilio_errors(fake: FakeTwilio, make_client: Callable[..., UsageClient]) -> None:
    client = UsageClient(fake.account_sid, "wrong", base_url=fake.url)
    with pytest.raises(TwilioError) as caught:
        client.subaccounts()
    client.close()
    assert caught.value.status == 401
    assert "credentials" in caught.value.user_message
    assert "wrong" not in str(caught.value)


# --- the fake's IncludeSubaccounts, as the service relies on it ---------------------------


def test_include_subaccounts_sums_the_family_and_false_gives_the_main_account_only(
    fake: FakeTwilio, make_client: Callable[..., UsageClient]
) -> None:
    set_spend(fake, fake.account_sid, "10.00", sms="1.00")
    for i, total in ((1, "5.50"), (2, "0.25")):
        fake.add_subaccount(sub_sid(i))
        set_spend(fake, sub_sid(i), total, sms="0.10")
    client = make_client()

    family = {r.category: r for r in client.records(Period.TODAY)}
    own = {r.category: r for r in client.records(Period.TODAY, include_subaccounts=False)}
    sub = client.records(Period.TODAY, "totalprice", include_subaccounts=False, account_sid=sub_sid(1))

    assert family["totalprice"].price == Decimal("15.75")
    assert (family["sms"].price, family["sms"].count) == (Decimal("1.20"), Decimal("120"))
    assert family["totalprice"].account_sid == fake.account_sid
    assert own["totalprice"].price == Decimal("10.00")
    assert [(r.category, r.price) for r in sub] == [("totalprice", Decimal("5.50"))]


# --- the whole app: a signed /usage … by-account --------------------------------------------


@pytest.fixture
def bot_url(fake_slack: FakeSlack, fake_twilio: FakeTwilio, sqlite_url: str) -> Iterator[str]:
    app = create_app(make_settings(fake_slack, fake_twilio, sqlite_url))
    with serving(app) as url:
        yield url
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)


def ask(bot_url: str, fake_slack: FakeSlack, text: str, key: str, timeout: float = 15) -> dict[str, Any]:
    """Send the slash command as Slack would and return the answer posted to response_url."""
    body = slash_command(text, fake_slack.response_url(key))
    ack = requests.post(f"{bot_url}/slack/events", data=body, headers=sign(body), timeout=10)
    assert ack.status_code == 200
    [answer] = fake_slack.wait_for_response(key, timeout=timeout)
    return answer


def section_lines(answer: dict[str, Any]) -> list[str]:
    return [line for b in answer["blocks"] if b["type"] == "section" for line in b["text"]["text"].split("\n")]


def context_text(answer: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in answer["blocks"] if b["type"] == "context" for e in b["elements"])


def account_lines(answer: dict[str, Any]) -> list[str]:
    return [line for line in section_lines(answer) if line.startswith("• ")]


def test_by_account_shows_the_total_the_main_account_then_subaccounts_by_spend(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    set_spend(fake_twilio, ACCOUNT_SID, "40.00")
    subs = [
        (1, "Small <!channel> & co", "active", "10.00"),
        (2, "Biggest", "active", "50.00"),
        (3, "Quiet", "active", "0"),
        (4, "Paused", "suspended", "0.004"),
        (5, "Also quiet", "active", "0"),
    ]
    for i, name, status, total in subs:
        fake_twilio.add_subaccount(sub_sid(i), friendly_name=name, status=status)
        set_spend(fake_twilio, sub_sid(i), total)
    fake_twilio.reset_requests()

    answer = ask(bot_url, fake_slack, "today by-account", "acct")

    assert answer["response_type"] == "ephemeral"
    assert answer["blocks"][0]["text"]["text"] == "Twilio usage by account · Today"
    assert "*All accounts:* $100.00 · main account + 5 subaccounts" in section_lines(answer)
    assert account_lines(answer) == [
        f"• *Main account* `{ACCOUNT_SID}` — *$40.00* · 40.0%",
        f"• *Biggest* `{sub_sid(2)}` — *$50.00* · 50.0%",
        f"• *Small &lt;!channel&gt; &amp; co* `{sub_sid(1)}` — *$10.00* · 10.0%",
        f"• *Paused* `{sub_sid(4)}` — *&lt;$0.01* · &lt;0.1% · _suspended_",
    ]
    assert "2 subaccounts with no spend" in context_text(answer)
    assert "All accounts: $100.00" in answer["text"].replace("*", "")

    # The family total (Twilio's default covers subaccounts), the main account's own usage,
    # one request per subaccount, and one page of the Accounts list.
    assert len(fake_twilio.requests) == 2 + len(subs) + 1
    records = [r for r in fake_twilio.requests if r.path.endswith("/Usage/Records/Today.json")]
    main_path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Usage/Records/Today.json"
    assert sorted(r.query.get("IncludeSubaccounts", "default") for r in records if r.path == main_path) == [
        "default",
        "false",
    ]
    assert {r.path for r in records if r.path != main_path} == {
        f"/2010-04-01/Accounts/{sub_sid(i)}/Usage/Records/Today.json" for i, *_ in subs
    }
    assert {r.query["Category"] for r in records} == {"totalprice"}
    assert len(fake_twilio.requests_to("/Accounts.json")) == 1


def test_by_account_with_a_category_shows_that_category_per_account(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    set_spend(fake_twilio, ACCOUNT_SID, "40.00", sms="1.00", period="ThisMonth")
    fake_twilio.add_subaccount(sub_sid(1), friendly_name="Texts a lot")
    set_spend(fake_twilio, sub_sid(1), "5.00", sms="3.00", period="ThisMonth")
    fake_twilio.add_subaccount(sub_sid(2), friendly_name="Voice only")
    set_spend(fake_twilio, sub_sid(2), "90.00", period="ThisMonth")
    fake_twilio.reset_requests()

    answer = ask(bot_url, fake_slack, "this-month sms by-account", "sms")

    assert answer["blocks"][0]["text"]["text"] == "Twilio usage by account · This month · sms"
    assert "*All accounts:* $4.00 · 400 messages · main account + 2 subaccounts" in section_lines(answer)
    assert account_lines(answer) == [
        f"• *Main account* `{ACCOUNT_SID}` — *$1.00* · 100 messages · 25.0%",
        f"• *Texts a lot* `{sub_sid(1)}` — *$3.00* · 300 messages · 75.0%",
    ]
    assert "1 subaccount with no `sms` usage" in context_text(answer)
    assert {r.query.get("Category") for r in fake_twilio.requests if "/Usage/" in r.path} == {"sms"}
    assert all(r.path.endswith("/ThisMonth.json") for r in fake_twilio.requests if "/Usage/" in r.path)


def test_a_failing_subaccount_is_shown_as_unavailable(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    set_spend(fake_twilio, ACCOUNT_SID, "1.00")
    fake_twilio.add_subaccount(sub_sid(1), friendly_name="Fine")
    set_spend(fake_twilio, sub_sid(1), "2.00")
    fake_twilio.add_subaccount(sub_sid(2), friendly_name="Closed one", status="closed")
    set_spend(fake_twilio, sub_sid(2), "3.00")
    fake_twilio.fail_account(sub_sid(2), 403, "Account is closed")
    fake_twilio.add_subaccount(sub_sid(3), friendly_name="Gone")
    fake_twilio.fail_account(sub_sid(3), 404)

    answer = ask(bot_url, fake_slack, "today by-account", "closed")

    assert "*All accounts:* $6.00 · main account + 3 subaccounts" in section_lines(answer)
    assert account_lines(answer) == [
        f"• *Main account* `{ACCOUNT_SID}` — *$1.00* · 16.7%",
        f"• *Fine* `{sub_sid(1)}` — *$2.00* · 33.3%",
        f"• *Closed one* `{sub_sid(2)}` — _unavailable_ · _closed_",
        f"• *Gone* `{sub_sid(3)}` — _unavailable_",
    ]
    assert "2 subaccounts unavailable" in context_text(answer)


def test_a_failing_family_total_fails_the_answer_with_a_reason(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.add_subaccount(sub_sid(1))
    fake_twilio.auth_token = "rotated"

    answer = ask(bot_url, fake_slack, "today by-account", "401")

    assert "credentials" in answer["text"]
    assert "rotated" not in str(answer)


def test_three_hundred_subaccounts_fit_in_one_message_with_bounded_concurrency(
    bot_url: str, fake_slack: FakeSlack, fake_twilio: FakeTwilio
) -> None:
    set_spend(fake_twilio, ACCOUNT_SID, "1000.00")
    n = 300
    for i in range(1, n + 1):
        # Long names with wide characters: the worst case for Slack's text budget.
        fake_twilio.add_subaccount(sub_sid(i), friendly_name=f"Customer {i:03d} 🚀 " + "x" * 50)
        set_spend(fake_twilio, sub_sid(i), "0" if i % 10 == 0 else f"{i}.25")
    fake_twilio.delay = 0.005  # long enough for requests to overlap
    fake_twilio.reset_requests()

    answer = ask(bot_url, fake_slack, "today by-account", "many", timeout=60)

    assert check_limits(Message(text=answer["text"], blocks=answer["blocks"])) == []
    assert len(fake_twilio.requests) == 2 + n + 1
    # Concurrent, but never more than the pool's bound against Twilio.
    assert 2 <= fake_twilio.max_in_flight <= ACCOUNT_THREADS

    lines = account_lines(answer)
    assert lines[0].startswith("• *Main account*")
    assert lines[1].startswith("• *Customer 299 🚀 xxx") and "$299.25" in lines[1]
    spenders = n - n // 10
    hidden = spenders + 1 - len(lines)
    assert hidden > 0
    notes = context_text(answer)
    assert f"… and {hidden:,} more accounts ($" in notes
    assert "30 subaccounts with no spend" in notes
    # What is hidden is the smallest spend, and the footer's sum matches it exactly.
    prices = sorted((Decimal(f"{i}.25") for i in range(1, n + 1) if i % 10), reverse=True)
    hidden_spend = sum(prices[len(lines) - 1 :])
    assert f"(${hidden_spend:,.2f})" in notes


def test_date_range_by_account_reads_records_json_for_each_account(fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_subaccount(sub_sid(1), friendly_name="Acme")
    for sid in (ACCOUNT_SID, sub_sid(1)):
        set_spend(fake_twilio, sid, "2.00", period="Records")
    with UsageClient(ACCOUNT_SID, fake_twilio.auth_token, base_url=fake_twilio.url) as client:
        message = QueryBot(client).answer(UsageQuery(DateRange(date(2026, 11, 1), date(2026, 11, 20)), by_account=True))

    assert "*All accounts:* $4.00" in message.text
    usage = [r for r in fake_twilio.requests if "/Usage/" in r.path]
    assert len(usage) == 3
    assert all(r.path.endswith("/Usage/Records.json") for r in usage)
    assert {(r.query["StartDate"], r.query["EndDate"]) for r in usage} == {("2026-11-01", "2026-11-20")}


def test_the_sample_account_explains_by_account_needs_twilio() -> None:
    message = QueryBot(SampleAccount(), sample=True).answer(UsageQuery(Period.TODAY, by_account=True))
    assert message.error
    assert "by-account" in message.text


# --- the renderer alone ------------------------------------------------------------------


def total(sid: str, price: str, unit: str = "usd") -> list[UsageRecord]:
    return [UsageRecord("totalprice", price=Decimal(price), price_unit=unit, account_sid=sid)]


def test_render_without_subaccounts_says_so() -> None:
    message = render_by_account(
        Period.YESTERDAY,
        family=total(ACCOUNT_SID, "3"),
        main=total(ACCOUNT_SID, "3"),
        main_sid=ACCOUNT_SID,
        subaccounts=[],
    )
    assert message.blocks[0]["text"]["text"] == "Twilio usage by account · Yesterday"
    assert f"• *Main account* `{ACCOUNT_SID}` — *$3.00* · 100.0%" in message.text
    assert "This account has no subaccounts." in message.text
    assert check_limits(message) == []


def test_render_orders_equal_spend_by_name_and_keeps_a_zero_total_without_shares() -> None:
    subs = [(Account(sub_sid(i), name, "active"), total(sub_sid(i), "0.50")) for i, name in ((1, "beta"), (2, "Alpha"))]
    message = render_by_account(
        Period.TODAY,
        family=total(ACCOUNT_SID, "0"),  # Twilio's figure wins, even when the parts disagree
        main=total(ACCOUNT_SID, "0"),
        main_sid=ACCOUNT_SID,
        subaccounts=subs,
        public=True,
    )
    lines = [line for line in message.text.split("\n") if line.startswith("• ")]
    assert lines == [
        f"• *Main account* `{ACCOUNT_SID}` — *$0.00*",
        f"• *Alpha* `{sub_sid(2)}` — *$0.50*",
        f"• *beta* `{sub_sid(1)}` — *$0.50*",
    ]
    assert message.public


def test_render_shows_no_share_in_another_currency() -> None:
    message = render_by_account(
        Period.TODAY,
        family=total(ACCOUNT_SID, "10"),
        main=total(ACCOUNT_SID, "10"),
        main_sid=ACCOUNT_SID,
        subaccounts=[(Account(sub_sid(1), "EU", "active"), total(sub_sid(1), "2", unit="eur"))],
    )
    assert f"• *EU* `{sub_sid(1)}` — *€2.00*" in message.text.split("\n")
