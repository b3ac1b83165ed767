"""One use case, one transaction: when a later write of a use case fails, nothing of its earlier
writes is left behind, and a Twilio trigger it created is deleted again.

The failure is real: a database trigger refuses the use case's audit row, which is written
after the rows it records (the same on SQLite and PostgreSQL).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from bot.commands.answer import Invoker, UsageBot
from bot.commands.types import CreateTrigger, SetBudget, SubscribeDigest
from bot.store import Store
from bot.store.schema import audit, budgets, digests, triggers
from bot.usage.client import UsageClient
from tests.conftest import PUBLIC_URL
from tests.fakes.twilio import FakeTwilio

OPS = Invoker(user_id="U0PAT", channel_id="C0OPS")


@pytest.fixture
def bot(store: Store, usage: UsageClient) -> UsageBot:
    return UsageBot(usage, store=store, public_url=PUBLIC_URL)


def refuse_audit(store: Store, action: str) -> None:
    """From now on, the database refuses audit rows of `action` (and so their transaction)."""
    with store.transaction() as conn:
        if store.is_sqlite:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit "
                    f"WHEN NEW.action = '{action}' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.action = '{action}' THEN RAISE EXCEPTION 'audit refused'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse_audit()")
            )


def count(store: Store, table: object) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def test_a_trigger_whose_audit_row_fails_leaves_no_row_and_no_twilio_trigger(
    bot: UsageBot, store: Store, fake_twilio: FakeTwilio
) -> None:
    refuse_audit(store, "trigger.create")
    with pytest.raises(SQLAlchemyError):
        bot.create_trigger(CreateTrigger("sms", "1000", "count"), OPS)
    assert count(store, triggers) == 0
    assert count(store, audit) == 0
    assert fake_twilio.triggers == {}  # created, then deleted again


def test_a_budget_whose_audit_row_fails_leaves_no_budget_no_trigger_row_and_no_twilio_trigger(
    bot: UsageBot, store: Store, fake_twilio: FakeTwilio
) -> None:
    refuse_audit(store, "budget.set")
    with pytest.raises(SQLAlchemyError):
        bot.set_budget(SetBudget(Decimal(500), "monthly"), OPS)
    assert count(store, budgets) == 0
    assert count(store, triggers) == 0
    assert count(store, audit) == 0  # not even the trigger's own audit row
    assert fake_twilio.triggers == {}


def test_a_failed_budget_replacement_leaves_the_old_budget_removed_not_half_changed(
    bot: UsageBot, store: Store, fake_twilio: FakeTwilio
) -> None:
    bot.set_budget(SetBudget(Decimal(500), "monthly"), OPS)
    refuse_audit(store, "budget.set")
    with pytest.raises(SQLAlchemyError):
        bot.set_budget(SetBudget(Decimal(800), "monthly"), OPS)
    # The old trigger was deleted before the new one was made, so the old budget goes too, as
    # one change with its audit row; nothing of the new budget is left.
    assert count(store, budgets) == 0
    # The old budget's trigger row stays, marked deleted (a late callback can say so); none is active.
    assert count(store, select(triggers).where(triggers.c.deleted_at.is_(None)).subquery()) == 0
    assert fake_twilio.triggers == {}
    with store.engine.connect() as conn:
        actions = conn.execute(select(audit.c.action).order_by(audit.c.id)).scalars().all()
    assert actions == ["trigger.create", "budget.set", "budget.remove"]


def test_a_digest_whose_audit_row_fails_is_not_subscribed(bot: UsageBot, store: Store) -> None:
    refuse_audit(store, "digest.subscribe")
    with pytest.raises(SQLAlchemyError):
        bot.subscribe_digest(SubscribeDigest("daily"), OPS)
    assert count(store, digests) == 0
    assert count(store, audit) == 0
