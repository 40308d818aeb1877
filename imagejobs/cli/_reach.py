"""Whether the service answers at all: a client hook the command line listens with.

A wrong endpoint, a DNS typo or no network leave every request without an
answer, and a wait would retry until its deadline. :class:`Reach` hears every
request (``Client(hooks=[reach])``): while none has been answered it knows since
when, and the last error in words, so the heartbeat can say so and the command
can give up after a bounded time. It also keeps each job's last error, for the
summary of a wait stopped early.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from imagejobs import RequestRecord

__all__ = ["Reach"]

_JOBS_KEPT = 10_000


class Reach:
    """Listens to a client's requests: has any reached the service, and what failed last."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.answered = False
        """Whether any request got an answer (any status: the service was reached)."""
        self._failing_since: float | None = None
        self.last_error = ""
        self.errors: dict[str, str] = {}
        """Each job's last error, by job ID."""

    def __repr__(self) -> str:
        return f"Reach(answered={self.answered}, last_error={self.last_error!r})"

    def on_request(self, record: RequestRecord) -> None:
        """Note how a request ended."""
        message = record.message or record.error
        if record.job_id is not None and message:
            if len(self.errors) >= _JOBS_KEPT and record.job_id not in self.errors:
                self.errors.pop(next(iter(self.errors)))
            self.errors[record.job_id] = message
        if record.status is not None:
            self.answered = True
            self._failing_since = None
        elif not self.answered:
            if self._failing_since is None:
                self._failing_since = self._clock() - record.duration
            self.last_error = _cause(message or "no answer")

    def unreachable_for(self) -> float:
        """Return how long requests have gone without any answer (0 once one came)."""
        if self.answered or self._failing_since is None:
            return 0.0
        return self._clock() - self._failing_since


def _cause(message: str) -> str:
    """Return what a transport error says went wrong, without the URL it names."""
    _, found, cause = message.partition(" failed: ")
    return cause if found else message
