"""Models and open enums: pure, no server."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import attrs
import pytest

from imagejobs import ImageJob, JobStatus, JobType, SubJob, SubJobStatus


def _sub(sub_id: str, status: str) -> SubJob:
    return SubJob(id=sub_id, status=SubJobStatus(status))


def test_known_values_are_the_enum_members() -> None:
    assert JobStatus("SUCCESS") is JobStatus.SUCCESS
    assert SubJobStatus("ROLLBACK") is SubJobStatus.ROLLBACK
    assert JobType("DELETE_IMAGE_BUILD_SERVER") is JobType.DELETE_IMAGE_BUILD_SERVER
    assert JobStatus.SUCCESS.is_known


@pytest.mark.parametrize("enum_cls", [JobStatus, SubJobStatus, JobType])
def test_unknown_value_is_kept_not_raised(enum_cls: type[JobStatus]) -> None:
    value = enum_cls("PAUSED")
    assert value.value == "PAUSED"
    assert value == "PAUSED"
    assert isinstance(value, enum_cls)
    assert not value.is_known
    assert value not in list(enum_cls)
    assert "PAUSED" in repr(value)


def test_unknown_job_status_is_never_terminal() -> None:
    assert not JobStatus("PAUSED").is_terminal
    assert not ImageJob(id="1", status=JobStatus("DONE")).is_terminal


def test_unknown_values_survive_pickling() -> None:
    value = SubJobStatus("PAUSED")
    assert pickle.loads(pickle.dumps(value)) == value


def test_enum_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="not a valid JobStatus"):
        JobStatus(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("WAITING", False), ("RUNNING", False), ("SUCCESS", True), ("FAILED", True)],
)
def test_is_terminal(status: str, terminal: bool) -> None:
    assert ImageJob(id="1", status=JobStatus(status)).is_terminal is terminal


def test_failed_sub_jobs_keeps_server_order_and_counts_abnormal() -> None:
    job = ImageJob(
        id="1",
        status=JobStatus.FAILED,
        sub_jobs=(
            _sub("a", "ABNORMAL"),
            _sub("b", "SUCCESS"),
            _sub("c", "FAILED"),
            _sub("d", "ROLLBACK"),
        ),
    )
    assert [s.id for s in job.failed_sub_jobs] == ["a", "c"]


def test_sub_job_lookup() -> None:
    job = ImageJob(id="1", status=JobStatus.RUNNING, sub_jobs=(_sub("a", "RUNNING"),))
    found = job.sub_job("a")
    assert found is not None
    assert found.status is SubJobStatus.RUNNING
    assert job.sub_job("zzz") is None


def test_models_are_frozen_and_hashable() -> None:
    job = ImageJob(id="1", status=JobStatus.RUNNING, begin_time=datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.id = "2"  # type: ignore[misc]
    assert hash(job) == hash(attrs.evolve(job))
    assert isinstance(job.sub_jobs, tuple)
