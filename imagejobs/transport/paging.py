"""Paging: the one loop that walks a list of the service, page by page.

The job and sub-job lists are paged by ``offset`` and ``limit``. The service
documents no order, and a list that changes while it is walked can skip an
item or show one twice; the loop moves on by what each page brought (a short
page skips nothing), and stops at the list's end, at a page of nothing, or at
a page of nothing new (a server that ignored the offset would loop for ever).
``list_jobs``, ``list_sub_jobs``, ``learn_history`` and the hub's sweeps all
walk through it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from contextlib import aclosing
from typing import Generic, TypeVar

from imagejobs.core.codec import Page

__all__ = ["ListWalk"]

_T = TypeVar("_T")


class ListWalk(Generic[_T]):
    """One walk through a list: ``fetch(offset)`` gets the page from there (one request).

    ``key`` says which items are the same; ``max_pages`` bounds the requests.
    Once done, ``pages`` is the requests made, ``count`` the total the last page
    reported, and ``complete`` whether the walk reached the list's end.
    """

    def __init__(
        self,
        fetch: Callable[[int], Awaitable[Page[_T]]],
        key: Callable[[_T], Hashable],
        *,
        max_pages: int | None = None,
        overlap: int = 0,
    ) -> None:
        self._fetch = fetch
        self._overlap = overlap
        self._key = key
        self._max_pages = max_pages
        self._seen: set[Hashable] = set()
        self.pages = 0
        self.count = 0
        self.complete = False

    async def pages_of_items(self) -> AsyncGenerator[tuple[Sequence[_T], list[_T]]]:
        """Yield each page as ``(items, new)``: all it holds, and those not seen before.

        A consumer may stop early (a list far longer than planned, say): the walk
        is then not ``complete``.
        """
        offset = 0
        while self._max_pages is None or self.pages < self._max_pages:
            page = await self._fetch(offset)
            self.pages += 1
            self.count = page.count
            new = []
            for item in page.items:
                key = self._key(item)
                if key not in self._seen:
                    self._seen.add(key)
                    new.append(item)
            # By what came back, not by the page size: a shorter page skips nothing.
            offset += len(page.items)
            # Known before the consumer sees the page: the list's end is no reason to stop early.
            self.complete = not page.items or offset >= page.count
            if len(page.items) > self._overlap:
                offset -= self._overlap
            yield page.items, new
            if self.complete or not new:
                return

    async def items(self) -> AsyncGenerator[_T]:
        """Yield every item once, in the order the pages bring them."""
        async with aclosing(self.pages_of_items()) as pages:
            async for _, new in pages:
                for item in new:
                    yield item
