"""The parsed `/usage` commands: what `parse_command` returns and `UsageBot.answer` takes.

Plain frozen data, one class per command form; `ParseError` says what was wrong instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.alerts.triggers import TriggerSpec
from bot.model import DateRange, Period


@dataclass(frozen=True)
class HelpCommand:
    topic: str = ""


@dataclass(frozen=True)
class UsageQuery:
    """`/usage today sms all public`, `/usage 2026-11-01..2026-11-20`, `/usage today by-account`."""

    period: Period | DateRange
    category: str | None = None
    show_all: bool = False
    public: bool = False
    by_account: bool = False


@dataclass(frozen=True)
class SeriesQuery:
    """`/usage daily sms 7`: one line per day (or month)."""

    period: Period  # Period.DAILY or Period.MONTHLY
    category: str | None = None
    count: int = 7
    public: bool = False


@dataclass(frozen=True)
class CreateTrigger(TriggerSpec):
    """`/usage trigger sms +1000 by count every month name Too many texts`: the trigger to set."""


@dataclass(frozen=True)
class ListTriggers:
    category: str | None = None


@dataclass(frozen=True)
class DeleteTrigger:
    sid: str


@dataclass(frozen=True)
class ListFailedAlerts:
    pass


@dataclass(frozen=True)
class SubscribeDigest:
    """`/usage digest daily|weekly|monthly [at HH:MM]` for the current channel."""

    cadence: str  # "daily" | "weekly" | "monthly"
    at_minutes: int = 9 * 60  # minutes after local midnight (USAGE_TIMEZONE); default 09:00


@dataclass(frozen=True)
class UnsubscribeDigest:
    """`/usage digest off`: every digest of the current channel."""


@dataclass(frozen=True)
class ListDigests:
    """`/usage digests`."""


@dataclass(frozen=True)
class SetBudget:
    """`/usage budget $500 monthly [CATEGORY]`."""

    amount: Decimal
    period: str  # "daily" | "monthly"
    category: str | None = None  # None: total spend (totalprice)


@dataclass(frozen=True)
class RemoveBudget:
    """`/usage budget off daily|monthly [CATEGORY]`."""

    period: str
    category: str | None = None


@dataclass(frozen=True)
class ListBudgets:
    """`/usage budgets`."""


@dataclass(frozen=True)
class ShowAudit:
    """`/usage audit [N]`."""

    count: int = 20


@dataclass(frozen=True)
class WatchOn:
    """`/usage watch on [CATEGORY …] [sensitivity low|normal|high]` for the current channel."""

    categories: tuple[str, ...] = ()  # none: every category with spend
    sensitivity: str | None = None  # "low" | "normal" | "high"; None: normal, or as it was


@dataclass(frozen=True)
class WatchOff:
    """`/usage watch off [CATEGORY …]`: those watches of the current channel, or all of them."""

    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShowWatch:
    """`/usage watch`: what the current channel watches, against what is usual."""


@dataclass(frozen=True)
class ParseError:
    """What was wrong with the command text, and the form that would have worked."""

    message: str
    usage: str = ""
    suggestions: tuple[str, ...] = ()


Command = (
    HelpCommand
    | UsageQuery
    | SeriesQuery
    | CreateTrigger
    | ListTriggers
    | DeleteTrigger
    | ListFailedAlerts
    | SubscribeDigest
    | UnsubscribeDigest
    | ListDigests
    | SetBudget
    | RemoveBudget
    | ListBudgets
    | ShowAudit
    | WatchOn
    | WatchOff
    | ShowWatch
)
