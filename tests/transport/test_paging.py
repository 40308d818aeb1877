"""The one paging loop: where it moves on, where it stops, and what it yields."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from hypothesis import given
from hypothesis import strategies as st

from imagejobs.core.codec import Page
from imagejobs.transport.paging import ListWalk


def _server(
    items: list[str], *, ignore_offset: bool = False, size: int = 3
) -> tuple[Callable[[int], Awaitable[Page[str]]], list[int]]:
    """A list of ``items`` served ``size`` a page; the offsets asked for are recorded."""
    asked: list[int] = []

    async def fetch(offset: int) -> Page[str]:
        asked.append(offset)
        start = 0 if ignore_offset else offset
        return Page(len(items), tuple(items[start : start + size]))

    return fetch, asked


async def _all(walk: ListWalk[str]) -> list[str]:
    async with contextlib.aclosing(walk.items()) as items:
        return [item async for item in items]


async def test_a_list_is_walked_to_its_end_by_what_each_page_brought() -> None:
    fetch, asked = _server([f"j{n}" for n in range(8)])
    walk = ListWalk(fetch, str)
    assert await _all(walk) == [f"j{n}" for n in range(8)]
    assert asked == [0, 3, 6]
    assert (walk.pages, walk.count, walk.complete) == (3, 8, True)


async def test_a_server_that_ignores_the_offset_is_not_walked_for_ever() -> None:
    fetch, asked = _server([f"j{n}" for n in range(8)], ignore_offset=True)
    walk = ListWalk(fetch, str)
    assert await _all(walk) == ["j0", "j1", "j2"]
    assert asked == [0, 3]  # the second page brought nothing new
    assert not walk.complete


async def test_max_pages_bounds_the_requests() -> None:
    fetch, asked = _server([f"j{n}" for n in range(20)])
    walk = ListWalk(fetch, str, max_pages=2)
    assert len(await _all(walk)) == 6
    assert asked == [0, 3]
    assert not walk.complete


async def test_an_empty_list_takes_one_request() -> None:
    fetch, asked = _server([])
    walk = ListWalk(fetch, str)
    assert await _all(walk) == []
    assert (asked, walk.complete) == ([0], True)


@given(
    items=st.lists(st.sampled_from("abcdefgh"), max_size=30),
    size=st.integers(1, 7),
)
async def test_every_item_is_yielded_once_and_pages_hold_all(items: list[str], size: int) -> None:
    fetch, _ = _server(items, size=size)
    walk = ListWalk(fetch, str)
    seen: list[str] = []
    shown: list[str] = []
    async with contextlib.aclosing(walk.pages_of_items()) as pages:
        async for page, new in pages:
            shown.extend(page)
            seen.extend(new)
    assert seen == list(dict.fromkeys(shown))  # each once, in the order they came
    assert set(seen) <= set(items)
    assert walk.pages >= 1


async def test_the_end_of_a_list_is_known_when_its_last_page_is_seen() -> None:
    async def fetch(offset: int) -> Page[str]:
        return Page(5000, ())  # a count it does not hold: the page still ends the list

    walk = ListWalk(fetch, str)
    seen_complete = []
    async with contextlib.aclosing(walk.pages_of_items()) as pages:
        async for _ in pages:
            seen_complete.append(walk.complete)  # what a sweep reads before it decides
    assert seen_complete == [True]


async def test_an_overlap_catches_what_a_list_shifting_between_pages_would_skip() -> None:
    async def run(overlap: int) -> list[str]:
        items = [f"j{n}" for n in range(20)]

        async def fetch(offset: int) -> Page[str]:
            page = Page(len(items), tuple(items[offset : offset + 5]))
            del items[:2]  # two jobs ended (left the list) between this page and the next
            return page

        return await _all(ListWalk(fetch, str, overlap=overlap))

    skipped = {f"j{n}" for n in range(20)} - set(await run(0))
    assert skipped  # walked plainly, items that moved up past the offset are missed
    # The jobs still listed at the end, each seen once: none skipped with enough overlap.
    seen = await run(2)
    assert len(seen) == len(set(seen))
    assert {f"j{n}" for n in range(12, 20)} <= set(seen)
