"""Claiming report runs: the repository of `report_runs`, which makes each digest and each budget
warning go out once however many scheduled passes run at once.

A run is *claimed* by inserting its row (kind, subject, period key); the unique constraint lets
one pass win. The winner posts with the run id in the message's metadata, then marks the row
sent. A claim left for `STALE_CLAIM_SECONDS` (a crash, or a post whose outcome is unknown) is
taken over by a later pass, which first looks for the run id in the channel (bot/slack.py).
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from bot.store import Store
from bot.store.schema import report_runs

# A claim this old is presumed dead (a post takes at most 10 s, the HTTP timeout).
STALE_CLAIM_SECONDS = 600.0


class RunKind(enum.StrEnum):
    DIGEST = "digest"
    BUDGET_WARNING = "budget"


class RunStatus(enum.StrEnum):
    CLAIMED = "claimed"
    SENT = "sent"


def runs_for(store: Store, kind: RunKind, keys: set[str]) -> dict[tuple[int, str], Row[Any]]:
    """Existing runs of `kind` for these period keys, by (subject id, period key)."""
    if not keys:
        return {}
    query = select(report_runs).where(report_runs.c.kind == kind, report_runs.c.period_key.in_(sorted(keys)))
    with store.engine.connect() as conn:
        return {(row.subject_id, row.period_key): row for row in conn.execute(query)}


def is_stale(row: Row[Any], at: float) -> bool:
    return row.status == RunStatus.CLAIMED and row.claimed_at < at - STALE_CLAIM_SECONDS


def exists(store: Store, kind: RunKind, subject_id: int, period_key: str) -> bool:
    """Has this run been sent, or claimed by a pass?"""
    query = select(report_runs.c.id).where(
        report_runs.c.kind == kind, report_runs.c.subject_id == subject_id, report_runs.c.period_key == period_key
    )
    with store.engine.connect() as conn:
        return conn.execute(query).first() is not None


def claim(store: Store, kind: RunKind, subject_id: int, period_key: str, at: float) -> int | None:
    """Insert the run row; None when another pass inserted it first (the unique constraint)."""
    row = {"kind": kind, "subject_id": subject_id, "period_key": period_key, "status": RunStatus.CLAIMED}
    try:
        result = store.write(lambda conn: conn.execute(insert(report_runs).values(**row, claimed_at=at)))
    except IntegrityError:
        return None
    return int(result.inserted_primary_key[0])


def take_over(store: Store, run_id: int, at: float) -> bool:
    """Take a stale claim; False when it is not stale any more (another pass took it)."""
    result = store.write(
        lambda conn: conn.execute(
            update(report_runs)
            .where(
                report_runs.c.id == run_id,
                report_runs.c.status == RunStatus.CLAIMED,
                report_runs.c.claimed_at < at - STALE_CLAIM_SECONDS,
            )
            .values(claimed_at=at)
        )
    )
    return result.rowcount == 1


def still_ours(store: Store, run_id: int, claimed_at: float) -> bool:
    with store.engine.connect() as conn:
        row = conn.execute(
            select(report_runs.c.status, report_runs.c.claimed_at).where(report_runs.c.id == run_id)
        ).first()
    return row is not None and row.status == RunStatus.CLAIMED and row.claimed_at == claimed_at


def mark_sent(store: Store, run_id: int, at: float) -> None:
    store.write(
        lambda conn: conn.execute(
            update(report_runs)
            .where(report_runs.c.id == run_id, report_runs.c.status == RunStatus.CLAIMED)
            .values(status=RunStatus.SENT, sent_at=at)
        )
    )


def release(store: Store, run_id: int) -> None:
    """Nothing was posted (Twilio failed, Slack said 429 or rejected the token): let a later pass
    claim it afresh rather than wait for the claim to go stale."""
    store.write(
        lambda conn: conn.execute(
            delete(report_runs).where(report_runs.c.id == run_id, report_runs.c.status == RunStatus.CLAIMED)
        )
    )


def forget(conn: Connection, kind: RunKind, subject_id: int) -> None:
    """Drop every run of a subject, inside the caller's transaction (a changed or removed budget
    starts afresh: with a lower amount it may need to warn again this period, and SQLite may
    hand a removed budget's id to the next one)."""
    conn.execute(report_runs.delete().where(report_runs.c.kind == kind, report_runs.c.subject_id == subject_id))


def prune_sent(conn: Connection, *, sent_before: float, limit: int) -> int:
    """Delete up to `limit` runs sent before `sent_before`, inside the caller's transaction; how
    many were deleted. Claims are left alone: a live one is being posted, a stale one is settled
    by a later pass. The caller keeps every run of a period that may still be due (a month's
    budget warning may be claimed on its first day and must stop a second one until its last)."""
    oldest = (
        select(report_runs.c.id)
        .where(report_runs.c.status == RunStatus.SENT, report_runs.c.sent_at < sent_before)
        .order_by(report_runs.c.id)
        .limit(limit)
    )
    result = conn.execute(
        delete(report_runs).where(report_runs.c.id.in_(oldest), report_runs.c.status == RunStatus.SENT)
    )
    return result.rowcount
