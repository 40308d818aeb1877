"""Where the library reads the time and how it sleeps: one seam, so tests need no real waiting."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Alarm", "Clock"]


class Clock(Protocol):
    """Where a client gets the time and how it sleeps."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back."""
        ...

    def now(self) -> datetime:
        """Return the current UTC time, for ``Transition.observed_at``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds``."""
        ...


class _SystemClock:
    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"

    # The C function itself: read on every request, a Python frame around it costs.
    monotonic = staticmethod(time.monotonic)

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()
"""The real clock: ``time.monotonic``, ``datetime.now(UTC)`` and ``asyncio.sleep``."""


class Alarm:
    """Calls ``ring`` when a clock reaches a time: one pending time at most."""

    def __init__(self, clock: Clock, ring: Callable[[], None]) -> None:
        self._clock = clock
        self._ring = ring
        self._task: asyncio.Task[None] | None = None
        self._at = math.inf

    def set(self, at: float) -> None:
        """Ring at ``at``, unless already set to ring at or before it.

        Ringing early is harmless: whoever is rung looks again and sets the next time.
        """
        if self._task is not None and self._at <= at:
            return
        self.cancel()
        if at < math.inf:
            self._at = at
            self._task = asyncio.get_running_loop().create_task(self._wait(at))

    async def _wait(self, at: float) -> None:
        await self._clock.sleep(max(0.0, at - self._clock.monotonic()))
        self._task, self._at = None, math.inf
        self._ring()

    def cancel(self) -> None:
        """Ring no more."""
        if self._task is not None:
            self._task.cancel()
            self._task, self._at = None, math.inf

    async def close(self) -> None:
        """Ring no more, and wait until the sleeping task is gone."""
        task = self._task
        self.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
