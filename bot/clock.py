"""The one clock: production passes `time.time`, tests pass a clock they move by hand.

Code that needs the time takes a `Clock` and asks it; nothing else in bot/ reads the wall clock.
(`time.monotonic` still measures durations, which is not telling the time.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime

Clock = Callable[[], float]  # seconds since the epoch

system_clock: Clock = time.time


def utc_now(clock: Clock) -> datetime:
    """The clock's time as an aware UTC datetime."""
    return datetime.fromtimestamp(clock(), UTC)


def gmt_today(clock: Clock) -> date:
    """Today's date in GMT, the time zone of Twilio's usage periods."""
    return utc_now(clock).date()
