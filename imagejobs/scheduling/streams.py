"""A stream: the looks at one job, shared by every caller waiting on it.

However many subscribers a job has, the hub keeps one :class:`Stream` for it:
what was last seen of the job, this process's poll of it, its failures, and
two smaller records for the two ways a stream can be helped along: the
fleet's shared looks (:class:`FleetLooks`) and the sweeps (:class:`SweepState`).
"""

from __future__ import annotations

import asyncio
import math

import attrs

from imagejobs.core.errors import ImageJobsError
from imagejobs.core.models import ImageJob
from imagejobs.planning.sweeps import JobSummary, SubJobs, active_sub_jobs
from imagejobs.scheduling.looks import LookResult
from imagejobs.scheduling.subscriptions import Subscription
from imagejobs.timing.gate import Gate

__all__ = ["LIST_TRUST", "Failure", "FleetLooks", "Stream", "SweepState"]

LIST_TRUST = 10
"""A swept job is still fetched once this many of its longest poll gaps passed without a GET.

Lists are hints: one that lags, or never shows a job's end, must not hide it for ever.
"""


@attrs.define
class Failure:
    """Looks at a job that keep failing: the last error, and since when."""

    error: ImageJobsError
    since: float


@attrs.define
class FleetLooks:
    """Where a job stands in the fleet's shared looks (:mod:`imagejobs.fleet.shared`)."""

    mark: str = ""
    """Where this job's shared snapshots were last read."""
    others_looking: int = 0
    """Looks in a row that found another process looking."""
    own_look_next: bool = False
    """The fleet's last answer was older than this process's own: the next look is a GET."""


@attrs.define
class SweepState:
    """A job's part in the sweeps (:mod:`imagejobs.scheduling.sweeper`)."""

    covered: bool = False
    """Covered by sweeps: no GET of its own until a sweep asks for one."""
    get_wanted: bool = False
    """A sweep saw it leave its list (or change): a GET must say what happened."""
    get_since: float = -math.inf
    """When the sweep that asked for a GET started: only a GET sent since then answers it."""
    fetched_at: float = -math.inf
    """When it was last fetched by GET (or first subscribed to)."""


@attrs.define(eq=False)
class Stream:
    """The looks at one job, shared by all its subscribers."""

    job_id: str
    subscribers: dict[Subscription, None] = attrs.Factory(dict)
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
    due_entry: int | None = None
    """The number of the stream's live entry in the due heap; other entries are stale."""
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
    fleet: FleetLooks = attrs.Factory(FleetLooks)
    sweep: SweepState = attrs.Factory(SweepState)

    def due_at(self) -> float:
        """Return when the job's next look is due: as its most demanding subscriber wants."""
        return max(min(sub.wants_at for sub in self.subscribers), self.not_before)

    def watched(self) -> bool:
        """Whether a subscriber wants the job's sub-job transitions."""
        return any(sub.wants_transitions for sub in self.subscribers)

    def active_sub_jobs(self) -> SubJobs | None:
        """Return the last snapshot's active sub-jobs and their lists (see :mod:`.sweeps`)."""
        return None if self.snapshot is None else active_sub_jobs(self.snapshot)

    def call_gate(self) -> Gate | None:
        """Return the call gate a look goes through: none if any subscriber has none.

        Otherwise the gate of the subscriber that wants the look soonest.
        """
        gates = {sub.gate for sub in self.subscribers}
        if None in gates or not gates:
            return None
        return min(self.subscribers, key=lambda sub: sub.wants_at).gate

    def fresh_after(self, when: float) -> float:
        """Return since when another process's snapshot serves as this look.

        One taken in the later half of the gap since the last look: what comes
        next is planned from it, so the job is looked at as often as before.
        ``when`` is when the look was due; a look put off (another process was
        looking) still wants what was seen since it was first wanted.
        """
        if self.fleet.own_look_next:
            return math.inf
        when = min(when, *(sub.wants_at for sub in self.subscribers))
        if self.seen_at > -math.inf:
            fresh_after = when - 0.5 * max(0.0, when - self.seen_at)
        else:
            fresh_after = when - min(sub.policy.initial_delay for sub in self.subscribers)
        if self.sweep.get_wanted:
            # What a sweep saw must be explained.
            fresh_after = max(fresh_after, self.sweep.get_since)
        return fresh_after

    def overdue(self, now: float, budget_gap: float = 0.0) -> bool:
        """Whether a swept job went without a GET for too long to trust the lists about it.

        ``budget_gap`` is how often the budget's share for such GETs allows one per job.
        """
        longest = max(sub.policy.longest_gap for sub in self.subscribers)
        return now - self.sweep.fetched_at >= max(LIST_TRUST * longest, budget_gap)

    def failed(self, error: ImageJobsError, since: float) -> int:
        """Count one more failed look (failing since ``since`` if it is the first); return
        the looks failed in a row."""
        if self.failure is None:
            self.failure = Failure(error, since)
        self.failure.error = error
        self.failures += 1
        return self.failures

    def answered(self, draw: float) -> None:
        """Forget the failures: an answer came. ``draw`` is the next look's jitter."""
        self.failure = None
        self.failures = 0
        self.not_before = -math.inf
        self.draw = draw
