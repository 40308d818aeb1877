"""The sweeper: when many jobs are in play, the job lists stand in for their GETs.

Which lists to page, and what a sweep's pages say, are decided by the pure
:mod:`imagejobs.planning.sweeps`; this module runs sweeps for the hub. It
regroups (which jobs the sweeps cover, at most every :data:`REGROUP_EVERY`
seconds once many jobs are in play), starts a sweep when its pace and backoff
allow, pages every list of its plan side by side (through the one paging loop,
:class:`~imagejobs.transport.paging.ListWalk`), and reads what it found: a job
still on its list needs no GET; one that left it (or changed in a way only a
GET can tell) is handed back to the hub for a GET. Lists are hints: a swept
job still gets a safety GET now and then, at the pace of its share of the
budget (:mod:`imagejobs.planning.allocation`, which also sets the sweeps' pace).

A sweep that fails for a reason a later one may not meet pauses with backoff,
and after :data:`SWEEP_FAILURES` in a row sweeps pause for :data:`SWEEP_PAUSE`
(each job polled by GET meanwhile); a list the service refuses is never paged
again, and a sweep failing otherwise turns sweeps off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any

import attrs

from imagejobs.core.codec import Page
from imagejobs.core.errors import BadRequest, ImageJobsError, TransportError
from imagejobs.core.models import ImageJobInfo, SubJob
from imagejobs.planning.allocation import SafetyAllowance, SweepDemand, allocate, safety_gap
from imagejobs.planning.retry import RetryPolicy, is_poll_transient
from imagejobs.planning.sweeps import (
    SWEEP_SHARE,
    JobSummary,
    Listing,
    Plan,
    SubJobs,
    pages_for,
    plan_round,
    read_round,
)
from imagejobs.scheduling.looks import ListFunction
from imagejobs.scheduling.streams import Failure, Stream
from imagejobs.timing.gate import Gate
from imagejobs.transport.paging import ListWalk

__all__ = ["COUNT_TTL", "REGROUP_EVERY", "SWEEP_FAILURES", "SWEEP_PAUSE", "Sweeper"]

logger = logging.getLogger("imagejobs")

REGROUP_EVERY = 0.5
"""Seconds between two decisions of which jobs the sweeps cover, once many jobs are in play.

Each decision looks at every job: with thousands in play, not after every answer."""

FEW_JOBS = 64
"""Up to this many jobs, the sweeps' cover is decided again after every change."""

SWEEP_FAILURES = 3
"""Sweeps that fail in a row (5xx, 429, no answer) before they pause for :data:`SWEEP_PAUSE`."""

SWEEP_PAUSE = 60.0
"""Seconds sweeps pause after failing :data:`SWEEP_FAILURES` times: each job is polled by GET."""

PAGE_OVERLAP = 5

COUNT_TTL = 300.0
"""Seconds a list's count is believed: a crowded list may thin out."""

_NO_PLAN = Plan((), frozenset())


@attrs.frozen
class Findings:
    """What one sweep's pages held: each list's items and count, the pages it took,
    and the lists it could not page to the end."""

    items: Mapping[Listing, list[ImageJobInfo | SubJob]]
    counts: Mapping[Listing, int]
    pages: int
    incomplete: Collection[Listing]


class Sweeper:
    """Runs the sweeps of one hub over its ``streams``.

    ``list_page`` fetches a page; ``rate`` is the request rate the client may
    plan on now; ``sweeps`` is the client's setting (None: when GETs would
    strain the budget). The hub is told through four functions: ``get(stream,
    since, reason)`` wants a GET of a swept job, sent after ``since``; ``plan(stream,
    base)`` plans each subscriber's next look from ``base``; ``cover_changed(stream,
    now)`` says a job came under the sweeps' cover or left it; ``poke()`` wakes
    the hub's loop.
    """

    def __init__(
        self,
        streams: Mapping[str, Stream],
        list_page: ListFunction | None,
        *,
        sweeps: bool | None,
        rate: Callable[[float], float],
        retry: RetryPolicy,
        random: Callable[[], float],
        get: Callable[[Stream, float, str], None],
        plan: Callable[[Stream, float], None],
        cover_changed: Callable[[Stream, float], None],
        poke: Callable[[], None],
        gate: Gate | None = None,
    ) -> None:
        self._streams = streams
        self.gate = gate
        """The gate its sweeps go through, and whose jobs it sweeps: the client's (None) or
        one call's that narrowed its share (see :class:`SweeperGroups`)."""
        self._list_page = list_page
        self._setting = sweeps
        self._rate = rate
        self._retry = retry
        self._random = random
        self._get = get
        self._plan = plan
        self._cover_changed = cover_changed
        self._poke = poke
        self.stale = False
        """Jobs came, went or changed since the last regroup: decide the cover again."""
        self._regroup_after = -math.inf
        self.cover = _NO_PLAN
        """The plan the sweeps follow: the lists they page, the jobs they cover."""
        self._off = False
        self._paused_until = -math.inf
        self._refused: set[Listing] = set()
        self._counts: dict[Listing, tuple[int, float]] = {}
        self._task: asyncio.Task[Findings] | None = None
        self._running = _NO_PLAN
        self._last = (-math.inf, 0)  # when the last sweep started, and its pages
        self._due_at = math.inf
        self._due_known = False
        self._failures = 0
        self._retry_at = -math.inf
        self._quiet = 0  # sweeps in a row that found nothing new
        self._extra_gets = 0  # GETs the last sweep asked for to tell watchers of a change
        self._abandoned: set[asyncio.Task[Findings]] = set()
        self._said_short = False
        self._safety = SafetyAllowance()

    def __repr__(self) -> str:
        return f"Sweeper(lists={len(self.cover.listings)}, covered={len(self.cover.covered)})"

    # --- the hub's loop calls these, in order --------------------------------------

    def collect(self, now: float) -> None:
        """Read what a finished sweep found."""
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            self._due_known = False
            self._read(task, now)

    def regroup_if_due(self, now: float) -> None:
        """Decide the cover again if jobs changed, at most every :data:`REGROUP_EVERY`."""
        if self.stale and (now >= self._regroup_after or len(self._streams) <= FEW_JOBS):
            self._regroup(now)

    def launch(self, now: float) -> None:
        """Start a sweep once its pace, its backoff and its share of the budget allow."""
        plan = self.cover
        if self._task is not None or not plan.listings or self._list_page is None:
            self._due_at = math.inf
            return
        if not self._due_known:
            self._due_at = self._next_sweep(plan, now)
            self._due_known = True
        if self._due_at > now:
            return
        self._due_at = math.inf
        self._due_known = False
        self._running = plan
        self._last = (now, plan.pages)
        task = asyncio.get_running_loop().create_task(self._sweep(plan, now, self.gate))
        task.add_done_callback(lambda _: self._poke())
        self._task = task

    def wake_at(self) -> float:
        """Return when the loop must look again for the sweeps' sake."""
        wake = self._due_at
        if self.stale:
            wake = min(wake, self._regroup_after)  # a no-op with few jobs: regrouped already
        return wake

    # --- who is covered --------------------------------------------------------------

    def _regroup(self, now: float) -> None:
        """Decide afresh which jobs the sweeps cover; the others are polled by GET."""
        self.stale = False
        self._regroup_after = now + REGROUP_EVERY
        self._due_known = False
        plan = _NO_PLAN
        mine = [stream for stream in self._streams.values() if stream.call_gate() is self.gate]
        allowed = self._allowed(mine, now)
        if not allowed and not self.cover.covered:
            return  # nothing swept, nothing to sweep: no need to look at every job
        if allowed:
            candidates: dict[str, JobSummary | None] = {}
            subs: dict[str, SubJobs] = {}
            for stream in mine:
                if stream.poll is not None or stream.sweep.get_wanted:
                    continue
                if stream.watched():
                    active = stream.active_sub_jobs()
                    if active is None:
                        continue  # a GET shows its sub-jobs first
                    subs[stream.job_id] = active
                candidates[stream.job_id] = stream.summary
            counts = {
                listing: count
                for listing, (count, at) in self._counts.items()
                if now - at < COUNT_TTL
            }
            plan = plan_round(candidates, counts, subs=subs, refused=self._refused)
        self.cover = plan
        # Its own jobs only: another group's are that group's to cover or not.
        for stream in mine:
            covered = stream.job_id in plan.covered
            if covered != stream.sweep.covered:
                stream.sweep.covered = covered
                self._cover_changed(stream, now)

    def _allowed(self, mine: list[Stream], now: float) -> bool:
        """Whether sweeps may run: on, and (unless forced) GETs alone would strain the budget."""
        if self._setting is False or self._off or self._list_page is None:
            return False
        if now < self._paused_until:
            return False
        if self._setting is True or self.cover.listings:
            return True  # once on, sweeps go on while a list is cheaper than its GETs
        rate = self._planning_rate(now)
        if math.isinf(rate):
            return False
        # Requests a second if every job were polled by GET at its policy's first pace.
        demand = 0.0
        for stream in mine:
            demand += max(1.0 / policy.initial_delay for policy in stream.policies())
        return demand > SWEEP_SHARE * rate

    # --- when --------------------------------------------------------------------------

    def _next_sweep(self, plan: Plan, now: float) -> float:
        """Return when the next sweep is due: as its pace and its backoff allow.

        Not when a covered job's own schedule wants a look: one sweep looks at every
        job, and their schedules (gaps of up to 27 s, or minutes by a history) would
        hold back the ends of all the others.
        """
        # A job may have left since the plan was made (the next regroup drops it).
        policies = [
            policy
            for job_id in plan.covered
            if (stream := self._streams.get(job_id)) is not None
            for policy in stream.policies()
        ]
        started, pages = self._last
        rate = self._planning_rate(now)
        gap = 0.0 if math.isinf(rate) else pages / (SWEEP_SHARE * rate)
        if policies and started > -math.inf:
            jobs = sum(1 for job_id in plan.covered if job_id in self._streams)
            demand = SweepDemand(
                pages,
                jobs,
                first=min(policy.initial_delay for policy in policies),
                longest=min(policy.longest_gap for policy in policies),
                multiplier=min(policy.multiplier for policy in policies),
                quiet=self._quiet,
                extra_gets=self._extra_gets,
            )
            allocation = allocate(rate, demand)
            gap = allocation.sweep_gap
            self._say_if_short(allocation.budget_gap, demand.longest, jobs, rate)
        return max(started + gap, self._retry_at)

    def _say_if_short(self, budget_gap: float, longest: float, jobs: int, rate: float) -> None:
        """Say once that the budget cannot look at the swept jobs as often as asked."""
        if self._said_short or budget_gap <= longest:
            return
        self._said_short = True
        logger.info(
            "the budget (%g requests a second) allows a sweep of %d jobs every %.1fs, not "
            "every %gs as the policy's max_delay asks: ends may be seen that much later",
            rate,
            jobs,
            budget_gap,
            longest,
        )

    def _planning_rate(self, now: float) -> float:
        gate = self.gate
        rate = self._rate(now)
        return rate if gate is None else min(rate, gate.budget.rate)

    # --- one sweep ----------------------------------------------------------------------

    async def _sweep(self, plan: Plan, priority: float, gate: Gate | None) -> Findings:
        """Page every list of the plan (lists side by side, each page after page).

        A list is paged to its end, unless its first page shows it far longer
        than planned (its count is noted, and the plan will see), a page brings
        nothing new, or the service refuses it (a 400: noted, and the list is
        never chosen again); then it is incomplete, and the other lists go on.
        """
        list_page = self._list_page
        assert list_page is not None  # noqa: S101 - checked before the sweep starts
        incomplete: set[Listing] = set()

        async def page_through(listing: Listing) -> tuple[list[ImageJobInfo | SubJob], int, int]:
            items: list[ImageJobInfo | SubJob] = []
            allowance = pages_for(self._counts.get(listing, (0, 0.0))[0]) + 2

            def fetch(offset: int) -> Coroutine[Any, Any, Page[ImageJobInfo | SubJob]]:
                return list_page(listing, offset, priority, gate)

            walk = ListWalk(fetch, _item_key, overlap=PAGE_OVERLAP)
            try:
                async with contextlib.aclosing(walk.pages_of_items()) as pages:
                    async for page, _ in pages:
                        items.extend(page)
                        too_long = pages_for(walk.count) > max(allowance, walk.pages + 1)
                        if too_long and not walk.complete:
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
        for task in tasks.values():
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        results = {listing: task.result() for listing, task in tasks.items()}
        return Findings(
            {listing: items for listing, (items, _, _) in results.items()},
            {listing: count for listing, (_, count, _) in results.items()},
            sum(pages for _, _, pages in results.values()),
            incomplete,
        )

    def _read(self, task: asyncio.Task[Findings], now: float) -> None:
        """Take what a sweep found: each covered job still listed, or to be fetched."""
        plan = self._running
        started = self._last[0]
        error: BaseException | None
        if task.cancelled():
            error = TransportError("a sweep of the job lists was cancelled")
        else:
            error = task.exception()
        if error is not None:
            self._failed(plan, error, started, now)
            return
        found = task.result()
        self._counts.update((listing, (count, now)) for listing, count in found.counts.items())
        self._last = (started, found.pages)
        self._failures = 0
        self._retry_at = -math.inf
        streams = [
            stream
            for job_id in plan.covered
            if (stream := self._streams.get(job_id)) is not None and stream.sweep.covered
        ]
        subs = {
            stream.job_id: active
            for stream in streams
            if stream.watched() and (active := stream.active_sub_jobs()) is not None
        }
        summaries = {stream.job_id: stream.summary for stream in streams}
        verdict = read_round(plan, found.items, summaries, subs, found.incomplete)
        news = bool(verdict.to_get) or plan.covered != self.cover.covered
        # GETs for watched jobs' changes are extra; a job's end costs its GET either way.
        self._extra_gets = sum(1 for job_id in verdict.to_get if job_id in subs)
        due = self._safety_due(streams, verdict.to_get, started, now)
        for stream in streams:
            if stream.job_id in verdict.to_get:
                self._get(stream, started, "changed")
                continue
            if stream.job_id in due:
                self._get(stream, started, "safety")
                continue
            listed = verdict.listed.get(stream.job_id)
            if listed is None:
                continue  # it may be on a list not paged to the end: this sweep cannot tell
            news = news or listed != stream.summary
            stream.summary = listed
            stream.failure = None
            stream.draw = self._random()
            self._plan(stream, started)
        self._quiet = 0 if news else self._quiet + 1
        self.stale = True

    def _safety_due(
        self, streams: list[Stream], to_get: Collection[str], started: float, now: float
    ) -> set[str]:
        """Return the swept jobs to GET for safety now: the longest overdue, at the share's pace."""
        rate = self._planning_rate(now)
        trust = safety_gap(rate, len(streams))
        overdue = [
            stream
            for stream in streams
            if stream.job_id not in to_get and stream.overdue(started, trust)
        ]
        granted = self._safety.take(len(overdue), rate, now)
        overdue.sort(key=lambda stream: stream.sweep.fetched_at)
        return {stream.job_id for stream in overdue[:granted]}

    def _failed(self, plan: Plan, error: BaseException, started: float, now: float) -> None:
        covered = [
            stream
            for job_id in plan.covered
            if (stream := self._streams.get(job_id)) is not None and stream.sweep.covered
        ]
        for job_id in self._safety_due(covered, (), started, now):
            self._get(self._streams[job_id], started, "safety")  # the net holds through outages
        if isinstance(error, ImageJobsError) and is_poll_transient(error):
            self._failures += 1
            if self._failures >= SWEEP_FAILURES:
                # The lists keep failing: each job is polled by GET for a while instead.
                logger.warning(
                    "sweeps pause for %gs: the job list failed %d times in a row (%s)",
                    SWEEP_PAUSE,
                    self._failures,
                    error,
                )
                self._paused_until = now + SWEEP_PAUSE
                self._failures = 0
                self.stale = True
                self._regroup_after = -math.inf
                return
            cap = self._retry.max_delay
            self._retry_at = now + self._retry.poll_delay(
                self._failures, error, cap=cap, longest=cap, draw=self._random()
            )
            for job_id in plan.covered:
                stream = self._streams.get(job_id)
                if stream is not None and stream.sweep.covered and stream.failure is None:
                    stream.failure = Failure(error, started)
            return
        # The lists are refused (no permission to list, a job_type the gateway will
        # not take...) or unreadable: the jobs are polled by GET, as without sweeps.
        self._off = True
        self.stale = True
        if isinstance(error, ImageJobsError):
            logger.warning("sweeps are off: the job list failed (%s); polling each job", error)
        else:
            logger.warning("sweeps are off: the job list failed unexpectedly", exc_info=error)

    # --- the end ------------------------------------------------------------------------

    def abandon(self) -> None:
        """Cancel a sweep nobody is left to hear of (:meth:`close` still waits for it)."""
        if self._task is not None:
            self._task.cancel()
            self._abandoned.add(self._task)
            self._task.add_done_callback(self._abandoned.discard)
            self._task = None

    def tasks(self) -> list[asyncio.Task[Findings]]:
        """Return the sweeps still running, abandoned ones included, for closing."""
        return [*self._abandoned, *filter(None, [self._task])]


def _item_key(item: ImageJobInfo | SubJob) -> tuple[str | None, str]:
    """Which list items are the same: sub-job IDs are only known unique within their job."""
    return getattr(item, "job_id", None), item.id
