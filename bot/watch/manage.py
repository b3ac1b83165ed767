"""The watch use cases behind `/usage watch on|off` and `/usage watch`: each change is one
transaction with its audit entry; asking for what is already so changes nothing and is said so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from bot import audit
from bot.store import Store
from bot.watch import decide
from bot.watch import store as watch_store
from bot.watch.model import Profile, Sensitivity, Snapshot, Watch
from bot.watch.store import WatchRow

EVERY = ""  # the category of a watch on every category with spend
DEFAULT_SENSITIVITY = Sensitivity.NORMAL.value


@dataclass(frozen=True)
class WatchChange:
    """What `watch on` did, per category ('' = every category with spend)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]  # watched already, at another sensitivity: now at the one asked for
    already: tuple[str, ...]  # watched already, as asked: nothing changed
    sensitivity: dict[str, str]  # category -> its sensitivity now


@dataclass(frozen=True)
class WatchRemoval:
    """What `watch off` did."""

    removed: tuple[str, ...]
    not_watched: tuple[str, ...]  # named, but not watched on their own here
    every_remains: bool  # the channel still watches every category with spend


@dataclass(frozen=True)
class Overview:
    """`/usage watch`: the channel's watches and what is known about the categories they cover."""

    rows: list[WatchRow]
    categories: list[tuple[str, str]]  # (category, sensitivity) checked for this channel now
    latest: Snapshot | None  # the last check's snapshot: today so far
    profiles: dict[str, Profile]


def watch_on(
    store: Store, *, channel_id: str, categories: Sequence[str], sensitivity: str | None, user_id: str, now: float
) -> WatchChange:
    targets = list(categories) or [EVERY]

    def change(conn: Connection) -> WatchChange:
        existing = watch_store.channel_watches(conn, channel_id)
        added, changed, already, now_at = [], [], [], {}
        for category in targets:
            row = existing.get(category)
            wanted = sensitivity or (row.sensitivity if row else DEFAULT_SENSITIVITY)
            now_at[category] = wanted
            if row is None:
                watch_store.add_watch(
                    conn,
                    channel_id=channel_id,
                    category=category,
                    sensitivity=wanted,
                    user_id=user_id,
                    now=now,
                )
                added.append(category)
            elif row.sensitivity != wanted:
                watch_store.set_sensitivity(conn, channel_id=channel_id, category=category, sensitivity=wanted)
                changed.append(category)
            else:
                already.append(category)
        if added or changed:
            audit.record(
                conn,
                at=now,
                user_id=user_id,
                channel_id=channel_id,
                action="watch.on",
                target=" ".join(c or "every-category" for c in [*added, *changed]),
                detail=f"sensitivity {sensitivity or DEFAULT_SENSITIVITY}",
            )
        return WatchChange(tuple(added), tuple(changed), tuple(already), now_at)

    return store.write(change)


def watch_off(store: Store, *, channel_id: str, categories: Sequence[str], user_id: str, now: float) -> WatchRemoval:
    """Stop those watches of the channel (none named: every one)."""

    def change(conn: Connection) -> WatchRemoval:
        existing = watch_store.channel_watches(conn, channel_id)
        named = list(categories) or sorted(existing)
        removed = [c for c in named if c in existing]
        missing = [c for c in named if c not in existing]
        if removed:
            watch_store.remove_watches(conn, channel_id=channel_id, categories=removed)
            audit.record(
                conn,
                at=now,
                user_id=user_id,
                channel_id=channel_id,
                action="watch.off",
                target=" ".join(c or "every-category" for c in removed),
            )
        every_remains = EVERY in existing and EVERY not in removed
        return WatchRemoval(tuple(removed), tuple(missing), every_remains)

    return store.write(change)


def overview(store: Store, *, channel_id: str, now: datetime) -> Overview:
    """The channel's watches, the categories they cover at the last check, and the day's profiles
    (as cached by the last scheduled pass: no Twilio request)."""
    rows = watch_store.list_watches(store, channel_id)
    latest = watch_store.latest_snapshot(store)
    day = now.astimezone(UTC).date()
    if latest is not None and latest.taken_at.date() != day:
        latest = None  # yesterday's: nothing checked today yet
    daily = watch_store.cached_daily(store)
    profiles = watch_store.cached_profiles(store, day, daily[0] if daily else None) or {}
    named = {r.category: r.sensitivity for r in rows if r.category}
    categories = sorted(named.items())
    every = next((r for r in rows if not r.category), None)
    if every is not None and latest is not None:
        watch = Watch(channel_id, (), Sensitivity(every.sensitivity))
        categories += [(c, every.sensitivity) for c in decide.watched_categories(watch, latest) if c not in named]
    return Overview(rows, categories, latest, profiles)
