"""Who may do what (README, "Who may do what"): with USAGE_ADMINS set, only admins start or stop
alerting in a channel (triggers, budgets, digests); everyone reads usage and snoozes alerts, for
a day at most. Every refusal changes nothing but the audit trail, and is logged."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from app import create_app
from bot import audit
from bot.alerts import triggers as trigger_repo
from bot.commands.answer import Invoker, UsageBot
from bot.commands.permissions import MAX_SNOOZE_SECONDS, Guarded, may, refusal_text, snooze_seconds
from bot.commands.types import (
    CreateTrigger,
    DeleteTrigger,
    ListBudgets,
    ListDigests,
    ListFailedAlerts,
    ListTriggers,
    RemoveBudget,
    SetBudget,
    ShowAudit,
    SubscribeDigest,
    UnsubscribeDigest,
    UsageQuery,
)
from bot.model import Period
from bot.reports import budgets, subscriptions
from bot.store import Store
from bot.store.schema import budgets as budget_rows
from bot.store.schema import digests, snoozes, triggers
from bot.usage.client import UsageClient
from tests.conftest import PUBLIC_URL, make_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio
from tests.servers import serving
from tests.slack_requests import sign, slash_command

ADMIN = Invoker(user_id="U0BOSS", channel_id="C0OPS")
MEMBER = Invoker(user_id="U0PAT", channel_id="C0OPS")


@pytest.fixture
def bot(store: Store, usage: UsageClient) -> UsageBot:
    return UsageBot(usage, store=store, public_url=PUBLIC_URL, admins=frozenset({"U0BOSS"}))


def rows(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (triggers, budget_rows, digests, snoozes)
        }


def twilio_writes(twilio: FakeTwilio) -> list[str]:
    return [f"{r.method} {r.path}" for r in twilio.requests if r.method != "GET"]


def _untrigger(bot: UsageBot) -> DeleteTrigger:
    assert not bot.answer(CreateTrigger("sms", "+1000", "count"), ADMIN).error
    [sid] = trigger_repo.owners(bot.store)
    return DeleteTrigger(sid)


def _budget_off(bot: UsageBot) -> RemoveBudget:
    assert not bot.answer(SetBudget(Decimal(500), "monthly"), ADMIN).error
    return RemoveBudget("monthly")


def _digest_off(bot: UsageBot) -> UnsubscribeDigest:
    assert not bot.answer(SubscribeDigest("weekly"), ADMIN).error
    return UnsubscribeDigest()


# Each guarded command, set up (by an admin) so that it would change something if it were allowed.
GUARDED: list[tuple[str, Callable[[UsageBot], Any], Guarded, str]] = [
    ("trigger", lambda bot: CreateTrigger("sms", "+1000", "count"), Guarded.TRIGGER_CREATE, "sms +1000"),
    ("untrigger", _untrigger, Guarded.TRIGGER_DELETE, "UT"),
    ("budget", lambda bot: SetBudget(Decimal(500), "monthly"), Guarded.BUDGET_SET, "monthly"),
    ("budget off", _budget_off, Guarded.BUDGET_REMOVE, "monthly"),
    ("digest", lambda bot: SubscribeDigest("daily"), Guarded.DIGEST_SUBSCRIBE, "daily"),
    ("digest off", _digest_off, Guarded.DIGEST_UNSUBSCRIBE, ""),
]


@pytest.mark.parametrize(("name", "make", "action", "target"), GUARDED, ids=[g[0] for g in GUARDED])
def test_a_member_is_refused_audited_and_nothing_changes(
    bot: UsageBot,
    store: Store,
    fake_twilio: FakeTwilio,
    caplog: pytest.LogCaptureFixture,
    name: str,
    make: Callable[[UsageBot], Any],
    action: Guarded,
    target: str,
) -> None:
    command = make(bot)
    before, writes_before = rows(store), twilio_writes(fake_twilio)
    entries_before = len(audit.latest(store, 200))

    with caplog.at_level(logging.INFO, logger="bot.commands.permissions"):
        answer = bot.answer(command, MEMBER)

    assert answer.error and answer.text == f":warning: {refusal_text(action)}"
    assert "USAGE_ADMINS" in answer.text and "Traceback" not in answer.text
    assert rows(store) == before
    assert twilio_writes(fake_twilio) == writes_before
    entries = audit.latest(store, 200)
    assert len(entries) == entries_before + 1
    refused = entries[0]
    assert (refused.action, refused.user_id, refused.channel_id) == (f"refused.{action}", "U0PAT", "C0OPS")
    assert refused.target.startswith(target)
    [record] = [r for r in caplog.records if r.name == "bot.commands.permissions"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"refused {action} by U0PAT in C0OPS (not in USAGE_ADMINS)"


@pytest.mark.parametrize(("name", "make", "action", "target"), GUARDED, ids=[g[0] for g in GUARDED])
def test_an_admin_may(
    bot: UsageBot, store: Store, name: str, make: Callable[[UsageBot], Any], action: Guarded, target: str
) -> None:
    answer = bot.answer(make(bot), ADMIN)
    assert not answer.error, answer.text
    assert not any(e.action.startswith("refused.") for e in audit.latest(store, 200))


@pytest.mark.parametrize(("name", "make", "action", "target"), GUARDED, ids=[g[0] for g in GUARDED])
def test_without_usage_admins_everyone_may(
    store: Store, usage: UsageClient, name: str, make: Callable[[UsageBot], Any], action: Guarded, target: str
) -> None:
    open_bot = UsageBot(usage, store=store, public_url=PUBLIC_URL)
    answer = open_bot.answer(make(open_bot), Invoker(user_id="U0ANYONE", channel_id="C0OPS"))
    assert not answer.error, answer.text


def test_reading_stays_open_to_members(bot: UsageBot, store: Store, fake_twilio: FakeTwilio) -> None:
    fake_twilio.add_categories(3)
    bot.answer(SetBudget(Decimal(500), "monthly"), ADMIN)
    bot.answer(SubscribeDigest("daily"), ADMIN)
    for command in (
        UsageQuery(Period.TODAY),
        ListTriggers(),
        ListBudgets(),
        ListDigests(),
        ShowAudit(),
        ListFailedAlerts(),
    ):
        answer = bot.answer(command, MEMBER)
        assert not answer.error, (command, answer.text)
    assert not any(e.action.startswith("refused.") for e in audit.latest(store, 200))


def test_a_snooze_is_open_to_members_and_never_longer_than_a_day(bot: UsageBot, store: Store) -> None:
    now = bot.clock()
    assert bot.snooze("UT" + "1" * 32, MEMBER, 7 * 24 * 3600) == MAX_SNOOZE_SECONDS == 24 * 3600
    with store.engine.connect() as conn:
        [(until, by)] = conn.execute(select(snoozes.c.until, snoozes.c.created_by)).all()
    assert now + MAX_SNOOZE_SECONDS <= until <= bot.clock() + MAX_SNOOZE_SECONDS
    assert by == "U0PAT"
    [entry] = audit.latest(store)
    assert (entry.action, entry.user_id, entry.detail) == ("snooze", "U0PAT", "24 h")


def test_snooze_seconds_caps_and_floors() -> None:
    assert snooze_seconds(3600) == 3600
    assert snooze_seconds(86400) == 86400
    assert snooze_seconds(86401) == snooze_seconds(10**12) == MAX_SNOOZE_SECONDS
    assert snooze_seconds(-5) == 0


def test_may() -> None:
    assert may(frozenset(), "U0ANYONE")
    assert may(frozenset({"U0BOSS"}), "U0BOSS")
    assert not may(frozenset({"U0BOSS"}), "U0PAT")
    assert not may(frozenset({"U0BOSS"}), "")


def test_a_member_cannot_stop_the_admins_digest_through_slack(
    fake_slack: FakeSlack, fake_twilio: FakeTwilio, database_url: str
) -> None:
    app = create_app(make_settings(fake_slack, fake_twilio, database_url, usage_admins=frozenset({"U0BOSS"})))
    store: Store = app.extensions["usage_bot"]["store"]

    def ask(text: str, user_id: str) -> dict[str, Any]:
        key = uuid.uuid4().hex
        body = slash_command(text, fake_slack.response_url(key), user_id=user_id, channel_id="C0OPS")
        assert requests.post(f"{url}/slack/events", data=body, headers=sign(body), timeout=10).status_code == 200
        return fake_slack.wait_for_response(key, timeout=10)[0]

    with serving(app) as url:
        assert "digest" in ask("digest weekly at 09:00", "U0BOSS")["text"]
        refused = ask("digest off", "U0PAT")
    app.extensions["usage_bot"]["executor"].shutdown(wait=True)

    assert refused["response_type"] == "ephemeral" and "USAGE_ADMINS" in refused["text"]
    assert [(s.channel_id, s.cadence) for s in subscriptions.list_subscriptions(store)] == [("C0OPS", "weekly")]
    refusal, subscribed = audit.latest(store, 2)
    assert (refusal.action, refusal.user_id, refusal.channel_id) == ("refused.digest.unsubscribe", "U0PAT", "C0OPS")
    assert (subscribed.action, subscribed.user_id) == ("digest.subscribe", "U0BOSS")
    assert budgets.list_budgets(store) == []
    store.dispose()
