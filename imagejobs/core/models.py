"""Typed, immutable models of an image job and its sub-jobs.

Attribute names equal the wire names; how they are read from and written to
JSON lives in :mod:`imagejobs.core.codec`.

The enums are *open*: a value the server sends that the enum does not list is
kept as a member-like object (``JobStatus("PAUSED").value == "PAUSED"``) instead
of raising, because the provider adds values without notice. Such a value is
never terminal and ``is_known`` is false for it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Self

import attrs

__all__ = [
    "ExecuteInfo",
    "ImageJob",
    "ImageJobInfo",
    "JobStatus",
    "JobType",
    "ResourceInfo",
    "SubJob",
    "SubJobStatus",
]


class _OpenEnum(enum.StrEnum):
    """A string enum that keeps values it does not know instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        # Not cached in the class on purpose: a misbehaving server must not be
        # able to grow a process-wide table without bound.
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """Whether this value is one the enum lists (not kept from the wire)."""
        return type(self)._member_map_.get(self._name_) is self


class JobStatus(_OpenEnum):
    """Status of a whole job; only SUCCESS and FAILED end it."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """Whether a job in this status will not change any more."""
        return self is JobStatus.SUCCESS or self is JobStatus.FAILED


class SubJobStatus(_OpenEnum):
    """Status of one sub-job."""

    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    ABNORMAL = "ABNORMAL"
    ROLLBACK = "ROLLBACK"
    ABORTING = "ABORTING"

    @property
    def is_failure(self) -> bool:
        """Whether this status reports a failed sub-job (FAILED or ABNORMAL)."""
        return self is SubJobStatus.FAILED or self is SubJobStatus.ABNORMAL


class JobType(_OpenEnum):
    """What a job or sub-job does."""

    CREATE_SERVER = "CREATE_SERVER"
    CREATE_SERVER_IMAGE = "CREATE_SERVER_IMAGE"
    DELETE_SERVER = "DELETE_SERVER"
    # The next four are not on the API page but exist in the provider's SDK.
    BUILD_IMAGE = "BUILD_IMAGE"
    GENERATE_IMAGE = "GENERATE_IMAGE"
    DELETE_IMAGE_BUILD_SERVER = "DELETE_IMAGE_BUILD_SERVER"
    DELETE_IMAGE = "DELETE_IMAGE"


@attrs.frozen(kw_only=True)
class ResourceInfo:
    """The resource a sub-job works on: an image instance or an image."""

    resource_id: str | None = None
    resource_name: str | None = None


@attrs.frozen(kw_only=True)
class ExecuteInfo:
    """Failure details of a sub-job; both are empty strings on success."""

    error_code: str | None = None
    error_message: str | None = None


@attrs.frozen(kw_only=True)
class SubJob:
    """One step of an image job."""

    id: str
    job_type: JobType | None = None
    job_resource_info: ResourceInfo | None = None
    begin_time: datetime | None = None
    end_time: datetime | None = None
    status: SubJobStatus
    job_execute_info: ExecuteInfo | None = None
    project_id: str | None = None
    job_id: str | None = None


@attrs.frozen(kw_only=True)
class ImageJob:
    """A snapshot of an image job as the server reported it."""

    id: str
    job_type: JobType | None = None
    begin_time: datetime | None = None
    end_time: datetime | None = None
    status: JobStatus
    sub_jobs_total: int | None = None
    sub_jobs: tuple[SubJob, ...] = ()

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended (status SUCCESS or FAILED)."""
        return self.status.is_terminal

    @property
    def failed_sub_jobs(self) -> tuple[SubJob, ...]:
        """Return the sub-jobs whose status is FAILED or ABNORMAL, in server order."""
        return tuple(s for s in self.sub_jobs if s.status.is_failure)

    def sub_job(self, sub_job_id: str) -> SubJob | None:
        """Return the sub-job with this ID, or ``None`` if the job has none."""
        for sub in self.sub_jobs:
            if sub.id == sub_job_id:
                return sub
        return None


@attrs.frozen(kw_only=True)
class ImageJobInfo:
    """A job as the job list shows it: its status and size, without the sub-jobs.

    A list is a hint: it may lag behind the job's details, and a list that
    changes while it is paged can skip or repeat a job.
    """

    id: str
    job_type: JobType | None = None
    begin_time: datetime | None = None
    end_time: datetime | None = None
    status: JobStatus
    sub_jobs_total: int | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the list shows the job ended (SUCCESS or FAILED); only a GET proves it."""
        return self.status.is_terminal
