"""Which failures are worth another try, and how long to wait before it. Pure.

A poll that meets a flaky gateway (a dropped connection, a 502, a body cut
short) tries again after a short jittered delay; a refused credential or a
missing job never does. The delays are :mod:`imagejobs.planning.backoff`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import attrs

from imagejobs.core.errors import (
    MalformedResponse,
    ResponseTooLarge,
    ServerError,
    Throttled,
    TransportError,
)
from imagejobs.core.validation import number_validator
from imagejobs.planning.backoff import equal_jitter, full_jitter, step

__all__ = ["RETRIED_STATUSES", "RetryPolicy", "is_poll_transient", "is_transient"]

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses that say "try again later"; all others are final."""


def is_transient(error: BaseException) -> bool:
    """Whether another try of the same request may succeed."""
    if isinstance(error, ResponseTooLarge):
        return False
    if isinstance(error, (TransportError, MalformedResponse, Throttled)):
        return True
    return isinstance(error, ServerError) and error.http_status in RETRIED_STATUSES


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How one request (:meth:`Client.get_job`) is retried when the failure is transient.

    At most ``max_attempts`` tries (``1`` switches retries off) within
    ``max_time`` seconds. Delays start at ``initial_delay`` and double up to
    ``max_delay``, each drawn with full jitter; a ``Retry-After`` from the
    server is a floor. Each try is signed afresh. A wait does not retry a poll
    this way: it polls again after the same doubling delays, until its deadline.
    """

    max_attempts: int = attrs.field(default=4, validator=number_validator(minimum=1, whole=True))
    max_time: float = attrs.field(default=30.0, validator=number_validator(minimum=1e-9))
    initial_delay: float = attrs.field(default=0.5, validator=number_validator(minimum=1e-9))
    max_delay: float = attrs.field(default=8.0, validator=number_validator(minimum=1e-9))

    def delay(self, attempt: int, error: BaseException, draw: float | None = None) -> float:
        """Return how long to wait after try number ``attempt`` failed with ``error``.

        Full jitter on the doubling step, drawn by ``backoff`` (or for ``draw``,
        in [0, 1), when given); the error's ``Retry-After``, if it has one, is a floor.
        """
        retry_after = getattr(error, "retry_after", None) or 0.0
        doubled = step(attempt, self.initial_delay, self.max_delay)
        return max(retry_after, full_jitter(doubled, draw))

    def waits(self, random: Callable[[], float]) -> Generator[float, BaseException | None, None]:
        """Return a wait generator as ``backoff`` takes them: primed, then sent each failure.

        Each value is :meth:`delay` for the next attempt, drawn with ``random``; what is
        sent is the failure, for its ``Retry-After``.
        """
        error = yield 0.0  # a backoff wait generator is primed first; this value is dropped
        attempt = 0
        while True:
            attempt += 1
            error = yield self.delay(attempt, error or _NO_ERROR, random())

    def poll_delay(
        self, failures: int, error: BaseException, *, cap: float, longest: float, draw: float
    ) -> float:
        """Return how long a wait lets a job's polls rest after ``failures`` in a row.

        The same doubling step, capped at ``cap``, half of it fixed and half
        drawn (never an instant retry); a ``Retry-After`` is a floor, up to
        ``longest`` (the longest gap a subscriber's policy allows).
        """
        delay = equal_jitter(step(failures, self.initial_delay, cap), draw)
        retry_after = min(getattr(error, "retry_after", None) or 0.0, longest)
        return max(delay, retry_after)


_NO_ERROR = Exception()


def is_poll_transient(error: BaseException) -> bool:
    """Whether a later poll may succeed where this one failed: what a retry may fix, or any 5xx.

    A poll comes again anyway, seconds later, so a 501 is worth another look too.
    """
    return is_transient(error) or isinstance(error, ServerError)
