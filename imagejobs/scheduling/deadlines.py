"""The waits' deadlines, soonest first, at a few bytes a wait.

A ``wait_many`` subscribes to each of its jobs in turn with one timeout, so
their deadlines come in order: those are kept in a queue, sorted as they come,
in chunks of flat arrays (the waits, their deadlines, their numbers in joining
order): 24 bytes a wait, where a heap takes an entry, a number and a place in a
table of each, 160. A deadline that comes before the queue's last goes to a
heap (:class:`~.keyed_heap.KeyedHeap`). A wait that ends leaves a hole, found
by bisection, so what ended is let go at once; a chunk is squeezed once half
of it is holes, and dropped once all of it is, so no step does work that grows
with the waits (at 100,000, squeezing the whole queue at once took 15 ms).
"""

from __future__ import annotations

import bisect
import math
from array import array

from imagejobs.core.untracked import untrack
from imagejobs.scheduling.keyed_heap import KeyedHeap
from imagejobs.scheduling.subscriptions import Subscription

__all__ = ["CHUNK", "Deadlines"]

CHUNK = 512
"""Waits a chunk of the queue holds at most (but in tests)."""


class _Chunk:
    """Waits in the queue's order, a hole (``None``) for each that ended."""

    __slots__ = ("at", "head", "holes", "numbers", "waits")

    def __init__(self) -> None:
        self.waits: list[Subscription | None] = []
        self.at = array("d")
        self.numbers = array("q")
        self.holes = 0
        self.head = 0
        """No wait before this place: the holes taken from the front are not walked again."""
        for record in (self, self.waits):
            untrack(record)  # of every job, in no cycle (imagejobs.core.untracked)

    def find(self, sub: Subscription) -> int | None:
        start = bisect.bisect_left(self.at, sub.deadline)
        end = bisect.bisect_right(self.at, sub.deadline, start)
        where = bisect.bisect_left(self.numbers, sub.joined, start, end)
        return where if where < end and self.waits[where] is sub else None

    def first(self) -> int:
        waits, head = self.waits, self.head
        while waits[head] is None:
            head += 1
        self.head = head
        return head

    def squeeze(self) -> None:
        kept = [where for where, sub in enumerate(self.waits) if sub is not None]
        self.waits = [self.waits[where] for where in kept]
        untrack(self.waits)
        self.at = array("d", [self.at[where] for where in kept])
        self.numbers = array("q", [self.numbers[where] for where in kept])
        self.holes = self.head = 0


class Deadlines:
    """Waits by deadline, each at most once, taken soonest first (a tie: who joined first)."""

    __slots__ = ("_chunk", "_chunks", "_heap", "_queued", "_starts")

    def __init__(self, chunk: int = CHUNK) -> None:
        self._chunk = chunk
        self._chunks: list[_Chunk] = []
        self._starts: list[tuple[float, int]] = []
        """Each chunk's first key, ``(deadline, joined)``, as it was made: where to look."""
        self._queued = 0
        self._heap: KeyedHeap[Subscription] = KeyedHeap()

    def __repr__(self) -> str:
        return f"Deadlines({len(self)} waits)"

    def __len__(self) -> int:
        return self._queued + len(self._heap)

    def clear(self) -> None:
        """Let go of every wait, and of the tables they took."""
        self._chunks.clear()
        self._starts.clear()
        self._queued = 0
        self._heap.clear()

    def add(self, sub: Subscription) -> None:
        """Count a wait in, by its ``deadline`` and ``joined``."""
        key = (sub.deadline, sub.joined)
        last = self._chunks[-1] if self._chunks else None
        if last is not None and key < (last.at[-1], last.numbers[-1]):
            self._heap.set(sub, *key)  # out of the queue's order
            return
        if last is None or len(last.waits) >= self._chunk:
            last = _Chunk()
            self._chunks.append(last)
            self._starts.append(key)
        last.waits.append(sub)
        last.at.append(key[0])
        last.numbers.append(key[1])
        self._queued += 1

    def discard(self, sub: Subscription) -> None:
        """Count a wait out, if it is in."""
        if sub in self._heap:
            self._heap.discard(sub)
            return
        which = bisect.bisect_right(self._starts, (sub.deadline, sub.joined)) - 1
        if which < 0:
            return
        where = self._chunks[which].find(sub)
        if where is not None:
            self._take(which, where)

    def first_at(self) -> float:
        """Return the soonest deadline (``inf`` if there is none)."""
        first = self._heap.first()
        soonest = math.inf if first is None else first[0]
        if self._chunks:
            chunk = self._chunks[0]
            soonest = min(soonest, chunk.at[chunk.first()])
        return soonest

    def pop_due(self, now: float) -> Subscription | None:
        """Take out the wait whose deadline is soonest, if it is ``now`` or past."""
        first = self._heap.first()
        if self._chunks:
            chunk = self._chunks[0]
            where = chunk.first()
            at, number = chunk.at[where], chunk.numbers[where]
            if first is None or (at, number) < first[:2]:
                if at > now:
                    return None
                sub = chunk.waits[where]
                self._take(0, where)
                return sub
        if first is None or first[0] > now:
            return None
        return self._heap.pop()[2]

    def _take(self, which: int, where: int) -> None:
        chunk = self._chunks[which]
        chunk.waits[where] = None  # let go of at once
        chunk.holes += 1
        self._queued -= 1
        if which == len(self._chunks) - 1:
            # The queue ends at a wait not ended: a later wait's deadline may come before
            # an ended one's, and it would go to the heap, at seven times the cost.
            self._trim_tail()
            if which >= len(self._chunks):
                return  # it was all holes
        if chunk.holes == len(chunk.waits):
            del self._chunks[which], self._starts[which]
        elif 2 * chunk.holes > len(chunk.waits):
            chunk.squeeze()  # its start still comes before all it holds, after the last's

    def _trim_tail(self) -> None:
        while self._chunks:
            last = self._chunks[-1]
            while last.waits and last.waits[-1] is None:
                last.waits.pop()
                last.at.pop()
                last.numbers.pop()
                last.holes -= 1
            if last.waits:
                return
            del self._chunks[-1], self._starts[-1]
