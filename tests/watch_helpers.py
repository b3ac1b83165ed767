"""Shared set-up for the watch tests: a quiet account in the fakes, a day of stored checks, and
Block Kit validation with slack_sdk's models."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import Block

from bot.model import Message
from bot.render.limits import check_limits
from bot.store import Store
from bot.watch import store as watch_store
from bot.watch.model import Snapshot, Totals
from tests.fakes.twilio import FakeTwilio

DAY = date(2026, 11, 25)  # a Wednesday
MIDNIGHT = datetime(2026, 11, 25, tzinfo=UTC)
# The usual: $24 and 2,400 SMS a day, evenly spread: $1 and 100 messages an hour.
PRICE_PER_HOUR = 1.0
COUNT_PER_HOUR = 100.0


def at(hour: int, minute: int = 0) -> datetime:
    return MIDNIGHT + timedelta(hours=hour, minutes=minute)


def usual_account(twilio: FakeTwilio) -> None:
    """28 days of Daily records for sms at the usual rate (what a fresh install learns from)."""
    days = [DAY - timedelta(days=n) for n in range(1, 29)]
    twilio.set_daily(days, {"sms": (COUNT_PER_HOUR * 24, PRICE_PER_HOUR * 24)})


def seed_checks(store: Store, until: datetime) -> None:
    """Checks every 5 minutes since midnight that saw the usual rate, as a running clock would have
    stored them (through the real store code)."""
    taken = MIDNIGHT + timedelta(minutes=5)
    while taken < until:
        hours = (taken - MIDNIGHT).total_seconds() / 3600
        watch_store.save_snapshot(
            store, Snapshot(taken, {"sms": Totals(COUNT_PER_HOUR * hours, PRICE_PER_HOUR * hours)})
        )
        taken += timedelta(minutes=5)


def today_at(twilio: FakeTwilio, price: float, count: float | None = None) -> None:
    """Twilio's Today records say this much sms spend (and count) so far."""
    twilio.set_today({"sms": (count if count is not None else price * 100, price)}, day=DAY)


def assert_valid_message(message: Message | dict[str, Any]) -> None:
    """Inside Slack's limits, and every block parses and validates with slack_sdk's models."""
    if isinstance(message, dict):
        message = Message(text=message.get("text", ""), blocks=message.get("blocks") or [])
    assert check_limits(message) == [], check_limits(message)
    for raw in message.blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        assert block.to_dict()["type"] == raw["type"]
