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

__all__ = ["Key", "KeyedHeap"]

_Item = TypeVar("_Item", bound=Hashable)

Key = tuple[float, int]
"""When, and a number that orders two items due at once (no two share one)."""


class KeyedHeap(Generic[_Item]):
    """A min-heap of items by :data:`Key`, each item at most once (as the item hashes)."""

    __slots__ = ("_entries", "_where")

    def __init__(self) -> None:
        self._entries: list[tuple[Key, _Item]] = []
        self._where: dict[_Item, int] = {}

    def __repr__(self) -> str:
        return f"KeyedHeap({len(self._entries)} items)"

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: object) -> bool:
        return item in self._where

    def set(self, item: _Item, key: Key) -> None:
        """Put ``item`` in the heap at ``key``, or move it there if it is in already."""
        where = self._where.get(item)
        if where is None:
            self._entries.append((key, item))
            self._where[item] = len(self._entries) - 1
            self._up(len(self._entries) - 1)
            return
        before = self._entries[where][0]
        self._entries[where] = (key, item)
        if key < before:
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
        self._where[last[1]] = where
        if where > 0 and last[0] < self._entries[(where - 1) // 2][0]:
            self._up(where)
        else:
            self._down(where)

    def first(self) -> tuple[Key, _Item] | None:
        """Return the smallest key and its item, or None if the heap is empty."""
        return self._entries[0] if self._entries else None

    def pop(self) -> tuple[Key, _Item]:
        """Take out and return the smallest key and its item (IndexError if empty)."""
        first = self._entries[0]
        self.discard(first[1])
        return first

    def _up(self, where: int) -> None:
        entries, places = self._entries, self._where
        entry = entries[where]
        while where > 0:
            parent = (where - 1) // 2
            above = entries[parent]
            if not entry[0] < above[0]:
                break
            entries[where] = above
            places[above[1]] = where
            where = parent
        entries[where] = entry
        places[entry[1]] = where

    def _down(self, where: int) -> None:
        entries, places = self._entries, self._where
        size = len(entries)
        entry = entries[where]
        while True:
            child = 2 * where + 1
            if child >= size:
                break
            if child + 1 < size and entries[child + 1][0] < entries[child][0]:
                child += 1
            below = entries[child]
            if not below[0] < entry[0]:
                break
            entries[where] = below
            places[below[1]] = where
            where = child
        entries[where] = entry
        places[entry[1]] = where
