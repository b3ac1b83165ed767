"""A clock for tests: the app takes any `() -> float` as its clock (bot/clock.py)."""

from __future__ import annotations

import time


class ManualClock:
    """Time that moves only when the test says so; it starts at `now` (default: the real time)."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
