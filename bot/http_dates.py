"""HTTP dates as Slack and Twilio send them: RFC 2822 timestamps, and Retry-After (seconds, or
an HTTP date; RFC 9110 §10.2.3)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from bot.clock import Clock, system_clock, utc_now


def parse_rfc2822(value: Any) -> datetime | None:
    """`"Sun, 06 Sep 2015 12:58:45 +0000"` → aware datetime; anything else → None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_retry_after(value: str | None, clock: Clock = system_clock) -> float | None:
    """Retry-After in seconds, from either of its forms (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = parse_rfc2822(value)
    if when is None:
        return None
    return max(0.0, (when - utc_now(clock)).total_seconds())


def retry_after_header(headers: Any, clock: Clock = system_clock) -> float:
    """The Retry-After of a response's headers (names in any case), at least one second."""
    value = None
    for name, v in dict(headers or {}).items():
        if name.lower() == "retry-after":
            value = v[0] if isinstance(v, list) else v
    return max(1.0, parse_retry_after(value, clock) or 1.0)
