"""The mute stage: snoozing a trigger's alerts in one channel.

While a snooze lasts, the relay holds that trigger's alerts for that channel back (outbox status
held, still stored); when it ends, what was held goes out as one alert that counts the others.

A snooze row stays until the relay has released what it held: ending a snooze early moves its
`until` to now. So "has a snooze ended?" is one look at the (small) snoozes table, and a relay pass
reads held alerts only when one has.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select, update

from bot.alerts.outbox import PENDING_ROWS, OutboxStatus, pending_params, queue_work
from bot.model import StoredAlert
from bot.store import Store
from bot.store.schema import alerts, outbox, snoozes

SUMMARISED = "summarised in the alert sent when the snooze ended"

# Run on every relay pass or post: built once, with bound parameters (see bot/alerts/outbox.py).
_SNOOZED_IN = select(snoozes.c.trigger_sid).where(
    snoozes.c.channel == bindparam("b_channel"), snoozes.c.until > bindparam("b_now")
)
_ENDED = select(snoozes.c.trigger_sid, snoozes.c.channel).where(snoozes.c.until <= bindparam("b_now"))
_HOLD = update(outbox).where(*PENDING_ROWS).values(status=OutboxStatus.HELD)


def snooze(conn: Connection, *, trigger_sid: str, channel: str, until: float, user_id: str, now: float) -> None:
    """Snooze (or extend the snooze of) a trigger in a channel, inside the caller's transaction."""
    conn.execute(snoozes.delete().where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel))
    conn.execute(
        snoozes.insert().values(
            trigger_sid=trigger_sid, channel=channel, until=until, created_by=user_id, created_at=now
        )
    )


def unsnooze(conn: Connection, *, trigger_sid: str, channel: str, now: float) -> bool:
    """End a snooze now (the relay then releases what it held); False if there was none."""
    result = conn.execute(
        update(snoozes)
        .where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel, snoozes.c.until > now)
        .values(until=now)
    )
    return result.rowcount > 0


def snoozed_in(store: Store, channel: str, now: float) -> frozenset[str]:
    """The triggers snoozed in this channel right now."""
    with store.read() as conn:
        return frozenset(conn.execute(_SNOOZED_IN, {"b_channel": channel, "b_now": now}).scalars())


def hold(store: Store, batch: Sequence[StoredAlert]) -> None:
    """Park these pending alerts (they stay stored) until their snooze ends."""
    params = pending_params(batch)
    store.write(lambda conn: conn.execute(_HOLD, params))


def active_snoozes(store: Store, now: float, limit: int = 20) -> list[tuple[str, str, float, str]]:
    """(trigger sid, channel, until, who) of the snoozes still running, ending soonest first."""
    query = (
        select(snoozes.c.trigger_sid, snoozes.c.channel, snoozes.c.until, snoozes.c.created_by)
        .where(snoozes.c.until > now)
        .order_by(snoozes.c.until)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [(sid, channel, until, who) for sid, channel, until, who in conn.execute(query)]


def release_ended_snoozes(store: Store, now: float) -> bool:
    """When a snooze ends, what it held back goes out as one alert: the latest firing, counting
    the others (which are kept, and marked as summarised). True when any snooze had ended."""
    with store.read() as conn:
        ended = conn.execute(_ENDED, {"b_now": now}).all()
    for trigger_sid, channel in ended:
        store.write(lambda conn, channel=channel, sid=trigger_sid: _release(conn, channel, sid, now))
    return bool(ended)


def _release(conn: Connection, channel: str, trigger_sid: str, now: float) -> None:
    """Summarise what one ended snooze held, and drop the snooze: one transaction."""
    # Conditional on having ended: a snooze renewed meanwhile holds on.
    gone = conn.execute(
        snoozes.delete().where(
            snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel, snoozes.c.until <= now
        )
    )
    if gone.rowcount != 1:
        return  # renewed, or another worker released it first
    # Driven by the channel's held rows (ix_outbox_channel_status_id), each looked up in alerts by key.
    held = (
        select(outbox.c.id)
        .join(alerts, alerts.c.id == outbox.c.alert_id)
        .where(outbox.c.channel == channel, outbox.c.status == OutboxStatus.HELD, alerts.c.trigger_sid == trigger_sid)
        .order_by(outbox.c.id)
    )
    ids = list(conn.execute(held).scalars())
    if not ids:
        return
    conn.execute(
        update(outbox).where(outbox.c.id == ids[-1]).values(status=OutboxStatus.PENDING, also_fired=len(ids) - 1)
    )
    conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids[:-1]))
        .values(status=OutboxStatus.SENT, sent_at=now, last_error=SUMMARISED)
    )
    queue_work(conn, {channel})
