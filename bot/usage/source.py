"""Where usage records come from: Twilio (`UsageClient`) or the sandbox's sample account."""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

from bot.model import Account, DateRange, Period, UsageRecord


class RecordSource(Protocol):
    """What answering a query needs from Twilio: `UsageClient`, or the sandbox's sample account."""

    def records(
        self,
        period: Period | DateRange | None = None,
        category: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
    ) -> list[UsageRecord]: ...


@runtime_checkable
class AccountSource(Protocol):
    """What `by-account` needs on top: `UsageClient` (the sample account has no subaccounts)."""

    account_sid: str

    def subaccounts(self) -> list[Account]: ...

    def records(
        self,
        period: Period | DateRange | None = None,
        category: str | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        include_subaccounts: bool | None = None,
        account_sid: str | None = None,
    ) -> list[UsageRecord]: ...
