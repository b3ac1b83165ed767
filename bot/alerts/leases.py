"""Per-channel delivery state: which channels have work, who may post to a channel now (a lease),
and when (pacing).

One row per channel. A worker takes the lease with a conditional UPDATE, so one worker at a time
posts to a channel across threads, processes and dynos; `next_post_at` keeps Slack's pace of
about one message per second per channel, a Retry-After, or a backoff.

Which channels have work is kept on the row itself (`queued` > `drained`, bot/store/schema.py).
Whatever gives a channel alerts to send appends a `channel_work` row in the same transaction
(bot/alerts/outbox.py `queue_work`: an insert, so intake never waits on a channel row); each relay
pass first moves those rows into `queued` (`collect_work`). A relay that finds nothing left to send
records the `queued` it had read *before* looking (`release(..., drained=...)`); an alert committed
after that read bumps `queued` past it once collected, so it is never lost, whatever the isolation
level. Finding the due channels reads only channels with work (a partial index), however long the
outbox is; collecting reads only what arrived since the last pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select, text, update

from bot.store import Store
from bot.store.schema import HAS_WORK, channel_work, channels

_HAS_WORK = text(HAS_WORK)  # the partial index's own condition, so that the index serves the query
MAX_COLLECTED = 5000  # channel_work rows moved per pass (the rest, next pass)

# The statements the relay runs for every post are built once, with bound parameters: building a
# Core statement costs more than SQLite takes to run it. (Names are prefixed "b_": an UPDATE
# reserves its columns' names.)
_CHANNELS_WITH_WORK = (
    select(channels.c.channel, channels.c.next_post_at)
    .where(_HAS_WORK, channels.c.lease_until < bindparam("b_now"))
    .order_by(channels.c.next_post_at)
    .limit(bindparam("b_limit"))
)
# The due, unheld channels among the candidates, soonest first, taken in one statement: the
# conditions are checked again on each row as it is updated, so two workers never both get one.
_DUE_AMONG = (
    select(channels.c.channel)
    .where(
        channels.c.channel.in_(bindparam("b_names", expanding=True)),
        channels.c.lease_until < bindparam("b_now"),
        channels.c.next_post_at <= bindparam("b_now"),
    )
    .order_by(channels.c.next_post_at)
    .limit(bindparam("b_limit"))
)
_CLAIM_DUE = (
    update(channels)
    .where(
        channels.c.channel.in_(_DUE_AMONG.scalar_subquery()),
        channels.c.lease_until < bindparam("b_now"),
        channels.c.next_post_at <= bindparam("b_now"),
    )
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
    .returning(channels.c.channel)
)
_RENEW = (
    update(channels)
    .where(
        channels.c.channel == bindparam("b_channel"),
        channels.c.lease_owner == bindparam("b_owner"),
        channels.c.lease_until >= bindparam("b_now"),
    )
    .values(lease_until=bindparam("b_until"))
)
_OWN = (channels.c.channel == bindparam("b_channel"), channels.c.lease_owner == bindparam("b_owner"))
_RELEASED = {
    "lease_owner": None,
    "lease_until": 0.0,
    "next_post_at": bindparam("b_next"),
    "failures": bindparam("b_failures"),
    "last_error": bindparam("b_error"),
}
_RELEASE = update(channels).where(*_OWN).values(_RELEASED)
_RELEASE_DRAINED = update(channels).where(*_OWN).values({**_RELEASED, "drained": bindparam("b_drained")})
_QUEUED = select(channels.c.queued).where(channels.c.channel == bindparam("b_channel"))
_FAILURES = select(channels.c.failures).where(channels.c.channel == bindparam("b_channel"))


_ANY_WORK = select(channel_work.c.id).limit(1)
# Deletes exactly the rows it reads; another relay collecting at once gets the others.
_TAKE_WORK = (
    channel_work.delete()
    .where(channel_work.c.id.in_(select(channel_work.c.id).order_by(channel_work.c.id).limit(MAX_COLLECTED)))
    .returning(channel_work.c.channel)
)
_ADD_QUEUED = (
    update(channels)
    .where(channels.c.channel.in_(bindparam("b_names", expanding=True)))
    .values(queued=channels.c.queued + 1)
)


def collect_work(store: Store) -> bool:
    """Move `channel_work` rows into their channels' `queued`; True when there were any."""
    with store.read() as conn:
        if conn.execute(_ANY_WORK).first() is None:
            return False  # the usual case: a read, not a write transaction

    def move(conn: Connection) -> None:
        if names := sorted(set(conn.execute(_TAKE_WORK).scalars())):
            conn.execute(_ADD_QUEUED, {"b_names": names})

    store.write(move, durable=False)  # undone by a crash: the rows are back, collected again
    return True


def channels_with_work(store: Store, now: float, limit: int) -> list[tuple[str, float]]:
    """Up to `limit` channels with alerts to send that no one holds, soonest due first, and when
    each may post next."""
    with store.read() as conn:
        return [(row[0], row[1]) for row in conn.execute(_CHANNELS_WITH_WORK, {"b_now": now, "b_limit": limit})]


def claim_due(
    store: Store, candidates: Sequence[str], owner: str, *, now: float, lease_seconds: float, limit: int
) -> list[str]:
    """Take the leases of up to `limit` of the candidates that are due and that no one holds, in
    one write; the channels taken (others may have taken the rest).

    Not durable (Store.transaction): the batch is marked `sending` durably before any post, which
    flushes this claim along with it; a claim lost before that posted nothing."""
    if not candidates:
        return []
    params = {"b_names": list(candidates), "b_now": now, "b_limit": limit, "b_owner": owner}
    params["b_until"] = now + lease_seconds
    return store.write(lambda conn: list(conn.execute(_CLAIM_DUE, params).scalars()), durable=False)


def renew(store: Store, channel: str, owner: str, *, now: float, lease_seconds: float) -> bool:
    """Extend our lease; False when it has run out (another worker may own the channel now)."""
    params = {"b_channel": channel, "b_owner": owner, "b_now": now, "b_until": now + lease_seconds}
    result = store.write(lambda conn: conn.execute(_RENEW, params))
    return result.rowcount == 1


def queued(store: Store, channel: str) -> int:
    """The channel's `queued` count: read it before looking for alerts, and pass it to `release`
    as `drained` if there were none."""
    with store.read() as conn:
        return conn.execute(_QUEUED, {"b_channel": channel}).scalar() or 0


def release(
    store: Store,
    channel: str,
    owner: str,
    *,
    next_post_at: float,
    failures: int = 0,
    error: str = "",
    drained: int | None = None,
) -> None:
    """Give the lease back, saying when the channel may post next and why; `drained`: the `queued`
    read before finding nothing to send. Not durable: if a database crash undoes it, the lease
    runs out by itself and the channel is looked at again."""
    store.write(
        lambda conn: release_in(
            conn, channel, owner, next_post_at=next_post_at, failures=failures, error=error, drained=drained
        ),
        durable=False,
    )


def release_in(
    conn: Connection,
    channel: str,
    owner: str,
    *,
    next_post_at: float,
    failures: int = 0,
    error: str = "",
    drained: int | None = None,
) -> None:
    """`release`, inside the caller's transaction (the relay settles a posted batch and gives the
    channel back in one)."""
    params: dict[str, object] = {
        "b_channel": channel,
        "b_owner": owner,
        "b_next": next_post_at,
        "b_failures": failures,
        "b_error": error,
    }
    statement = _RELEASE
    if drained is not None:
        statement, params["b_drained"] = _RELEASE_DRAINED, drained
    conn.execute(statement, params)


def failures(store: Store, channel: str) -> int:
    """Failed attempts in a row for the channel (the backoff's exponent)."""
    with store.read() as conn:
        return conn.execute(_FAILURES, {"b_channel": channel}).scalar() or 0
