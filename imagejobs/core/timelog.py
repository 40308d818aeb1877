"""A log of times, oldest first, kept as raw doubles: what counts answers in a window.

A deque of floats keeps an object per time. The newest of them are made last,
at the end of a long run, in whichever of CPython's memory pools its jobs freed
last; kept past the run, they keep those pools' arenas mapped (see
docs/scheduling.md, "Memory at scale"). An array keeps the numbers in one block.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["NEVER", "TimeLog"]

NEVER = -math.inf
"""The time of what never happened. One float, made at import: a field set back to it
(as a client closes) is not given a new float among the memory of ended waits."""


class TimeLog:
    """Times appended in order; the oldest dropped by time, or past ``cap`` of them."""

    __slots__ = ("_cap", "_times")

    def __init__(self, cap: int | None = None) -> None:
        if cap is not None and cap < 1:
            raise ValueError(f"cap must be at least 1, not {cap!r}")
        self._cap = cap
        self._times = array("d")

    def __repr__(self) -> str:
        return f"TimeLog(len={len(self)}, cap={self._cap})"

    def __len__(self) -> int:
        return len(self._times)

    @property
    def oldest(self) -> float:
        """Return the oldest time kept; raises :class:`IndexError` when none is."""
        if not self._times:
            raise IndexError("the time log is empty")
        return self._times[0]

    def append(self, time: float) -> None:
        """Add the newest time; the oldest goes when there are more than ``cap``."""
        self._times.append(time)
        if self._cap is not None and len(self._times) > self._cap:
            del self._times[0]

    def clear(self) -> None:
        """Drop every time."""
        del self._times[:]

    def drop_through(self, time: float) -> None:
        """Drop every time at or before ``time`` from the front."""
        times, old = self._times, 0
        while old < len(times) and times[old] <= time:
            old += 1
        del times[:old]
