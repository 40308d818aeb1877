"""The hub: the one scheduler of a client, behind every wait.

Callers subscribe to job IDs. However many subscribers a job has, the hub
keeps one poll stream for it, polls it as often as its most demanding
subscriber asks, and gives each subscriber the transitions from where it
joined. A heap holds the streams by when their next poll is due, another
the subscribers by deadline; one loop sleeps on the client's clock until
the earlier of the two, or until a poll comes back or a subscriber comes or
goes. A job nobody waits on is not polled.

When many jobs are in play, sweeps (see :mod:`imagejobs.planning.sweeps`) page the
lists of active jobs instead: a job that stays on its list is not fetched,
and one that leaves it is fetched with a GET, which alone can end a wait.
A job whose subscribers want every sub-job transition is swept only once a
GET has shown its sub-jobs, and with the sub-job lists too; every
transition comes from a GET's snapshot.

A poll that fails for a reason a later poll may not meet (a 5xx, a 429, no
answer, a malformed body) is tried again with backoff; if the polls are
still failing at a subscriber's deadline, that error is its outcome. An
error no poll can fix ends the job's subscribers at once, and a refused
credential (401) every subscriber of the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import heapq
import itertools
import logging
import math
import random as _random
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from imagejobs.core.codec import Page
from imagejobs.core.errors import (
    AuthenticationError,
    BadRequest,
    ImageJobsError,
    JobFailed,
    JobNotFound,
    TransportError,
    WaitTimeout,
)
from imagejobs.core.models import ImageJob, ImageJobInfo, JobStatus, SubJob
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import Transition, diff
from imagejobs.observability.hooks import Hooks, WaitRecord
from imagejobs.planning.backoff import step
from imagejobs.planning.cadence import next_gap
from imagejobs.planning.history import DurationHistory, duration_of
from imagejobs.planning.policy import PollPolicy
from imagejobs.planning.retry import RetryPolicy, is_poll_transient
from imagejobs.planning.sweeps import (
    SWEEP_SHARE,
    Known,
    Listing,
    Plan,
    SubJobs,
    active_sub_jobs,
    pages_for,
    plan_round,
    read_round,
)
from imagejobs.scheduling.looks import ListFunction, Look, PollFunction, Seen
from imagejobs.timing.clock import Alarm, Clock
from imagejobs.timing.gate import Gate
from imagejobs.transport.paging import ListWalk

__all__ = [
    "KEPT_TRANSITIONS",
    "LIST_TRUST",
    "Hub",
    "Mailbox",
    "Subscription",
]

logger = logging.getLogger("imagejobs")

KEPT_TRANSITIONS = 256
"""Transitions a subscription keeps for :class:`JobFailed` and :class:`WaitTimeout`.

The most recent ones: a job whose sub-jobs flap for hours must not fill memory.
"""

REGROUP_EVERY = 0.5
"""Seconds between two decisions of which jobs the sweeps cover, once many jobs are in play.

Each decision looks at every job: with thousands in play, not after every answer."""

_FEW_JOBS = 64

LIST_TRUST = 10
"""A swept job is still fetched once this many of its longest poll gaps passed without a GET.

Lists are hints: one that lags, or never shows a job's end, must not hide it for ever.
"""

Event = Transition | Outcome


_Found = tuple[dict[Listing, list[ImageJobInfo | SubJob]], dict[Listing, int], int, set[Listing]]

SWEEP_FAILURES = 3
"""Sweeps that fail in a row (5xx, 429, no answer) before they pause for :data:`SWEEP_PAUSE`."""

SWEEP_PAUSE = 60.0
"""Seconds sweeps pause after failing :data:`SWEEP_FAILURES` times: each job is polled by GET."""

SHARED_WAIT_MAX = 2.0
"""Seconds at most between two looks at a job another process of the fleet is fetching."""

COUNT_TTL = 300.0
"""Seconds a list's count is believed: a crowded list may thin out."""


class Mailbox:
    """Where one caller's subscriptions put their events, in the order they happen."""

    def __init__(self) -> None:
        self._items: deque[Event | BaseException] = deque()
        self._ready = asyncio.Event()

    def put(self, item: Event | BaseException) -> None:
        # Unbounded on purpose: an event is never dropped. A caller who stops
        # reading a watch should close it (``aclose``, ``break`` in ``async for``).
        """Add an event, or an exception that is a bug, for the caller to see."""
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Event:
        """Return the next event; raise the next item if it is an exception."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, BaseException):
            raise item
        return item


@attrs.define(eq=False)
class Subscription:
    """One caller's wait on one job: its policy, deadline and what it was last told."""

    job_id: str
    policy: PollPolicy
    mailbox: Mailbox
    gate: Gate | None
    started: float
    deadline: float
    last: ImageJob | None
    joined: int = 0
    """When it joined, in the hub's order of events: a poll sent before then is older
    than a ``since`` it brought, so it is not told that poll's answer."""
    since_given: bool = False
    wants_transitions: bool = True
    """Whether it is told sub-job transitions: then its job's sub-jobs are swept too."""
    wants_at: float = 0.0
    """When this subscriber wants the job polled next (jitter included)."""
    polls_before: int = 0
    """The job's looks before this subscriber joined: its outcome counts those after."""
    grace_from: float | None = None
    ended: bool = False
    transitions: list[Transition] = attrs.Factory(list)
    """What it was told, the most recent :data:`KEPT_TRANSITIONS` (see :meth:`kept`)."""

    def keep(self, changes: list[Transition]) -> None:
        """Remember transitions; the oldest go once there are twice as many as kept."""
        self.transitions.extend(changes)
        if len(self.transitions) >= 2 * KEPT_TRANSITIONS:
            del self.transitions[:-KEPT_TRANSITIONS]

    def kept(self) -> list[Transition]:
        """Return the most recent transitions, at most :data:`KEPT_TRANSITIONS`."""
        return self.transitions[-KEPT_TRANSITIONS:]


@attrs.define(eq=False)
class _Stream:
    """The polls of one job, shared by all its subscribers."""

    job_id: str
    subscribers: dict[Subscription, None] = attrs.Factory(dict)
    snapshot: ImageJob | None = None
    seen_at: float = -math.inf
    polls: int = 0
    poll: asyncio.Task[Seen] | None = None
    looks: int = 0
    """Snapshots taken: answered GETs, and other processes' looks replayed."""
    mark: str = ""
    """Where this job's shared snapshots were last read."""
    waits: int = 0
    """Looks in a row that found another process looking."""
    own_look: bool = False
    """The fleet's last answer was older than this process's own: the next look is a GET."""
    poll_started: float = 0.0
    poll_order: int = 0
    # The number of the stream's live entry in the due heap; other entries are stale.
    ticket: int | None = None
    # One draw of jitter per poll, shared by all subscribers: each drawing its own
    # would poll at the earliest of their draws, far more often than any one asks.
    draw: float = 0.5
    failing_since: float | None = None
    failure: ImageJobsError | None = None
    failures: int = 0
    retry_at: float = -math.inf
    known: Known | None = None
    """What the last GET, or the last sweep that saw it, said of the job."""
    swept: bool = False
    """Covered by sweeps: no GET of its own until a sweep asks for one."""
    get_now: bool = False
    """A sweep saw it leave its list (or change): a GET must say what happened."""
    fetched_at: float = -math.inf
    """When it was last fetched by GET (or first subscribed to)."""
    get_since: float = -math.inf
    """When the sweep that asked for a GET started: only a GET sent since then answers it."""


class Hub:
    """One client's scheduler: subscriptions, one poll stream per job, deadlines."""

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
        history: DurationHistory | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._poll_job = poll
        self._hooks = hooks if hooks is not None else Hooks()
        self._history = history
        self._list_page = list_page
        self._sweeps = sweeps
        self._sweeps_off = False
        self._sweeps_paused_until = -math.inf
        self._refused: set[Listing] = set()
        self._abandoned: set[asyncio.Task[_Found]] = set()
        self._rate = rate
        self._counts: dict[Listing, tuple[int, float]] = {}
        self._cover = Plan((), frozenset())
        self._replan = False
        self._sweep: asyncio.Task[_Found] | None = None
        self._sweeping = self._cover
        self._last_sweep = (-math.inf, 0)
        self._sweep_at = math.inf
        self._sweep_failures = 0
        self._sweep_retry_at = -math.inf
        self._quiet_sweeps = 0
        self._sweep_gets = 0
        self._regroup_after = -math.inf
        self._sweep_due_known = False
        self._clock = clock
        self._retry = retry
        self._max_polls = max_polls
        self._random = random
        self._streams: dict[str, _Stream] = {}
        self._due: list[tuple[float, int, _Stream]] = []
        self._deadlines: list[tuple[float, int, Subscription]] = []
        self._ended_in_heap = 0
        self._order = itertools.count()
        self._returned: deque[tuple[_Stream, asyncio.Task[Seen]]] = deque()
        self._polls: set[asyncio.Task[Seen]] = set()
        # Polls out per gate (None: the client's own), and streams due that wait for
        # room in theirs: a slow call's cap must not hold back anyone else's polls.
        self._out: Counter[Gate | None] = Counter()
        self._parked: dict[Gate | None, list[tuple[float, int, _Stream]]] = {}
        self._runner: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._alarm = Alarm(clock, self._poke)
        self._closed = False

    def __repr__(self) -> str:
        swept = len(self._cover.covered)
        return f"Hub(jobs={len(self._streams)}, swept={swept}, polls_in_flight={len(self._polls)})"

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
            raise ImageJobsError("the client is closed")
        now = self._clock.monotonic()
        deadline = math.inf if policy.timeout is None else now + policy.timeout
        sub = Subscription(job_id, policy, mailbox, gate, now, deadline, since)
        sub.joined = next(self._order)
        sub.since_given = since is not None
        sub.wants_transitions = wants_transitions
        if self._hooks.wants("on_wait"):
            self._hooks.call("on_wait", WaitRecord(job_id, policy.timeout))
        if since is not None and since.is_terminal:
            self._end(sub, self._outcome(sub, now))
            return sub
        stream = self._streams.get(job_id)
        if stream is None:
            stream = self._streams[job_id] = _Stream(job_id, fetched_at=now)
        stream.subscribers[sub] = None
        sub.polls_before = stream.looks
        if deadline < math.inf:
            heapq.heappush(self._deadlines, (deadline, next(self._order), sub))
        fresh = stream.snapshot is not None and now - stream.seen_at < policy.initial_delay
        if fresh and stream.snapshot is not None and since is None:
            # Seen a moment ago: as good as a new poll, and it costs nothing.
            self._tell(sub, stream, stream.snapshot)
        else:
            sub.wants_at = now
            if stream.swept and wants_transitions:
                # A sweep would not tell it where the job is now; a GET does.
                self._ask_for_get(stream, now)
        self._replan = True
        self._reschedule(stream)
        self._poke()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop telling a subscriber anything; its job is polled no more if nobody is left.

        The hooks still hear how it ended: cancelled, an error outcome.
        """
        if sub.ended:
            return
        sub.ended = True
        if self._hooks.wants("on_outcome"):
            self._tell_hooks(sub, ImageJobsError(f"the wait on job {sub.job_id} was cancelled"))
        self._leave(sub)

    def _unlink(self, sub: Subscription) -> None:
        stream = self._streams.get(sub.job_id)
        if stream is None or sub not in stream.subscribers:
            return
        del stream.subscribers[sub]
        self._replan = True
        if not stream.subscribers:
            self._drop(stream)
            self._poke()  # the loop ends once no job is left
        else:
            self._reschedule(stream)

    def _drop(self, stream: _Stream) -> None:
        if self._streams.get(stream.job_id) is stream:
            del self._streams[stream.job_id]
        stream.ticket = None
        if stream.poll is not None:
            stream.poll.cancel()
            stream.poll = None

    def _end(self, sub: Subscription, outcome: Outcome | BaseException) -> None:
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

    def _tell_hooks(self, sub: Subscription, error: ImageJobsError) -> None:
        """Tell the hooks of a wait that ended without an outcome of its own."""
        self._hooks.call("on_outcome", self._measured(sub, Outcome(sub.job_id, sub.last, error)))

    def _measured(self, sub: Subscription, outcome: Outcome) -> Outcome:
        """Return ``outcome`` with how long its wait took and how many looks it saw."""
        stream = self._streams.get(sub.job_id)
        joined = stream is not None and sub in stream.subscribers
        looks = stream.looks - sub.polls_before if stream is not None and joined else 0
        ended = min(self._clock.monotonic(), sub.deadline)
        return attrs.evolve(outcome, duration=max(0.0, ended - sub.started), polls=looks)

    def _leave(self, sub: Subscription) -> None:
        if sub.deadline < math.inf:
            self._ended_in_heap += 1
            if self._ended_in_heap > 64 and self._ended_in_heap > len(self._deadlines) // 2:
                # Ended waits would stay in the heap until their deadline: drop them now.
                self._deadlines = [entry for entry in self._deadlines if not entry[2].ended]
                heapq.heapify(self._deadlines)
                self._ended_in_heap = 0
        self._unlink(sub)

    # --- what subscribers are told --------------------------------------------------

    def _tell(self, sub: Subscription, stream: _Stream, job: ImageJob) -> None:
        """Give a subscriber what changed since it last looked, and plan its next poll."""
        changes = diff(sub.last, job, observed_at=self._clock.now(), poll=stream.polls)
        sub.last = job
        sub.keep(changes)
        for change in changes:
            sub.mailbox.put(change)
        if job.is_terminal:
            self._end(sub, self._outcome(sub, stream.seen_at))
            return
        self._plan(sub, stream, stream.seen_at)

    def _plan(self, sub: Subscription, stream: _Stream, base: float) -> None:
        """Set when a subscriber wants the next look: by the job's age and its type's history."""
        job = stream.snapshot or sub.last
        waited = base - sub.started
        age = waited
        if job is not None and job.begin_time is not None:
            # The job's own age on the wall clock, as of ``base`` on the monotonic one, and
            # never less than the wait's own: a begin_time in the future (this machine's
            # clock behind the server's) must not make it younger than the wait. A clock
            # behind by less still makes the job look younger by as much: keep it in time.
            old = (self._clock.now() - job.begin_time).total_seconds()
            age = max(waited, old + base - self._clock.monotonic())
        fit = None
        if self._history is not None and job is not None and job.job_type is not None:
            fit = self._history.fit(job.job_type.value)
        wants_at = base + next_gap(sub.policy, age, fit, stream.draw)
        sub.wants_at = wants_at if wants_at < sub.deadline else math.inf

    def _outcome(self, sub: Subscription, now: float) -> Outcome:
        job = sub.last
        if job is not None and job.is_terminal:
            failed = job.status is not JobStatus.SUCCESS
            return Outcome(sub.job_id, job, JobFailed(job, sub.kept()) if failed else None)
        # The wait ended on its deadline, even if the loop got round to it a moment later.
        now = min(now, sub.deadline)
        stream = self._streams.get(sub.job_id)
        if stream is not None and stream.failure is not None:
            since = max(sub.started, stream.failing_since or now)
            error = _own_copy(stream.failure)
            error.failing_for = max(0.0, now - since)
            return Outcome(sub.job_id, job, error)
        timeout = WaitTimeout(sub.job_id, job, now - sub.started, sub.kept())
        return Outcome(sub.job_id, job, timeout)

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

    async def _run(self) -> None:
        try:
            while self._streams:
                now = self._clock.monotonic()
                while self._returned:
                    self._handle(*self._returned.popleft(), now)
                if self._sweep is not None and self._sweep.done():
                    self._on_sweep(self._sweep, now)
                self._expire(now)
                if self._replan and (now >= self._regroup_after or len(self._streams) <= _FEW_JOBS):
                    self._regroup(now)
                self._launch(now)
                self._launch_sweep(now)
                if self._streams:
                    await self._sleep_until(self._next_wake())
        except Exception as bug:  # noqa: BLE001 - a bug must reach every waiter, not hang them
            for stream in list(self._streams.values()):
                for sub in list(stream.subscribers):
                    self._end(sub, bug)
        finally:
            self._runner = None
            self._alarm.cancel()
            if not self._streams and self._sweep is not None:
                self._sweep.cancel()  # nobody is left to tell what it finds
                self._abandoned.add(self._sweep)  # close() still waits for it to end
                self._sweep.add_done_callback(self._abandoned.discard)
                self._sweep = None
            if not self._streams:
                self._returned.clear()  # polls of jobs nobody waits on any more

    def _next_wake(self) -> float:
        wake = math.inf
        while self._deadlines and self._deadlines[0][2].ended:
            heapq.heappop(self._deadlines)
        if self._deadlines:
            wake = self._deadlines[0][0]
        entry = self._next_due()
        if entry is not None:
            wake = min(wake, entry[0])
        if self._replan:
            wake = min(wake, self._regroup_after)  # a no-op with few jobs: regrouped already
        return min(wake, self._sweep_at)

    async def _sleep_until(self, wake: float) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        self._alarm.set(wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    # --- deadlines, due polls, returned polls ------------------------------------------

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, sub = heapq.heappop(self._deadlines)
            if not sub.ended:
                self._end(sub, self._outcome(sub, now))

    def _reschedule(self, stream: _Stream) -> None:
        if stream.poll is not None or not stream.subscribers:
            return
        if stream.swept and not stream.get_now:
            stream.ticket = None  # the sweeps look at it
            return
        when = max(min(sub.wants_at for sub in stream.subscribers), stream.retry_at)
        if when == math.inf:
            stream.ticket = None
            return
        stream.ticket = next(self._order)
        heapq.heappush(self._due, (when, stream.ticket, stream))
        if len(self._due) > 64 + 4 * len(self._streams):
            # Each reschedule leaves the stream's older entry behind: drop those now.
            self._due = [entry for entry in self._due if entry[1] == entry[2].ticket]
            heapq.heapify(self._due)

    def _next_due(self) -> tuple[float, int, _Stream] | None:
        while self._due and self._due[0][1] != self._due[0][2].ticket:
            heapq.heappop(self._due)
        return self._due[0] if self._due else None

    def _launch(self, now: float) -> None:
        """Start the polls that are due, earliest first, as far as each one's gate has room."""
        while (entry := self._next_due()) is not None and entry[0] <= now:
            heapq.heappop(self._due)
            when, _, stream = entry
            stream.ticket = None
            gate = self._gate_for(stream)
            if self._out[gate] >= self._room(gate):
                heapq.heappush(self._parked.setdefault(gate, []), (when, next(self._order), stream))
                continue
            self._out[gate] += 1
            stream.polls += 1
            stream.poll_started = now
            stream.poll_order = next(self._order)
            look = Look(self._fresh_after(stream, when), stream.mark)
            task: asyncio.Task[Seen] = asyncio.get_running_loop().create_task(
                self._poll_job(stream.job_id, when, gate, look)
            )
            stream.poll = task
            self._polls.add(task)
            task.add_done_callback(functools.partial(self._returned_from, stream, gate))

    @staticmethod
    def _fresh_after(stream: _Stream, when: float) -> float:
        """Return since when another process's snapshot serves as this look.

        One taken in the later half of the gap since the last look: what comes
        next is planned from it, so the job is looked at as often as before.
        ``when`` is when the look was due; a look put off (another process was
        looking) still wants what was seen since it was first wanted.
        """
        if stream.own_look:
            return math.inf
        when = min(when, *(sub.wants_at for sub in stream.subscribers))
        if stream.seen_at > -math.inf:
            fresh_after = when - 0.5 * max(0.0, when - stream.seen_at)
        else:
            fresh_after = when - min(sub.policy.initial_delay for sub in stream.subscribers)
        if stream.get_now:
            fresh_after = max(fresh_after, stream.get_since)  # what a sweep saw must be explained
        return fresh_after

    @staticmethod
    def _gate_for(stream: _Stream) -> Gate | None:
        """Return the call gate a poll goes through: none if any subscriber has none."""
        gates = {sub.gate for sub in stream.subscribers}
        if None in gates or not gates:
            return None
        asking = min(stream.subscribers, key=lambda sub: sub.wants_at)
        return asking.gate

    def _room(self, gate: Gate | None) -> int:
        return self._max_polls if gate is None else gate.budget.max_in_flight

    def _returned_from(self, stream: _Stream, gate: Gate | None, task: asyncio.Task[Seen]) -> None:
        self._polls.discard(task)
        self._out[gate] -= 1
        self._unpark(gate)
        if not self._out[gate]:
            del self._out[gate]  # a finished call's gate is not kept alive here
        if not task.cancelled():
            task.exception()  # seen here, so an abandoned poll's error is never reported as lost
        self._returned.append((stream, task))
        self._poke()

    def _unpark(self, gate: Gate | None) -> None:
        """Put back as many parked streams, earliest first, as the gate has room for."""
        parked = self._parked.get(gate)
        room = self._room(gate) - self._out[gate]
        while parked and room > 0:
            _, _, stream = heapq.heappop(parked)
            if self._streams.get(stream.job_id) is stream and stream.poll is None:
                self._reschedule(stream)
                room -= 1
        if not parked:
            self._parked.pop(gate, None)

    def _handle(self, stream: _Stream, task: asyncio.Task[Seen], now: float) -> None:
        if self._streams.get(stream.job_id) is not stream or stream.poll is not task:
            return  # its subscribers left while it was out
        stream.poll = None
        if task.cancelled():
            # Not by the hub (it lets go of a poll before cancelling it): something
            # the request awaited was cancelled under it. Poll again, with backoff.
            error: BaseException | None = TransportError(
                f"the poll of job {stream.job_id} was cancelled"
            )
        else:
            error = task.exception()
        if error is None:
            self._on_seen(stream, task.result(), now)
        else:
            self._on_error(stream, error, now)
        if self._streams.get(stream.job_id) is stream:
            self._reschedule(stream)

    def _on_seen(self, stream: _Stream, seen: Seen, now: float) -> None:
        stream.mark = seen.mark
        own = seen.jobs[-1] if seen.own and seen.jobs else None
        taken = False
        for job, at in seen.jobs[:-1] if own else seen.jobs:
            # Only what is newer than this process's own last look: never back in time.
            # A job's end is final whenever it was seen.
            ended = stream.snapshot is not None and stream.snapshot.is_terminal
            if at > stream.seen_at or (job.is_terminal and not ended):
                self._on_job(stream, job, min(at, now), sent=at, shared=True)
                taken = True
        if own is not None:
            self._on_job(stream, own[0], now, sent=stream.poll_started)
        elif not taken and not seen.retry_in:
            # Another process's look, but older than this one's own: look for itself.
            stream.own_look = True
            stream.retry_at = now
        if seen.retry_in and stream.subscribers:
            # Another process is looking: its answer is near, unless it waits for the budget.
            stream.waits += 1
            first = min(seen.retry_in, *(sub.policy.initial_delay for sub in stream.subscribers))
            stream.retry_at = now + step(stream.waits, first, SHARED_WAIT_MAX)
        else:
            stream.waits = 0

    def _on_job(
        self, stream: _Stream, job: ImageJob, now: float, *, sent: float, shared: bool = False
    ) -> None:
        """Take a snapshot taken at ``now`` by a request sent at ``sent`` (by another process)."""
        # Its duration counts once, from the wait that saw it run: a wait on a job
        # long finished must not add it again (eight such waits would make a fit).
        before = stream.known
        watched_it_run = before is not None and not before.status.is_terminal
        stream.looks += 1
        if self._hooks.wants("on_transition") or logger.isEnabledFor(logging.INFO):
            self._report(stream.snapshot, job, stream.polls)
        stream.snapshot = job
        stream.seen_at = now
        stream.own_look = False
        stream.known = Known.of(job)
        if sent >= stream.get_since:
            stream.get_now = False  # a GET sent before a sweep asked for one does not answer it
            # Polled by GET from here until a regroup covers it again, so that what this
            # answer showed (a job no list can follow, say) never waits for that.
            stream.swept = False
        stream.fetched_at = now
        self._replan = True
        if job.status is JobStatus.SUCCESS and watched_it_run:
            self._record(job)
        stream.draw = self._random()
        stream.failing_since = stream.failure = None
        stream.failures = 0
        stream.retry_at = -math.inf
        for sub in list(stream.subscribers):
            joined_later = sub.joined > stream.poll_order or (shared and sent < sub.started)
            if sub.since_given and joined_later:
                continue  # sent before it joined: maybe older than its since; it asks anew
            self._tell(sub, stream, job)

    def _report(self, before: ImageJob | None, job: ImageJob, look: int) -> None:
        """Log each change the client sees at INFO, and give it to the hooks, once per job."""
        for change in diff(before, job, observed_at=self._clock.now(), poll=look):
            current = None if change.current is None else change.current.value
            logger.info(
                "job %s%s: %s -> %s",
                change.job_id,
                "" if change.sub_job_id is None else f" sub-job {change.sub_job_id}",
                "-" if change.previous is None else change.previous.value,
                "-" if current is None else current,
                extra={"job_id": change.job_id, "sub_job_id": change.sub_job_id, "status": current},
            )
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

    def _on_error(self, stream: _Stream, error: BaseException, now: float) -> None:
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
                self._end(sub, Outcome(sub.job_id, sub.last, _own_copy(unexpected)))
        elif isinstance(error, AuthenticationError):
            # Credentials are refused for every job alike: no need to ask once per job.
            for other in list(self._streams.values()):
                for sub in list(other.subscribers):
                    self._end(sub, Outcome(sub.job_id, sub.last, _own_copy(error)))
        elif isinstance(error, JobNotFound) and stream.snapshot is None:
            self._on_not_found(stream, error, now)
        elif is_poll_transient(error):
            if stream.failing_since is None:
                stream.failing_since = stream.poll_started
            stream.failure = error
            stream.failures += 1
            stream.retry_at = now + self._backoff(stream, error)
        else:
            for sub in subscribers:
                self._end(sub, Outcome(sub.job_id, sub.last, _own_copy(error)))

    def _on_not_found(self, stream: _Stream, error: JobNotFound, now: float) -> None:
        """Poll a never-seen job again while a subscriber's grace runs: it may be new."""
        stream.draw = self._random()
        stream.failing_since = stream.failure = None  # an answer: the outage is over
        stream.failures = 0
        stream.retry_at = -math.inf
        for sub in list(stream.subscribers):
            if sub.grace_from is None:
                sub.grace_from = max(stream.poll_started, sub.started)
            if sub.last is None and now - sub.grace_from < sub.policy.not_found_grace:
                self._plan(sub, stream, now)
            else:
                self._end(sub, Outcome(sub.job_id, sub.last, _own_copy(error)))

    def _backoff(self, stream: _Stream, error: ImageJobsError) -> float:
        """Return how long to wait after a failed poll: doubling, jittered, Retry-After a floor."""
        gaps = [sub.policy.longest_gap for sub in stream.subscribers]
        cap = min(self._retry.max_delay, *gaps)  # as often as the most demanding one asks
        return self._retry.poll_delay(
            stream.failures, error, cap=cap, longest=max(gaps), draw=self._random()
        )

    # --- sweeps ---------------------------------------------------------------------

    def _regroup(self, now: float) -> None:
        """Decide afresh which jobs the sweeps cover; the others are polled by GET."""
        self._replan = False
        self._regroup_after = now + REGROUP_EVERY
        self._sweep_due_known = False
        plan = Plan((), frozenset())
        allowed = self._sweeping_allowed(now)
        if not allowed and not self._cover.covered:
            return  # nothing swept, nothing to sweep: no need to look at every job
        if allowed:
            candidates: dict[str, Known | None] = {}
            subs: dict[str, SubJobs] = {}
            for stream in self._streams.values():
                if stream.poll is not None or stream.get_now:
                    continue
                if _watched(stream):
                    active = self._sub_jobs_of(stream)
                    if active is None:
                        continue  # a GET shows its sub-jobs first
                    subs[stream.job_id] = active
                candidates[stream.job_id] = stream.known
            counts = {
                listing: count
                for listing, (count, at) in self._counts.items()
                if now - at < COUNT_TTL
            }
            plan = plan_round(candidates, counts, subs=subs, refused=self._refused)
        self._cover = plan
        for stream in self._streams.values():
            swept = stream.job_id in plan.covered
            if swept != stream.swept:
                stream.swept = swept
                if not swept and not stream.get_now:
                    # Its GETs go on from now, by its age, not from a look planned for a sweep.
                    for sub in stream.subscribers:
                        self._plan(sub, stream, min(now, sub.wants_at))
                self._reschedule(stream)

    @staticmethod
    def _sub_jobs_of(stream: _Stream) -> SubJobs | None:
        return None if stream.snapshot is None else active_sub_jobs(stream.snapshot)

    def _ask_for_get(self, stream: _Stream, since: float) -> None:
        """Have a swept job fetched by GET as soon as it may, by a request sent after ``since``."""
        stream.get_now = True
        stream.get_since = since
        for sub in stream.subscribers:
            sub.wants_at = min(sub.wants_at, since)
        self._reschedule(stream)

    def _overdue(self, stream: _Stream, now: float) -> bool:
        """Whether a swept job went without a GET for too long to trust the lists about it."""
        longest = max(sub.policy.longest_gap for sub in stream.subscribers)
        return now - stream.fetched_at >= LIST_TRUST * longest

    def _sweeping_allowed(self, now: float) -> bool:
        """Whether sweeps may run: on, and (unless forced) GETs alone would strain the budget."""
        if self._sweeps is False or self._sweeps_off or self._list_page is None:
            return False
        if now < self._sweeps_paused_until:
            return False
        if self._sweeps is True or self._cover.listings:
            return True  # once on, sweeps go on while a list is cheaper than its GETs
        rate = self._sweep_rate(now)
        if math.isinf(rate):
            return False
        # Requests a second if every job were polled by GET at its policy's first pace.
        demand = 0.0
        for stream in self._streams.values():
            demand += max(1.0 / sub.policy.initial_delay for sub in stream.subscribers)
        return demand > SWEEP_SHARE * rate

    def _launch_sweep(self, now: float) -> None:
        """Start a sweep once a covered job wants a look, and its share of the budget allows."""
        plan = self._cover
        if self._sweep is not None or not plan.listings or self._list_page is None:
            self._sweep_at = math.inf
            return
        if not self._sweep_due_known:
            self._sweep_at = self._sweep_due(plan, now)
            self._sweep_due_known = True
        if self._sweep_at > now:
            return
        self._sweep_at = math.inf
        self._sweep_due_known = False
        self._sweeping = plan
        self._last_sweep = (now, plan.pages)
        task = asyncio.get_running_loop().create_task(
            self._run_sweep(plan, now, self._sweep_gate())
        )
        task.add_done_callback(lambda _: self._poke())
        self._sweep = task

    def _sweep_due(self, plan: Plan, now: float) -> float:
        """Return when the next sweep is due: as its pace and its backoff allow.

        Not when a covered job's own schedule wants a look: one sweep looks at every
        job, and their schedules (gaps of up to 27 s, or minutes by a history) would
        hold back the ends of all the others.
        """
        # A job may have left since the plan was made (the next regroup drops it).
        subscribers = [
            sub
            for job_id in plan.covered
            if (stream := self._streams.get(job_id)) is not None
            for sub in stream.subscribers
        ]
        started, pages = self._last_sweep
        rate = self._sweep_rate(now)
        gap = 0.0 if math.isinf(rate) else pages / (SWEEP_SHARE * rate)
        # Sweeps back off like one poll stream: their policies' first delay after a
        # sweep that saw a change, doubling (up to their shortest longest gap) while none do.
        policies = [sub.policy for sub in subscribers]
        if policies and started > -math.inf:
            first = min(policy.initial_delay for policy in policies)
            longest = min(policy.longest_gap for policy in policies)
            multiplier = min(policy.multiplier for policy in policies)
            gap = max(gap, step(self._quiet_sweeps + 1, first, longest, multiplier))
            # Never dearer than the GETs it replaces: each job would cost one request a
            # longest gap, so a sweep (its pages, and the GETs it asked for to tell a
            # watcher a change) may come that often per job.
            jobs = sum(1 for job_id in plan.covered if job_id in self._streams)
            gap = max(gap, (pages + self._sweep_gets) * longest / max(jobs, 1))
        return max(started + gap, self._sweep_retry_at)

    def _sweep_gate(self) -> Gate | None:
        """Return the gate sweeps go through: a call's own if every swept job is that call's."""
        gates: set[Gate | None] = set()
        for job_id in self._cover.covered:
            stream = self._streams.get(job_id)
            if stream is not None:
                gates.update(sub.gate for sub in stream.subscribers)
        calls = [gate for gate in gates if gate is not None]
        if None in gates or not calls:
            return None
        # Several calls' caps: the narrowest, so no call's share is overrun.
        return min(calls, key=lambda gate: gate.budget.rate)

    def _sweep_rate(self, now: float) -> float:
        gate = self._sweep_gate()
        rate = self._rate(now)
        return rate if gate is None else min(rate, gate.budget.rate)

    async def _run_sweep(self, plan: Plan, priority: float, gate: Gate | None) -> _Found:
        """Page every list of the plan (lists side by side, each page after page).

        A list is paged to its end, unless its first page shows it far longer
        than planned (its count is noted, and the plan will see), a page brings
        nothing new, or the service refuses it (a 400: noted, and the list is
        never chosen again); then it is incomplete, and the other lists go on.
        """
        assert self._list_page is not None  # noqa: S101 - checked before the sweep starts
        list_page = self._list_page
        incomplete: set[Listing] = set()

        async def page_through(listing: Listing) -> tuple[list[ImageJobInfo | SubJob], int, int]:
            items: list[ImageJobInfo | SubJob] = []
            allowance = pages_for(self._counts.get(listing, (0, 0.0))[0]) + 2

            def fetch(offset: int) -> Coroutine[Any, Any, Page[ImageJobInfo | SubJob]]:
                return list_page(listing, offset, priority, gate)

            walk = ListWalk(fetch, _item_key)
            try:
                async with contextlib.aclosing(walk.pages_of_items()) as pages:
                    async for page, _ in pages:
                        items.extend(page)
                        if pages_for(walk.count) > max(allowance, walk.pages + 1):
                            break  # far longer than planned: the plan will see its count
            except BadRequest as refusal:
                logger.warning("not sweeping %s: the list was refused (%s)", listing, refusal)
                self._refused.add(listing)
                incomplete.add(listing)
                return items, 0, walk.pages + 1
            if not walk.complete:
                incomplete.add(listing)  # nothing new, or far longer than planned
            return items, walk.count, walk.pages

        tasks = {
            listing: asyncio.get_running_loop().create_task(page_through(listing))
            for listing in plan.listings
        }
        try:
            await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks.values():
                task.cancel()  # the first failure ends the sweep: no request for nothing
            await asyncio.gather(*tasks.values(), return_exceptions=True)
        found: dict[Listing, list[ImageJobInfo | SubJob]] = {}
        counts: dict[Listing, int] = {}
        total = 0
        for task in tasks.values():
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        for listing, task in tasks.items():
            items, count, pages = task.result()
            found[listing], counts[listing] = items, count
            total += pages
        return found, counts, total, incomplete

    def _on_sweep(self, task: asyncio.Task[_Found], now: float) -> None:
        self._sweep = None
        self._sweep_due_known = False
        plan = self._sweeping
        started = self._last_sweep[0]
        error: BaseException | None
        if task.cancelled():
            error = TransportError("a sweep of the job lists was cancelled")
        else:
            error = task.exception()
        if error is not None:
            self._on_sweep_error(plan, error, started, now)
            return
        found, counts, pages, incomplete = task.result()
        self._counts.update((listing, (count, now)) for listing, count in counts.items())
        self._last_sweep = (started, pages)
        self._sweep_failures = 0
        self._sweep_retry_at = -math.inf
        streams = [
            stream
            for job_id in plan.covered
            if (stream := self._streams.get(job_id)) is not None and stream.swept
        ]
        subs = {
            stream.job_id: active
            for stream in streams
            if _watched(stream) and (active := self._sub_jobs_of(stream)) is not None
        }
        known = {stream.job_id: stream.known for stream in streams}
        verdict = read_round(plan, found, known, subs, incomplete)
        news = bool(verdict.to_get) or plan.covered != self._cover.covered
        # GETs for watched jobs' changes are extra; a job's end costs its GET either way.
        self._sweep_gets = sum(1 for job_id in verdict.to_get if job_id in subs)
        for stream in streams:
            if stream.job_id in verdict.to_get or self._overdue(stream, started):
                self._ask_for_get(stream, started)
                continue
            seen = verdict.seen.get(stream.job_id)
            if seen is None:
                continue  # it may be on a list not paged to the end: this sweep cannot tell
            changed = seen != stream.known
            news = news or changed
            stream.known = seen
            stream.failing_since = stream.failure = None
            stream.draw = self._random()
            for sub in stream.subscribers:
                self._plan(sub, stream, started)
        self._quiet_sweeps = 0 if news else self._quiet_sweeps + 1
        self._replan = True

    def _on_sweep_error(self, plan: Plan, error: BaseException, started: float, now: float) -> None:
        for job_id in plan.covered:
            stream = self._streams.get(job_id)
            if stream is not None and stream.swept and self._overdue(stream, started):
                self._ask_for_get(stream, started)  # the safety net holds through outages too
        if isinstance(error, ImageJobsError) and is_poll_transient(error):
            self._sweep_failures += 1
            if self._sweep_failures >= SWEEP_FAILURES:
                # The lists keep failing: each job is polled by GET for a while instead.
                logger.warning(
                    "sweeps pause for %gs: the job list failed %d times in a row (%s)",
                    SWEEP_PAUSE,
                    self._sweep_failures,
                    error,
                )
                self._sweeps_paused_until = now + SWEEP_PAUSE
                self._sweep_failures = 0
                self._replan = True
                self._regroup_after = -math.inf
                return
            cap = self._retry.max_delay
            self._sweep_retry_at = now + self._retry.poll_delay(
                self._sweep_failures, error, cap=cap, longest=cap, draw=self._random()
            )
            for job_id in plan.covered:
                stream = self._streams.get(job_id)
                if stream is not None and stream.swept and stream.failure is None:
                    stream.failing_since, stream.failure = started, error
            return
        # The lists are refused (no permission to list, a job_type the gateway will
        # not take...) or unreadable: the jobs are polled by GET, as without sweeps.
        self._sweeps_off = True
        self._replan = True
        if isinstance(error, ImageJobsError):
            logger.warning("sweeps are off: the job list failed (%s); polling each job", error)
        else:
            logger.warning("sweeps are off: the job list failed unexpectedly", exc_info=error)

    # --- closing --------------------------------------------------------------------

    async def close(self) -> None:
        """End every subscription with :class:`ImageJobsError` and stop every task."""
        self._closed = True
        for stream in list(self._streams.values()):
            for sub in list(stream.subscribers):
                error = ImageJobsError(f"the client was closed while waiting for job {sub.job_id}")
                self._end(sub, Outcome(sub.job_id, sub.last, error))
        tasks = [*self._polls, *self._abandoned, *filter(None, [self._runner, self._sweep])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._alarm.close()


def _item_key(item: ImageJobInfo | SubJob) -> tuple[str | None, str]:
    """Which list items are the same: sub-job IDs are only known unique within their job."""
    return getattr(item, "job_id", None), item.id


def _watched(stream: _Stream) -> bool:
    """Whether a subscriber of the job wants its sub-job transitions."""
    return any(sub.wants_transitions for sub in stream.subscribers)


def _own_copy(error: ImageJobsError) -> ImageJobsError:
    """Return a copy of an error for one subscriber: each raises its own, with its own traceback."""
    try:
        own = copy.copy(error)
    except Exception:  # noqa: BLE001 - an error that cannot be copied is shared instead
        return error
    own.__cause__ = error.__cause__
    return own
