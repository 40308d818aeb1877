"""What a wait reports as it goes: the transitions between two snapshots of a job. Pure."""

from __future__ import annotations

from datetime import datetime

import attrs

from .models import ImageJob, JobStatus, SubJob, SubJobStatus

__all__ = ["Transition", "diff"]


@attrs.frozen(kw_only=True)
class Transition:
    """A status change of a job or one of its sub-jobs, as seen by polling.

    ``sub_job_id`` is ``None`` for the job itself. ``previous`` is ``None`` the
    first time something is seen; ``current`` is ``None`` when a sub-job
    disappeared from the job. ``job`` is the snapshot the change was seen in,
    ``observed_at`` when (UTC), and ``poll`` the number of the request (1-based)
    that brought it.
    """

    job_id: str
    sub_job_id: str | None
    previous: JobStatus | SubJobStatus | None
    current: JobStatus | SubJobStatus | None
    job: ImageJob = attrs.field(repr=False)
    observed_at: datetime | None = None
    poll: int = 0

    @property
    def sub_job(self) -> SubJob | None:
        """Return the sub-job this transition is about, as in ``job`` (None if gone)."""
        return None if self.sub_job_id is None else self.job.sub_job(self.sub_job_id)

    @property
    def is_terminal(self) -> bool:
        """Whether this is the job reaching SUCCESS or FAILED: the last transition."""
        return (
            self.sub_job_id is None
            and isinstance(self.current, JobStatus)
            and (self.current.is_terminal)
        )


def _statuses(job: ImageJob | None) -> dict[str, SubJobStatus]:
    # A repeated sub-job ID keeps its first occurrence, as sub_job() does.
    result: dict[str, SubJobStatus] = {}
    for sub in job.sub_jobs if job is not None else ():
        result.setdefault(sub.id, sub.status)
    return result


def diff(
    previous: ImageJob | None,
    current: ImageJob,
    *,
    observed_at: datetime | None = None,
    poll: int = 0,
) -> list[Transition]:
    """Return the transitions that lead from ``previous`` to ``current``.

    Order: sub-jobs in the server's order, then sub-jobs that disappeared (in
    their previous order), then the job itself. Unchanged statuses give nothing;
    unknown status values are compared and passed on like any other.
    """
    before = _statuses(previous)
    after = _statuses(current)

    def make(
        sub_job_id: str | None,
        old: JobStatus | SubJobStatus | None,
        new: JobStatus | SubJobStatus | None,
    ) -> Transition:
        return Transition(
            job_id=current.id,
            sub_job_id=sub_job_id,
            previous=old,
            current=new,
            job=current,
            observed_at=observed_at,
            poll=poll,
        )

    result = [
        make(sub_id, before.get(sub_id), status)
        for sub_id, status in after.items()
        if before.get(sub_id) != status
    ]
    result.extend(
        make(sub_id, status, None) for sub_id, status in before.items() if sub_id not in after
    )
    job_before = previous.status if previous is not None else None
    if job_before != current.status:
        result.append(make(None, job_before, current.status))
    return result
