"""A stream: the looks at one job, shared by every caller waiting on it.

However many subscribers a job has, the hub keeps one :class:`Stream` for it:
what was last seen of the job, this process's poll of it, its failures, and
two smaller records for the two ways a stream can be helped along: the
fleet's shared looks (:class:`FleetLooks`) and the sweeps (:class:`SweepState`).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import Counter
from collections.abc import Collection, Hashable
from typing import Any, TypeVar

import attrs

from imagejobs.core.errors import ImageJobsError
from imagejobs.core.models import ImageJob
from imagejobs.core.untracked import untrack
from imagejobs.planning.allocation import LIST_TRUST
from imagejobs.planning.policy import PollPolicy
from imagejobs.planning.sweeps import JobSummary, SubJobs, active_sub_jobs
from imagejobs.scheduling.looks import LookResult
from imagejobs.scheduling.subscriptions import Subscription
from imagejobs.timing.gate import Gate

__all__ = ["LIST_TRUST", "NO_FLEET_LOOKS", "Failure", "FleetLooks", "Stream", "SweepState"]

_Want = tuple[float, int, int, Subscription]
"""A subscriber's ``wants_at`` in a stream's heap: when, its number in joining order, the
entry's own number (so that no two entries tie), and the subscriber."""


@attrs.frozen
class Failure:
    """Looks at a job that keep failing: the last error, and since when.

    Frozen: one failed sweep gives the same one to every job it covers.
    """

    error: ImageJobsError
    since: float


@attrs.frozen
class FleetLooks:
    """Where a job stands in the fleet's shared looks (:mod:`imagejobs.fleet.shared`).

    Frozen, and replaced when it changes: a job no fleet looks at keeps the one
    :data:`NO_FLEET_LOOKS` every such job shares, not a record of its own.
    """

    mark: str = ""
    """Where this job's shared snapshots were last read."""
    others_looking: int = 0
    """Looks in a row that found another process looking."""
    own_look_next: bool = False
    """The fleet's last answer was older than this process's own: the next look is a GET."""
    news: bool = False
    """Another process kept the job's end: the next look, the fleet's snapshot, goes at once."""


NO_FLEET_LOOKS = FleetLooks()
"""Where a job no process of a fleet has looked at stands: the defaults."""


@attrs.define
class SweepState:
    """A job's part in the sweeps (:mod:`imagejobs.scheduling.sweeper`)."""

    covered: bool = False
    """Covered by sweeps: no GET of its own until a sweep asks for one."""
    covered_at: float = -math.inf
    """When it came under the cover: a sweep started before then does not decide about it."""
    demand: float = 0.0
    """Requests a second its policies' first pace asks, as its sweeper counts it."""
    get_wanted: bool = False
    """A sweep saw it leave its list (or change): a GET must say what happened."""
    get_reason: str = "changed"
    """Why a GET is wanted: ``changed``, ``safety`` or ``first`` (a watcher joined)."""
    get_since: float = -math.inf
    """When the sweep that asked for a GET started: only a GET sent since then answers it."""
    fetched_at: float = -math.inf
    """When it was last fetched by GET (or first subscribed to)."""


@attrs.define(eq=False)
class Stream:
    """The looks at one job, shared by all its subscribers."""

    job_id: str
    snapshot: ImageJob | None = None
    """The last snapshot of the job, and when it was taken (:attr:`seen_at`)."""
    seen_at: float = -math.inf
    summary: JobSummary | None = None
    """What the last GET, or the last sweep that saw it, said of the job."""
    snapshots_taken: int = 0
    """Answered GETs, and other processes' looks replayed: what an outcome counts as polls."""
    polls_sent: int = 0
    """This process's polls of the job: what a transition's ``poll`` numbers."""
    poll: asyncio.Task[LookResult] | None = None
    poll_started: float = 0.0
    poll_order: int = 0
    draw: float = 0.5
    """One draw of jitter per look, shared by all subscribers: each drawing its own
    would poll at the earliest of their draws, far more often than any one asks."""
    not_before: float = -math.inf
    """No look before this: a failure's backoff, or another process looking."""
    failure: Failure | None = None
    """What the job's looks (or the sweeps covering it) are failing with, if they are."""
    failures: int = 0
    """Looks failed in a row: only an answer to a look resets it, so a sweep that shows
    the job still listed does not restart its backoff."""
    fleet: FleetLooks = NO_FLEET_LOOKS
    sweep: SweepState = attrs.Factory(SweepState)
    # Most jobs have one subscriber, and a hundred thousand of them need not keep a dict
    # each: the one is kept alone, a dict made for two or more (see :attr:`subscribers`).
    _sole: Subscription | None = attrs.field(default=None, init=False, repr=False)
    _sole_number: int = attrs.field(default=0, init=False, repr=False)
    _numbers: dict[Subscription, int] | None = attrs.field(default=None, init=False, repr=False)
    """Each subscriber of two or more, and its number in joining order: who joined first
    wins a tie."""
    _wants: list[_Want] | None = attrs.field(default=None, init=False, repr=False)
    """A heap of the subscribers' ``wants_at``, kept while there are two or more (none
    else): an entry whose subscriber left, or wants another time now, is stale, and dropped
    when it comes to the top."""
    _latest_want: float = attrs.field(default=-math.inf, init=False, repr=False)
    """No subscriber wants a look later than this (it may be earlier)."""
    _numbered: int = attrs.field(default=0, init=False, repr=False)
    """The last number given, to a subscriber joining or to an entry of :attr:`_wants`."""
    # What its subscribers have in common, counted while there are two or more: most jobs
    # have one, and a hundred thousand of them need not keep two counters each.
    _policies: Counter[PollPolicy] | None = attrs.field(default=None, init=False, repr=False)
    _gates: Counter[Gate | None] | None = attrs.field(default=None, init=False, repr=False)
    _watching: int = attrs.field(default=0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for record in (self, self.sweep):
            untrack(record)  # one of a hundred thousand, in no cycle (imagejobs.core.untracked)

    @property
    def subscribers(self) -> Collection[Subscription]:
        """Its subscribers, in joining order.

        Changed through :meth:`join` and :meth:`leave` only, as ``wants_at`` through
        :meth:`want` and :meth:`want_by`: the stream keeps what it asks of them all
        indexed, so that a job with thousands of subscribers costs each one little.
        """
        if self._numbers is not None:
            return self._numbers.keys()
        return () if self._sole is None else (self._sole,)

    def set_fleet(self, **changes: Any) -> None:
        """Change where the job stands in the fleet's looks (a record of its own from now)."""
        self.fleet = attrs.evolve(self.fleet, **changes)
        untrack(self.fleet)  # of strings, numbers and flags: in no cycle

    def join(self, sub: Subscription) -> None:
        """Add a subscriber, wanting a look when its ``wants_at`` says."""
        number = self._number()
        self._watching += sub.wants_transitions
        if self._numbers is None:
            if self._sole is None:
                self._sole, self._sole_number = sub, number
                self._push(sub)
                return
            self._numbers = {self._sole: self._sole_number}
            self._sole = None
        self._numbers[sub] = number
        untrack(self._numbers)  # tracked again by what was put in it
        if self._policies is not None and self._gates is not None:
            self._policies[sub.policy] += 1
            self._gates[sub.gate] += 1
            self._push(sub)
            return
        self._policies = Counter(each.policy for each in self._numbers)
        self._gates = Counter(each.gate for each in self._numbers)
        self._rebuild()  # the one before it was kept without a heap

    def leave(self, sub: Subscription) -> None:
        """Remove a subscriber: what it wanted no longer counts."""
        if self._numbers is None:
            if sub is not self._sole:
                raise KeyError(sub)
            self._sole = None
        else:
            del self._numbers[sub]
        self._watching -= sub.wants_transitions
        if self._numbers is not None and len(self._numbers) == 1:
            self._sole, self._sole_number = next(iter(self._numbers.items()))
            self._numbers = None
        if self._numbers is None:
            self._policies = self._gates = None
            self._rebuild()  # a stream let go, or of one subscriber, holds no ended wait
            return
        if self._policies is not None and self._gates is not None:
            _count_out(self._policies, sub.policy)
            _count_out(self._gates, sub.gate)
        self._compact_if_bloated()

    def want(self, sub: Subscription, when: float) -> None:
        """Set when a subscriber wants the job looked at next: its ``wants_at``, indexed."""
        sub.wants_at = when
        if sub in self.subscribers:
            self._push(sub)

    def want_by(self, when: float) -> None:
        """Have every subscriber want a look at ``when`` at the latest."""
        if self._latest_want <= when:
            return  # every one does already: a burst of subscribers costs each one little
        for sub in self.subscribers:
            sub.wants_at = min(sub.wants_at, when)
        self._rebuild()

    def _number(self) -> int:
        self._numbered += 1
        return self._numbered

    def _push(self, sub: Subscription) -> None:
        when, numbers = sub.wants_at, self._numbers
        if self._wants is None or numbers is None:  # kept together, for two or more
            self._latest_want = when  # one subscriber: itself, no heap
            return
        self._latest_want = max(self._latest_want, when)
        heapq.heappush(self._wants, (when, numbers[sub], self._number(), sub))
        self._compact_if_bloated()

    def _compact_if_bloated(self) -> None:
        # Each want leaves the subscriber's older entry behind, each leave all of its own.
        if self._wants is not None and len(self._wants) > 64 + 2 * len(self.subscribers):
            self._rebuild()

    def _rebuild(self) -> None:
        self._latest_want = max((sub.wants_at for sub in self.subscribers), default=-math.inf)
        if self._numbers is None:
            self._wants = None
            return
        self._wants = [(sub.wants_at, number, number, sub) for sub, number in self._numbers.items()]
        heapq.heapify(self._wants)

    def _most_demanding(self) -> Subscription | None:
        """Return the subscriber that wants a look soonest (the first to join, of a tie)."""
        wants = self._wants
        if wants is None:
            return self._sole
        while wants:
            when, _, _, sub = wants[0]
            if sub.wants_at == when and sub in self.subscribers:
                return sub
            heapq.heappop(wants)
        return None

    def due_at(self) -> float:
        """Return when the job's next look is due: as its most demanding subscriber wants."""
        first = self._most_demanding()
        return max(math.inf if first is None else first.wants_at, self.not_before)

    def watched(self) -> bool:
        """Whether a subscriber wants the job's sub-job transitions."""
        return self._watching > 0

    def policies(self) -> Collection[PollPolicy]:
        """Return the policies its subscribers wait with, each once however many share it."""
        if self._policies is not None:
            return self._policies.keys()
        return [sub.policy for sub in self.subscribers]

    def gates(self) -> Collection[Gate | None]:
        """Return its subscribers' call gates, each once (``None``: the client's own)."""
        if self._gates is not None:
            return self._gates.keys()
        return [sub.gate for sub in self.subscribers]

    def active_sub_jobs(self) -> SubJobs | None:
        """Return the last snapshot's active sub-jobs and their lists (see :mod:`.sweeps`)."""
        return None if self.snapshot is None else active_sub_jobs(self.snapshot)

    def call_gate(self) -> Gate | None:
        """Return the call gate a look goes through: none if any subscriber has none.

        Otherwise the gate of the subscriber that wants the look soonest.
        """
        first = self._most_demanding()
        return None if first is None or None in self.gates() else first.gate

    def fresh_after(self, when: float) -> float:
        """Return since when another process's snapshot serves as this look.

        One taken in the later half of the gap since the last look: what comes
        next is planned from it, so the job is looked at as often as before.
        ``when`` is when the look was due; a look put off (another process was
        looking) still wants what was seen since it was first wanted.
        """
        if self.fleet.own_look_next:
            return math.inf
        first = self._most_demanding()
        if first is not None:
            when = min(when, first.wants_at)
        if self.seen_at > -math.inf:
            fresh_after = when - 0.5 * max(0.0, when - self.seen_at)
        else:
            fresh_after = when - min(policy.initial_delay for policy in self.policies())
        if self.sweep.get_wanted:
            # What a sweep saw must be explained.
            fresh_after = max(fresh_after, self.sweep.get_since)
        return fresh_after

    def overdue(self, now: float, budget_gap: float = 0.0) -> bool:
        """Whether a swept job went without a GET for too long to trust the lists about it.

        ``budget_gap`` is how often the budget's share for such GETs allows one per job.
        """
        longest = max(policy.longest_gap for policy in self.policies())
        return now - self.sweep.fetched_at >= max(LIST_TRUST * longest, budget_gap)

    def failed(self, error: ImageJobsError, since: float) -> int:
        """Count one more failed look (failing since ``since`` if it is the first); return
        the looks failed in a row."""
        self.failure = Failure(error, since if self.failure is None else self.failure.since)
        self.failures += 1
        return self.failures

    def let_go(self) -> None:
        """Cancel the look in flight and forget the failure: nobody waits on the job now.

        Its error's frames lead back to the hub: nothing may keep them, the stream least
        of all, out of the collector's sight (:mod:`imagejobs.core.untracked`).
        """
        if self.poll is not None:
            self.poll.cancel()
            self.poll = None
        self.failure = None

    def answered(self, draw: float) -> None:
        """Forget the failures: an answer came. ``draw`` is the next look's jitter."""
        self.failure = None
        self.failures = 0
        self.not_before = -math.inf
        self.draw = draw


_Key = TypeVar("_Key", bound=Hashable)


def _count_out(counter: Counter[_Key], key: _Key) -> None:
    """Count one ``key`` out, forgetting it at none: what is left are the keys in use."""
    left = counter[key] - 1
    if left:
        counter[key] = left
    else:
        del counter[key]
