"""What a client keeps of each job it asks about: its URL and its last answer.

Most polls of a running job find it as it was: the body is the very bytes of
the last answer, and the job read from them is the one read then (models are
immutable), without parsing them again. The URLs are checked and quoted once
per job rather than once per request, and one reader serves every job.
"""

from __future__ import annotations

import json
from typing import Any

from imagejobs.core.codec import read_job_as
from imagejobs.core.models import ImageJob
from imagejobs.core.untracked import untrack
from imagejobs.core.urls import ProjectUrls

__all__ = ["ANSWERS_KEPT", "JOBS_KEPT", "AnswerRoom", "KnownJob", "KnownJobs"]

JOBS_KEPT = 8192
"""Jobs a client keeps checked and quoted: more than a busy client watches at once,
and a bound for one that sees endless new IDs."""

ANSWERS_KEPT = 4 * 1024 * 1024
"""Bytes of last answers a client keeps to recognise an unchanged job; the jobs read
from them are kept with them, a few times that."""


class AnswerRoom:
    """The bytes of last answers the jobs of one client may keep, all together."""

    __slots__ = ("left", "size")

    def __init__(self, size: int) -> None:
        self.left = self.size = size


# The room of jobs the client does not keep, or no longer: none, so they keep no answer.
NO_ROOM = AnswerRoom(0)


class KnownJob:
    """A job the client has asked about: its URL, its ID, and its last answer.

    Only a body that reads as the job's details (:func:`read_job_as`) is kept,
    while the client's :class:`AnswerRoom` has room for it.
    """

    __slots__ = ("_body", "_job", "_room", "job_id", "url")

    def __init__(self, url: str, job_id: str, room: AnswerRoom) -> None:
        self.url = url
        self.job_id = job_id
        self._room = room
        self._body = b""
        self._job: ImageJob | None = None
        untrack(self)  # one of thousands, in no cycle (imagejobs.core.untracked)

    def read(self, body: bytes) -> ImageJob:
        """Return the job in a body of its details (raising what :func:`read_job_as` raises)."""
        if body == self._body and self._job is not None:
            return self._job
        job = read_job_as(self.job_id, body)
        room = self._room
        freed = len(self._body)
        if len(body) <= room.left + freed:
            room.left += freed - len(body)
            self._body, self._job = body, job
        return job

    def read_as_sent(self, body: bytes) -> dict[str, Any]:
        """Return a body of the job's details as its JSON object, once :meth:`read` takes it."""
        self.read(body)  # a job, or the error that says why not
        sent: dict[str, Any] = json.loads(body)  # a new dict each time: the caller's own
        return sent

    def forget(self) -> None:
        """Give the last answer's room back: the client no longer keeps this job.

        A request still in flight may read one more answer: it is not kept.
        """
        self._room.left += len(self._body)
        self._body, self._job = b"", None
        self._room = NO_ROOM


class KnownJobs:
    """The jobs of one client, :data:`JOBS_KEPT` at most, the oldest let go first."""

    __slots__ = ("_answers", "_jobs", "_urls")

    def __init__(self, urls: ProjectUrls, answers: int = ANSWERS_KEPT) -> None:
        self._urls = urls
        self._jobs: dict[str, KnownJob] = {}
        self._answers = AnswerRoom(answers)

    def __repr__(self) -> str:
        return f"KnownJobs(jobs={len(self._jobs)}, room_left={self.room_left})"

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def kept(self) -> list[KnownJob]:
        """Return the jobs kept, the oldest first."""
        return list(self._jobs.values())

    @property
    def room_left(self) -> int:
        """Bytes of answers the jobs may still keep, all together."""
        return self._answers.left

    def clear(self) -> None:
        """Let go of every job and its last answer."""
        for known in self._jobs.values():
            known.forget()
        self._jobs.clear()
        # All given back: the number made before the waits, not the one their sums made.
        self._answers.left = self._answers.size

    def let_go(self, job_id: str) -> None:
        """Let go of one job and its last answer (a job whose end was seen: nothing waits on it)."""
        known = self._jobs.pop(job_id, None) if type(job_id) is str else None
        if known is not None:
            known.forget()

    def __getitem__(self, job_id: str) -> KnownJob:
        """Return what the client knows of a job; raises :class:`InvalidArgument` for a bad ID."""
        plain = type(job_id) is str  # a str subclass could hash or compare as another ID
        known = self._jobs.get(job_id) if plain else None
        if known is None:
            # One the client does not keep keeps no answer: nothing would give its room back.
            known = KnownJob(self._urls.job(job_id), job_id, self._answers if plain else NO_ROOM)
            if plain:
                if len(self._jobs) >= JOBS_KEPT:
                    # The oldest: a fleet moves on.
                    self._jobs.pop(next(iter(self._jobs))).forget()
                self._jobs[job_id] = known
        return known
