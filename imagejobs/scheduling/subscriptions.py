"""Subscriptions: one caller's wait on one job, and the mailbox its events go to.

A caller (:mod:`imagejobs.scheduling.waiter`) subscribes to each job it waits
on, with one :class:`Mailbox` for all of them. The hub puts there every
transition the subscriber has not been told, and last its outcome.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from datetime import datetime

import attrs

from imagejobs.core.models import ImageJob
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import Transition
from imagejobs.core.untracked import untrack, untrack_transitions
from imagejobs.planning.cadence import next_gap
from imagejobs.planning.history import LogNormal
from imagejobs.planning.policy import PollPolicy
from imagejobs.timing.gate import Gate

__all__ = ["KEPT_TRANSITIONS", "Event", "Mailbox", "Subscription", "next_look"]

KEPT_TRANSITIONS = 256
"""Transitions a subscription keeps for :class:`JobFailed` and :class:`WaitTimeout`.

The most recent ones: a job whose sub-jobs flap for hours must not fill memory.
"""

Event = Transition | Outcome


class Mailbox:
    """Where one caller's subscriptions put their events, in the order they happen."""

    def __init__(self) -> None:
        self._items: deque[Event | BaseException] = deque()
        self._ready = asyncio.Event()

    def put(self, item: Event | BaseException) -> None:
        """Add an event, or an exception that is a bug, for the caller to see."""
        # Unbounded on purpose: an event is never dropped. A caller who stops
        # reading a watch should close it (``aclose``, ``break`` in ``async for``).
        self._items.append(item)
        self._ready.set()

    async def get(self) -> Event:
        """Return the next event; raise the next item if it is an exception."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, BaseException):
            # It ends the caller's wait: the rest (the same bug, for its other jobs) would
            # only be kept, and with them, through their frames, the caller's waits.
            self._items.clear()
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
    """When this subscriber wants the job looked at next (jitter included)."""
    snapshots_before: int = 0
    """The job's snapshots taken before this subscriber joined: its outcome counts those after."""
    grace_from: float | None = None
    ended: bool = False
    transitions: list[Transition] | None = None
    """What it was told, the most recent :data:`KEPT_TRANSITIONS` (see :meth:`kept`); none
    yet until it is told one (a swept job's wait is told its first at its end)."""

    def __attrs_post_init__(self) -> None:
        untrack(self)  # one of a hundred thousand, in no cycle (imagejobs.core.untracked)

    def keep(self, changes: list[Transition]) -> None:
        """Remember transitions; the oldest go once there are twice as many as kept."""
        if not changes:
            return
        if self.transitions is None:
            self.transitions = []
            untrack(self.transitions)  # held by its subscription alone, as that is
        self.transitions.extend(changes)
        untrack_transitions(changes)
        if len(self.transitions) >= 2 * KEPT_TRANSITIONS:
            del self.transitions[:-KEPT_TRANSITIONS]

    def kept(self) -> list[Transition]:
        """Return the most recent transitions, at most :data:`KEPT_TRANSITIONS`."""
        return [] if self.transitions is None else self.transitions[-KEPT_TRANSITIONS:]


def next_look(
    sub: Subscription,
    job: ImageJob | None,
    base: float,
    *,
    now: float,
    service_now: datetime,
    fit: LogNormal | None,
    draw: float,
) -> float:
    """Return when a subscriber wants the job looked at next, after a look at ``base``.

    By the job's age (:mod:`imagejobs.planning.cadence`), and by its type's
    durations when ``fit`` knows them; ``inf`` when that is past the deadline.
    ``now`` is the monotonic clock's reading now, ``service_now`` the service's time
    now (this machine's wall clock put on the service's, as its answers' ``Date`` says:
    :mod:`imagejobs.planning.skew`), which ``begin_time`` is on.
    """
    waited = base - sub.started
    age = waited
    if job is not None and job.begin_time is not None:
        # The job's own age on the service's clock, as of ``base`` on the monotonic one,
        # and never less than the wait's own: before the first Date is read, or within
        # the skew taken as none, a begin_time may still look to be in the future.
        old = (service_now - job.begin_time).total_seconds()
        age = max(waited, old + base - now)
    wants_at = base + next_gap(sub.policy, age, fit, draw)
    return wants_at if wants_at < sub.deadline else math.inf
