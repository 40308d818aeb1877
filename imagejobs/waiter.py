"""The waiter: poll jobs until they end and report what changed on the way.

One scheduler serves every entry point. It keeps the jobs in a heap by the
time their next poll is due, starts polls as the shared :class:`RequestBudget`
allows, and turns each snapshot into transitions with :func:`events.diff`.
``watch`` and ``wait`` are the one-job case of ``watch_many`` and ``wait_many``.

The source is anything with ``async get_job(job_id)``; time, sleep and the
jitter's random numbers come from parameters, so tests need no real waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import math
import random as _random
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import attrs
import backoff

from .budget import RequestBudget
from .errors import (
    AuthenticationError,
    ImageJobsError,
    InvalidArgument,
    JobFailed,
    JobNotFound,
    Throttled,
    WaitTimeout,
)
from .events import Transition, diff
from .models import ImageJob, JobStatus
from .validation import check_id, number_validator

__all__ = [
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MULTIPLIER",
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_RATE",
    "DEFAULT_WAIT_TIMEOUT",
    "Clock",
    "JobSource",
    "Outcome",
    "PollPolicy",
    "wait",
    "wait_many",
    "watch",
    "watch_many",
]

DEFAULT_INITIAL_DELAY = 2.0
DEFAULT_MAX_DELAY = 30.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_WAIT_TIMEOUT = 3600.0
DEFAULT_NOT_FOUND_GRACE = 10.0
DEFAULT_MAX_IN_FLIGHT = 32
DEFAULT_RATE = 20.0


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often to poll and for how long.

    While nothing changes, the delay between polls grows from ``initial_delay``
    by ``multiplier`` up to ``max_delay``, each one drawn with full jitter (a
    uniform fraction of it); a poll that shows a change drops it back to
    ``initial_delay``. A ``Retry-After`` from the server is a floor. ``timeout``
    is the overall deadline (``None`` for none); the last sleep is cut to end on
    it. A job that answers 404 within ``not_found_grace`` seconds of its first
    poll, and was never seen, is polled again: new jobs can take a moment to appear.
    """

    initial_delay: float = attrs.field(
        default=DEFAULT_INITIAL_DELAY, validator=number_validator(minimum=1e-9)
    )
    max_delay: float = attrs.field(
        default=DEFAULT_MAX_DELAY, validator=number_validator(minimum=1e-9)
    )
    multiplier: float = attrs.field(
        default=DEFAULT_MULTIPLIER, validator=number_validator(minimum=1, unit="times")
    )
    timeout: float | None = attrs.field(
        default=DEFAULT_WAIT_TIMEOUT, validator=number_validator(minimum=1e-9, allow_none=True)
    )
    not_found_grace: float = attrs.field(
        default=DEFAULT_NOT_FOUND_GRACE, validator=number_validator(minimum=0)
    )

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.initial_delay:
            raise InvalidArgument(
                f"max_delay ({self.max_delay:g}s) must not be below initial_delay "
                f"({self.initial_delay:g}s)"
            )

    def delays(self) -> Iterator[float]:
        """Return the delays, before jitter, between polls while nothing changes."""
        schedule = backoff.expo(
            base=self.multiplier, factor=self.initial_delay, max_value=self.max_delay
        )
        next(schedule)  # backoff's generators start with a priming yield
        return schedule


class Clock(Protocol):
    """Where the waiter gets the time and how it sleeps."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back."""
        ...

    def now(self) -> datetime:
        """Return the current UTC time, for ``Transition.observed_at``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds``."""
        ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()


class JobSource(Protocol):
    """Anything that fetches a job by ID, such as :class:`~imagejobs.Client`."""

    async def get_job(self, job_id: str) -> ImageJob:
        """Return the job's current snapshot."""
        ...


OutcomeKind = Literal["success", "failed", "timeout", "error"]


@attrs.frozen
class Outcome:
    """How the wait for one job ended.

    ``job`` is the last snapshot (``None`` if the job was never seen); ``error``
    is ``None`` on success, :class:`JobFailed`, :class:`WaitTimeout`, or the
    error that made the outcome unknowable (``JobNotFound``, ``AuthenticationError``...).
    """

    job_id: str
    job: ImageJob | None
    error: ImageJobsError | None = None

    @property
    def kind(self) -> OutcomeKind:
        """Return ``"success"``, ``"failed"``, ``"timeout"`` or ``"error"``."""
        if self.error is None:
            return "success"
        if isinstance(self.error, JobFailed):
            return "failed"
        if isinstance(self.error, WaitTimeout):
            return "timeout"
        return "error"

    @property
    def ok(self) -> bool:
        """Whether the job ended with status SUCCESS."""
        return self.error is None


TransitionCallback = Callable[[Transition], object]
OutcomeCallback = Callable[[Outcome], object]


_T = TypeVar("_T")


async def _call(callback: Callable[[_T], object] | None, value: _T) -> None:
    if callback is not None:
        result = callback(value)
        if inspect.isawaitable(result):
            await result


@attrs.define(eq=False)
class _Watch:
    """The state of one job's wait."""

    job_id: str
    started: float
    last: ImageJob | None
    delays: Iterator[float]
    polls: int = 0
    first_polled: float | None = None
    # The number of the watch's pending entry in the heaps; None while a poll is
    # in flight or once the watch has ended. Heap entries with another number are stale.
    ticket: int | None = None
    transitions: list[Transition] = attrs.Factory(list)


Event = Transition | Outcome
_Entry = tuple[float, int, _Watch]


class _Scheduler:
    """Polls many jobs under one budget and produces their events in order.

    A heap holds the waiting jobs by when their next poll is due. All jobs of
    one scheduler start together and share one deadline: then every job still
    waiting ends, and a poll still in flight is cut off.
    """

    def __init__(
        self,
        source: JobSource,
        policy: PollPolicy,
        budget: RequestBudget,
        clock: Clock,
        random: Callable[[], float],
    ) -> None:
        self._source = source
        self._policy = policy
        self._budget = budget
        self._clock = clock
        self._random = random
        self._due: list[_Entry] = []
        self._tickets = itertools.count()
        self._active = 0
        self._deadline: float | None = None
        self._abandoned: list[asyncio.Future[ImageJob]] = []

    def _schedule(self, watch: _Watch, when: float) -> None:
        watch.ticket = next(self._tickets)
        heapq.heappush(self._due, (when, watch.ticket, watch))

    def _next_due(self) -> _Entry | None:
        """Return the earliest live entry, dropping stale ones on the way."""
        while self._due and self._due[0][1] != self._due[0][2].ticket:
            heapq.heappop(self._due)
        return self._due[0] if self._due else None

    def _waiting(self) -> list[_Watch]:
        return [watch for _, ticket, watch in self._due if ticket == watch.ticket]

    def _end(self, watch: _Watch, outcome: Outcome) -> Outcome:
        watch.ticket = None
        self._active -= 1
        return outcome

    def _outcome(self, watch: _Watch, now: float, job: ImageJob | None = None) -> Outcome:
        job = job if job is not None else watch.last
        if job is not None and job.is_terminal:
            error = None if job.status is JobStatus.SUCCESS else JobFailed(job, watch.transitions)
            return self._end(watch, Outcome(watch.job_id, job, error))
        waited = now - watch.started
        timeout = WaitTimeout(watch.job_id, job, waited, watch.transitions)
        return self._end(watch, Outcome(watch.job_id, job, timeout))

    def _next_poll(self, watch: _Watch, now: float, floor: float = 0.0) -> list[Event]:
        """Schedule the watch's next poll; at its deadline, return its timeout outcome."""
        if self._deadline is not None and now >= self._deadline:
            return [self._outcome(watch, now)]
        delay = max(floor, next(watch.delays) * self._random())
        if self._deadline is not None:
            # The last sleep is cut to end on the deadline, where the wait ends.
            delay = min(delay, self._deadline - now)
        self._schedule(watch, now + delay)
        return []

    def _expire(self, now: float) -> list[Event]:
        """At the deadline, end every watch that is waiting for its next poll."""
        if self._deadline is None or now < self._deadline:
            return []
        ended: list[Event] = [self._outcome(watch, now) for watch in self._waiting()]
        self._due.clear()
        return ended

    def _end_all(
        self, error: ImageJobsError, in_flight: dict[asyncio.Future[ImageJob], _Watch]
    ) -> list[Event]:
        """End every watch with the same error, one that no further poll can fix."""
        for task in in_flight:
            task.cancel()
            self._budget.finish()
            self._abandoned.append(task)
        watches = [*in_flight.values(), *self._waiting()]
        in_flight.clear()
        self._due.clear()
        return [self._end(w, Outcome(w.job_id, w.last, error)) for w in watches]

    async def _poll(self, watch: _Watch) -> ImageJob:
        if self._deadline is None:
            return await self._source.get_job(watch.job_id)
        # A slow answer must not carry the wait past its deadline.
        async with asyncio.timeout(max(0.0, self._deadline - self._clock.monotonic())):
            return await self._source.get_job(watch.job_id)

    def _handle(
        self,
        watch: _Watch,
        task: asyncio.Future[ImageJob],
        in_flight: dict[asyncio.Future[ImageJob], _Watch],
    ) -> list[Event]:
        now = self._clock.monotonic()
        error = task.exception()
        if error is None:
            return self._handle_job(watch, task.result(), now)
        if isinstance(error, TimeoutError):
            return [self._outcome(watch, now)]
        if isinstance(error, Throttled):
            pause = (
                error.retry_after if error.retry_after is not None else self._policy.initial_delay
            )
            self._budget.pause_until(now + pause)
            return self._next_poll(watch, now, floor=pause)
        if isinstance(error, JobNotFound) and self._in_grace(watch, now):
            return self._next_poll(watch, now)
        if not isinstance(error, ImageJobsError):
            raise error
        ended: list[Event] = [self._end(watch, Outcome(watch.job_id, watch.last, error))]
        if isinstance(error, AuthenticationError):
            # Credentials are refused for every job alike: no need to ask once per job.
            ended += self._end_all(error, in_flight)
        return ended

    def _in_grace(self, watch: _Watch, now: float) -> bool:
        """Whether a 404 may still mean "not visible yet": never seen, and polled lately."""
        first = watch.first_polled if watch.first_polled is not None else now
        return watch.last is None and now - first < self._policy.not_found_grace

    def _handle_job(self, watch: _Watch, job: ImageJob, now: float) -> list[Event]:
        changes = diff(watch.last, job, observed_at=self._clock.now(), poll=watch.polls)
        watch.last = job
        watch.transitions.extend(changes)
        if job.is_terminal:
            return [*changes, self._outcome(watch, now, job)]
        if changes:
            watch.delays = self._policy.delays()
        return [*changes, *self._next_poll(watch, now)]

    def _start(self, starts: Iterable[tuple[str, ImageJob | None]]) -> list[Event]:
        now = self._clock.monotonic()
        timeout = self._policy.timeout
        self._deadline = None if timeout is None else now + timeout
        ended: list[Event] = []
        for job_id, since in starts:
            watch = _Watch(job_id=job_id, started=now, last=since, delays=self._policy.delays())
            self._active += 1
            if since is not None and since.is_terminal:
                ended.append(self._outcome(watch, now))
            else:
                self._schedule(watch, now)
        return ended

    def _launch(self, now: float, in_flight: dict[asyncio.Future[ImageJob], _Watch]) -> None:
        """Start every poll that is due, earliest first, as far as the budget allows."""
        while (entry := self._next_due()) is not None and entry[0] <= now:
            if not self._budget.try_start(now):
                return
            heapq.heappop(self._due)
            watch = entry[2]
            watch.ticket = None
            watch.polls += 1
            if watch.first_polled is None:
                watch.first_polled = now
            in_flight[asyncio.ensure_future(self._poll(watch))] = watch

    def _wake_at(self, now: float, busy: bool) -> float | None:
        """Return when the loop must next act by itself, or None to wait for a reply.

        With the in-flight cap reached, only a reply can free room, and polls in
        flight end by the deadline on their own, so there is no timer to set.
        """
        due = self._next_due()
        if due is None or (busy and not self._budget.has_room):
            return None
        wake = max(due[0], self._budget.next_start(now))
        return wake if self._deadline is None else min(wake, self._deadline)

    def _replies(
        self, done: set[asyncio.Future[Any]], in_flight: dict[asyncio.Future[ImageJob], _Watch]
    ) -> list[Event]:
        events: list[Event] = []
        for task in done:
            watch = in_flight.pop(task, None)
            if watch is not None:
                self._budget.finish()
                events += self._handle(watch, task, in_flight)
        return events

    async def run(self, starts: Iterable[tuple[str, ImageJob | None]]) -> AsyncGenerator[Event]:
        """Yield every job's transitions and, last for each job, its outcome."""
        for event in self._start(starts):
            yield event
        in_flight: dict[asyncio.Future[ImageJob], _Watch] = {}
        timer: asyncio.Future[None] | None = None
        try:
            while self._active:
                now = self._clock.monotonic()
                for event in self._expire(now):
                    yield event
                self._launch(now, in_flight)
                wake = self._wake_at(now, busy=bool(in_flight))
                if not in_flight:
                    if wake is not None:
                        await self._clock.sleep(max(0.0, wake - now))
                    continue
                waiting: set[asyncio.Future[Any]] = set(in_flight)
                if wake is not None:
                    timer = asyncio.ensure_future(self._clock.sleep(max(0.0, wake - now)))
                    waiting.add(timer)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if timer is not None:
                    timer.cancel()
                    timer = None
                for event in self._replies(done, in_flight):
                    yield event
        finally:
            leftovers: list[asyncio.Future[Any]] = [*in_flight, *self._abandoned]
            if timer is not None:
                leftovers.append(timer)
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)


def _unique_ids(job_ids: Iterable[str]) -> list[str]:
    if isinstance(job_ids, str):
        raise InvalidArgument("job_ids must be an iterable of IDs, not a single string")
    return list(dict.fromkeys(check_id("job_id", job_id) for job_id in job_ids))


def _scheduler(
    source: JobSource,
    *,
    policy: PollPolicy | None,
    max_in_flight: int,
    rate: float,
    clock: Clock | None,
    random: Callable[[], float] | None,
) -> _Scheduler:
    clock = clock or SYSTEM_CLOCK
    budget = RequestBudget.create(max_in_flight, rate, clock.monotonic())
    return _Scheduler(source, policy or PollPolicy(), budget, clock, random or _random.random)


def _single(
    source: JobSource,
    job_id: str,
    *,
    policy: PollPolicy | None,
    since: ImageJob | None,
    clock: Clock | None,
    random: Callable[[], float] | None,
) -> AsyncGenerator[Event]:
    check_id("job_id", job_id)
    if since is not None and since.id != job_id:
        raise InvalidArgument(f"since is a snapshot of job {since.id!r}, not of {job_id!r}")
    scheduler = _scheduler(
        source, policy=policy, max_in_flight=1, rate=math.inf, clock=clock, random=random
    )
    return scheduler.run([(job_id, since)])


async def watch(
    source: JobSource,
    job_id: str,
    policy: PollPolicy | None = None,
    since: ImageJob | None = None,
    *,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
) -> AsyncGenerator[Transition]:
    """Yield a job's transitions until, and including, the job's SUCCESS or FAILED.

    ``since`` resumes from a saved snapshot: only what changed after it is
    yielded. Raises :class:`WaitTimeout` at the policy's deadline, and the error
    that ended the wait otherwise (``JobNotFound`` after the grace, ``ApiError``,
    ``TransportError``...). A FAILED job is not an error here: its transition is
    the last one. Closing the iterator or cancelling the task stops polling.
    """
    single = _single(source, job_id, policy=policy, since=since, clock=clock, random=random)
    async with aclosing(single) as events:
        async for event in events:
            if isinstance(event, Transition):
                yield event
            elif event.error is not None and not isinstance(event.error, JobFailed):
                raise event.error


async def wait(
    source: JobSource,
    job_id: str,
    policy: PollPolicy | None = None,
    raise_on_failure: bool = True,
    *,
    on_transition: TransitionCallback | None = None,
    since: ImageJob | None = None,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
) -> ImageJob:
    """Wait until a job ends and return its final snapshot.

    Raises :class:`JobFailed` if it ends FAILED (unless ``raise_on_failure`` is
    false, then the FAILED job is returned), :class:`WaitTimeout` at the deadline,
    or the error that ended the wait. ``on_transition`` (a function or coroutine
    function) is called with each transition as it is seen.
    """
    single = _single(source, job_id, policy=policy, since=since, clock=clock, random=random)
    async with aclosing(single) as events:
        async for event in events:
            if isinstance(event, Transition):
                await _call(on_transition, event)
                continue
            accepted = event.ok or (event.kind == "failed" and not raise_on_failure)
            if accepted and event.job is not None:
                return event.job
            if event.error is not None:
                raise event.error
    raise ImageJobsError(f"the wait for job {job_id} ended without an outcome")


async def wait_many(
    source: JobSource,
    job_ids: Iterable[str],
    policy: PollPolicy | None = None,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    rate: float = DEFAULT_RATE,
    on_transition: TransitionCallback | None = None,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
) -> AsyncGenerator[Outcome]:
    """Wait on many jobs at once; yield each job's :class:`Outcome` as it ends.

    Every job ends in an outcome (success, failed, timeout or error); one bad job
    never stops the others. Duplicate IDs are waited on once. All polls share
    one budget: at most ``max_in_flight`` requests at once and ``rate`` per
    second, and a 429 from any poll pauses them all for its ``Retry-After``.
    Raises :class:`InvalidArgument` before any request if an ID is not valid.
    """
    ids = _unique_ids(job_ids)
    scheduler = _scheduler(
        source, policy=policy, max_in_flight=max_in_flight, rate=rate, clock=clock, random=random
    )
    async with aclosing(scheduler.run((job_id, None) for job_id in ids)) as events:
        async for event in events:
            if isinstance(event, Outcome):
                yield event
            else:
                await _call(on_transition, event)


async def watch_many(
    source: JobSource,
    job_ids: Iterable[str],
    policy: PollPolicy | None = None,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    rate: float = DEFAULT_RATE,
    on_outcome: OutcomeCallback | None = None,
    clock: Clock | None = None,
    random: Callable[[], float] | None = None,
) -> AsyncGenerator[Transition]:
    """Yield the transitions of many jobs, interleaved as they are seen.

    Budget and duplicates as in :func:`wait_many`. ``on_outcome`` is called with
    each job's :class:`Outcome` as it ends. Without it, a job that ends in an
    error or a timeout does not stop the others, but once all have ended the
    first such error is raised, so none goes unnoticed. FAILED jobs are not
    errors here: their terminal transition says it.
    """
    ids = _unique_ids(job_ids)
    scheduler = _scheduler(
        source, policy=policy, max_in_flight=max_in_flight, rate=rate, clock=clock, random=random
    )
    first_error: ImageJobsError | None = None
    async with aclosing(scheduler.run((job_id, None) for job_id in ids)) as events:
        async for event in events:
            if isinstance(event, Transition):
                yield event
            elif on_outcome is not None:
                await _call(on_outcome, event)
            elif event.kind in ("timeout", "error") and first_error is None:
                first_error = event.error
    if first_error is not None:
        raise first_error
