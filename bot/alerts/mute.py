"""The mute stage: snoozing a trigger's alerts in one channel.

While a snooze lasts, the relay holds that trigger's alerts for that channel back (outbox status
held, still stored); when it ends, what was held goes out as one alert that counts the others.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from bot.alerts.outbox import OutboxStatus
from bot.store import Store
from bot.store.schema import alerts, outbox, snoozes

SUMMARISED = "summarised in the alert sent when the snooze ended"


def snooze(conn: Connection, *, trigger_sid: str, channel: str, until: float, user_id: str, now: float) -> None:
    """Snooze (or extend the snooze of) a trigger in a channel, inside the caller's transaction."""
    conn.execute(snoozes.delete().where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel))
    conn.execute(
        snoozes.insert().values(
            trigger_sid=trigger_sid, channel=channel, until=until, created_by=user_id, created_at=now
        )
    )


def unsnooze(conn: Connection, *, trigger_sid: str, channel: str) -> bool:
    """End a snooze now; False if there was none."""
    result = conn.execute(snoozes.delete().where(snoozes.c.trigger_sid == trigger_sid, snoozes.c.channel == channel))
    return result.rowcount > 0


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


def hold_snoozed(store: Store, channel: str, now: float) -> None:
    """Park the pending alerts of triggers snoozed in this channel (they stay stored)."""
    snoozed = select(snoozes.c.trigger_sid).where(snoozes.c.channel == channel, snoozes.c.until > now)
    store.write(
        lambda conn: conn.execute(
            update(outbox)
            .where(
                outbox.c.channel == channel,
                outbox.c.status == OutboxStatus.PENDING,
                outbox.c.alert_id.in_(select(alerts.c.id).where(alerts.c.trigger_sid.in_(snoozed))),
            )
            .values(status=OutboxStatus.HELD)
        )
    )


def release_ended_snoozes(store: Store, now: float) -> bool:
    """When a snooze ends, what it held back goes out as one alert: the latest firing, counting
    the others (which are kept, and marked as summarised). True when anything was released."""
    active = (
        select(snoozes.c.trigger_sid)
        .where(snoozes.c.channel == outbox.c.channel, snoozes.c.until > now)
        .correlate(outbox)
    )
    held = (
        select(outbox.c.channel, alerts.c.trigger_sid)
        .join(alerts, alerts.c.id == outbox.c.alert_id)
        .where(outbox.c.status == OutboxStatus.HELD, alerts.c.trigger_sid.not_in(active))
        .group_by(outbox.c.channel, alerts.c.trigger_sid)
    )
    with store.engine.connect() as conn:
        groups = conn.execute(held).all()
    for channel, trigger_sid in groups:
        store.write(lambda conn, channel=channel, sid=trigger_sid: _summarise_held(conn, channel, sid, now))
    if groups:
        store.write(lambda conn: conn.execute(snoozes.delete().where(snoozes.c.until <= now)))
    return bool(groups)


def _summarise_held(conn: Connection, channel: str, trigger_sid: str, now: float) -> None:
    of_trigger = select(alerts.c.id).where(alerts.c.trigger_sid == trigger_sid)
    group = (outbox.c.channel == channel, outbox.c.status == OutboxStatus.HELD, outbox.c.alert_id.in_(of_trigger))
    ids = [r[0] for r in conn.execute(select(outbox.c.id).where(*group).order_by(outbox.c.id))]
    if not ids:
        return
    # Conditional on still being held: if another worker got here first, this does nothing.
    latest = conn.execute(
        update(outbox)
        .where(outbox.c.id == ids[-1], outbox.c.status == OutboxStatus.HELD)
        .values(status=OutboxStatus.PENDING, also_fired=len(ids) - 1)
    )
    if latest.rowcount != 1:
        return
    conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids[:-1]), outbox.c.status == OutboxStatus.HELD)
        .values(status=OutboxStatus.SENT, sent_at=now, last_error=SUMMARISED)
    )
