"""A clock for tests: time moves only when the code under test sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`~imagejobs.Clock` whose sleeps return at once and move time on.

    Pass it as ``clock=`` to ``watch``, ``wait`` and ``wait_many`` so a wait of
    an hour takes milliseconds, and as ``FakeWorkspace(clock=fake.monotonic)``
    so the server's timelines and request log share the same time. ``sleeps``
    lists every sleep requested, in order.
    """

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._start = start
        self._elapsed = 0.0
        self.sleeps: list[float] = []

    def __repr__(self) -> str:
        return f"FakeClock(elapsed={self._elapsed:g})"

    def monotonic(self) -> float:
        """Return the seconds elapsed since the clock was made."""
        return self._elapsed

    def now(self) -> datetime:
        """Return the start time plus the elapsed seconds."""
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time on without sleeping."""
        self._elapsed += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, move time on by it, and let other tasks run once."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
