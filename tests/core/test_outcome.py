"""How a wait ended: an Outcome's kind, by its error."""

from __future__ import annotations

import pickle
import typing

import pytest

from imagejobs import (
    ClientClosed,
    ImageJob,
    ImageJobsError,
    JobFailed,
    JobNotFound,
    JobStatus,
    Outcome,
    ServerError,
    WaitCancelled,
    WaitTimeout,
)
from imagejobs.core.outcome import OutcomeKind

JOB = "702364883651395584"
FAILED = ImageJob(id=JOB, status=JobStatus.FAILED)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, "success"),
        (JobFailed(FAILED), "failed"),
        (WaitTimeout(JOB, None, 60.0), "timeout"),
        (WaitCancelled(JOB), "cancelled"),
        # The caller was still waiting when the client closed: the job's end is unknown.
        (ClientClosed(f"the client was closed while waiting for job {JOB}"), "error"),
        (JobNotFound(404, "WKS.00081104", "The job does not exist."), "error"),
        (ServerError(503, None, "busy"), "error"),
        (ImageJobsError("the wait failed unexpectedly: KeyError"), "error"),
    ],
)
def test_the_kind_follows_the_error(error: ImageJobsError | None, kind: str) -> None:
    outcome = Outcome(JOB, None, error)
    assert outcome.kind == kind
    assert outcome.ok is (kind == "success")


def test_every_kind_is_in_outcome_kind() -> None:
    assert set(typing.get_args(OutcomeKind)) == {
        "success",
        "failed",
        "timeout",
        "cancelled",
        "error",
    }


def test_wait_cancelled_names_its_job_and_pickles() -> None:
    error = WaitCancelled(JOB)
    assert str(error) == f"the wait on job {JOB} was cancelled"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.job_id, str(copy)) == (WaitCancelled, JOB, str(error))
