"""Who may do what with `/usage` (README, "Who may do what").

With USAGE_ADMINS set, only those users may start or stop alerting in a channel: create or
delete triggers, set or remove budgets, subscribe to or stop digests, start or stop spend-spike
watches. Everyone may read usage, list what is set, and snooze or unsnooze an alert, for at most
MAX_SNOOZE_SECONDS at a time.
Without USAGE_ADMINS everyone may do everything.

A refusal changes nothing but the audit trail: it is recorded (`refused.<action>`, who, where,
what) in a transaction of its own, and logged at INFO.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from bot import audit
from bot.clock import Clock
from bot.commands.help import render_error
from bot.model import Message
from bot.store import Store

log = logging.getLogger(__name__)

# The longest a snooze lasts, whatever asked for it: a day, the longer of the alert's two buttons.
MAX_SNOOZE_SECONDS = 24 * 3600


class Guarded(enum.StrEnum):
    """Actions only usage admins may take when USAGE_ADMINS is set (the values are audit actions)."""

    TRIGGER_CREATE = "trigger.create"
    TRIGGER_DELETE = "trigger.delete"
    BUDGET_SET = "budget.set"
    BUDGET_REMOVE = "budget.remove"
    DIGEST_SUBSCRIBE = "digest.subscribe"
    DIGEST_UNSUBSCRIBE = "digest.unsubscribe"
    WATCH_ON = "watch.on"
    WATCH_OFF = "watch.off"


_WHAT = {
    Guarded.TRIGGER_CREATE: "create or delete triggers",
    Guarded.TRIGGER_DELETE: "create or delete triggers",
    Guarded.BUDGET_SET: "set or remove budgets",
    Guarded.BUDGET_REMOVE: "set or remove budgets",
    Guarded.DIGEST_SUBSCRIBE: "start or stop digests",
    Guarded.DIGEST_UNSUBSCRIBE: "start or stop digests",
    Guarded.WATCH_ON: "start or stop spend-spike watches",
    Guarded.WATCH_OFF: "start or stop spend-spike watches",
}


def may(admins: frozenset[str], user_id: str) -> bool:
    """May this user take a guarded action? Everyone may when no admins are configured."""
    return not admins or user_id in admins


def refusal_text(action: Guarded) -> str:
    return f"Only usage admins (USAGE_ADMINS) can {_WHAT[action]}; ask one of them."


def snooze_seconds(requested: float) -> int:
    """How long a snooze asked for `requested` seconds lasts: never longer than MAX_SNOOZE_SECONDS,
    never negative."""
    return int(max(0, min(requested, MAX_SNOOZE_SECONDS)))


class Permissions:
    """USAGE_ADMINS applied: checks a guarded action, and records a refusal."""

    def __init__(self, store: Store, admins: frozenset[str], clock: Clock) -> None:
        self.store = store
        self.admins = admins
        self.clock = clock

    def allows(self, user_id: str) -> bool:
        return may(self.admins, user_id)

    def check(self, action: Guarded, *, user_id: str, channel_id: str, target: str = "") -> Message | None:
        """None when the user may take `action`; else the refusal to answer with, audited and logged."""
        if self.allows(user_id):
            return None
        now = self.clock()

        def record(conn: Any) -> None:
            audit.record(
                conn, at=now, user_id=user_id, channel_id=channel_id, action=f"refused.{action}", target=target
            )

        self.store.write(record)
        log.info("refused %s by %s in %s (not in USAGE_ADMINS)", action, user_id, channel_id)
        return render_error(refusal_text(action))
