"""Reading what a look brought back: a snapshot to tell, or an error to weigh.

A look's result (:class:`~imagejobs.scheduling.looks.LookResult`) may carry
this process's own snapshot and, in a fleet, other processes' snapshots to
replay first; each newer than what the stream last saw is taken: told to the
subscribers, reported to the hooks and the log once per job, and a job seen to
run and then succeed adds its duration to the history.

A look that failed is weighed: an error outside the tree ends the job's waits
with a typed error naming it; a refused credential (401) ends every wait of
the client; a 404 for a job never seen is looked at again while a wait's
grace runs; what a later look may not meet (a 5xx, a 429, no answer, a
malformed body) is looked at again with backoff; anything else ends the job's
waits with that error.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from imagejobs.core.errors import AuthenticationError, ImageJobsError, JobNotFound, TransportError
from imagejobs.core.models import ImageJob, JobStatus
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import diff
from imagejobs.core.untracked import untrack_job
from imagejobs.observability.hooks import Hooks
from imagejobs.planning.backoff import step
from imagejobs.planning.history import DurationHistory, duration_of
from imagejobs.planning.retry import RetryPolicy, is_poll_transient
from imagejobs.planning.sweeps import JobSummary
from imagejobs.scheduling.looks import LookResult
from imagejobs.scheduling.streams import Stream
from imagejobs.scheduling.subscriptions import Subscription
from imagejobs.timing.clock import Clock

__all__ = ["SHARED_WAIT_MAX", "Reader", "Subscribers", "own_copy"]

logger = logging.getLogger("imagejobs")

SHARED_WAIT_MAX = 2.0
"""Seconds at most between two looks at a job another process of the fleet is fetching."""


class Subscribers(Protocol):
    """What reading needs of the hub: to tell subscribers, end waits and plan looks."""

    def tell(self, subs: Iterable[Subscription], stream: Stream, job: ImageJob) -> None:
        """Give each subscriber what changed since it last looked, and plan its next look."""
        ...

    def end(self, sub: Subscription, outcome: Outcome) -> None:
        """End a subscriber's wait with ``outcome``."""
        ...

    def end_all(self, error: ImageJobsError) -> None:
        """End every wait of the client with ``error``."""
        ...

    def plan(self, sub: Subscription, stream: Stream, base: float) -> None:
        """Plan a subscriber's next look, from a look at ``base``."""
        ...


class Reader:
    """Reads each look that came back into its stream, and tells the hub what follows."""

    def __init__(
        self,
        hub: Subscribers,
        clock: Clock,
        retry: RetryPolicy,
        random: Callable[[], float],
        *,
        history: DurationHistory | None,
        hooks: Hooks,
        changed: Callable[[Stream], None],
    ) -> None:
        self._hub = hub
        self._clock = clock
        self._retry = retry
        self._random = random
        self._history = history
        self._hooks = hooks
        self._changed = changed

    def __repr__(self) -> str:
        return f"Reader(history={self._history is not None})"

    def read(self, stream: Stream, task: asyncio.Task[LookResult], now: float) -> None:
        """Take what a look brought back: its result, or its error."""
        if task.cancelled():
            # Not by the hub (it lets go of a look before cancelling it): something
            # the request awaited was cancelled under it. Look again, with backoff.
            error: BaseException | None = TransportError(
                f"the poll of job {stream.job_id} was cancelled"
            )
        else:
            error = task.exception()
        if error is None:
            self._found(stream, task.result(), now)
        else:
            self._failed(stream, error, now)

    def _found(self, stream: Stream, result: LookResult, now: float) -> None:
        if result.mark != stream.fleet.mark:
            stream.set_fleet(mark=result.mark)
        own = result.jobs[-1] if result.own and result.jobs else None
        taken = False
        for job, at in result.jobs[:-1] if own else result.jobs:
            # Only what is newer than this process's own last look: never back in time.
            # A job's end is final whenever it was seen.
            ended = stream.snapshot is not None and stream.snapshot.is_terminal
            if at > stream.seen_at or (job.is_terminal and not ended):
                self.take(stream, job, min(at, now), sent=at, shared=True)
                taken = True
        if own is not None:
            self.take(stream, own[0], now, sent=stream.poll_started)
        elif not taken and not result.retry_in:
            # Another process's look, but older than this one's own: look for itself.
            stream.set_fleet(own_look_next=True)
            stream.not_before = now
        if result.retry_in and stream.subscribers:
            # Another process is looking: its answer is near, unless it waits for the budget.
            others = stream.fleet.others_looking + 1
            stream.set_fleet(others_looking=others)
            first = min(result.retry_in, *(policy.initial_delay for policy in stream.policies()))
            stream.not_before = now + step(others, first, SHARED_WAIT_MAX)
        elif stream.fleet.others_looking:
            stream.set_fleet(others_looking=0)

    def take(
        self, stream: Stream, job: ImageJob, now: float, *, sent: float, shared: bool = False
    ) -> None:
        """Take a snapshot taken at ``now`` by a request sent at ``sent`` (by another process)."""
        # Its duration counts once, from the wait that saw it run: a wait on a job
        # long finished must not add it again (eight such waits would make a fit).
        before = stream.summary
        watched_it_run = before is not None and not before.status.is_terminal
        stream.snapshots_taken += 1
        if self._hooks.wants("on_transition"):
            self._report(stream.snapshot, job, stream.polls_sent)
        stream.snapshot = job
        untrack_job(job)  # kept of each job in play (imagejobs.core.untracked)
        stream.seen_at = now
        if stream.fleet.own_look_next:
            stream.set_fleet(own_look_next=False)
        stream.summary = JobSummary.of(job)
        swept = stream.sweep
        if sent >= swept.get_since:
            swept.get_wanted = False  # a GET sent before a sweep asked for one does not answer it
            # Polled by GET from here until a regroup covers it again, so that what this
            # answer showed (a job no list can follow, say) never waits for that.
            swept.covered = False
        swept.fetched_at = now
        self._changed(stream)
        if job.status is JobStatus.SUCCESS and watched_it_run:
            self._record(job)
        stream.answered(self._random())
        told = []
        for sub in stream.subscribers:
            joined_later = sub.joined > stream.poll_order or (shared and sent < sub.started)
            if sub.since_given and joined_later:
                continue  # sent before it joined: maybe older than its since; it asks anew
            told.append(sub)
        self._hub.tell(told, stream, job)

    def _report(self, before: ImageJob | None, job: ImageJob, poll: int) -> None:
        """Give each change the client sees to the hooks (the log among them), once per job."""
        for change in diff(before, job, observed_at=self._clock.now(), poll=poll):
            self._hooks.call("on_transition", change)

    def _record(self, job: ImageJob) -> None:
        """Add the duration of a job this hub saw end to the history, if there is one.

        Only a type the enum knows (a server's odd value must not grow the file),
        and never an error: a duration that makes no sense is just not one.
        """
        job_type = job.job_type
        if self._history is None or job_type is None or not job_type.is_known:
            return
        seconds = duration_of(job)
        if seconds is not None:
            self._history.record(job_type.value, seconds)

    def _failed(self, stream: Stream, error: BaseException, now: float) -> None:
        subscribers = list(stream.subscribers)
        if not isinstance(error, ImageJobsError):
            # Outside the tree: a bug, or input nothing foresaw. It ends this job's
            # waits with a typed error saying what it was, and no one else's.
            logger.warning("polling job %s failed unexpectedly", stream.job_id, exc_info=error)
            # Its type only: its text may quote what it was given, secrets included.
            unexpected = ImageJobsError(
                f"polling job {stream.job_id} failed unexpectedly: {type(error).__name__}"
            )
            unexpected.__cause__ = error
            for sub in subscribers:
                self._hub.end(sub, Outcome(sub.job_id, sub.last, own_copy(unexpected)))
        elif isinstance(error, AuthenticationError):
            # Credentials are refused for every job alike: no need to ask once per job.
            self._hub.end_all(error)
        elif isinstance(error, JobNotFound) and stream.snapshot is None:
            self._not_found(stream, error, now)
        elif is_poll_transient(error):
            failures = stream.failed(error, since=stream.poll_started)
            gaps = [policy.longest_gap for policy in stream.policies()]
            cap = min(self._retry.max_delay, *gaps)  # as often as the most demanding one asks
            delay = self._retry.poll_delay(
                failures, error, cap=cap, longest=max(gaps), draw=self._random()
            )
            stream.not_before = now + delay
        else:
            for sub in subscribers:
                self._hub.end(sub, Outcome(sub.job_id, sub.last, own_copy(error)))

    def _not_found(self, stream: Stream, error: JobNotFound, now: float) -> None:
        """Look at a never-seen job again while a subscriber's grace runs: it may be new."""
        stream.answered(self._random())  # an answer: the outage is over
        for sub in list(stream.subscribers):
            if sub.grace_from is None:
                sub.grace_from = max(stream.poll_started, sub.started)
            if sub.last is None and now - sub.grace_from < sub.policy.not_found_grace:
                self._hub.plan(sub, stream, now)
            else:
                self._hub.end(sub, Outcome(sub.job_id, sub.last, own_copy(error)))


def own_copy(error: ImageJobsError) -> ImageJobsError:
    """Return a copy of an error for one subscriber: each raises its own, with its own traceback."""
    try:
        own = copy.copy(error)
    except Exception:  # noqa: BLE001 - an error that cannot be copied is shared instead
        return error
    own.__cause__ = error.__cause__
    return own
