"""Untracking (CPython): the collector stops looking at an object; counting still frees it."""

from __future__ import annotations

import gc
import weakref

import attrs
import pytest

from imagejobs.core.models import (
    ExecuteInfo,
    ImageJob,
    JobStatus,
    ResourceInfo,
    SubJob,
    SubJobStatus,
)
from imagejobs.core.transitions import diff
from imagejobs.core.untracked import untrack, untrack_job, untrack_transitions


@attrs.define(eq=False)
class Record:
    value: object = None


def test_an_untracked_record_is_out_of_the_collectors_sight_and_freed_by_counting() -> None:
    record = Record([1, 2])
    assert gc.is_tracked(record)
    untrack(record)
    assert not gc.is_tracked(record)
    assert all(each is not record for each in gc.get_objects())
    assert gc.is_tracked(record.value)  # what it points to is collected as before
    untrack(record)  # twice is harmless
    gone = weakref.ref(record)
    del record
    assert gone() is None


@pytest.mark.parametrize("plain", [1, "job", 2.5, None, b"body"])
def test_objects_the_collector_never_tracks_are_left_alone(plain: object) -> None:
    untrack(plain)
    assert not gc.is_tracked(plain)


def test_a_dict_tracks_itself_again_when_a_record_is_put_in_it() -> None:
    # Why a stream untracks its dict of two or more subscribers after each join.
    table: dict[Record, int] = {}
    untrack(table)
    table[Record()] = 1
    assert gc.is_tracked(table)
    untrack(table)
    assert not gc.is_tracked(table)


def test_a_snapshot_and_what_it_holds_are_untracked_its_enums_left_alone() -> None:
    job = ImageJob(
        id="job",
        status=JobStatus.RUNNING,
        sub_jobs=(
            SubJob(
                id="sub",
                status=SubJobStatus.RUNNING,
                job_resource_info=ResourceInfo(resource_id="r"),
                job_execute_info=ExecuteInfo(error_code=""),
            ),
        ),
    )
    sub = job.sub_jobs[0]
    held = [job, job.sub_jobs, sub, sub.job_resource_info, sub.job_execute_info]
    enums = [JobStatus.RUNNING, SubJobStatus.RUNNING]
    enums_tracked = [gc.is_tracked(each) for each in enums]
    assert all(gc.is_tracked(each) for each in held)
    untrack_job(job)
    assert not any(gc.is_tracked(each) for each in held)
    assert [gc.is_tracked(each) for each in enums] == enums_tracked  # shared, not the job's
    change = diff(None, job)[0]
    assert gc.is_tracked(change)
    untrack_transitions([change])
    assert not gc.is_tracked(change)
