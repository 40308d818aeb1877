"""A client's request budget: requests in flight, a token bucket at the adaptive rate, pauses.

Pure: times are the caller's monotonic clock readings; nothing here reads a
clock. How the rate itself falls and climbs is :mod:`imagejobs.planning.ratelaw`.
"""

from __future__ import annotations

import math

import attrs

from imagejobs.core.errors import InvalidArgument
from imagejobs.core.timelog import NEVER

from .ratelaw import AdaptiveRate

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RATE",
    "MAX_RETRY_AFTER",
    "PACE",
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
    paused_until: float = NEVER
    in_flight: int = 0

    @classmethod
    def create(cls, max_in_flight: int, rate: float, now: float) -> RequestBudget:
        """Return a full budget; raises :class:`InvalidArgument` for bad limits."""
        check_limits(max_in_flight, rate)
        budget = cls(max_in_flight, AdaptiveRate.create(float(rate)), 0.0, now)
        budget.tokens = budget.burst(now)
        return budget

    def forget(self) -> None:
        """Let go of what the requests taught it: the rate, the pause, the tokens (its client
        is closed), set back to numbers made before the waits (see :data:`NEVER`)."""
        self.adaptive.forget()
        self.tokens = 0.0
        self.refilled_at = self.paused_until = NEVER

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
        ``throttled`` that it answered 429. A ``Retry-After`` (of a 429, or of an
        answer such as a 503) holds every start until it has passed, capped at
        :data:`MAX_RETRY_AFTER`; only a 429 lowers the rate.
        """
        self.in_flight -= 1
        if now is None:
            return
        if answered:
            self.adaptive.on_accepted(now)
        hold = None
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
