"""Snoozing a trigger's alerts in one channel.

While a snooze lasts, the relay holds that trigger's alerts for that channel back (outbox
status "held", still stored); when it ends, they go out as one summary (bot/delivery.py).
"""

from __future__ import annotations

import time

from sqlalchemy import select

from bot.store import Store
from bot.store.schema import snoozes


def snooze(store: Store, *, trigger_sid: str, channel: str, seconds: float, user_id: str) -> float:
    """Snooze (or extend the snooze of) a trigger in a channel; when the snooze ends."""
    now = time.time()
    until = now + seconds
    with store.transaction() as conn:
        conn.execute(snoozes.delete().where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel))
        conn.execute(
            snoozes.insert().values(
                trigger_sid=trigger_sid, channel=channel, until=until, created_by=user_id, created_at=now
            )
        )
    return until


def unsnooze(store: Store, *, trigger_sid: str, channel: str) -> bool:
    """End a snooze now; False if there was none."""
    with store.transaction() as conn:
        result = conn.execute(
            snoozes.delete().where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel)
        )
        return result.rowcount > 0


def snoozed_until(store: Store, *, trigger_sid: str, channel: str) -> float | None:
    with store.engine.connect() as conn:
        until = conn.execute(
            select(snoozes.c.until).where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel)
        ).scalar()
    return until if until and until > time.time() else None
