"""The sweeper: when many jobs are in play, the job lists stand in for their GETs.

Which lists to page, and what a sweep's pages say, are decided by the pure
:mod:`imagejobs.planning.sweeps`; this module runs sweeps for the hub. It keeps
which jobs the sweeps cover as they change (:mod:`.coverage`), starts a sweep
when its pace and backoff allow, pages every list of its plan side by side
(through the one paging loop, :class:`~imagejobs.transport.paging.ListWalk`),
taking each page as it comes, and then reads what it found, a slice of the
covered jobs a turn of the hub's loop: a job still on its list needs no GET;
one that left it (or changed in a way only a GET can tell) is handed back to
the hub for a GET. Lists are hints: a swept job still gets a safety GET now
and then, at the pace of its share of the budget
(:mod:`imagejobs.planning.allocation`, which also sets the sweeps' pace).

In a fleet on Redis, the processes page the same lists and take each other's
pages (:mod:`imagejobs.fleet.pages`): a sweep falls due on the fleet's grid,
costs the process the share of its pages it sends, and is planned from when
the pages it took were answered.

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
from collections.abc import Callable, Collection, Iterator, Mapping

import attrs

from imagejobs.core.codec import Page
from imagejobs.core.errors import BadRequest, ImageJobsError, TransportError
from imagejobs.core.models import ImageJobInfo, SubJob
from imagejobs.planning.allocation import (
    ChangeRate,
    OwnLooks,
    PageShare,
    SafetyAllowance,
    SweepDemand,
    allocate,
    safety_gap,
)
from imagejobs.planning.retry import RetryPolicy, is_poll_transient
from imagejobs.planning.sweeps import (
    PAGE_SIZE,
    SWEEP_SHARE,
    Choice,
    Listing,
    Sighting,
    pages_for,
)
from imagejobs.scheduling.coverage import NO_CHOICE, Coverage, Overdue, slices
from imagejobs.scheduling.looks import ListFunction
from imagejobs.scheduling.streams import Failure, Stream
from imagejobs.timing.gate import Gate
from imagejobs.transport.paging import ListWalk

__all__ = ["COUNT_TTL", "READ_SLICE", "SWEEP_FAILURES", "SWEEP_PAUSE", "Sweeper"]

logger = logging.getLogger("imagejobs")

SWEEP_FAILURES = 3
"""Sweeps that fail in a row (5xx, 429, no answer) before they pause for :data:`SWEEP_PAUSE`."""

SWEEP_PAUSE = 60.0
"""Seconds sweeps pause after failing :data:`SWEEP_FAILURES` times: each job is polled by GET."""

PAGE_OVERLAP = 5

COUNT_TTL = 300.0
"""Seconds a list's count is believed: a crowded list may thin out."""

READ_SLICE = 250
"""Covered jobs a sweep's findings are read for in one turn of the loop: each is judged and
replanned (about 20 µs at 100,000 jobs), so that a turn's share stays near 5 ms and the
hub's turn, the cover's slice with it, well under 20 ms."""


def _upcoming(walked: int, choice: Choice, last: Choice, counts: Mapping[Listing, int]) -> int:
    """Return the pages the next sweep takes: no more than its lists do, if fewer since the
    ``last`` sweep walked ``walked`` (its jobs ended), by the ``counts`` of their items."""
    if choice == last:
        return walked
    # A walk's pages overlap: it takes one more page each PAGE_SIZE - PAGE_OVERLAP items.
    more = (max(0, counts.get(one, 0) - PAGE_SIZE) for one in choice.listings)
    return min(walked, sum(1 + math.ceil(n / (PAGE_SIZE - PAGE_OVERLAP)) for n in more))


@attrs.frozen
class Findings:
    """What one sweep's pages held, beside its :class:`Sighting`: each list's count, the
    pages it went through and those it sent itself (not another process of its fleet),
    the lists it could not page to the end, and when its oldest and its newest pages were
    answered (both no later than the sweep's start when another process sent them)."""

    counts: Mapping[Listing, int]
    walked: int
    sent: int
    incomplete: Collection[Listing]
    oldest: float
    newest: float


class Sweeper:
    """Runs the sweeps of one hub over its streams that go through one gate.

    ``streams`` are the hub's; ``list_page`` fetches a page; ``rate`` is the
    request rate the client may plan on now; ``sharers`` how many processes page
    the same lists (a fleet's members: a page one sends may serve them all), and
    ``align(when, period)`` when a sweep due at ``when`` goes (in a fleet, the next
    instant of a grid of that period on the fleet's clock, so that the processes'
    sweeps fall due together, and one request serves each page to all); ``sweeps``
    is the client's setting (None: when GETs would strain the budget). The hub
    tells it which of its streams changed (:meth:`put`, :meth:`drop`), and is told
    through four functions: ``get(stream, since, reason)`` wants a GET of a swept
    job, sent after ``since``; ``plan(stream, base)`` plans each subscriber's next
    look from ``base``; ``cover_changed(stream, now)`` says a job came under the
    sweeps' cover or left it; ``poke()`` wakes the hub's loop.
    """

    def __init__(
        self,
        streams: Mapping[str, Stream],
        list_page: ListFunction | None,
        *,
        sweeps: bool | None,
        rate: Callable[[float], float],
        sharers: Callable[[], int],
        align: Callable[[float, float], float],
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
        self._align = align
        self._retry = retry
        self._random = random
        self._get = get
        self._plan = plan
        self._poke = poke
        self.coverage = Coverage(cover_changed)
        self._stale = False  # the lists may need choosing again
        self._off = False
        self._paused_until = -math.inf
        self._refused: set[Listing] = set()
        self._counts: dict[Listing, tuple[int, float]] = {}
        self._task: asyncio.Task[Findings] | None = None
        self._sighting: Sighting | None = None
        self._reading: Iterator[None] | None = None
        self._running = NO_CHOICE
        self._flips_then = 0  # the cover's flips when the running sweep started
        # When the last sweep saw the lists, its pages, and the share of them it pays for
        # (None: as it pays now, its sweep having failed before it could tell).
        self._last: tuple[float, int, float | None] = (-math.inf, 0, None)
        self._previous = -math.inf  # when the one before saw them
        self._share = PageShare(sharers)  # of the pages it walks, those it pays for
        self._due_at = math.inf
        self._due_known = False
        self._failures = 0
        self._retry_at = -math.inf
        self._quiet = 0  # sweeps in a row that found nothing new
        self._extra_gets = 0  # GETs the last sweep asked for to tell watchers of a change
        self._own: OwnLooks | None = None  # what the covered jobs' schedules asked then
        self._changes = ChangeRate()  # jobs a second the recent sweeps found gone
        self._abandoned: set[asyncio.Task[Findings]] = set()
        self._said_short = False
        self._safety = SafetyAllowance()

    def __repr__(self) -> str:
        choice = self.coverage.choice
        return f"Sweeper(lists={len(choice.listings)}, covered={self.coverage.covered()})"

    # --- the hub tells it of its streams ---------------------------------------------

    def put(self, stream: Stream) -> None:
        """Count one of its streams in, as it is now."""
        self.coverage.put(stream)
        self._stale = True

    def drop(self, stream: Stream, now: float, *, live: bool) -> None:
        """Count a stream out: gone (not ``live``), or now another sweeper's."""
        self.coverage.drop(stream, now, live=live)
        self._stale = True

    # --- the hub's loop calls these, in order --------------------------------------

    def collect(self, now: float) -> None:
        """Read what a finished sweep found, a slice of the covered jobs a turn."""
        if self._task is not None and self._task.done():
            task, self._task = self._task, None
            self._due_known = False
            self._reading = self._read(task, now)
        if self._reading is not None and next(self._reading, StopIteration) is StopIteration:
            self._reading = None
            self._sighting = None
            self._stale = True
            self.coverage.copy_read()

    def regroup(self, now: float) -> None:
        """Choose the lists again if anything changed, and decide a slice of the jobs that
        choice (or their own change) concerns."""
        coverage = self.coverage
        if now >= self._paused_until > -math.inf:
            self._paused_until = -math.inf  # the pause is over: sweep again
            self._stale = True
        if self._stale:
            self._stale = False
            self._due_known = False
            choice = NO_CHOICE
            if self._allowed(now):
                choice = coverage.cover.choose(
                    self._fresh_counts(now), refused=self._refused, page_share=self._share.now()
                )
            coverage.choose(choice)
        coverage.decide(now)

    def launch(self, now: float) -> None:
        """Start a sweep once its pace, its backoff and its share of the budget allow."""
        coverage = self.coverage
        choice = coverage.choice
        idle = self._task is None and self._reading is None and not coverage.undecided
        if not idle or not choice.listings or self._list_page is None:
            self._due_at = math.inf
            return
        if not self._due_known:
            self._due_at = self._next_sweep(now)
            self._due_known = True
        if self._due_at > now:
            return
        self._due_at = math.inf
        self._due_known = False
        self._running = choice
        self._flips_then = coverage.flips
        self._previous = self._last[0]
        self._last = (now, choice.pages, None)
        streams = self._streams

        def watched(job_id: str) -> bool:
            stream = streams.get(job_id)
            return stream is not None and stream.watched()

        self._sighting = Sighting(streams.__contains__, watched)
        assert self._list_page is not None  # noqa: S101 - checked above
        counts = {listing: count for listing, (count, _) in self._counts.items()}
        sweep = page_lists(
            self._list_page,
            choice,
            self._sighting,
            counts=counts,
            worth={listing: coverage.deciding(listing, choice) for listing in choice.listings},
            refused=self._refused,
            priority=now,
            gate=self.gate,
        )
        task = asyncio.get_running_loop().create_task(sweep)
        task.add_done_callback(lambda _: self._poke())
        self._task = task

    def wake_at(self) -> float:
        """Return when the loop must look again for the sweeps' sake."""
        if self._reading is not None or self.coverage.undecided:
            return -math.inf  # at once: the next slice
        if self._paused_until > -math.inf:
            return min(self._due_at, self._paused_until)
        return self._due_at

    # --- who is covered --------------------------------------------------------------

    def _allowed(self, now: float) -> bool:
        """Whether sweeps may run: on, and (unless forced) GETs alone would strain the budget."""
        if self._setting is False or self._off or self._list_page is None:
            return False
        if now < self._paused_until:
            return False
        if self._setting is True or self.coverage.choice.listings:
            return True  # once on, sweeps go on while a list is cheaper than its GETs
        rate = self._planning_rate(now)
        if math.isinf(rate):
            return False
        # Requests a second if every job were polled by GET at its policy's first pace.
        return self.coverage.demand() > SWEEP_SHARE * rate

    # --- when --------------------------------------------------------------------------

    def _next_sweep(self, now: float) -> float:
        """Return when the next sweep is due: as its pace, backoff and cost allow, yet no later
        than the soonest look a covered job's own schedule asks, unless sweeping that often
        costs more than their GETs (:func:`~imagejobs.planning.allocation.allocate`)."""
        policies = self.coverage.policies()
        started, walked, share = self._last
        # The pages it pays for: in a fleet, the share it sends (another's cost it nothing).
        paying = self._share.now() if share is None else share
        pages = walked * paying
        shrunk = _upcoming(walked, self.coverage.choice, self._running, self._fresh_counts(now))
        upcoming = paying * shrunk
        rate = self._planning_rate(now)
        gap = 0.0 if math.isinf(rate) else pages / (SWEEP_SHARE * rate)
        if policies and started > -math.inf:
            jobs = self.coverage.covered()
            first = min(policy.initial_delay for policy in policies)
            demand = SweepDemand(
                pages,
                jobs,
                upcoming=upcoming,
                first=first,
                longest=min(policy.longest_gap for policy in policies),
                multiplier=min(policy.multiplier for policy in policies),
                quiet=self._quiet,
                extra_gets=self._extra_gets,
                own=self._own,
                changes=self._changes.rate(),
            )
            allocation = allocate(rate, demand)
            gap = allocation.sweep_gap
            self._say_if_short(allocation.budget_gap, demand.longest, jobs, rate)
            # In a fleet, on the fleet's grid: the processes' sweeps take each other's pages.
            return self._align(max(started + gap, self._retry_at), first)
        return max(started + gap, self._retry_at)

    def _fresh_counts(self, now: float) -> dict[Listing, int]:
        """Return the lists' counts the last sweeps saw, those not too old to believe."""
        return {listing: n for listing, (n, at) in self._counts.items() if now - at < COUNT_TTL}

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

    def _read(self, task: asyncio.Task[Findings], now: float) -> Iterator[None]:
        """Take what a sweep found (each covered job still listed, or to be fetched): each
        step of the generator reads a slice of the covered jobs, one turn of the loop."""
        choice, sighting = self._running, self._sighting
        started, previous = self._last[0], self._previous
        error: BaseException | None
        if task.cancelled():
            error = TransportError("a sweep of the job lists was cancelled")
        else:
            error = task.exception()
        if error is not None:
            yield from self._failed(error, started, now)
            return
        assert sighting is not None  # noqa: S101 - made with the sweep
        found = task.result()
        viewed, seen_at = self._took(found, started, now)
        covered = self.coverage.covered_ids()
        rate = self._planning_rate(now)
        trust = safety_gap(rate, len(covered))
        overdue = Overdue(self._safety.ceiling(rate))
        unsure = frozenset(found.incomplete)
        news = self.coverage.flips != self._flips_then
        extra_gets, gone, gets, soonest = 0, 0, 0.0, math.inf
        for part in slices(covered, READ_SLICE):
            for job_id in part:
                stream = self._streams.get(job_id)
                if stream is None or not self.coverage.decided_by(stream, choice, started):
                    continue
                subs = stream.active_sub_jobs() if stream.watched() else None
                seen = sighting.judge(stream.job_id, stream.summary, subs, unsure)
                if seen == "get":
                    # GETs for watched jobs' changes are extra; a job's end costs its GET anyway.
                    extra_gets += subs is not None
                    gone += 1
                    news = True
                    self._get(stream, seen_at, "changed")
                    continue
                if stream.overdue(started, trust):
                    overdue.add(stream)
                if seen is not None:
                    if seen != stream.summary:
                        news = True
                        stream.summary = seen
                        self.put(stream)  # it may be on another list now
                    stream.failure = None
                    stream.draw = self._random()
                    self._plan(stream, seen_at)
                    # Its own look's, by its age; a jitter that draws most of it away no less.
                    gap = max(stream.due_at() - seen_at, 1 / stream.sweep.demand)
                    gets, soonest = gets + 1 / gap, min(soonest, gap)
            stream = None  # not held while the loop turns: a wait that ends is let go
            yield
        # None replanned (lists paged in part, every job gone): what the last sweep saw holds.
        self._own, self._extra_gets = (OwnLooks(gets, soonest) if gets else self._own), extra_gets
        if viewed > previous > -math.inf:
            self._changes.seen(gone, viewed - previous)
        self._safety_gets(overdue, started, now)
        self._quiet = 0 if news else self._quiet + 1

    def _took(self, found: Findings, started: float, now: float) -> tuple[float, float]:
        """Note a sweep that went through, started at ``started``: its lists' counts, the
        share of its pages it sent; return when it saw the lists, and when it last did.

        Pages another process fetched earlier show the lists as they were then: the next
        sweep is planned from the oldest, so processes sharing pages sweep together, and
        the jobs it saw are planned from the newest, so that a snapshot taken since tells
        what they showed. Pages of its own it sent after it started: then, its start.
        """
        self._counts.update((listing, (count, now)) for listing, count in found.counts.items())
        viewed = min(started, found.oldest)
        self._last = (viewed, found.walked, self._share.took(found.walked, found.sent))
        self._failures = 0
        self._retry_at = -math.inf
        return viewed, min(started, found.newest) if found.walked else started

    def _safety_gets(self, overdue: Overdue, started: float, now: float) -> None:
        """GET the swept jobs overdue for safety that the share allows now, the longest first."""
        granted = self._safety.take(overdue.count, self._planning_rate(now), now)
        for stream in overdue.longest(granted):
            self._get(stream, started, "safety")

    def _failed(self, error: BaseException, started: float, now: float) -> Iterator[None]:
        """Take a sweep that failed: a slice of the covered jobs a step, as :meth:`_read`."""
        transient = isinstance(error, ImageJobsError) and is_poll_transient(error)
        if transient:
            self._failures += 1
        pausing = transient and self._failures >= SWEEP_FAILURES
        # Failing with it, if later sweeps may fare better: a wait that ends meanwhile says why.
        failing = None
        if isinstance(error, ImageJobsError) and transient and not pausing:
            failing = Failure(error, started)
        covered = self.coverage.covered_ids()
        rate = self._planning_rate(now)
        trust = safety_gap(rate, len(covered))
        overdue = Overdue(self._safety.ceiling(rate))
        for part in slices(covered):
            for job_id in part:
                stream = self._streams.get(job_id)
                if stream is None or not self.coverage.covered_as_copied(stream):
                    continue
                if stream.overdue(started, trust):
                    overdue.add(stream)
                if stream.failure is None:
                    stream.failure = failing
            stream = None  # not held while the loop turns, as in _read
            yield
        self._safety_gets(overdue, started, now)  # the safety net holds through outages
        if pausing:
            # The lists keep failing: each job is polled by GET for a while instead.
            logger.warning(
                "sweeps pause for %gs: the job list failed %d times in a row (%s)",
                SWEEP_PAUSE,
                self._failures,
                error,
            )
            self._paused_until = now + SWEEP_PAUSE
            self._failures = 0
        elif transient:
            cap = self._retry.max_delay
            self._retry_at = now + self._retry.poll_delay(
                self._failures, error, cap=cap, longest=cap, draw=self._random()
            )
        else:
            # The lists are refused (no permission to list, a job_type the gateway will
            # not take...) or unreadable: the jobs are polled by GET, as without sweeps.
            self._off = True
            if isinstance(error, ImageJobsError):
                logger.warning("sweeps are off: the job list failed (%s); polling each job", error)
            else:
                logger.warning("sweeps are off: the job list failed unexpectedly", exc_info=error)

    # --- the end ------------------------------------------------------------------------

    def abandon(self) -> None:
        """Cancel a sweep nobody is left to hear of (:meth:`close` still waits for it)."""
        self._reading = None
        self.coverage.copy_read()
        self._sighting = None
        if self._task is not None:
            self._task.cancel()
            self._abandoned.add(self._task)
            self._task.add_done_callback(self._abandoned.discard)
            self._task = None

    def tasks(self) -> list[asyncio.Task[Findings]]:
        """Return the sweeps still running, abandoned ones included, for closing."""
        return [*self._abandoned, *filter(None, [self._task])]


async def page_lists(
    list_page: ListFunction,
    choice: Choice,
    sighting: Sighting,
    *,
    counts: Mapping[Listing, int],
    worth: Mapping[Listing, int],
    refused: set[Listing],
    priority: float,
    gate: Gate | None,
) -> Findings:
    """Page every list chosen (lists side by side, each page after page), each page taken
    by ``sighting`` as it comes; ``counts`` are the lists' last counts, ``worth`` the jobs
    each decides about. ``priority`` is when the sweep became due: its place in the
    budget's queue (and in a fleet, how old a page another process sent may be).

    Each page is counted as walked, and as sent if this process sent its request
    (:class:`~imagejobs.scheduling.looks.PageResult`), and when it was answered is noted:
    the findings tell the oldest and the newest.

    A list is paged to its end, unless its first page shows it far longer than
    planned (more pages than its last count and the jobs it decides about allow:
    its count is noted, and the plan will see), a page brings nothing new, or the
    service refuses it (a 400: added to ``refused``, and never chosen again); then
    it is incomplete, and the other lists go on.
    """
    incomplete: set[Listing] = set()
    walked, sent, oldest, newest = 0, 0, priority, -math.inf

    async def page_through(listing: Listing) -> int:
        nonlocal walked, sent
        # Longer than its last count, as a list of jobs still starting grows, is no reason to
        # stop while its pages are fewer than the jobs it decides about.
        allowance = max(pages_for(counts.get(listing, 0)) + 2, worth.get(listing, 0))

        async def fetch(offset: int) -> Page[ImageJobInfo | SubJob]:
            nonlocal walked, sent, oldest, newest
            result = await list_page(listing, offset, priority, gate)
            walked += 1
            sent += result.own
            oldest, newest = min(oldest, result.at), max(newest, result.at)
            return result.page

        walk = ListWalk(fetch, _item_key, overlap=PAGE_OVERLAP)
        try:
            async with contextlib.aclosing(walk.pages_of_items()) as pages:
                async for page, _ in pages:
                    sighting.add(listing, page)
                    too_long = pages_for(walk.count) > max(allowance, walk.pages + 1)
                    if too_long and not walk.complete:
                        break  # far longer than planned: the plan will see its count
        except BadRequest as refusal:
            logger.warning("not sweeping %s: the list was refused (%s)", listing, refusal)
            refused.add(listing)
            incomplete.add(listing)
            walked += 1  # the request refused
            sent += 1
            return 0
        if not walk.complete:
            incomplete.add(listing)  # nothing new, or far longer than planned
        return walk.count

    tasks = {
        listing: asyncio.get_running_loop().create_task(page_through(listing))
        for listing in choice.listings
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
    return Findings(
        {listing: task.result() for listing, task in tasks.items()},
        walked,
        sent,
        incomplete,
        oldest,
        newest,
    )


def _item_key(item: ImageJobInfo | SubJob) -> tuple[str | None, str]:
    """Which list items are the same: sub-job IDs are only known unique within their job."""
    return getattr(item, "job_id", None), item.id
