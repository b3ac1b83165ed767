"""Digest subscriptions: the repository of `digests` rows, and the two use cases that change
them (`subscribe`, `unsubscribe`), each one transaction with its audit entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot import audit
from bot.reports.model import Subscription
from bot.reports.schedule import CADENCES, check_cadence, format_minutes
from bot.store import Store
from bot.store.schema import digests

DEFAULT_AT_MINUTES = 9 * 60


def _to_subscription(row: Row[Any]) -> Subscription:
    return Subscription(row.id, row.channel_id, row.cadence, row.at_minutes, row.created_by, row.created_at)


def _get(conn: Connection, channel_id: str, cadence: str) -> Subscription | None:
    query = select(digests).where(digests.c.channel_id == channel_id, digests.c.cadence == cadence)
    row = conn.execute(query).first()
    return _to_subscription(row) if row is not None else None


def list_subscriptions(store: Store, channel_id: str | None = None) -> list[Subscription]:
    """Every subscription (or one channel's), by channel, then daily, weekly, monthly."""
    query = select(digests)
    if channel_id is not None:
        query = query.where(digests.c.channel_id == channel_id)
    with store.engine.connect() as conn:
        subs = [_to_subscription(row) for row in conn.execute(query)]
    return sorted(subs, key=lambda s: (s.channel_id, _cadence_order(s)))


def _cadence_order(sub: Subscription) -> int:
    return CADENCES.index(sub.cadence) if sub.cadence in CADENCES else len(CADENCES)


def subscribe(
    store: Store, *, channel_id: str, cadence: str, at_minutes: int = DEFAULT_AT_MINUTES, user_id: str, now: float
) -> tuple[Subscription, Subscription | None]:
    """Subscribe the channel (one subscription per channel and cadence: a second one replaces
    the first's time). Returns the subscription and the one it replaced, if any; the same
    subscription again changes nothing and is returned as both (see `already_subscribed`)."""
    check_cadence(cadence, at_minutes)
    where = (digests.c.channel_id == channel_id, digests.c.cadence == cadence)
    values = {"at_minutes": at_minutes, "created_by": user_id, "created_at": now}

    def change(conn: Connection) -> tuple[Subscription, Subscription | None]:
        previous = _get(conn, channel_id, cadence)
        if previous is not None and previous.at_minutes == at_minutes:
            return previous, previous  # already so: no write, nothing to audit
        if previous is not None:
            conn.execute(update(digests).where(*where).values(**values))
        else:
            conn.execute(insert(digests).values(channel_id=channel_id, cadence=cadence, **values))
        current = _get(conn, channel_id, cadence)
        assert current is not None
        detail = f"at {format_minutes(at_minutes)}" + (
            f", was {format_minutes(previous.at_minutes)}" if previous else ""
        )
        audit.record(
            conn,
            at=now,
            user_id=user_id,
            channel_id=channel_id,
            action="digest.subscribe",
            target=cadence,
            detail=detail,
        )
        return current, previous

    try:
        return store.write(change)
    except IntegrityError:  # subscribed at the same moment from elsewhere: ours is the later word
        return store.write(change)


def already_subscribed(current: Subscription, replaced: Subscription | None) -> bool:
    """Did `subscribe` find the channel subscribed exactly so, and change nothing?"""
    return replaced == current


def unsubscribe(store: Store, *, channel_id: str, user_id: str, now: float) -> list[Subscription]:
    """Remove every digest of the channel; returns what was removed."""

    def change(conn: Connection) -> list[Subscription]:
        query = select(digests).where(digests.c.channel_id == channel_id)
        removed = sorted((_to_subscription(row) for row in conn.execute(query)), key=_cadence_order)
        if removed:
            conn.execute(delete(digests).where(digests.c.id.in_([s.id for s in removed])))
            target = ", ".join(s.cadence for s in removed)
            audit.record(
                conn, at=now, user_id=user_id, channel_id=channel_id, action="digest.unsubscribe", target=target
            )
        return removed

    return store.write(change)
