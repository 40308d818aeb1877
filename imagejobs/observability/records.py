"""The records a client gives its hooks: frozen, and holding no secret.

URLs carry none, and headers are never passed on. What each hook method
receives: ``on_request`` a :class:`RequestRecord`, ``on_retry`` a
:class:`RetryRecord`, ``on_throttle`` a :class:`ThrottleRecord`, ``on_wait`` a
:class:`WaitRecord`; ``on_transition`` and ``on_outcome`` get the
:class:`~imagejobs.Transition` and :class:`~imagejobs.Outcome` the waits see.
"""

from __future__ import annotations

import attrs

__all__ = ["SOURCES", "RequestRecord", "RetryRecord", "ThrottleRecord", "WaitRecord"]

SOURCES = (
    "first",
    "poll",
    "changed",
    "safety",
    "final",
    "retry",
    "grace",
    "sweep",
    "history",
    "call",
)
"""Why a request was sent, each request under exactly one (:attr:`RequestRecord.source`):

- ``first``: a job's first GET (or a watcher joining a swept job);
- ``poll``: a GET by a job's own schedule;
- ``changed``: a GET of a swept job a list showed changed (or gone from it);
- ``safety``: a GET of a swept job the lists have answered for too long (they are hints);
- ``final``: any of these whose answer showed the job ended;
- ``retry``: a try after a failure: a retry of a call, or a look after a failed look;
- ``grace``: a look again at a job that was not found, while its grace runs;
- ``sweep``: a page of a sweep;
- ``history``: a page read by ``learn_history``;
- ``call``: what a caller asked for directly (``get_job``, ``list_jobs``...).
"""


@attrs.frozen
class RequestRecord:
    """One request the client sent, and how it ended.

    ``what`` is ``"job"``, ``"job list"``, ``"sub-job list"`` or ``"sub-job
    count"``; ``status`` the HTTP status (None when no answer came);
    ``duration`` seconds from sending to the end of the answer; ``attempt`` the
    try of this call (1 for the first); ``request_id`` the ``X-Request-Id``
    answered; ``error`` the name of the error it ended in, if any, and
    ``message`` what it says (``cannot connect to host:443: connection
    refused``); error messages never hold a secret, and an error from outside
    the library's tree gives its name alone. ``source`` says why it was sent
    (one of :data:`SOURCES`).
    """

    method: str
    url: str
    what: str
    job_id: str | None
    status: int | None
    duration: float
    attempt: int
    request_id: str | None
    error: str | None = None
    message: str | None = None
    source: str = "call"


@attrs.frozen
class RetryRecord:
    """A call about to try again: after which attempt, in how long, and why."""

    url: str
    job_id: str | None
    attempt: int
    delay: float
    error: str


@attrs.frozen
class ThrottleRecord:
    """A 429 from the gateway: its ``Retry-After`` if any, and the client's rate after it."""

    url: str
    job_id: str | None
    retry_after: float | None
    rate: float
    request_id: str | None


@attrs.frozen
class WaitRecord:
    """A wait that begins: on which job, with which deadline (None: none)."""

    job_id: str
    timeout: float | None
