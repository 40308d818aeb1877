"""A known job reads every body as its reader does, keeping its last answer within its room."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from wire_data import JOB_ID, one_sub_job_body

from imagejobs import MalformedResponse
from imagejobs.core.codec import read_job
from imagejobs.core.models import ImageJob
from imagejobs.core.urls import ProjectUrls
from imagejobs.transport.answers import AnswerRoom, KnownJob, KnownJobs

# --- pure: a known job reads as its reader does -------------------------------------


_BODIES = [
    one_sub_job_body("RUNNING", "RUNNING"),
    one_sub_job_body("RUNNING", "SUCCESS"),
    one_sub_job_body("SUCCESS", "SUCCESS"),
    one_sub_job_body("FAILED", "FAILED"),
    one_sub_job_body("RUNNING", "RUNNING", job_id="1"),  # another job's
    b'{"id": "702364883651395584", "status": 7}',
    b"not json",
    b"",
]


def _outcome(read: Any, body: bytes) -> object:
    try:
        job: ImageJob = read(body)
    except MalformedResponse as exc:
        return (type(exc), str(exc))
    return job


@given(
    picks=st.lists(st.integers(0, len(_BODIES) - 1), max_size=30),
    room=st.integers(0, 2 * max(len(b) for b in _BODIES)),
)
def test_a_known_job_reads_every_body_as_its_reader_does(picks: list[int], room: int) -> None:
    reader = read_job(JOB_ID)
    answers = AnswerRoom(room)
    known = KnownJob("url", JOB_ID, answers)
    for pick in picks:
        body = _BODIES[pick]
        assert _outcome(known.read, body) == _outcome(reader, body)
        assert answers.left == room - len(known._body)
        assert answers.left >= 0
    known.forget()
    assert answers.left == room


def test_a_body_with_no_room_left_is_read_but_not_kept() -> None:
    body = _BODIES[0]
    answers = AnswerRoom(len(body) - 1)
    known = KnownJob("url", JOB_ID, answers)
    assert not gc.is_tracked(known)  # one of thousands, in no cycle (imagejobs.core.untracked)
    first, second = known.read(body), known.read(body)
    assert first == second
    assert first is not second  # read afresh: it did not fit
    assert answers.left == len(body) - 1


def test_a_read_after_forget_keeps_nothing() -> None:
    body = _BODIES[0]
    answers = AnswerRoom(10 * len(body))
    known = KnownJob("url", JOB_ID, answers)
    known.read(body)
    known.forget()
    assert answers.left == 10 * len(body)
    # A request that was in flight when the client let the job go.
    first, second = known.read(body), known.read(body)
    assert first == second
    assert first is not second
    assert answers.left == 10 * len(body)


def test_clearing_gives_every_jobs_room_back_as_the_number_it_was_made_with() -> None:
    # The sum the reads and forgets add up to is a number made as the waits ended, among
    # their memory; cleared (at close), the room holds the one it was made with.
    size = 100_000  # not one of the small numbers Python keeps made
    jobs = KnownJobs(ProjectUrls("https://example.com", "p"), answers=size)
    for n in range(3):
        job_id = f"{JOB_ID[:-1]}{n}"
        jobs[job_id].read(one_sub_job_body("RUNNING", "RUNNING", job_id=job_id))
    assert jobs.room_left < size
    jobs.clear()
    assert len(jobs) == 0
    assert jobs.room_left is size
