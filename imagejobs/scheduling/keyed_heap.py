"""A heap that holds each item once: its key is changed, or it is taken out, where it stands.

The hub's queues (looks due, deadlines) change their items' times far more often
than they pop them. A plain heap would leave an entry behind at each change, to be
skipped when it reaches the top: with a hundred thousand jobs, a burst of such
entries makes one step of the loop pop them all, and dropping them at once is
another such step. Here every change is ``O(log n)``, and nothing is left behind.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from imagejobs.core.untracked import untrack

__all__ = ["KeyedHeap"]

_Item = TypeVar("_Item", bound=Hashable)


class KeyedHeap(Generic[_Item]):
    """A min-heap of items by when, each item at most once (as the item hashes).

    Each entry is ``(when, order, item)``: ``order``, a number no two entries share,
    breaks ties, so items are never compared.
    """

    __slots__ = ("_entries", "_where")

    def __init__(self) -> None:
        self._entries: list[tuple[float, int, _Item]] = []
        self._where: dict[_Item, int] = {}
        # A table of every job: walking it, the collector would visit each (.untracked).
        untrack(self._entries)

    def __repr__(self) -> str:
        return f"KeyedHeap({len(self._entries)} items)"

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: object) -> bool:
        return item in self._where

    def clear(self) -> None:
        """Let go of every item, and of the tables they took."""
        self._entries.clear()
        self._where.clear()

    def set(self, item: _Item, when: float, order: int) -> None:
        """Put ``item`` in the heap at ``(when, order)``, or move it there if it is in."""
        entry = (when, order, item)
        untrack(entry)  # one of a hundred thousand, in no cycle (imagejobs.core.untracked)
        where = self._where.get(item)
        if where is None:
            self._entries.append(entry)
            self._up(len(self._entries) - 1)
            return
        before = self._entries[where]
        self._entries[where] = entry
        if entry < before:
            self._up(where)
        else:
            self._down(where)

    def discard(self, item: _Item) -> None:
        """Take ``item`` out of the heap, if it is in."""
        where = self._where.pop(item, None)
        if where is None:
            return
        last = self._entries.pop()
        if where == len(self._entries):
            return
        self._entries[where] = last
        if where > 0 and last < self._entries[(where - 1) // 2]:
            self._up(where)
        else:
            self._down(where)

    def first(self) -> tuple[float, int, _Item] | None:
        """Return the first entry, ``(when, order, item)``, or None if the heap is empty."""
        return self._entries[0] if self._entries else None

    def pop(self) -> tuple[float, int, _Item]:
        """Take out and return the first entry (IndexError if the heap is empty)."""
        first = self._entries[0]
        self.discard(first[2])
        return first

    def _up(self, where: int) -> None:
        entries, places = self._entries, self._where
        entry = entries[where]
        while where > 0:
            parent = (where - 1) // 2
            above = entries[parent]
            if not entry < above:
                break
            entries[where] = above
            places[above[2]] = where
            where = parent
        entries[where] = entry
        places[entry[2]] = where
        untrack(places)  # tracked again by what was put in it

    def _down(self, where: int) -> None:
        entries, places = self._entries, self._where
        size = len(entries)
        entry = entries[where]
        while True:
            child = 2 * where + 1
            if child >= size:
                break
            if child + 1 < size and entries[child + 1] < entries[child]:
                child += 1
            below = entries[child]
            if not below < entry:
                break
            entries[where] = below
            places[below[2]] = where
            where = child
        entries[where] = entry
        places[entry[2]] = where
        untrack(places)  # tracked again by what was put in it
