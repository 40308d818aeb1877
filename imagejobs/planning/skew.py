"""How far the service's clock is from this machine's, read from its answers' ``Date``. Pure.

A job's age is the service's time now minus its ``begin_time``, a time on the
service's clock. This machine's clock may be minutes off (the gateway accepts
signatures up to 15 minutes off): read as it is, a clock behind makes jobs look
younger than they are, and a wait that knows the durations of their type then
polls where young jobs end, minutes after the job did; a clock ahead makes them
look older. Every answer says the service's time in its ``Date`` header, to the
second. :class:`ClockOffset` keeps the median of the last :data:`READINGS` of it
(one a second at most), so one odd answer moves nothing; the waits read job ages
on the service's clock through it.

Offsets under :data:`IGNORED_OFFSET` are the header's resolution and the trip's
time, not a skew: they count as none. Past :data:`WARNED_OFFSET`, one warning
says so. A ``Date`` more than :data:`LARGEST_OFFSET` away is taken for another
clock's, not the service's: it is not read.
"""

from __future__ import annotations

import statistics
from collections import deque
from datetime import datetime, timedelta

from imagejobs.core.timelog import NEVER

__all__ = [
    "IGNORED_OFFSET",
    "LARGEST_OFFSET",
    "READINGS",
    "READ_EVERY",
    "WARNED_OFFSET",
    "ClockOffset",
]

READINGS = 9
"""How many ``Date`` readings the offset is the median of, the most recent."""

READ_EVERY = 1.0
"""Seconds between two readings at least: a ``Date`` says no more within its second."""

IGNORED_OFFSET = 2.0
"""Seconds of offset taken as none: the ``Date`` header's resolution and the trip's time."""

WARNED_OFFSET = 30.0
"""Seconds of offset past which a warning is logged, and again if it moves by as much."""

LARGEST_OFFSET = 24 * 3600.0
"""Seconds of offset past which a ``Date`` is not read: no clock drifts a day unnoticed
(signatures fail past 15 minutes), so such a date is another clock's (a proxy's, a
test's virtual one)."""

# A Date is the service's time cut to the second: on average half a second earlier.
_CUT_SECOND = 0.5


class ClockOffset:
    """The service's clock minus this machine's, in seconds, from its answers' ``Date``."""

    __slots__ = ("_readings", "_warned", "read_after", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        """The offset in use: 0 until a skew of at least :data:`IGNORED_OFFSET` is seen."""
        self.read_after = NEVER
        """When (on the monotonic clock) the next ``Date`` is worth reading."""
        self._readings: deque[float] = deque(maxlen=READINGS)
        self._warned: float | None = None

    def __repr__(self) -> str:
        return f"ClockOffset(seconds={self.seconds:g}, readings={len(self._readings)})"

    def forget(self) -> None:
        """Let go of the readings, as when new (its client is closed)."""
        self._readings.clear()
        self.seconds = 0.0
        self.read_after = NEVER
        self._warned = None

    def read(self, monotonic: float, service_date: datetime, local_now: datetime) -> str | None:
        """Take the ``Date`` of an answer received at ``local_now`` (``monotonic``).

        Return a warning to log when the offset is newly past :data:`WARNED_OFFSET`.
        """
        self.read_after = monotonic + READ_EVERY
        reading = (service_date - local_now).total_seconds() + _CUT_SECOND
        if abs(reading) > LARGEST_OFFSET:
            return None
        self._readings.append(reading)
        median = statistics.median(self._readings)
        self.seconds = median if abs(median) >= IGNORED_OFFSET else 0.0
        return self._warning()

    def service_time(self, local: datetime) -> datetime:
        """Return the service's time when this machine's clock says ``local``."""
        return local + timedelta(seconds=self.seconds) if self.seconds else local

    def _warning(self) -> str | None:
        seconds = self.seconds
        if abs(seconds) < WARNED_OFFSET:
            return None
        if self._warned is not None and abs(seconds - self._warned) < WARNED_OFFSET:
            return None
        self._warned = seconds
        side = "behind" if seconds > 0 else "ahead of"
        return (
            f"this machine's clock is {abs(seconds):.0f}s {side} the service's (by the Date "
            "of its answers): job ages are read on the service's clock; the gateway refuses "
            "signatures past 15 minutes of skew: check this machine's clock (NTP)"
        )
