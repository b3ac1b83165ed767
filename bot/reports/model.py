"""Value types of the reports capability (digests and budgets): plain data, shared by the
scheduling, storage and rendering code without importing any of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from bot.model import UsageTrigger


@dataclass(frozen=True)
class Subscription:
    id: int
    channel_id: str
    cadence: str  # daily | weekly | monthly
    at_minutes: int  # minutes after local midnight (USAGE_TIMEZONE)
    created_by: str
    created_at: float


@dataclass(frozen=True)
class Budget:
    id: int
    channel_id: str
    period: str  # daily | monthly
    category: str  # "totalprice" for total spend
    amount: Decimal
    trigger_sid: str
    created_by: str
    created_at: float


@dataclass(frozen=True)
class BudgetChange:
    """What `set_budget` did: the budget now in force, its trigger, and the budget it replaced
    (`already`: it was set exactly so before, and nothing changed)."""

    budget: Budget
    trigger: UsageTrigger
    replaced: Budget | None = None
    already: bool = False


@dataclass(frozen=True)
class BudgetCheck:
    """A budget against the spend of its current period."""

    amount: Decimal
    spent: Decimal
    projected: Decimal
    share: float  # how much of the period has passed, 0..1
    ready: bool  # enough of the period has passed for a projection
    price_unit: str = "usd"

    @property
    def warn(self) -> bool:
        """On pace to cross the budget, not crossed yet (the Twilio trigger reports the crossing)."""
        return self.ready and self.projected >= self.amount > self.spent


@dataclass(frozen=True)
class Mover:
    """One category's spend in the period against the period before."""

    category: str
    description: str
    now: Decimal
    before: Decimal

    @property
    def change(self) -> Decimal:
        return self.now - self.before


@dataclass(frozen=True)
class DigestReport:
    cadence: str
    period_key: str
    start: date  # GMT dates, inclusive
    end: date
    previous_start: date
    previous_end: date
    total: Decimal | None  # the totalprice record; None when Twilio sent none
    previous_total: Decimal | None
    price_unit: str
    movers: tuple[Mover, ...]
    daily: tuple[tuple[date, Decimal | None], ...]  # the sparkline's days, oldest first
    as_of: str = ""
    complete: bool = True  # the last GMT day covered had ended when the figures were fetched
