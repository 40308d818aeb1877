"""Which failures are worth another try, and how long to wait before it. Pure.

A poll that meets a flaky gateway (a dropped connection, a 502, a body cut
short) tries again after a short jittered delay; a refused credential or a
missing job never does. The client runs the schedule with ``backoff``.
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

__all__ = ["RETRIED_STATUSES", "RetryPolicy", "is_transient"]

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

    def waits(self, random: Callable[[], float]) -> Generator[float, BaseException | None, None]:
        """Return a ``backoff`` wait generator; it is sent each failure to read its Retry-After."""
        delay = self.initial_delay
        error = yield 0.0  # backoff primes its generators and drops this value
        while True:
            retry_after = getattr(error, "retry_after", None) or 0.0
            error = yield max(retry_after, delay * random())
            delay = min(delay * 2, self.max_delay)
