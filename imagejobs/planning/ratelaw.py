"""The 429 rate law: how a client's rate falls on the gateway's throttling and climbs back. Pure.

The rate adapts to the gateway's throttling the way TCP CUBIC adapts to loss,
as botocore's adaptive retry mode does, with three differences that cost fewer
429s: the rate drops to a share of what the gateway *accepted* lately (not of
what was sent), a 429 to a request sent before the last drop is not counted
again (it says nothing about the new rate), and the rate climbs back gently,
lingering near the rate that was throttled before probing past it.
Times are the caller's monotonic clock readings; nothing here reads a clock.

This is the description of the law, and the only copy of its numbers: a fleet's
shared rate (:mod:`imagejobs.fleet.scripts`) is the same law in Redis Lua, function
for function, its constants generated from the ones here
(``tests/fleet/test_ratelaw_fleet.py`` feeds both the same answers and 429s on a real
Redis and asserts the same rates). Where the fleet must differ,
:mod:`imagejobs.fleet.scripts` says why: its clock is Redis's; it works out the
climb each time a process asks for a turn (a lone client, at each start it
plans); each process caps the shared rate at its own ``max_rate``; and Redis
forgets a fleet idle for ten minutes, where a lone client keeps its state while
it lives.
"""

from __future__ import annotations

import attrs

from imagejobs.core.timelog import NEVER, TimeLog

__all__ = [
    "CLIMB",
    "DROP",
    "FLOOR",
    "HOLD",
    "MAX_COUNTED",
    "MAX_HOLD",
    "MAX_STRETCH",
    "SAME_CEILING",
    "WINDOW",
    "AdaptiveRate",
]

# The law's numbers, here only: the fleet's Lua takes them from these names.

# After a 429 the rate drops to this share of the rate the gateway accepted.
DROP = 0.7
# How fast the rate climbs back: CUBIC's constant. botocore uses 0.4; a smaller
# one lingers longer near the throttled rate, so fewer probes end in a 429.
CLIMB = 0.1
# The accepted rate is measured over this many seconds.
WINDOW = 1.0
# At most this many answers are counted (the newest), so an enormous rate cannot
# grow the log without bound (a fleet's log is a Redis sorted set every process
# adds to): ten thousand a second, far above any gateway's limit for this API.
MAX_COUNTED = 10_000
# A gateway that throttles again at about the same rate has a steady limit: each
# such drop stretches the climb in time (up to 16 times), so probes grow rarer.
SAME_CEILING = 0.2
MAX_STRETCH = 4
# With no Retry-After, a drop also holds every request this long (doubling while
# drops follow each other closely, up to 8 s): a gateway counting in windows
# throttles everything until its window moves on, whatever the rate.
HOLD = 1.0
MAX_HOLD = 8.0
# Never below this many requests a second, or the configured rate if lower.
FLOOR = 0.2


def _log() -> TimeLog:
    """Return an empty log of accepted answers' times, the oldest falling out past the cap."""
    return TimeLog(MAX_COUNTED)


@attrs.define
class AdaptiveRate:
    """The rate a client may send at: lowered by each 429, raised while none come.

    Before the first 429 it is ``max_rate``. A 429 drops it to 0.7 times the
    rate of answers the gateway accepted in the last second, and remembers
    that accepted rate as the ``ceiling``; it then climbs along a cubic curve
    that reaches the ceiling after a few seconds, stays near it a while, and
    only then probes higher, never past ``max_rate`` and never faster than
    twice the accepted rate (no climbing on demand that is not there). Each
    drop at about the same ceiling as the last stretches the curve in time.
    """

    max_rate: float
    rate: float
    ceiling: float | None = None
    dropped_at: float = NEVER
    stretch: int = 0
    hold: float = 0.0
    accepted: TimeLog = attrs.Factory(_log)

    @classmethod
    def create(cls, max_rate: float) -> AdaptiveRate:
        """Return a rate that starts at ``max_rate``."""
        return cls(max_rate, max_rate)

    def forget(self) -> None:
        """Start over at ``max_rate``, as when made (its client is closed)."""
        self.rate = self.max_rate
        self.ceiling = None
        self.dropped_at = NEVER
        self.stretch = 0
        self.hold = 0.0
        self.accepted.clear()

    @property
    def floor(self) -> float:
        """Return the lowest rate a drop may reach."""
        return min(FLOOR, self.max_rate)

    def measured(self, now: float) -> float:
        """Return the answers the gateway accepted per second, over the last second.

        Counts those after ``now - WINDOW``, at most :data:`MAX_COUNTED` (the newest).
        """
        self.accepted.drop_through(now - WINDOW)
        return len(self.accepted) / WINDOW

    def current(self, now: float) -> float:
        """Return the rate allowed at ``now``, updating the climb since the last drop."""
        if self.ceiling is None or self.rate >= self.max_rate:
            return self.rate
        curve = self._curve(self.ceiling, now)
        if curve > self.rate:
            demand_cap = max(self.rate, 2 * self.measured(now))
            self.rate = min(curve, demand_cap, self.max_rate)
        return self.rate

    def potential(self, now: float) -> float:
        """Return the rate the climb allows at ``now``, were there demand for it.

        What plans are made by: :meth:`current` climbs only while requests come
        at half its rate or more, so a plan made from it after a drop would ask
        for too few requests for it ever to climb back.
        """
        rate = self.current(now)
        if self.ceiling is None or rate >= self.max_rate:
            return rate
        return max(rate, min(self._curve(self.ceiling, now), self.max_rate))

    def _curve(self, ceiling: float, now: float) -> float:
        """The cubic climb since the last drop: the ceiling after a few seconds, then past it."""
        since = (now - self.dropped_at) / 2**self.stretch
        knee = (ceiling * (1 - DROP) / CLIMB) ** (1 / 3)
        return float(ceiling + CLIMB * (since - knee) ** 3)

    def on_accepted(self, now: float) -> None:
        """Count an answer that was not a 429."""
        accepted = self.accepted
        accepted.append(now)
        # Pruned once the oldest is two windows old: at most two windows' answers kept,
        # and never more than MAX_COUNTED (the deque's maxlen), at any rate.
        if accepted.oldest <= now - 2 * WINDOW:
            self.measured(now)

    def on_throttled(self, now: float, sent_at: float) -> float | None:
        """Drop the rate after a 429; return how long to hold all requests, or None.

        None means the 429 changed nothing: its request was sent before the
        last drop, at the old rate.
        """
        if sent_at < self.dropped_at:
            return None
        before = self.current(now)
        accepted = self.measured(now)
        base = min(before, accepted) if accepted > 0 else before * (1 - DROP)
        ceiling = max(base, self.floor)
        if self.ceiling is not None and abs(ceiling - self.ceiling) <= SAME_CEILING * self.ceiling:
            self.stretch = min(self.stretch + 1, MAX_STRETCH)
        else:
            self.stretch = 0
        recent = now - self.dropped_at <= self.hold + 2 * HOLD
        self.hold = min(MAX_HOLD, 2 * self.hold) if recent and self.hold else HOLD
        self.ceiling = ceiling
        self.rate = max(self.floor, base * DROP)
        self.dropped_at = now
        return self.hold
