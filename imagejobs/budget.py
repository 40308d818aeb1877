"""A client's request budget: in flight, rate, a 429's pause, and the adaptive rate. Pure.

The rate adapts to the gateway's throttling the way TCP CUBIC adapts to loss,
as botocore's adaptive retry mode does, with three differences that cost fewer
429s: the rate drops to a share of what the gateway *accepted* lately (not of
what was sent), a 429 to a request sent before the last drop is not counted
again (it says nothing about the new rate), and the rate climbs back gently,
lingering near the rate that was throttled before probing past it.
Times are the caller's monotonic clock readings; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque

import attrs

from .errors import InvalidArgument

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RATE",
    "MAX_RETRY_AFTER",
    "PACE",
    "AdaptiveRate",
    "RequestBudget",
    "check_limits",
]

DEFAULT_MAX_IN_FLIGHT = 4
"""Requests a client has in flight at most: at a few requests a second, plenty."""

MAX_RETRY_AFTER = 30.0
"""Seconds a ``Retry-After`` may hold every request of a client, whatever it says:
a gateway asking for a day would otherwise stop every wait until its deadline."""

DEFAULT_RATE = 1.5
"""Requests a client sends a second at most: 90 a minute, under the gateway's lowest
published per-user limit for Workspace APIs (100 a minute). A 429 lowers it further."""

# The bucket holds a tenth of a second's worth of requests, between 1 and 10: a
# gateway counting a sliding second throttles whatever a bucket lets through beyond
# the rate, so a client told the gateway's own limit must not burst over it.
_BURST_SECONDS = 0.1
PACE = 0.99
"""The share of the rate requests are paced at.

A hair under: paced at exactly the gateway's limit, a request lands on the edge of
the gateway's sliding second, where the least clock difference makes it the
limit's one too many, and a 429 holds every request of the client."""
_MAX_BURST = 10.0
# Refills are sums of float products, so a token due at t can be 0.9999999999999998
# at t, and t plus the tiny wait left rounds back to t: with a clock that only moves
# when asked to, that is an endless zero sleep. A token this close to whole counts.
_WHOLE = 1.0 - 1e-9

# After a 429 the rate drops to this share of the rate the gateway accepted.
_DROP = 0.7
# How fast the rate climbs back: CUBIC's constant. botocore uses 0.4; a smaller
# one lingers longer near the throttled rate, so fewer probes end in a 429.
_CLIMB = 0.1
# The accepted rate is measured over this many seconds.
_WINDOW = 1.0
# A gateway that throttles again at about the same rate has a steady limit: each
# such drop stretches the climb in time (up to 16 times), so probes grow rarer.
_SAME_CEILING = 0.2
_MAX_STRETCH = 4
# With no Retry-After, a drop also holds every request this long (doubling while
# drops follow each other closely, up to 8 s): a gateway counting in windows
# throttles everything until its window moves on, whatever the rate.
_HOLD = 1.0
_MAX_HOLD = 8.0
# Never below this many requests a second, or the configured rate if lower.
_FLOOR = 0.2


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
    dropped_at: float = -math.inf
    stretch: int = 0
    hold: float = 0.0
    accepted: deque[float] = attrs.Factory(deque)

    @classmethod
    def create(cls, max_rate: float) -> AdaptiveRate:
        """Return a rate that starts at ``max_rate``."""
        return cls(max_rate, max_rate)

    @property
    def floor(self) -> float:
        """Return the lowest rate a drop may reach."""
        return min(_FLOOR, self.max_rate)

    def measured(self, now: float) -> float:
        """Return the answers the gateway accepted per second, over the last second."""
        while self.accepted and self.accepted[0] <= now - _WINDOW:
            self.accepted.popleft()
        return len(self.accepted) / _WINDOW

    def current(self, now: float) -> float:
        """Return the rate allowed at ``now``, updating the climb since the last drop."""
        if self.ceiling is None or self.rate >= self.max_rate:
            return self.rate
        since = (now - self.dropped_at) / 2**self.stretch
        knee = (self.ceiling * (1 - _DROP) / _CLIMB) ** (1 / 3)
        curve = self.ceiling + _CLIMB * (since - knee) ** 3
        if curve > self.rate:
            demand_cap = max(self.rate, 2 * self.measured(now))
            self.rate = min(curve, demand_cap, self.max_rate)
        return self.rate

    def on_accepted(self, now: float) -> None:
        """Count an answer that was not a 429."""
        accepted = self.accepted
        accepted.append(now)
        # Pruned once the oldest is two windows old: at most two windows' answers kept,
        # at any rate, an infinite one too.
        if accepted[0] <= now - 2 * _WINDOW:
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
        base = min(before, accepted) if accepted > 0 else before * (1 - _DROP)
        ceiling = max(base, self.floor)
        if self.ceiling is not None and abs(ceiling - self.ceiling) <= _SAME_CEILING * self.ceiling:
            self.stretch = min(self.stretch + 1, _MAX_STRETCH)
        else:
            self.stretch = 0
        recent = now - self.dropped_at <= self.hold + 2 * _HOLD
        self.hold = min(_MAX_HOLD, 2 * self.hold) if recent and self.hold else _HOLD
        self.ceiling = ceiling
        self.rate = max(self.floor, base * _DROP)
        self.dropped_at = now
        return self.hold


@attrs.define
class RequestBudget:
    """At most ``max_in_flight`` requests at once, at the :class:`AdaptiveRate`.

    The rate is a token bucket refilled continuously, holding a small burst.
    :meth:`pause_until` stops all starts until a time (a 429's ``Retry-After``).
    """

    max_in_flight: int
    adaptive: AdaptiveRate
    tokens: float
    refilled_at: float
    paused_until: float = -math.inf
    in_flight: int = 0

    @classmethod
    def create(cls, max_in_flight: int, rate: float, now: float) -> RequestBudget:
        """Return a full budget; raises :class:`InvalidArgument` for bad limits."""
        check_limits(max_in_flight, rate)
        budget = cls(max_in_flight, AdaptiveRate.create(float(rate)), 0.0, now)
        budget.tokens = budget.burst(now)
        return budget

    @property
    def rate(self) -> float:
        """The configured rate: the most requests a second, whatever the adaptation."""
        return self.adaptive.max_rate

    def burst(self, now: float) -> float:
        """Return how many tokens the bucket holds at most, at the current rate."""
        rate = self.adaptive.current(now)
        # An unlimited rate needs an unlimited bucket, or starts at one instant stall.
        return math.inf if math.isinf(rate) else min(_MAX_BURST, max(1.0, rate * _BURST_SECONDS))

    def _refill(self, now: float) -> None:
        if now > self.refilled_at:
            rate = self.adaptive.current(now)
            if rate == math.inf:
                self.tokens = math.inf
            else:
                gained = (now - self.refilled_at) * rate * PACE
                self.tokens = min(self.burst(now), self.tokens + gained)
            self.refilled_at = now

    @property
    def has_room(self) -> bool:
        """Whether fewer than ``max_in_flight`` requests are in flight."""
        return self.in_flight < self.max_in_flight

    def try_start(self, now: float) -> bool:
        """Start a request if the budget allows it now; return whether it did."""
        self._refill(now)
        if self.in_flight >= self.max_in_flight or now < self.paused_until or self.tokens < _WHOLE:
            return False
        self.tokens -= 1
        self.in_flight += 1
        return True

    def finish(
        self,
        now: float | None = None,
        *,
        sent_at: float | None = None,
        answered: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Mark one started request as done, and learn from how it ended.

        ``answered`` says the gateway accepted it (any answer but a 429);
        ``throttled`` that it answered 429, with its ``Retry-After`` if any.
        """
        self.in_flight -= 1
        if now is None:
            return
        if answered:
            self.adaptive.on_accepted(now)
        if throttled:
            hold = self.adaptive.on_throttled(now, now if sent_at is None else sent_at)
            if hold is not None:
                # The tokens saved up at the old rate would be a burst at the new one.
                self.tokens = min(self.tokens, 0.0)
                self.refilled_at = now
            if retry_after is not None and retry_after > 0:
                self.pause_until(now + min(retry_after, MAX_RETRY_AFTER))
            elif hold is not None:
                self.pause_until(now + hold)

    def pause_until(self, until: float) -> None:
        """Allow no start before ``until`` (later pauses extend, earlier ones do not shorten)."""
        self.paused_until = max(self.paused_until, until)

    def next_start(self, now: float) -> float:
        """Return the earliest time the rate and any pause allow a start (room aside)."""
        self._refill(now)
        if self.tokens >= _WHOLE:
            token_at = now
        else:
            rate = self.adaptive.current(now)
            # At least one step of the float past now, or a tiny wait could round to none.
            token_at = max(now + (1 - self.tokens) / (rate * PACE), math.nextafter(now, math.inf))
        return max(token_at, self.paused_until)


def check_limits(max_in_flight: object, rate: object) -> None:
    """Raise :class:`InvalidArgument` unless these are a usable in-flight cap and rate."""
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
        raise InvalidArgument(f"max_in_flight must be an integer, got {max_in_flight!r}")
    if max_in_flight < 1:
        raise InvalidArgument(f"max_in_flight must be at least 1, got {max_in_flight}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
        raise InvalidArgument(f"rate must be a positive number per second, got {rate!r}")
