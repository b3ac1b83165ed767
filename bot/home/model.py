"""The data one App Home view shows: plain values, shared by the use case and the renderer."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.home.snapshot import Snapshot
from bot.model import StoredAlert
from bot.reports.model import Budget, Subscription


@dataclass(frozen=True)
class LocalRecords:
    """What the bot itself remembers, for Home."""

    owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # trigger sid -> (channel, creator)
    budgets: list[Budget] = field(default_factory=list)
    digests: list[Subscription] = field(default_factory=list)
    watched: list[tuple[str, str]] = field(default_factory=list)
    unsent: dict[str, int] = field(default_factory=dict)  # outbox status -> count
    failed: list[StoredAlert] = field(default_factory=list)
    snoozes: list[tuple[str, str, float, str]] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class HomeView:
    """Everything one Home view shows."""

    user_id: str
    snapshot: Snapshot | None
    local: LocalRecords
    timezone: str
    now: float
