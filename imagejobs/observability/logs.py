"""Logging as one more hook: the lines the ``imagejobs`` logger writes as a client works.

Each request at DEBUG (``GET url: status (request id ...)``), each retry at
DEBUG, each transition at INFO (``job 1 sub-job s1: RUNNING -> SUCCESS``),
with ``extra=`` fields a structured formatter can pick up: ``job_id``,
``status``, ``request_id`` (and ``sub_job_id`` on transitions). A record is
made only while the logger is enabled for its level. Warnings about the
client's own condition (Redis away, sweeps paused, a hook that raised) are
logged where they happen, not through here.
"""

from __future__ import annotations

import logging

from imagejobs.core.transitions import Transition
from imagejobs.observability.records import RequestRecord, RetryRecord

__all__ = ["LOG_LEVELS", "LogHook"]

logger = logging.getLogger("imagejobs")

LOG_LEVELS = {
    "on_request": logging.DEBUG,
    "on_retry": logging.DEBUG,
    "on_transition": logging.INFO,
}
"""The level each kind of record is logged at; the other records are not logged."""


class LogHook:
    """Writes requests, retries and transitions to the ``imagejobs`` logger."""

    def __repr__(self) -> str:
        return "LogHook()"

    @staticmethod
    def wants(name: str) -> bool:
        """Whether the logger would write a record of the hook method ``name`` now."""
        level = LOG_LEVELS.get(name)
        return level is not None and logger.isEnabledFor(level)

    def on_request(self, record: RequestRecord) -> None:
        """Log a request: its status, or the error that left it without one."""
        answer = record.status if record.status is not None else f"no answer ({record.error})"
        logger.debug(
            "GET %s: %s (request id %s)",
            record.url,
            answer,
            record.request_id or "none",
            extra={
                "job_id": record.job_id,
                "status": record.status,
                "request_id": record.request_id,
            },
        )

    def on_retry(self, record: RetryRecord) -> None:
        """Log a call about to try again."""
        logger.debug(
            "retrying in %.2fs after attempt %d: %s",
            record.delay,
            record.attempt,
            record.error,
            extra={"job_id": record.job_id},
        )

    def on_transition(self, change: Transition) -> None:
        """Log a change the client saw."""
        current = None if change.current is None else change.current.value
        logger.info(
            "job %s%s: %s -> %s",
            change.job_id,
            "" if change.sub_job_id is None else f" sub-job {change.sub_job_id}",
            "-" if change.previous is None else change.previous.value,
            "-" if current is None else current,
            extra={"job_id": change.job_id, "sub_job_id": change.sub_job_id, "status": current},
        )
