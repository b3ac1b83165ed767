"""The audit trail: who created, deleted, snoozed or subscribed what, where and when.

An entry is written in the same transaction as the change it records, so there is never a
change without its entry, nor an entry for a change that was rolled back.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from bot.model import AuditEntry
from bot.store import Store
from bot.store.schema import audit

MAX_TARGET = 64
MAX_DETAIL = 500


def record(
    conn: Connection, *, at: float, user_id: str, channel_id: str, action: str, target: str = "", detail: str = ""
) -> None:
    """Append one entry inside the caller's transaction."""
    conn.execute(
        audit.insert().values(
            at=at,
            user_id=user_id,
            channel_id=channel_id,
            action=action,
            target=target[:MAX_TARGET],
            detail=detail[:MAX_DETAIL],
        )
    )


def latest(store: Store, count: int = 20) -> list[AuditEntry]:
    """The newest `count` entries, newest first."""
    query = select(audit).order_by(audit.c.id.desc()).limit(max(1, min(count, 200)))
    with store.engine.connect() as conn:
        return [AuditEntry(r.at, r.user_id, r.channel_id, r.action, r.target, r.detail) for r in conn.execute(query)]


def prune(conn: Connection, *, before: float, limit: int) -> int:
    """Delete up to `limit` entries older than `before` (the oldest first), inside the caller's
    transaction; how many were deleted."""
    oldest = select(audit.c.id).where(audit.c.at < before).order_by(audit.c.at).limit(limit)  # the `at` index
    return conn.execute(audit.delete().where(audit.c.id.in_(oldest))).rowcount
