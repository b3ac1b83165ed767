"""Twilio Usage Triggers set from Slack: opening and deleting them (one transaction each), and the
repository of `triggers` rows that remember who set each trigger up and for which channel.

Twilio stays the source of truth for the trigger itself. Creating one is a Twilio request
followed by one database transaction (the trigger row, its audit entry, and whatever the
caller's use case adds, e.g. a budget row); if that transaction fails, the Twilio trigger is
deleted again, so no trigger exists that the bot does not know about. Deleting one keeps its
row, marked deleted (by whom, when), so that a callback Twilio still sends afterwards can say so;
deleted rows are not "triggers the bot created" any more (`owners`, `find_identical`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import Connection, select

from bot import audit
from bot.model import UsageTrigger
from bot.store import Store
from bot.store.schema import triggers
from bot.usage.client import UsageClient
from bot.usage.errors import TwilioError

log = logging.getLogger(__name__)

CALLBACK_PATH = "/twilio/usage-triggers"
MAX_NAME = 64


@dataclass(frozen=True)
class TriggerSpec:
    """What to ask Twilio for: `/usage trigger`, a budget, or a form."""

    category: str
    value: str  # as Twilio takes it: "1000", "+1000", "25.00"
    trigger_by: str  # "count" | "usage" | "price"
    recurring: str = ""  # "" | "daily" | "monthly" | "yearly"
    name: str = ""


def callback_url(public_url: str, channel_id: str) -> str:
    """Where Twilio calls when the trigger fires; the channel comes back in the query string."""
    return f"{public_url.rstrip('/')}{CALLBACK_PATH}?{urlencode({'channel': channel_id})}"


# --- the repository ----------------------------------------------------------------------

_ACTIVE = triggers.c.deleted_at.is_(None)


def save(
    conn: Connection, trigger: UsageTrigger, spec: TriggerSpec, *, channel_id: str, user_id: str, now: float
) -> None:
    """Remember who created a trigger through the bot, for which channel, and what was asked."""
    conn.execute(triggers.delete().where(triggers.c.sid == trigger.sid))
    conn.execute(
        triggers.insert().values(
            sid=trigger.sid,
            channel_id=channel_id,
            created_by=user_id,
            created_at=now,
            category=spec.category,
            value_requested=spec.value,
            friendly_name=spec.name[:MAX_NAME],
            trigger_by=spec.trigger_by,
            recurring=spec.recurring,
        )
    )


def mark_deleted(conn: Connection, sid: str, *, user_id: str, now: float) -> None:
    """The bot deleted this trigger: keep its row, saying who did and when (the first deletion counts)."""
    if not sid:
        return
    conn.execute(triggers.update().where(triggers.c.sid == sid, _ACTIVE).values(deleted_at=now, deleted_by=user_id))


def owners(store: Store) -> dict[str, tuple[str, str]]:
    """sid -> (channel ID, creator's user ID) for triggers created through the bot and not deleted."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(triggers.c.sid, triggers.c.channel_id, triggers.c.created_by).where(_ACTIVE)).all()
    return {sid: (channel, user) for sid, channel, user in rows}


def find_identical(store: Store, spec: TriggerSpec, channel_id: str) -> str | None:
    """The newest trigger the bot created for this channel with the same category, value, measure
    and period, and has not deleted; None if there is none. The name does not count."""
    query = (
        select(triggers.c.sid)
        .where(
            _ACTIVE,
            triggers.c.channel_id == channel_id,
            triggers.c.category == spec.category,
            triggers.c.value_requested == spec.value,
            triggers.c.trigger_by == spec.trigger_by,
            triggers.c.recurring == spec.recurring,
        )
        .order_by(triggers.c.created_at.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


# --- use cases -----------------------------------------------------------------------------


def open_trigger(
    store: Store,
    twilio: UsageClient,
    spec: TriggerSpec,
    *,
    public_url: str,
    channel_id: str,
    user_id: str,
    now: float,
    also: Callable[[Connection, UsageTrigger], None] | None = None,
) -> UsageTrigger:
    """Create a Twilio trigger whose alerts come back to `channel_id`, then record it, its audit
    entry and the caller's `also` writes in one transaction. Permission checks are the caller's."""
    trigger = twilio.create_trigger(
        spec.category,
        spec.value,
        callback_url=callback_url(public_url, channel_id),
        trigger_by=spec.trigger_by,
        recurring=spec.recurring,
        friendly_name=spec.name,
    )

    def record(conn: Connection) -> None:
        save(conn, trigger, spec, channel_id=channel_id, user_id=user_id, now=now)
        detail = f"{spec.category} {spec.value} by {spec.trigger_by} {spec.recurring or 'once'}"
        audit.record(
            conn,
            at=now,
            user_id=user_id,
            channel_id=channel_id,
            action="trigger.create",
            target=trigger.sid,
            detail=detail.strip(),
        )
        if also is not None:
            also(conn, trigger)

    try:
        store.write(record)
    except Exception:
        log.warning("recording trigger %s failed; deleting it on Twilio again", trigger.sid)
        delete_on_twilio(twilio, trigger.sid, quietly=True)
        raise
    log.info("trigger %s created by %s for %s", trigger.sid, user_id, channel_id)
    return trigger


def create_trigger(
    store: Store,
    twilio: UsageClient,
    spec: TriggerSpec,
    *,
    public_url: str,
    channel_id: str,
    user_id: str,
    now: float,
) -> tuple[UsageTrigger, bool]:
    """`/usage trigger`: the identical trigger the bot already made for this channel, if Twilio
    still has it (True: nothing created), else a new one (`open_trigger`, False)."""
    sid = find_identical(store, spec, channel_id)
    if sid is not None:
        try:
            existing = twilio.fetch_trigger(sid)
        except TwilioError as exc:
            if not is_gone(exc):
                raise
            log.info("trigger %s was deleted outside Slack; creating a new one", sid)
        else:
            log.info("trigger %s already set for %s; not creating another", sid, channel_id)
            return existing, True
    trigger = open_trigger(store, twilio, spec, public_url=public_url, channel_id=channel_id, user_id=user_id, now=now)
    return trigger, False


def delete_trigger(store: Store, twilio: UsageClient, sid: str, *, user_id: str, channel_id: str, now: float) -> None:
    """Delete a trigger on Twilio and mark its row deleted, with its audit entry."""
    try:
        twilio.delete_trigger(sid)
    except TwilioError as exc:
        # Gone already (deleted elsewhere, or our own retried DELETE): the user's wish holds.
        if not is_gone(exc) or sid not in owners(store):
            raise

    def record(conn: Connection) -> None:
        mark_deleted(conn, sid, user_id=user_id, now=now)
        audit.record(conn, at=now, user_id=user_id, channel_id=channel_id, action="trigger.delete", target=sid)

    store.write(record)
    log.info("trigger %s deleted by %s", sid, user_id)


def delete_on_twilio(twilio: UsageClient, sid: str, *, quietly: bool = False) -> None:
    """Delete a trigger on Twilio; one that is already gone is fine. `quietly`: log other
    failures instead of raising (cleaning up after a failed use case)."""
    if not sid:
        return
    try:
        twilio.delete_trigger(sid)
    except TwilioError as exc:
        if is_gone(exc):
            log.info("trigger %s was already gone on Twilio", sid)
        elif quietly:
            log.error("could not delete trigger %s on Twilio (%s); delete it in the Twilio console", sid, exc)
        else:
            raise


def is_gone(exc: TwilioError) -> bool:
    return exc.status == 404 or exc.code == 20404
