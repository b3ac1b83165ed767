"""Value types shared by the domain: usage records, periods, alerts, messages.

Everything here is plain data: no I/O, no Flask, no Bolt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

TOTAL_SPEND = "totalprice"  # Twilio's usage category for the account's total spend


class Period(enum.Enum):
    """A Usage Records subresource (the value is the name in the URL)."""

    TODAY = "Today"
    YESTERDAY = "Yesterday"
    THIS_MONTH = "ThisMonth"
    LAST_MONTH = "LastMonth"
    ALL_TIME = "AllTime"
    DAILY = "Daily"
    MONTHLY = "Monthly"
    YEARLY = "Yearly"

    @property
    def label(self) -> str:
        return _PERIOD_LABELS[self]


_PERIOD_LABELS = {
    Period.TODAY: "Today",
    Period.YESTERDAY: "Yesterday",
    Period.THIS_MONTH: "This month",
    Period.LAST_MONTH: "Last month",
    Period.ALL_TIME: "All time",
    Period.DAILY: "Daily",
    Period.MONTHLY: "Monthly",
    Period.YEARLY: "Yearly",
}


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of GMT dates, as Twilio's StartDate/EndDate take them."""

    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


@dataclass(frozen=True)
class UsageRecord:
    """One Twilio usage record, parsed. Numbers are Decimal; a missing one is None."""

    category: str
    description: str = ""
    count: Decimal | None = None
    count_unit: str = ""
    usage: Decimal | None = None
    usage_unit: str = ""
    price: Decimal | None = None
    price_unit: str = "usd"
    start_date: date | None = None
    end_date: date | None = None
    account_sid: str = ""
    as_of: str = ""


@dataclass(frozen=True)
class UsageTrigger:
    """One Twilio Usage Trigger, parsed."""

    sid: str
    usage_category: str
    trigger_value: str
    current_value: str
    trigger_by: str
    recurring: str  # "" for one-shot triggers
    friendly_name: str = ""
    callback_url: str = ""
    callback_method: str = "POST"
    date_fired: datetime | None = None
    date_created: datetime | None = None


@dataclass(frozen=True)
class Account:
    """A Twilio account (the main one or a subaccount), parsed. Twilio's list also carries each
    account's auth token: it is deliberately not kept."""

    sid: str
    friendly_name: str = ""
    status: str = ""  # "active" | "suspended" | "closed", lower-cased


@dataclass(frozen=True)
class IncomingAlert:
    """What Twilio told us when a trigger fired (callback parameters, parsed)."""

    dedupe_key: str
    firing_key: str | None
    trigger_sid: str
    account_sid: str
    category: str
    trigger_by: str
    trigger_value: str
    current_value: str
    recurring: str
    date_fired: str
    fired_at: float
    requested_channel: str
    params: dict[str, str]


@dataclass(frozen=True)
class StoredAlert:
    """An outbox row joined with its alert and, when the bot created the trigger, who did."""

    outbox_id: int
    status: str
    batch_id: str | None
    attempted_at: float | None
    trigger_sid: str
    category: str
    trigger_by: str
    trigger_value: str
    current_value: str
    recurring: str
    fired_at: float
    requested_channel: str
    created_by: str
    friendly_name: str
    channel: str = ""
    last_error: str = ""
    # Further firings of the same trigger held back by a snooze and summarised in this alert.
    also_fired: int = 0
    # When the bot deleted the trigger, and who did (Twilio can still send a callback after that).
    deleted_at: float | None = None
    deleted_by: str = ""
    # "trigger", or "spike" (bot/watch/): a spike alert is rendered when it is detected, and
    # `details` holds that message as JSON (bot/alerts/render.py posts it as it is).
    kind: str = "trigger"
    details: str = ""


@dataclass(frozen=True)
class AuditEntry:
    at: float
    user_id: str
    channel_id: str
    action: str  # e.g. "trigger.create", "trigger.delete", "snooze", "unsnooze", "digest.subscribe"
    target: str
    detail: str


# --- what we send to Slack (or print) ---------------------------------------


@dataclass
class Message:
    """A Slack message: Block Kit blocks plus the plain-text fallback used for notifications."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    public: bool = False
    error: bool = False  # a platform error or bad input rather than an answer

    def to_slack(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text, "blocks": self.blocks}
        body["response_type"] = "in_channel" if self.public else "ephemeral"
        return body
