"""The shared request budget of a many-job wait: an in-flight cap and a rate. Pure."""

from __future__ import annotations

import math

import attrs

from .errors import InvalidArgument

__all__ = ["RequestBudget"]

# The bucket holds a quarter second's worth of requests, between 1 and 10:
# enough to start a few polls at once, too few to look like a burst to a gateway.
_BURST_SECONDS = 0.25
_MAX_BURST = 10.0
# Refills are sums of float products, so a token due at t can be 0.9999999999999998
# at t, and t plus the tiny wait left rounds back to t: with a clock that only moves
# when asked to, that is an endless zero sleep. A token this close to whole counts.
_WHOLE = 1.0 - 1e-9


@attrs.define
class RequestBudget:
    """At most ``max_in_flight`` requests at once and ``rate`` per second.

    The rate is a token bucket refilled continuously, holding a small burst.
    :meth:`pause_until` stops all starts until a time (a 429's ``Retry-After``).
    Times are the caller's monotonic clock readings; nothing here reads a clock.
    """

    max_in_flight: int
    rate: float
    burst: float
    tokens: float
    refilled_at: float
    paused_until: float = -math.inf
    in_flight: int = 0

    @classmethod
    def create(cls, max_in_flight: int, rate: float, now: float) -> RequestBudget:
        """Return a full budget; raises :class:`InvalidArgument` for bad limits."""
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise InvalidArgument(f"max_in_flight must be an integer, got {max_in_flight!r}")
        if max_in_flight < 1:
            raise InvalidArgument(f"max_in_flight must be at least 1, got {max_in_flight}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise InvalidArgument(f"rate must be a positive number per second, got {rate!r}")
        # An unlimited rate needs an unlimited bucket, or starts at one instant stall.
        burst = math.inf if math.isinf(rate) else min(_MAX_BURST, max(1.0, rate * _BURST_SECONDS))
        return cls(max_in_flight, float(rate), burst, burst, now)

    def _refill(self, now: float) -> None:
        if now > self.refilled_at:
            self.tokens = min(self.burst, self.tokens + (now - self.refilled_at) * self.rate)
            self.refilled_at = now

    @property
    def has_room(self) -> bool:
        """Whether fewer than ``max_in_flight`` requests are in flight."""
        return self.in_flight < self.max_in_flight

    def try_start(self, now: float) -> bool:
        """Start a request if the budget allows it now; return whether it did."""
        self._refill(now)
        if not self.has_room or now < self.paused_until or self.tokens < _WHOLE:
            return False
        self.tokens -= 1
        self.in_flight += 1
        return True

    def finish(self) -> None:
        """Mark one started request as done."""
        self.in_flight -= 1

    def pause_until(self, until: float) -> None:
        """Allow no start before ``until`` (later pauses extend, earlier ones do not shorten)."""
        self.paused_until = max(self.paused_until, until)

    def next_start(self, now: float) -> float:
        """Return the earliest time the rate and any pause allow a start (room aside)."""
        self._refill(now)
        if self.tokens >= _WHOLE:
            token_at = now
        else:
            # At least one step of the float past now, or a tiny wait could round to none.
            token_at = max(now + (1 - self.tokens) / self.rate, math.nextafter(now, math.inf))
        return max(token_at, self.paused_until)
