"""The repository of the spend-spike watch: watches, usage snapshots, spike states, and the
day's cached Daily records and profiles (rows of `state`). Every SQL statement of the watch is here.

Snapshots are stored as compact JSON, `{"sms": [1234, 9.87]}` (count, price) for the categories
with usage, one row per scheduled pass: 50 categories take about 4 kB a row, 38 MiB for 35 days on
SQLite (bench/WATCH_STORAGE.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.store import Store, set_state
from bot.store.schema import spike_states, state, usage_snapshots, watches
from bot.watch.model import DailyTotal, Profile, Snapshot, SpikeState, Totals

# `state` rows: the cached Daily records of the last days and the profiles built for a day.
DAILY_CACHE = "watch.daily"
DAILY_CLAIM = "watch.daily_claim"
PROFILES_CACHE = "watch.profiles"


@dataclass(frozen=True)
class WatchRow:
    channel_id: str
    category: str  # '' = every category with spend
    sensitivity: str
    created_by: str
    created_at: float


# --- watches ---------------------------------------------------------------------------------


def list_watches(store: Store, channel_id: str | None = None) -> list[WatchRow]:
    query = select(watches).order_by(watches.c.channel_id, watches.c.category)
    if channel_id is not None:
        query = query.where(watches.c.channel_id == channel_id)
    with store.engine.connect() as conn:
        return [_watch_row(r) for r in conn.execute(query)]


def any_watch(store: Store) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(select(watches.c.id).limit(1)).first() is not None


def channel_watches(conn: Connection, channel_id: str) -> dict[str, WatchRow]:
    """The channel's watches by category, inside the caller's transaction."""
    query = select(watches).where(watches.c.channel_id == channel_id)
    return {r.category: _watch_row(r) for r in conn.execute(query)}


def add_watch(conn: Connection, *, channel_id: str, category: str, sensitivity: str, user_id: str, now: float) -> None:
    conn.execute(
        watches.insert().values(
            channel_id=channel_id, category=category, sensitivity=sensitivity, created_by=user_id, created_at=now
        )
    )


def set_sensitivity(conn: Connection, *, channel_id: str, category: str, sensitivity: str) -> None:
    conn.execute(
        update(watches)
        .where(watches.c.channel_id == channel_id, watches.c.category == category)
        .values(sensitivity=sensitivity)
    )


def remove_watches(conn: Connection, *, channel_id: str, categories: Iterable[str] | None) -> int:
    """Remove those watches of the channel (None: all of them); how many went."""
    query = delete(watches).where(watches.c.channel_id == channel_id)
    if categories is not None:
        query = query.where(watches.c.category.in_(sorted(categories)))
    return conn.execute(query).rowcount


def _watch_row(row: Any) -> WatchRow:
    return WatchRow(row.channel_id, row.category, row.sensitivity, row.created_by, row.created_at)


# --- snapshots -------------------------------------------------------------------------------


def encode_totals(totals: Mapping[str, Totals]) -> str:
    """`{"sms":[1234,9.87]}`: whole counts without a decimal point, no spaces."""
    return json.dumps(
        {c: [_compact(t.count), _compact(t.price)] for c, t in sorted(totals.items())}, separators=(",", ":")
    )


def decode_totals(text: str) -> dict[str, Totals]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    found = {}
    for category, pair in data.items():
        if isinstance(pair, list) and len(pair) == 2:
            found[str(category)] = Totals(float(pair[0]), float(pair[1]))
    return found


def _compact(value: float) -> float | int:
    rounded = round(float(value), 6)
    return int(rounded) if rounded.is_integer() else rounded


def save_snapshot(store: Store, snapshot: Snapshot) -> None:
    store.write(lambda conn: insert_snapshot(conn, snapshot))


def insert_snapshot(conn: Connection, snapshot: Snapshot) -> None:
    taken = snapshot.taken_at.astimezone(UTC)
    conn.execute(
        usage_snapshots.insert().values(
            taken_at=taken.timestamp(), day=taken.date().isoformat(), totals=encode_totals(snapshot.totals)
        )
    )


def snapshots_between(store: Store, first_day: date, last_day: date) -> list[Snapshot]:
    """The snapshots of these GMT days (both included), oldest first."""
    query = (
        select(usage_snapshots.c.taken_at, usage_snapshots.c.totals)
        .where(usage_snapshots.c.day >= first_day.isoformat(), usage_snapshots.c.day <= last_day.isoformat())
        .order_by(usage_snapshots.c.taken_at, usage_snapshots.c.id)
    )
    with store.engine.connect() as conn:
        return [_snapshot(r.taken_at, r.totals) for r in conn.execute(query)]


def latest_snapshot(store: Store) -> Snapshot | None:
    query = (
        select(usage_snapshots.c.taken_at, usage_snapshots.c.totals)
        .order_by(usage_snapshots.c.taken_at.desc(), usage_snapshots.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _snapshot(row.taken_at, row.totals)


def _snapshot(taken_at: float, totals: str) -> Snapshot:
    return Snapshot(datetime.fromtimestamp(taken_at, UTC), decode_totals(totals))


# --- spike states ----------------------------------------------------------------------------


def load_states(store: Store, day: date) -> dict[tuple[str, str], SpikeState]:
    query = select(spike_states).where(spike_states.c.day == day.isoformat())
    with store.engine.connect() as conn:
        return {(r.channel_id, r.category): _state(r) for r in conn.execute(query)}


def _state(row: Any) -> SpikeState:
    first = None if row.first_above_at is None else datetime.fromtimestamp(row.first_above_at, UTC)
    return SpikeState(first_above_at=first, alerted_excess=row.alerted_excess, escalated=bool(row.escalated))


def _ensure_state(conn: Connection, channel_id: str, category: str, day: str, first_above_at: float | None) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(spike_states)
        .on_conflict_do_nothing()
        .values(
            channel_id=channel_id,
            category=category,
            day=day,
            first_above_at=first_above_at,
            alerted_excess=None,
            escalated=False,
        )
    )


def save_first_above(conn: Connection, day: date, changes: Mapping[tuple[str, str], datetime | None]) -> None:
    """Record when each (channel, category) went above the line today (None: back below before
    anyone was told), inside the caller's transaction. The earliest time stays when passes race;
    what was alerted is left to `claim_alert`."""
    key = day.isoformat()
    for (channel_id, category), first in changes.items():
        at = None if first is None else first.timestamp()
        _ensure_state(conn, channel_id, category, key, at)
        where = (
            spike_states.c.channel_id == channel_id,
            spike_states.c.category == category,
            spike_states.c.day == key,
        )
        if at is None:
            conn.execute(
                update(spike_states).where(*where, spike_states.c.alerted_excess.is_(None)).values(first_above_at=None)
            )
        else:
            earliest = case(
                (spike_states.c.first_above_at.is_(None), at),
                (spike_states.c.first_above_at > at, at),
                else_=spike_states.c.first_above_at,
            )
            conn.execute(update(spike_states).where(*where).values(first_above_at=earliest))


def claim_alert(
    conn: Connection,
    *,
    channel_id: str,
    category: str,
    day: date,
    escalation: bool,
    excess: float,
    first_above_at: datetime | None,
) -> bool:
    """Mark the day's first alert (or its one escalation) as sent for this channel and category,
    inside the caller's transaction, unless another pass did: True when this pass owns the alert.

    A conditional UPDATE: on PostgreSQL a second pass waits for the first one's row lock and then
    finds the condition false; SQLite runs one writer at a time.
    """
    key = day.isoformat()
    _ensure_state(conn, channel_id, category, key, None if first_above_at is None else first_above_at.timestamp())
    where = [spike_states.c.channel_id == channel_id, spike_states.c.category == category, spike_states.c.day == key]
    if escalation:
        where += [spike_states.c.alerted_excess.is_not(None), spike_states.c.escalated.is_(False)]
        values: dict[str, Any] = {"escalated": True}
    else:
        where += [spike_states.c.alerted_excess.is_(None)]
        values = {"alerted_excess": excess}
    return conn.execute(update(spike_states).where(*where).values(**values)).rowcount == 1


# --- the day's Daily records and profiles, cached in `state` ------------------------------------


def cached_daily(store: Store) -> tuple[date, list[DailyTotal]] | None:
    """The Daily records fetched last, and the GMT day they were fetched for."""
    data = _json_state(store, DAILY_CACHE)
    if data is None:
        return None
    try:
        day = date.fromisoformat(data["day"])
        records = [DailyTotal(date.fromisoformat(d), str(c), float(n), float(p)) for d, c, n, p in data["records"]]
    except (KeyError, TypeError, ValueError):
        return None
    return day, records


def save_daily(conn: Connection, day: date, records: Sequence[DailyTotal], *, now: float) -> None:
    rows = [[r.day.isoformat(), r.category, _compact(r.count), _compact(r.price)] for r in records]
    value = json.dumps({"day": day.isoformat(), "records": rows}, separators=(",", ":"))
    set_state(conn, DAILY_CACHE, value, now=now)


def claim_daily_fetch(store: Store, day: date, *, now: float, stale_after: float) -> bool:
    """True when this pass is to fetch the Daily records for `day`: no pass has claimed that day,
    or the claim is older than `stale_after` seconds and left no records (a pass that died)."""

    def claim(conn: Connection) -> bool:
        current = conn.execute(select(state.c.value).where(state.c.key == DAILY_CLAIM).with_for_update()).scalar()
        claimed_day, _, claimed_at = (current or "").partition(" ")
        if claimed_day == day.isoformat():
            try:
                if now - float(claimed_at) < stale_after:
                    return False
            except ValueError:
                pass
        value = f"{day.isoformat()} {now!r}"
        if current is None:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            first = dialect.insert(state).on_conflict_do_nothing().returning(state.c.key)
            return conn.execute(first.values(key=DAILY_CLAIM, value=value, updated_at=now)).first() is not None
        changed = conn.execute(
            update(state)
            .where(state.c.key == DAILY_CLAIM, state.c.value == current)
            .values(value=value, updated_at=now)
        )
        return changed.rowcount == 1

    return store.write(claim)


def release_daily_claim(store: Store) -> None:
    """The fetch failed: let the next pass try again at once."""
    store.write(lambda conn: conn.execute(delete(state).where(state.c.key == DAILY_CLAIM)))


def cached_profiles(store: Store, day: date, daily_day: date | None) -> dict[str, Profile] | None:
    """The profiles built for `day` from the Daily records of `daily_day`, if cached."""
    data = _json_state(store, PROFILES_CACHE)
    if data is None or data.get("day") != day.isoformat():
        return None
    if data.get("daily_day") != (daily_day.isoformat() if daily_day else None):
        return None
    try:
        return {c: Profile.from_json(p) for c, p in data["profiles"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def save_profiles(
    store: Store, day: date, daily_day: date | None, profiles: Mapping[str, Profile], *, now: float
) -> None:
    value = json.dumps(
        {
            "day": day.isoformat(),
            "daily_day": daily_day.isoformat() if daily_day else None,
            "profiles": {c: p.to_json() for c, p in profiles.items()},
        },
        separators=(",", ":"),
    )
    store.write(lambda conn: set_state(conn, PROFILES_CACHE, value, now=now))


def _json_state(store: Store, key: str) -> dict[str, Any] | None:
    raw = store.get_state(key)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- retention (bot/reports/retention.py) ---------------------------------------------------


def prune_snapshots(conn: Connection, *, before_day: date, limit: int) -> int:
    """Delete up to `limit` snapshots of GMT days before `before_day`; how many went."""
    oldest = (
        select(usage_snapshots.c.id)
        .where(usage_snapshots.c.day < before_day.isoformat())
        .order_by(usage_snapshots.c.id)
        .limit(limit)
    )
    return conn.execute(delete(usage_snapshots).where(usage_snapshots.c.id.in_(oldest))).rowcount


def prune_states(conn: Connection, *, before_day: date) -> int:
    """Delete the spike states of GMT days before `before_day` (a few rows a day)."""
    return conn.execute(delete(spike_states).where(spike_states.c.day < before_day.isoformat())).rowcount
