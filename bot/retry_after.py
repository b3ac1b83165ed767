"""Retry-After, as Slack and Twilio send it (RFC 9110 §10.2.3: seconds, or an HTTP date)."""

from __future__ import annotations

from typing import Any

from bot.clock import Clock, system_clock, utc_now
from bot.usage.twilio_json import parse_rfc2822


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
