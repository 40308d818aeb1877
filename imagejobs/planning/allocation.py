"""The budget's allocation between the sources of requests, when sweeps are on. Pure.

With ``R`` the rate the client may plan by (its own, or its part of a fleet's),
a sweep of ``P`` pages covering ``N`` jobs (in a fleet whose processes take
each other's pages, ``P`` is the share of them this process sends), and the
covered jobs' most demanding policy (first gap ``f``, longest ``L``,
multiplier ``m``):

- **sweeps** come every ``max(P / (S·R), min(H, max(g, (P + E) / G)))``
  seconds, ``H = max(step(q + 1; f, L, m), (P + E)·L / N)``: no more than a
  share ``S`` (:data:`SWEEP_SHARE`) of the budget; held back (``H``) by the
  policy's own backoff after ``q`` sweeps in a row that saw nothing new, and so
  as to be no dearer than the GETs they replace at one a job each longest gap,
  ``E`` being the GETs the last sweep asked for to tell a watcher of a change;
  but never held past the soonest look any covered job's own schedule asks at
  its age (``g``), unless sweeps that often would cost more than all those
  GETs (``G`` a second); and at most :data:`PAGES_PER_CHANGE` a job they
  find gone, unless the longest gap asks for a sweep sooner;
- **safety GETs** (lists are hints: a swept job still gets a GET of its own now
  and then) each come at most every ``N / (T·R)`` seconds per job, a share
  ``T`` (:data:`SAFETY_SHARE`) of the budget, and never more often than
  :data:`LIST_TRUST` of the job's longest gaps;
- the rest, at least ``1 - S - T`` of the budget, is the GETs': a job's first
  look, the GET after a list showed it changed or gone (its end), polls of
  jobs no sweep covers, and retries, each queued by when it became due.

So the sources together never ask for more than the budget, a tighter policy
never makes a sweep or a safety GET come later, and each source keeps a share
of its own. ``docs/planning.md`` has the model, with a worked example.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from imagejobs.planning.backoff import step

__all__ = [
    "LIST_TRUST",
    "SAFETY_SHARE",
    "SWEEP_SHARE",
    "Allocation",
    "OwnLooks",
    "PageShare",
    "SafetyAllowance",
    "SweepDemand",
    "allocate",
    "safety_gap",
]

SWEEP_SHARE = 1 / 3
"""The share of the request budget sweeps may take; the rest is for GETs.

Sweeps start only when GETs of every job at its policy's first pace would
take more than this share, and a sweep comes no sooner than its pages allow
at this share of the client's rate.
"""

PAGES_PER_CHANGE = 1.0
"""Pages a sweep may spend for each job it finds gone (an end, mostly), unless that would
make it come less often than the policy's longest gap."""

CHANGE_MEMORY = 0.8
"""How much less each earlier sweep weighs in :class:`ChangeRate` than the one after it."""

CHANGE_EVIDENCE = 10
"""Jobs found gone that a rate of changes must rest on before sweeps are paced by it."""

SAFETY_SHARE = 0.1
"""The share of the budget the swept jobs' own GETs (the lists are hints) may take at most."""

SAFETY_BURST = 10.0
"""Seconds' worth of the safety GETs' share that may go at once: jobs that fell due
together are fetched a few at a time, never all in one burst."""

LIST_TRUST = 10
"""A swept job is still fetched once this many of its longest poll gaps passed without a GET
(or less often, as :data:`SAFETY_SHARE` of the budget allows).

Lists are hints: one that lags, or never shows a job's end, must not hide it for ever.
"""


@attrs.frozen
class OwnLooks:
    """The looks the covered jobs' own schedules ask, at their ages: what sweeps replace."""

    rate: float
    """Requests a second, were each job fetched by GET when its schedule says."""
    soonest: float
    """The shortest gap any one of them asks."""


@attrs.frozen
class SweepDemand:
    """What the next sweep asks of the budget, and the policies of the jobs it covers."""

    pages: float
    """Requests a sweep takes (a page at least per list); in a fleet whose processes take
    each other's pages, the share of them this process sends."""
    jobs: int
    """Jobs it covers."""
    first: float
    longest: float
    multiplier: float
    """The most demanding of the covered jobs' policies: first gap, longest gap, multiplier."""
    quiet: int = 0
    """Sweeps in a row that saw nothing new: sweeps back off as one poll stream does."""
    extra_gets: int = 0
    """GETs the last sweep asked for to tell a watcher of a change (not a job's end)."""
    changes: float = 0.0
    """Jobs a second the recent sweeps found gone from their lists (their ends, mostly)."""
    upcoming: float | None = None
    """Requests the next sweep takes, if fewer than :attr:`pages` (its lists shrank since)."""
    own: OwnLooks | None = None
    """What the covered jobs' own schedules asked when a sweep last saw them (None: none
    has yet)."""


@attrs.frozen
class Allocation:
    """When the next sweep may come after the last one started, and how often a safety GET."""

    sweep_gap: float
    budget_gap: float
    """The part of :attr:`sweep_gap` the budget forces: a policy asking for more is not met."""
    safety_gap: float
    """The least time between two safety GETs of one swept job, by the budget's share."""


def allocate(rate: float, demand: SweepDemand) -> Allocation:
    """Return the sweeps' and the safety GETs' shares of ``rate`` requests a second."""
    budget_gap = 0.0 if math.isinf(rate) else demand.pages / (SWEEP_SHARE * rate)
    backoff = step(demand.quiet + 1, demand.first, demand.longest, demand.multiplier)
    # What the sweeps spent paces them (the budget's share); what the next one will cost,
    # against the GETs it replaces, decides whether it is worth its pages yet.
    upcoming = demand.pages if demand.upcoming is None else demand.upcoming
    held = max(backoff, (upcoming + demand.extra_gets) * demand.longest / max(demand.jobs, 1))
    own = demand.own
    if own is not None:
        # Young jobs' schedules look far more often than once a longest gap or after the
        # sweeps' backoff: a sweep held back that long would see their ends much later than
        # their own GETs, for no fewer.
        held = min(held, max(own.soonest, (upcoming + demand.extra_gets) / own.rate))
    frugal = 0.0
    if demand.changes > 0:
        frugal = min(demand.longest, upcoming / (PAGES_PER_CHANGE * demand.changes))
    gap = max(budget_gap, held, frugal)
    return Allocation(gap, budget_gap, safety_gap(rate, demand.jobs))


def safety_gap(rate: float, jobs: int) -> float:
    """Return the least time between two safety GETs of one of ``jobs`` swept jobs."""
    return 0.0 if math.isinf(rate) else jobs / (SAFETY_SHARE * rate)


@attrs.define
class SafetyAllowance:
    """The safety GETs a client may send now: its share of the rate, saved up a little.

    Jobs subscribed together fall due for a safety GET together: counted one by
    one against a threshold, hundreds would go at once and hold every other
    request back. Taken from this allowance instead, they go at the share's pace,
    the longest overdue first.
    """

    tokens: float = 0.0
    refilled_at: float = -math.inf

    def take(self, wanted: int, rate: float, now: float) -> int:
        """Return how many of ``wanted`` safety GETs may go now, and spend them."""
        if math.isinf(rate):
            return wanted
        share = SAFETY_SHARE * rate
        if self.refilled_at > -math.inf:
            saved = self.tokens + share * max(0.0, now - self.refilled_at)
            self.tokens = min(saved, self.ceiling(rate))
        self.refilled_at = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted

    @staticmethod
    def ceiling(rate: float) -> float:
        """Return the most safety GETs it ever grants at once at ``rate`` (all, unbounded)."""
        return math.inf if math.isinf(rate) else max(1.0, SAFETY_SHARE * rate * SAFETY_BURST)


@attrs.define
class ChangeRate:
    """How many jobs a second the sweeps find gone from their lists, of late.

    The recent sweeps weigh most (each earlier one :data:`CHANGE_MEMORY` times less),
    and a rate is told only once :data:`CHANGE_EVIDENCE` jobs back it: a sweep that
    happened to find one job gone says little.
    """

    found: float = 0.0
    seconds: float = 0.0

    def seen(self, found: int, seconds: float) -> None:
        """Count a sweep that found ``found`` jobs gone, ``seconds`` after the one before."""
        self.found = CHANGE_MEMORY * self.found + found
        self.seconds = CHANGE_MEMORY * self.seconds + seconds

    def rate(self) -> float:
        """Return jobs a second, or 0 while too few back it."""
        if self.found < CHANGE_EVIDENCE or self.seconds <= 0:
            return 0.0
        return self.found / self.seconds


@attrs.define
class PageShare:
    """The share of a sweep's pages a process pays for, of late.

    A page another process of its fleet sent cost this one nothing, and one it
    sends serves the others: it pays the share of pages it has been sending, not
    what one sweep drew (each sweep weighs half). At first, its part of the fleet's:
    one of ``sharers()`` (the processes paging the same lists). Alone, every page.
    """

    sharers: Callable[[], int]
    sends: float | None = None

    def now(self) -> float:
        """Return the share it pays for now."""
        return 1 / max(1, self.sharers()) if self.sends is None else self.sends

    def took(self, walked: int, sent: int) -> float:
        """Count a sweep that went through ``walked`` pages and sent ``sent`` of them itself;
        return the share it paid for, as estimated before it."""
        before = self.now()
        if walked:
            self.sends = (before + sent / walked) / 2
        return before
