"""Doubling delays, jittered: every backoff the library waits out, drawn from ``backoff``. Pure.

One schedule serves every wait that grows while something keeps failing or
stays quiet: a request's retries (:class:`~imagejobs.RetryPolicy`), a job's
failed polls, the looks at a job another process of a fleet is fetching, and
the gaps between sweeps that find nothing new. The delays themselves come from
the ``backoff`` package's exponential wait generator (:func:`backoff.expo`),
and a request's retries draw their jitter with its :func:`backoff.full_jitter`;
the scheduler's jitter is drawn from a number it gives (its own random source),
so tests of it are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator

import backoff

__all__ = ["equal_jitter", "full_jitter", "schedule", "step"]


def schedule(first: float, cap: float, factor: float = 2.0) -> Iterator[float]:
    """Return the delays ``first``, ``first * factor``, ... each at most ``cap``, for ever."""
    waits = backoff.expo(base=factor, factor=first, max_value=cap)
    next(waits)  # backoff's wait generators start with a priming yield
    return waits


def step(attempt: int, first: float, cap: float, factor: float = 2.0) -> float:
    """Return the ``attempt``-th delay (1-based) of :func:`schedule`, before jitter."""
    delays = schedule(first, cap, factor)
    delay = next(delays)
    # Capped from the 64th on (2**63 times the first is past any cap), or once at the cap.
    for _ in range(min(attempt, 64) - 1):
        if delay >= cap:
            break
        delay = next(delays)
    return delay


def full_jitter(delay: float, draw: float | None = None) -> float:
    """Return a delay drawn evenly from [0, delay): by ``backoff``, or for ``draw`` in [0, 1)."""
    if draw is None:
        return float(backoff.full_jitter(delay))
    return delay * draw


def equal_jitter(delay: float, draw: float) -> float:
    """Return a delay drawn evenly from ``[delay / 2, delay)``: spread out, never instant."""
    return delay * (0.5 + 0.5 * draw)
