"""The hub: the one scheduler of a client, behind every wait.

Callers subscribe to job IDs. However many subscribers a job has, the hub
keeps one :class:`~imagejobs.scheduling.streams.Stream` for it, looks at it as
often as its most demanding subscriber asks, and gives each subscriber the
transitions from where it joined. A job nobody waits on is not looked at.

The hub is the loop that holds the parts together, each in its own module:

- :mod:`.due`: when each job's next look is due, and the looks in flight;
- :mod:`.reading`: what a look brought back, and whom it ends;
- :mod:`.sweeper`: when many jobs are in play, the job lists stand in for GETs;
- :mod:`.subscriptions`: the callers' mailboxes and when each wants a look.

One loop sleeps on the client's clock until the earliest of a look due, a
deadline, a sweep due, or a look that came back, and then does each in turn.
The hub does no I/O of its own: it is given a poll function and a list
function (:mod:`.looks`), so it runs as well on scripted ones and a
:class:`~imagejobs.testing.FakeClock` as on the client's requests.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
import random as _random
from collections.abc import Callable, Iterable

from imagejobs.core.errors import (
    ClientClosed,
    ImageJobsError,
    JobFailed,
    WaitCancelled,
    WaitTimeout,
)
from imagejobs.core.models import ImageJob, JobStatus
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import Transition, diff
from imagejobs.core.trim import TRIM_AFTER, trim_heap
from imagejobs.core.untracked import untrack
from imagejobs.observability.hooks import Hooks
from imagejobs.observability.records import WaitRecord
from imagejobs.planning.history import DurationHistory
from imagejobs.planning.policy import PollPolicy
from imagejobs.planning.retry import RetryPolicy
from imagejobs.planning.skew import ClockOffset
from imagejobs.scheduling.deadlines import Deadlines
from imagejobs.scheduling.due import DueQueue
from imagejobs.scheduling.looks import ListFunction, PollFunction
from imagejobs.scheduling.reading import Reader, own_copy
from imagejobs.scheduling.streams import Stream
from imagejobs.scheduling.subscriptions import Mailbox, Subscription, next_look
from imagejobs.scheduling.sweep_groups import SweeperGroups
from imagejobs.scheduling.sweeper import Sweeper
from imagejobs.timing.clock import Alarm, Clock
from imagejobs.timing.gate import Gate

__all__ = ["CLOSE_SLICE", "Hub"]

CLOSE_SLICE = 500
"""Waits :meth:`Hub.close` ends in one turn of the event loop."""

NEWS_AGE = 1.0
"""Seconds a fleet's news of a job's end may take to arrive: its snapshot is at most that old."""


class Hub:
    """One client's scheduler: subscriptions, one stream of looks per job, deadlines.

    ``poll`` and ``list_page`` are where its looks and sweep pages go
    (:mod:`imagejobs.scheduling.looks`); ``max_polls`` bounds the looks in
    flight outside a call's own gate; ``rate`` is the request rate the client
    may plan sweeps on, now, ``sharers`` how many processes page the same
    lists (a fleet's members) and ``align`` when a sweep due goes (see
    :class:`~imagejobs.scheduling.sweeper.Sweeper`); ``random`` draws the
    jitter; ``clock_offset`` puts the clock's wall time on the service's,
    where jobs' ages are read.
    """

    def __init__(
        self,
        poll: PollFunction,
        clock: Clock,
        retry: RetryPolicy,
        *,
        max_polls: int,
        random: Callable[[], float] = _random.random,
        list_page: ListFunction | None = None,
        sweeps: bool | None = None,
        rate: Callable[[float], float] = lambda _: math.inf,
        sharers: Callable[[], int] = lambda: 1,
        align: Callable[[float, float], float] = lambda when, period: when,
        history: DurationHistory | None = None,
        hooks: Hooks | None = None,
        clock_offset: ClockOffset | None = None,
    ) -> None:
        self._clock = clock
        self._clock_offset = clock_offset if clock_offset is not None else ClockOffset()
        self._random = random
        self._history = history
        self._hooks = hooks if hooks is not None else Hooks()
        self._streams: dict[str, Stream] = {}
        # One order of events: subscriptions joining, looks sent, heap entries.
        self._order = itertools.count()
        self._deadlines = Deadlines()
        self._most_jobs = 0
        self._due = DueQueue(
            poll,
            self._streams,
            self._order,
            max_polls=max_polls,
            launched=self._changed,
            returned=self._poke,
        )
        self._sweeper = SweeperGroups(
            self._streams,
            lambda gate: Sweeper(
                self._streams,
                list_page,
                sweeps=sweeps,
                rate=rate,
                sharers=sharers,
                align=align,
                retry=retry,
                random=random,
                get=self._get,
                plan=self._plan_all,
                cover_changed=self._cover_changed,
                poke=self._poke,
                gate=gate,
            ),
        )
        self._reader = Reader(
            self,
            clock,
            retry,
            random,
            history=history,
            hooks=self._hooks,
            changed=self._changed,
        )
        self._runner: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._alarm = Alarm(clock, self._poke)
        self._closed = False

    def __repr__(self) -> str:
        swept = self._sweeper.covered
        in_flight = len(self._due.in_flight)
        return f"Hub(jobs={len(self._streams)}, swept={swept}, polls_in_flight={in_flight})"

    # --- subscribing ---------------------------------------------------------------

    def subscribe(
        self,
        job_id: str,
        policy: PollPolicy,
        since: ImageJob | None,
        mailbox: Mailbox,
        gate: Gate | None = None,
        *,
        wants_transitions: bool = True,
    ) -> Subscription:
        """Start telling ``mailbox`` about ``job_id``; its outcome is the last event.

        A subscriber that does not want transitions (``wants_transitions=False``)
        lets the job be swept; it still gets them, from the job's GETs.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        now = self._clock.monotonic()
        deadline = math.inf if policy.timeout is None else now + policy.timeout
        sub = Subscription(job_id, policy, mailbox, gate, now, deadline, since)
        sub.joined = next(self._order)
        sub.since_given = since is not None
        sub.wants_transitions = wants_transitions
        if self._hooks.wants("on_wait"):
            self._hooks.call("on_wait", WaitRecord(job_id, policy.timeout))
        if since is not None and since.is_terminal:
            self.end(sub, self._outcome(sub, now))
            return sub
        stream = self._streams.get(job_id)
        if stream is None:
            stream = self._streams[job_id] = Stream(job_id)
            untrack(self._streams)  # a table of every job, tracked again by what was put in it
            self._most_jobs = max(self._most_jobs, len(self._streams))
            stream.sweep.fetched_at = now
        stream.join(sub)
        sub.snapshots_before = stream.snapshots_taken
        if deadline < math.inf:
            self._deadlines.add(sub)
        fresh = stream.snapshot is not None and now - stream.seen_at < policy.initial_delay
        if fresh and stream.snapshot is not None and since is None:
            # Seen a moment ago: as good as a new look, and it costs nothing.
            self.tell([sub], stream, stream.snapshot)
        else:
            stream.want(sub, now)
            if stream.sweep.covered and wants_transitions:
                # A sweep would not tell it where the job is now; a GET does.
                self._get(stream, now, "first")
        self._changed(stream)
        self._due.schedule(stream)
        self._poke()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop telling a subscriber anything; its job is looked at no more if nobody is left.

        The hooks still hear how it ended: an outcome of kind ``"cancelled"``
        (:class:`WaitCancelled`).
        """
        if sub.ended:
            return
        sub.ended = True
        if self._hooks.wants("on_outcome"):
            self._tell_hooks(sub, WaitCancelled(sub.job_id))
        self._leave(sub)

    def _leave(self, sub: Subscription) -> None:
        self._deadlines.discard(sub)
        stream = self._streams.get(sub.job_id)
        if stream is None or sub not in stream.subscribers:
            return
        stream.leave(sub)
        self._changed(stream)
        if stream.subscribers:
            self._due.schedule(stream)
            return
        # Nobody left: the job is let go, its look in flight cancelled.
        del self._streams[stream.job_id]
        self._due.forget(stream)
        stream.let_go()
        self._poke()  # the loop ends once no job is left

    # --- what subscribers are told --------------------------------------------------

    def tell(self, subs: Iterable[Subscription], stream: Stream, job: ImageJob) -> None:
        """Give each subscriber what changed since it last looked, and plan its next look."""
        observed_at = self._clock.now()
        # Subscribers that last saw the same snapshot share one diff: a job's thousand
        # callers were told the same answers. By identity, each snapshot kept alive
        # beside its changes so that no other takes its id.
        changes_since: dict[int, tuple[ImageJob | None, list[Transition]]] = {}
        for sub in subs:
            known = changes_since.get(id(sub.last))
            if known is None:
                changes = diff(sub.last, job, observed_at=observed_at, poll=stream.polls_sent)
                known = changes_since[id(sub.last)] = (sub.last, changes)
            _, changes = known
            sub.last = job
            sub.keep(changes)
            for change in changes:
                sub.mailbox.put(change)
            if job.is_terminal:
                self.end(sub, self._outcome(sub, stream.seen_at))
            else:
                self.plan(sub, stream, stream.seen_at)

    def plan(self, sub: Subscription, stream: Stream, base: float) -> None:
        """Set when a subscriber wants the next look: by the job's age and its type's history."""
        job = stream.snapshot or sub.last
        fit = None
        if self._history is not None and job is not None and job.job_type is not None:
            fit = self._history.fit(job.job_type.value)
        wants_at = next_look(
            sub,
            job,
            base,
            now=self._clock.monotonic(),
            service_now=self._clock_offset.service_time(self._clock.now()),
            fit=fit,
            draw=stream.draw,
        )
        stream.want(sub, wants_at)
        if len(stream.gates()) > 1:
            self._changed(stream)  # its looks may go through another gate now

    def end(self, sub: Subscription, outcome: Outcome | BaseException) -> None:
        """End a subscriber's wait: ``outcome`` is the last thing it is told (a bug, as itself)."""
        if sub.ended:
            return
        sub.ended = True
        if isinstance(outcome, Outcome):
            outcome = self._measured(sub, outcome)
            if self._hooks.wants("on_outcome"):
                self._hooks.call("on_outcome", outcome)
        elif self._hooks.wants("on_outcome"):
            # A bug reaches the caller as itself; the hooks get an outcome naming it.
            self._tell_hooks(
                sub, ImageJobsError(f"the wait failed unexpectedly: {type(outcome).__name__}")
            )
        sub.mailbox.put(outcome)
        self._leave(sub)

    def end_all(self, error: ImageJobsError) -> None:
        """End every wait of the client with (its own copy of) ``error``."""
        for stream in list(self._streams.values()):
            for sub in list(stream.subscribers):
                self.end(sub, Outcome(sub.job_id, sub.last, own_copy(error)))

    def _tell_hooks(self, sub: Subscription, error: ImageJobsError) -> None:
        """Tell the hooks of a wait that ended without an outcome of its own."""
        self._hooks.call("on_outcome", self._measured(sub, Outcome(sub.job_id, sub.last, error)))

    def _measured(self, sub: Subscription, outcome: Outcome) -> Outcome:
        """Return ``outcome`` with how long its wait took and how many snapshots it saw."""
        stream = self._streams.get(sub.job_id)
        joined = stream is not None and sub in stream.subscribers
        taken = stream.snapshots_taken - sub.snapshots_before if stream and joined else 0
        ended = min(self._clock.monotonic(), sub.deadline)
        # Made anew, not attrs.evolve'd: at half the cost, for each of a job's thousand waits.
        job_id, job, error = outcome.job_id, outcome.job, outcome.error
        return Outcome(job_id, job, error, duration=max(0.0, ended - sub.started), polls=taken)

    def _outcome(self, sub: Subscription, now: float) -> Outcome:
        job = sub.last
        if job is not None and job.is_terminal:
            failed = job.status is not JobStatus.SUCCESS
            return Outcome(sub.job_id, job, JobFailed(job, sub.kept()) if failed else None)
        # The wait ended on its deadline, even if the loop got round to it a moment later.
        now = min(now, sub.deadline)
        stream = self._streams.get(sub.job_id)
        if stream is not None and stream.failure is not None:
            error = own_copy(stream.failure.error)
            error.failing_for = max(0.0, now - max(sub.started, stream.failure.since))
            return Outcome(sub.job_id, job, error)
        timeout = WaitTimeout(sub.job_id, job, now - sub.started, sub.kept())
        return Outcome(sub.job_id, job, timeout)

    # --- what the fleet tells ------------------------------------------------------

    def news(self, job_id: str) -> None:
        """Look at a job at once: another process of the fleet kept its end, a moment ago."""
        stream = self._streams.get(job_id)
        if stream is None or self._closed:
            return
        stream.set_fleet(news=True)
        if stream.poll is not None:
            return  # taken up when that look is back: it may have been sent before the end
        # Any snapshot since the news was kept will do: the fleet's, with no request.
        stream.not_before = -math.inf  # no more waiting for another's answer: it is in
        self._get(stream, self._clock.monotonic() - NEWS_AGE, "changed")
        self._poke()

    # --- what the sweeper asks -------------------------------------------------------

    def _get(self, stream: Stream, since: float, reason: str = "changed") -> None:
        """Have a swept job fetched by GET as soon as it may, by a request sent after ``since``."""
        stream.sweep.get_wanted = True
        stream.sweep.get_reason = reason
        stream.sweep.get_since = since
        stream.want_by(since)
        self._changed(stream)
        self._due.schedule(stream)

    def _plan_all(self, stream: Stream, base: float) -> None:
        for sub in stream.subscribers:
            self.plan(sub, stream, base)

    def _cover_changed(self, stream: Stream, now: float) -> None:
        if not stream.sweep.covered and not stream.sweep.get_wanted:
            # Its GETs go on from now, by its age, not from a look planned for a sweep.
            for sub in stream.subscribers:
                self.plan(sub, stream, min(now, sub.wants_at))
        self._due.schedule(stream)

    def _changed(self, stream: Stream) -> None:
        """Tell the sweeps a stream came, went or changed (its looks, summary or subscribers)."""
        self._sweeper.changed(stream)

    # --- the loop -------------------------------------------------------------------

    def _poke(self) -> None:
        """Make the loop look again now; start it if it is not running."""
        if self._runner is None:
            if self._streams and not self._closed:
                # In a context of its own: the loop polls for every caller, so no one
                # caller's context (an OpenTelemetry span, say) is the parent of its requests.
                self._runner = asyncio.get_running_loop().create_task(
                    self._run(), context=contextvars.Context()
                )
            return
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _read_returned(self, now: float) -> None:
        # Apart from the loop: the last stream read, and its look, go with this frame.
        returned = self._due.returned
        while returned:
            stream, task = returned.popleft()
            # Not if its subscribers left while it was out.
            if self._streams.get(stream.job_id) is stream and stream.poll is task:
                # Read while still its look: the waits it ends leave without each
                # rescheduling the stream, which is scheduled once, after.
                self._reader.read(stream, task, now)
                stream.poll = None
                self._changed(stream)
                if self._streams.get(stream.job_id) is stream:
                    if stream.fleet.news:
                        self.news(stream.job_id)  # news that came while it was out
                    self._due.schedule(stream)

    async def _run(self) -> None:
        try:
            while self._streams:
                now = self._clock.monotonic()
                self._read_returned(now)
                self._sweeper.collect(now)
                self._expire(now)
                self._sweeper.regroup(now)
                self._due.launch(now)
                self._sweeper.launch(now)
                if self._streams:
                    await self._sleep_until(self._next_wake())
        except Exception as bug:  # noqa: BLE001 - a bug must reach every waiter, not hang them
            for stream in list(self._streams.values()):
                for sub in list(stream.subscribers):
                    self.end(sub, bug)
        finally:
            self._runner = None
            self._alarm.cancel()
            if not self._streams:
                self._sweeper.abandon()  # nobody is left to tell what it finds
                self._due.returned.clear()  # looks at jobs nobody waits on any more

    def _expire(self, now: float) -> None:
        while (sub := self._deadlines.pop_due(now)) is not None:
            self.end(sub, self._outcome(sub, now))

    def _next_wake(self) -> float:
        return min(self._deadlines.first_at(), self._due.next_due(), self._sweeper.wake_at())

    async def _sleep_until(self, wake: float) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        self._alarm.set(wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    # --- closing --------------------------------------------------------------------

    async def close(self) -> None:
        """End every subscription with :class:`ClientClosed` and stop every task."""
        self._closed = True
        waits = [sub for stream in list(self._streams.values()) for sub in stream.subscribers]
        for number, sub in enumerate(waits, 1):
            error = ClientClosed(f"the client was closed while waiting for job {sub.job_id}")
            self.end(sub, Outcome(sub.job_id, sub.last, error))
            if number % CLOSE_SLICE == 0:
                await asyncio.sleep(0)  # a hundred thousand waits end over a few turns
        tasks = [*self._due.in_flight, *self._sweeper.tasks(), *filter(None, [self._runner])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._alarm.close()
        # Cleared, a table gives back what a hundred thousand waits grew it to; in place,
        # not made anew among the freed jobs' memory, which it would keep mapped.
        self._streams.clear()
        self._deadlines.clear()
        self._due.clear()
        self._sweeper.clear()
        if self._most_jobs >= TRIM_AFTER:
            trim_heap()  # and what the C library keeps of them, given back (.core.trim)
        self._most_jobs = 0
