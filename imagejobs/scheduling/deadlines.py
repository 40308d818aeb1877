"""The waits' deadlines, soonest first, at a few bytes a wait.

A ``wait_many`` subscribes to each of its jobs in turn with one timeout, so
their deadlines come in order: those are kept in a queue of three flat arrays
(the waits, their deadlines, their numbers in joining order), sorted as they
come, 24 bytes a wait, where a heap takes an entry, a number and a place in a
table of each, 160. A deadline that comes before the queue's last goes to a
heap (:class:`~.keyed_heap.KeyedHeap`). A wait that ends leaves a hole, found
by bisection; the holes and what was taken from the front are squeezed out as
they come to outnumber the waits, so what ended is let go at once and its
place soon after.
"""

from __future__ import annotations

import bisect
import math
from array import array

from imagejobs.core.untracked import untrack
from imagejobs.scheduling.keyed_heap import KeyedHeap
from imagejobs.scheduling.subscriptions import Subscription

__all__ = ["Deadlines"]

_SLACK = 64
"""Holes and taken places a queue keeps before it is squeezed: a small one never is."""


class Deadlines:
    """Waits by deadline, each at most once, taken soonest first (a tie: who joined first)."""

    __slots__ = ("_at", "_head", "_heap", "_holes", "_numbers", "_waits")

    def __init__(self) -> None:
        self._waits: list[Subscription | None] = []
        self._at = array("d")
        self._numbers = array("q")
        self._head = 0
        """Where the queue starts: what is before it was taken."""
        self._holes = 0
        """Waits that ended in the queue, past its start."""
        self._heap: KeyedHeap[Subscription] = KeyedHeap()

    def __repr__(self) -> str:
        return f"Deadlines({len(self)} waits)"

    def __len__(self) -> int:
        return len(self._waits) - self._head - self._holes + len(self._heap)

    def add(self, sub: Subscription) -> None:
        """Count a wait in, by its ``deadline`` and ``joined``."""
        at, number = sub.deadline, sub.joined
        if self._head < len(self._waits) and (at, number) < (self._at[-1], self._numbers[-1]):
            self._heap.set(sub, at, number)  # out of the queue's order
            return
        if not self._waits:
            untrack(self._waits)  # a table of every job (imagejobs.core.untracked)
        self._waits.append(sub)
        self._at.append(at)
        self._numbers.append(number)

    def discard(self, sub: Subscription) -> None:
        """Count a wait out, if it is in."""
        if sub in self._heap:
            self._heap.discard(sub)
            return
        start = bisect.bisect_left(self._at, sub.deadline, self._head)
        end = bisect.bisect_right(self._at, sub.deadline, start)
        where = bisect.bisect_left(self._numbers, sub.joined, start, end)
        if where < end and self._waits[where] is sub:
            self._waits[where] = None
            self._holes += 1
            self._squeeze()

    def first_at(self) -> float:
        """Return the soonest deadline (``inf`` if there is none)."""
        self._skip_holes()
        first = self._heap.first()
        soonest = math.inf if first is None else first[0]
        if self._head < len(self._waits):
            soonest = min(soonest, self._at[self._head])
        return soonest

    def pop_due(self, now: float) -> Subscription | None:
        """Take out the wait whose deadline is soonest, if it is ``now`` or past."""
        self._skip_holes()
        first = self._heap.first()
        head = self._head
        if head < len(self._waits) and (
            first is None or (self._at[head], self._numbers[head]) < first[:2]
        ):
            if self._at[head] > now:
                return None
            sub = self._waits[head]
            self._waits[head] = None  # let go of at once
            self._head += 1
            self._squeeze()
            return sub
        if first is None or first[0] > now:
            return None
        return self._heap.pop()[2]

    def _skip_holes(self) -> None:
        while self._head < len(self._waits) and self._waits[self._head] is None:
            self._head += 1
            self._holes -= 1
        self._squeeze()

    def _squeeze(self) -> None:
        waits, head = self._waits, self._head
        if self._holes == len(waits) - head:
            if waits:  # no wait left: start afresh, what the arrays took freed
                self._waits, self._at, self._numbers = [], array("d"), array("q")
                self._head = self._holes = 0
            return
        if self._holes > _SLACK and 2 * self._holes > len(waits) - head:
            kept = [where for where in range(head, len(waits)) if waits[where] is not None]
            self._waits = [waits[where] for where in kept]
            untrack(self._waits)  # a table of every job (imagejobs.core.untracked)
            self._at = array("d", (self._at[where] for where in kept))
            self._numbers = array("q", (self._numbers[where] for where in kept))
            self._head = self._holes = 0
        elif head > _SLACK and 2 * head > len(waits):
            del waits[:head], self._at[:head], self._numbers[:head]
            self._head = 0
