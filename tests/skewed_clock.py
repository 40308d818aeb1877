"""A clock whose wall time is off another's: this machine's clock, skewed against the service's."""

from __future__ import annotations

from datetime import datetime, timedelta

from imagejobs.testing import FakeClock


class SkewedClock:
    """``clock``'s monotonic time and sleeps, and its wall time ``skew`` seconds off.

    A negative ``skew`` is a clock behind the service's (the fake's ``Date`` is ``clock``'s).
    """

    def __init__(self, clock: FakeClock, skew: float) -> None:
        self._clock = clock
        self._skew = timedelta(seconds=skew)

    def __repr__(self) -> str:
        return f"SkewedClock({self._clock!r}, {self._skew.total_seconds():g})"

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def now(self) -> datetime:
        return self._clock.now() + self._skew

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)
