"""Per-channel delivery state: who may post to a channel now (a lease), and when (pacing).

One row per channel. A worker takes the lease with a conditional UPDATE, so one worker at a time
posts to a channel across threads, processes and dynos; `next_post_at` keeps Slack's pace of
about one message per second per channel, a Retry-After, or a backoff.
"""

from __future__ import annotations

from sqlalchemy import select, update

from bot.alerts.outbox import OutboxStatus
from bot.store import Store
from bot.store.schema import channels, outbox

MAX_CHANNELS_PER_PASS = 200


def channels_with_work(store: Store, now: float) -> list[tuple[str, float]]:
    """Channels with alerts to send that no one holds, and when each may post next."""
    query = (
        select(outbox.c.channel, channels.c.next_post_at)
        .join(channels, channels.c.channel == outbox.c.channel)
        .where(outbox.c.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)), channels.c.lease_until < now)
        .group_by(outbox.c.channel, channels.c.next_post_at)
        .order_by(channels.c.next_post_at)
        .limit(MAX_CHANNELS_PER_PASS)
    )
    with store.engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(query)]


def claim(store: Store, channel: str, owner: str, *, now: float, lease_seconds: float) -> bool:
    """Take the channel's lease; False if another worker holds it or it is not due."""
    result = store.write(
        lambda conn: conn.execute(
            update(channels)
            .where(channels.c.channel == channel, channels.c.lease_until < now, channels.c.next_post_at <= now)
            .values(lease_owner=owner, lease_until=now + lease_seconds)
        )
    )
    return result.rowcount == 1


def renew(store: Store, channel: str, owner: str, *, now: float, lease_seconds: float) -> bool:
    """Extend our lease; False when it has run out (another worker may own the channel now)."""
    result = store.write(
        lambda conn: conn.execute(
            update(channels)
            .where(channels.c.channel == channel, channels.c.lease_owner == owner, channels.c.lease_until >= now)
            .values(lease_until=now + lease_seconds)
        )
    )
    return result.rowcount == 1


def release(store: Store, channel: str, owner: str, *, next_post_at: float, failures: int = 0, error: str = "") -> None:
    """Give the lease back, saying when the channel may post next and why."""
    store.write(
        lambda conn: conn.execute(
            update(channels)
            .where(channels.c.channel == channel, channels.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=0.0, next_post_at=next_post_at, failures=failures, last_error=error)
        )
    )


def failures(store: Store, channel: str) -> int:
    """Failed attempts in a row for the channel (the backoff's exponent)."""
    with store.engine.connect() as conn:
        return conn.execute(select(channels.c.failures).where(channels.c.channel == channel)).scalar() or 0
