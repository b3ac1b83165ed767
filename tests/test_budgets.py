"""Budgets: the Twilio price trigger behind each (set, replaced, removed through the service, with
FakeTwilio over loopback HTTP), the projection, the early warning once per period, and the
"on pace for" line of `/usage this-month`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import select

from bot import audit
from bot.alerts import triggers
from bot.commands.answer import Invoker, UsageBot
from bot.commands.types import ListBudgets, RemoveBudget, SetBudget, UsageQuery
from bot.model import Message, Period
from bot.render.limits import check_limits
from bot.render.plain import render_plain
from bot.reports import budgets
from bot.reports.budgets import budget_period, check_budget, project_spend, projection_ready
from bot.reports.model import Budget, BudgetCheck
from bot.reports.render_budgets import render_budget_warning, render_budgets_list
from bot.reports.scheduler import run_due
from bot.slack import SlackPoster
from bot.store import Store
from bot.store.schema import report_runs
from bot.usage.client import UsageClient
from tests.conftest import PUBLIC_URL
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, make_record

NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
HALFWAY = datetime(2026, 11, 16, tzinfo=UTC)  # 15 of November's 30 days gone
OPS = Invoker(user_id="U0PAT", channel_id="C0OPS")
TRIGGERS = "/Usage/Triggers.json"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def bot(store: Store, usage: UsageClient) -> UsageBot:
    return UsageBot(usage, store=store, public_url=PUBLIC_URL)


def load_daily(twilio: FakeTwilio, days: dict[date, dict[str, str]]) -> None:
    records = [
        make_record(category, price=price, start_date=day, end_date=day)
        for day, prices in days.items()
        for category, price in prices.items()
    ]
    twilio.set_records("Daily", records)


def november_spend(total_by_the_15th: int = 310) -> dict[date, dict[str, str]]:
    """$20 a day from the 1st to the 14th, then whatever brings the 15th's total to the figure."""
    days = {date(2026, 11, d): {"totalprice": "20", "sms": "12"} for d in range(1, 15)}
    days[date(2026, 11, 15)] = {"totalprice": str(total_by_the_15th - 280), "sms": "12"}
    return days


def created(twilio: FakeTwilio) -> list[dict[str, str]]:
    return [r.form for r in twilio.requests_to(TRIGGERS, "POST")]


def deleted(twilio: FakeTwilio) -> list[str]:
    return [r.path.rsplit("/", 1)[1].removesuffix(".json") for r in twilio.requests if r.method == "DELETE"]


def warnings(slack: FakeSlack) -> list[str]:
    return [p.text for p in slack.posted if p.text.startswith("On pace to spend")]


# --- projection: pure ---------------------------------------------------------------------------


def test_project_spend_is_linear_on_elapsed_time() -> None:
    assert project_spend(Decimal(310), NOVEMBER, DECEMBER, HALFWAY) == Decimal("620.00")
    ten_days = NOVEMBER + timedelta(days=10)
    assert project_spend(Decimal(100), NOVEMBER, DECEMBER, ten_days) == Decimal("300.00")
    day, next_day = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    assert project_spend(Decimal(10), day, next_day, day + timedelta(hours=6)) == Decimal("40.00")
    assert project_spend(Decimal("0.01"), day, next_day, day + timedelta(hours=7)) == Decimal("0.03")


def test_no_projection_from_the_first_moments_of_a_period() -> None:
    # A day: nothing extrapolated before 72 minutes (5% of it, and at least an hour).
    day, next_day = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    assert project_spend(Decimal(3), day, next_day, day + timedelta(minutes=30)) == Decimal(3)
    assert not projection_ready(day, next_day, day + timedelta(minutes=71))
    assert projection_ready(day, next_day, day + timedelta(minutes=72))
    # A month: not before a day and a half (a fee charged on the 1st is not a pace).
    assert project_spend(Decimal(50), NOVEMBER, DECEMBER, NOVEMBER + timedelta(days=1)) == Decimal(50)
    assert project_spend(Decimal(50), NOVEMBER, DECEMBER, NOVEMBER + timedelta(days=2)) == Decimal("750.00")
    # After the end, the spend is the spend.
    assert project_spend(Decimal(50), NOVEMBER, DECEMBER, DECEMBER + timedelta(hours=1)) == Decimal(50)


def test_budget_periods_are_gmt_days_and_months() -> None:
    paris_evening = datetime(2026, 12, 31, 23, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 22:30 GMT
    assert budget_period("monthly", paris_evening) == (
        DECEMBER,
        datetime(2027, 1, 1, tzinfo=UTC),
        "2026-12",
    )
    tokyo_morning = datetime(2027, 1, 1, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # still 31 Dec GMT
    assert budget_period("daily", tokyo_morning)[2] == "2026-12-31"
    with pytest.raises(ValueError):
        budget_period("weekly", HALFWAY)


def test_check_budget_warns_on_pace_and_not_once_crossed() -> None:
    on_pace = check_budget(Decimal(500), Decimal(310), NOVEMBER, DECEMBER, HALFWAY)
    assert on_pace.warn and on_pace.projected == Decimal("620.00") and on_pace.share == 0.5
    assert not check_budget(Decimal(700), Decimal(310), NOVEMBER, DECEMBER, HALFWAY).warn  # under pace
    assert not check_budget(Decimal(300), Decimal(310), NOVEMBER, DECEMBER, HALFWAY).warn  # crossed: the trigger's
    early = check_budget(Decimal(10), Decimal(9), NOVEMBER, DECEMBER, NOVEMBER + timedelta(hours=5))
    assert not early.warn and not early.ready


# --- set, replace, remove through the service ------------------------------------------------------


def test_setting_a_budget_creates_a_recurring_price_trigger_for_this_channel(
    bot: UsageBot, store: Store, fake_twilio: FakeTwilio
) -> None:
    answer = bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    assert not answer.error, answer.text
    [form] = created(fake_twilio)
    assert form["UsageCategory"] == "totalprice"
    assert form["TriggerBy"] == "price"
    assert form["TriggerValue"] == "500"
    assert form["Recurring"] == "monthly"
    assert form["CallbackUrl"] == f"{PUBLIC_URL}/twilio/usage-triggers?channel=C0OPS"
    [budget] = budgets.list_budgets(store)
    assert (budget.channel_id, budget.period, budget.category, budget.amount) == ("C0OPS", "monthly", "totalprice", 500)
    assert budget.trigger_sid in fake_twilio.triggers
    # The trigger is remembered like `/usage trigger`'s, so its alerts name who set it up.
    assert triggers.owners(store)[budget.trigger_sid] == ("C0OPS", "U0PAT")
    plain = render_plain(answer)
    assert "Budget set: $500.00 a month for total spend" in plain and budget.trigger_sid in plain
    assert check_limits(answer) == []
    assert [e.action for e in audit.latest(store, 2)] == ["budget.set", "trigger.create"]


def test_a_category_budget_per_day(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    answer = bot.answer(SetBudget(Decimal("12.50"), "daily", "sms"), OPS)
    assert not answer.error, answer.text
    [form] = created(fake_twilio)
    assert (form["UsageCategory"], form["TriggerValue"], form["Recurring"]) == ("sms", "12.50", "daily")
    assert "$12.50 a day for `sms`" in answer.text


def test_replacing_a_budget_deletes_the_old_trigger_first(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    [old] = budgets.list_budgets(store)
    answer = bot.answer(SetBudget(Decimal(400), "monthly"), OPS)
    assert "Replaces the budget of $500.00" in answer.text
    [new] = budgets.list_budgets(store)
    assert new.id == old.id and new.amount == 400 and new.trigger_sid != old.trigger_sid
    assert deleted(fake_twilio) == [old.trigger_sid]
    methods = [r.method for r in fake_twilio.requests if "/Triggers" in r.path]
    assert methods == ["POST", "DELETE", "POST"]  # the old trigger goes before the new one comes
    assert list(fake_twilio.triggers) == [new.trigger_sid]
    assert old.trigger_sid not in triggers.owners(store)
    # Another channel's budget, or another period, is a budget of its own.
    bot.answer(SetBudget(Decimal(50), "daily"), OPS)
    bot.answer(SetBudget(Decimal(500), "monthly"), Invoker("U0SAM", "C0FIN"))
    assert len(budgets.list_budgets(store)) == 3 and len(fake_twilio.triggers) == 3


def test_a_failed_replacement_leaves_no_budget_without_its_trigger(
    bot: UsageBot, store: Store, fake_twilio: FakeTwilio
) -> None:
    bot.answer(SetBudget(Decimal(20), "daily", "sms"), OPS)
    fake_twilio.categories.discard("sms")  # Twilio now refuses the category
    answer = bot.answer(SetBudget(Decimal(30), "daily", "sms"), OPS)
    assert answer.error and "Twilio refused" in answer.text
    assert budgets.list_budgets(store) == [] and fake_twilio.triggers == {}


def test_removing_a_budget_deletes_its_trigger(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    [budget] = budgets.list_budgets(store)
    answer = bot.answer(RemoveBudget("monthly"), OPS)
    assert "Removed the budget of $500.00 a month for total spend" in answer.text
    assert deleted(fake_twilio) == [budget.trigger_sid] and fake_twilio.triggers == {}
    assert budgets.list_budgets(store) == []
    assert audit.latest(store, 1)[0].action == "budget.remove"
    again = bot.answer(RemoveBudget("monthly"), OPS)
    assert not again.error and "no monthly budget for total spend" in again.text


def test_removing_a_budget_whose_trigger_is_already_gone(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    bot.answer(SetBudget(Decimal(20), "daily", "sms"), OPS)
    fake_twilio.triggers.clear()  # deleted in Twilio's console
    answer = bot.answer(RemoveBudget("daily", "sms"), OPS)
    assert not answer.error and "Removed" in answer.text
    assert budgets.list_budgets(store) == []


def test_budgets_follow_the_trigger_permissions(store: Store, usage: UsageClient, fake_twilio: FakeTwilio) -> None:
    admins_only = UsageBot(usage, store=store, public_url=PUBLIC_URL, admins=frozenset({"U0BOSS"}))
    refused = admins_only.answer(SetBudget(Decimal(500), "monthly"), OPS)
    assert refused.error and "USAGE_ADMINS" in refused.text
    assert admins_only.answer(SetBudget(Decimal(500), "monthly"), Invoker("U0BOSS", "C0OPS")).error is False
    assert admins_only.answer(RemoveBudget("monthly"), OPS).error
    assert len(budgets.list_budgets(store)) == 1
    no_url = UsageBot(usage, store=store)
    assert "PUBLIC_URL" in no_url.answer(SetBudget(Decimal(5), "daily"), OPS).text
    assert len(created(fake_twilio)) == 1


def test_listing_budgets_shows_spend_so_far(bot: UsageBot, fake_twilio: FakeTwilio) -> None:
    bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    bot.answer(SetBudget(Decimal(1), "daily", "sms"), Invoker("U0SAM", "C0FIN"))
    today = datetime.now(UTC).date()
    load_daily(fake_twilio, {today: {"totalprice": "42", "sms": "2"}})
    plain = render_plain(bot.answer(ListBudgets(), Invoker("U0SAM", "C0FIN")))
    assert "Budgets (2)" in plain
    assert plain.index("#C0FIN") < plain.index("#C0OPS")
    assert "$500.00 a month for total spend · $42.00 spent" in plain
    assert "$1.00 a day for `sms` · $2.00 spent" in plain and "over budget" in plain


def test_budget_lists_and_warnings_stay_within_slacks_limits() -> None:
    many = [
        Budget(i, f"C{i:05d}", "monthly", "x" * 128, Decimal("1e15"), "UT" + "0" * 32, "U0PAT", 0.0) for i in range(500)
    ]
    check = BudgetCheck(Decimal("1e15"), Decimal("1e14"), Decimal("1e16"), 0.1, True)
    listed = render_budgets_list(many, checks={b.id: check for b in many})
    assert check_limits(listed) == [] and "more" in render_plain(listed)
    assert check_limits(render_budget_warning(many[0], check)) == []


# --- the warning, from `python -m bot digests` ------------------------------------------------------


def test_a_budget_on_pace_to_be_crossed_is_warned_once_per_period(
    bot: UsageBot,
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    bot.answer(SetBudget(Decimal(500), "monthly"), OPS)
    load_daily(fake_twilio, november_spend(310))
    fake_twilio.reset_requests()
    poster, lookup = clients
    report = run_due(store, usage, SlackPoster(store, poster, lookup), now=HALFWAY, tz=ZoneInfo("UTC"))
    assert (report.budgets_checked, report.warnings) == (1, 1)
    assert warnings(fake_slack) == [
        "On pace to spend $620.00 of your $500.00 monthly budget (50% through the month; $310.00 spent so far)."
    ]
    [post] = fake_slack.posted
    assert post.channel == "C0OPS" and post.metadata and post.metadata["event_type"] == "usage_digest"
    assert check_limits(Message(post.text, post.blocks)) == []
    # One request: the month so far, every category (shared by every budget of the month).
    [request] = fake_twilio.requests
    assert request.path.endswith("/Usage/Records.json")
    assert (request.query["StartDate"], request.query["EndDate"]) == ("2026-11-01", "2026-11-16")

    # Later the same month: no second warning, and no Twilio request to find that out.
    fake_twilio.reset_requests()
    later = run_due(
        store, usage, SlackPoster(store, poster, lookup), now=HALFWAY + timedelta(days=3), tz=ZoneInfo("UTC")
    )
    assert (later.budgets_checked, later.warnings) == (0, 0)
    assert fake_twilio.requests == [] and len(fake_slack.posted) == 1

    # December starts afresh.
    load_daily(fake_twilio, {date(2026, 12, d): {"totalprice": "40"} for d in range(1, 6)})
    december = run_due(
        store, usage, SlackPoster(store, poster, lookup), now=datetime(2026, 12, 6, tzinfo=UTC), tz=ZoneInfo("UTC")
    )
    assert december.warnings == 1
    assert warnings(fake_slack)[-1].startswith("On pace to spend $1,240.00 of your $500.00 monthly budget (16%")
    with store.engine.connect() as conn:
        keys = sorted(conn.execute(select(report_runs.c.period_key).where(report_runs.c.kind == "budget")).scalars())
    assert keys == ["2026-11", "2026-12"]


def test_no_warning_under_pace_once_crossed_or_too_early(
    bot: UsageBot,
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    poster, lookup = clients
    bot.answer(SetBudget(Decimal(700), "monthly"), OPS)  # $620 projected: under
    bot.answer(SetBudget(Decimal(300), "monthly"), Invoker("U0SAM", "C0FIN"))  # $310 spent: crossed
    load_daily(fake_twilio, november_spend(310))
    report = run_due(store, usage, SlackPoster(store, poster, lookup), now=HALFWAY, tz=ZoneInfo("UTC"))
    assert (report.budgets_checked, report.warnings) == (2, 0)
    load_daily(fake_twilio, {date(2026, 11, 1): {"totalprice": "250"}})  # a big first day ...
    early = run_due(
        store, usage, SlackPoster(store, poster, lookup), now=NOVEMBER + timedelta(hours=20), tz=ZoneInfo("UTC")
    )
    assert early.warnings == 0  # ... is no pace yet
    assert fake_slack.posted == []


def test_a_category_budget_per_day_is_warned(
    bot: UsageBot,
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    bot.answer(SetBudget(Decimal(30), "daily", "sms"), OPS)
    load_daily(fake_twilio, {date(2026, 11, 24): {"totalprice": "50", "sms": "10"}})
    poster, lookup = clients
    six_am = datetime(2026, 11, 24, 6, tzinfo=UTC)
    assert run_due(store, usage, SlackPoster(store, poster, lookup), now=six_am, tz=ZoneInfo("UTC")).warnings == 1
    assert warnings(fake_slack) == [
        "On pace to spend $40.00 of your $30.00 daily budget for `sms` (25% through the day; $10.00 spent so far)."
    ]


def test_changing_a_budget_lets_it_warn_again_this_period(
    bot: UsageBot,
    store: Store,
    usage: UsageClient,
    clients: tuple[WebClient, WebClient],
    fake_twilio: FakeTwilio,
    fake_slack: FakeSlack,
) -> None:
    poster, lookup = clients
    bot.answer(SetBudget(Decimal(600), "monthly"), OPS)
    load_daily(fake_twilio, november_spend(310))
    assert run_due(store, usage, SlackPoster(store, poster, lookup), now=HALFWAY, tz=ZoneInfo("UTC")).warnings == 1
    bot.answer(SetBudget(Decimal(550), "monthly"), OPS)
    assert run_due(store, usage, SlackPoster(store, poster, lookup), now=HALFWAY, tz=ZoneInfo("UTC")).warnings == 1
    assert [w.split(" budget")[0] for w in warnings(fake_slack)] == [
        "On pace to spend $620.00 of your $600.00 monthly",
        "On pace to spend $620.00 of your $550.00 monthly",
    ]


# --- "on pace for" in /usage this-month ---------------------------------------------------------------


def this_month(twilio: FakeTwilio, *, spent: str, as_of: str) -> None:
    twilio.set_records(
        Period.THIS_MONTH,
        [
            make_record("totalprice", price=spent, start_date="2026-11-01", end_date="2026-11-16", as_of=as_of),
            make_record("sms", price="120", count="9000", start_date="2026-11-01", end_date="2026-11-16", as_of=as_of),
        ],
    )


def test_this_month_shows_on_pace_for_from_the_same_request(bot: UsageBot, fake_twilio: FakeTwilio) -> None:
    this_month(fake_twilio, spent="310", as_of="2026-11-16T00:00:00+00:00")
    fake_twilio.reset_requests()
    answer = bot.answer(UsageQuery(Period.THIS_MONTH), OPS)
    plain = render_plain(answer)
    assert "On pace for $620.00 this month (GMT) at the current rate · 50% of the month gone" in plain
    assert "On pace for *$620.00* this month" in answer.text
    assert plain.index("Total spend: $310.00") < plain.index("On pace for") < plain.index("Sms")
    assert len(fake_twilio.requests) == 1
    assert check_limits(answer) == []


def test_this_month_early_on_says_it_is_too_early(bot: UsageBot, fake_twilio: FakeTwilio) -> None:
    this_month(fake_twilio, spent="40", as_of="2026-11-01T09:00:00+00:00")
    plain = render_plain(bot.answer(UsageQuery(Period.THIS_MONTH), OPS))
    assert "Too early in the month" in plain and "On pace for" not in plain


def test_other_periods_have_no_pace_line(bot: UsageBot, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(5)
    for period in (Period.TODAY, Period.LAST_MONTH):
        assert "pace" not in render_plain(bot.answer(UsageQuery(period), OPS)).lower()
