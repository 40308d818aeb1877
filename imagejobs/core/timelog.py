"""A log of times, oldest first, kept as raw doubles: what counts answers in a window.

A deque of floats keeps an object per time. The newest of them are made last,
at the end of a long run, in whichever of CPython's memory pools its jobs freed
last; kept past the run, they keep those pools' arenas mapped (see
docs/scheduling.md, "Memory at scale"). An array keeps the numbers in one block.
"""

from __future__ import annotations

from array import array

__all__ = ["TimeLog"]

_SQUEEZE_AT = 64
"""Dropped times kept at the front before they are squeezed out (at half the log, too)."""


class TimeLog:
    """Times appended in order; the oldest dropped by time, or past ``cap`` of them."""

    __slots__ = ("_cap", "_first", "_times")

    def __init__(self, cap: int | None = None) -> None:
        if cap is not None and cap < 1:
            raise ValueError(f"cap must be at least 1, not {cap!r}")
        self._cap = cap
        self._times = array("d")
        self._first = 0

    def __repr__(self) -> str:
        return f"TimeLog(len={len(self)}, cap={self._cap})"

    def __len__(self) -> int:
        return len(self._times) - self._first

    @property
    def oldest(self) -> float:
        """Return the oldest time kept; raises :class:`IndexError` when none is."""
        if self._first >= len(self._times):
            raise IndexError("the time log is empty")
        return self._times[self._first]

    def append(self, time: float) -> None:
        """Add the newest time; the oldest goes when there are more than ``cap``."""
        self._times.append(time)
        if self._cap is not None and len(self) > self._cap:
            self._first += 1
            self._squeeze()

    def drop_through(self, time: float) -> None:
        """Drop every time at or before ``time`` from the front."""
        times, first = self._times, self._first
        end = len(times)
        while first < end and times[first] <= time:
            first += 1
        self._first = first
        self._squeeze()

    def _squeeze(self) -> None:
        first = self._first
        if first >= _SQUEEZE_AT and 2 * first >= len(self._times):
            del self._times[:first]
            self._first = 0
