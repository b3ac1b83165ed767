"""The audit trail: who created, deleted, snoozed or subscribed what, where and when."""

from __future__ import annotations

import time

from sqlalchemy import select

from bot.model import AuditEntry
from bot.store import Store
from bot.store.schema import audit


def record(store: Store, *, user_id: str, channel_id: str, action: str, target: str = "", detail: str = "") -> None:
    """Append one entry (its own transaction)."""
    with store.transaction() as conn:
        conn.execute(
            audit.insert().values(
                at=time.time(),
                user_id=user_id,
                channel_id=channel_id,
                action=action,
                target=target[:64],
                detail=detail[:500],
            )
        )


def latest(store: Store, count: int = 20) -> list[AuditEntry]:
    """The newest `count` entries, newest first."""
    query = select(audit).order_by(audit.c.id.desc()).limit(max(1, min(count, 200)))
    with store.engine.connect() as conn:
        return [AuditEntry(r.at, r.user_id, r.channel_id, r.action, r.target, r.detail) for r in conn.execute(query)]
