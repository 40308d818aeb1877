"""Where the library reads the time and how it sleeps: one seam, so tests need no real waiting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock"]


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

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()
"""The real clock: ``time.monotonic``, ``datetime.now(UTC)`` and ``asyncio.sleep``."""
