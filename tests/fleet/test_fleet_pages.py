"""Shared pages: a page of a list one process of a fleet fetched serves the others.

On a real redis-server; each client has its own connection and member ID, as a
separate process would. A :class:`Poller` over a client's own request path and
fleet is what its sweeps page through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wire_data import snap

from imagejobs import Client, PollPolicy
from imagejobs.fleet.pages import PAGE_AGE, TICK_SLACK, SharedPages
from imagejobs.fleet.shared import Fleet
from imagejobs.planning.sweeps import Listing
from imagejobs.scheduling.looks import PageResult
from imagejobs.scheduling.polls import Poller
from imagejobs.testing import FakeWorkspace, Faults

LISTING = Listing("CREATE_SERVER_IMAGE", "RUNNING")


def _poller(client: Client) -> Poller:
    return Poller(client._requester, client._jobs, client._urls, client.clock, client._fleet)


def _lists(fake: FakeWorkspace) -> int:
    return sum(1 for request in fake.requests if request.job_id is None)


def _jobs(fake: FakeWorkspace, count: int) -> list[str]:
    return [fake.add_job([snap(f"7{n:017d}", "RUNNING")]) for n in range(count)]


@contextlib.asynccontextmanager
async def _two_processes(
    fake: FakeWorkspace, redis_url: str, vouched_by: str | None
) -> AsyncIterator[tuple[Client, Client]]:
    """Two clients of one fleet, as two processes would be; each has its credentials
    accepted by the service (a GET of ``vouched_by``) unless that is None."""
    async with fake.client(redis_url=redis_url) as a, fake.client(redis_url=redis_url) as b:
        if vouched_by is not None:
            for client in (a, b):
                await client.get_job(vouched_by)
        yield a, b


async def test_a_page_one_process_fetched_is_taken_by_another_without_a_request(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _jobs(fake, 3)
        async with _two_processes(fake, redis_url, ids[0]) as (
            a,
            b,
        ):  # each one's credentials accepted by the service
            pages_a, pages_b = _poller(a), _poller(b)
            fetched = await pages_a.list_page(LISTING, 0, time.monotonic(), None)
            taken = await pages_b.list_page(LISTING, 0, time.monotonic(), None)
            assert _lists(fake) == 1
            assert fetched.own
            assert not taken.own
            assert taken.page == fetched.page
            assert {job.id for job in taken.page.items} == set(ids)
            # b had that page: its next sweep wants a newer one, and fetches it for both.
            again = await pages_b.list_page(LISTING, 0, time.monotonic(), None)
            assert again.own
            assert not (await pages_a.list_page(LISTING, 0, time.monotonic(), None)).own
            assert _lists(fake) == 2


async def test_a_page_answered_well_before_a_sweep_became_due_is_not_taken(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _jobs(fake, 2)
        async with _two_processes(fake, redis_url, ids[0]) as (a, b):
            pages_a, pages_b = _poller(a), _poller(b)
            await pages_a.list_page(LISTING, 0, time.monotonic(), None)
            assert not (await pages_b.list_page(LISTING, 0, time.monotonic(), None)).own
            await pages_a.list_page(LISTING, 0, time.monotonic(), None)  # a newer one
            # A sweep due a second after it: the lists may have changed since; its pages
            # must show them as of about one moment, so it sends its own.
            later = time.monotonic() + PAGE_AGE + 0.5
            assert (await pages_b.list_page(LISTING, 0, later, None)).own
            assert _lists(fake) == 3


async def test_two_processes_paging_at_once_send_one_request(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _jobs(fake, 2)
        async with _two_processes(fake, redis_url, ids[0]) as (a, b):
            fake.latency = 0.5  # the first to claim the page is still fetching it
            first, second = await asyncio.gather(
                _poller(a).list_page(LISTING, 0, time.monotonic(), None),
                _poller(b).list_page(LISTING, 0, time.monotonic(), None),
            )
            assert _lists(fake) == 1
            assert first.page == second.page
            assert sorted([first.own, second.own]) == [False, True]


async def test_a_page_whose_fetch_failed_is_fetched_by_the_process_waiting_for_it(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys, list_faults=Faults(at={1: "503"})) as fake:
        ids = _jobs(fake, 2)
        async with _two_processes(fake, redis_url, ids[0]) as (a, b):
            fake.latency = 0.3
            fetches = await asyncio.gather(
                _poller(a).list_page(LISTING, 0, time.monotonic(), None),
                _poller(b).list_page(LISTING, 0, time.monotonic(), None),
                return_exceptions=True,
            )
        failed = [result for result in fetches if isinstance(result, BaseException)]
        assert len(failed) == 1  # the holder's request, answered 503
        assert _lists(fake) == 2  # the other fetched it itself once the claim was let go


async def test_a_process_the_service_has_not_answered_takes_no_shared_page(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _jobs(fake, 2)
        async with _two_processes(fake, redis_url, None) as (a, b):
            await a.get_job(ids[0])  # b's credentials not vouched for yet
            await _poller(a).list_page(LISTING, 0, time.monotonic(), None)
            own = await _poller(b).list_page(LISTING, 0, time.monotonic(), None)
            assert own.own  # b's credentials never vouched for: it asks the service itself
            assert _lists(fake) == 2


async def test_a_process_new_to_the_service_asks_it_once_then_takes_shared_pages(
    redis_url: str, keys: dict[str, Any]
) -> None:
    listings = [LISTING, Listing("CREATE_SERVER_IMAGE", "WAITING")]
    async with FakeWorkspace(**keys) as fake:
        ids = _jobs(fake, 2)
        async with _two_processes(fake, redis_url, None) as (a, b):
            await a.get_job(ids[0])  # b's credentials not vouched for yet
            pages_a, pages_b = _poller(a), _poller(b)
            for listing in listings:
                await pages_a.list_page(listing, 0, time.monotonic(), None)
            # b's first sweep: its first request asks the service, the other page waits
            # for that answer, then is taken from the fleet.
            fake.latency = 0.3
            results = await asyncio.gather(
                *(pages_b.list_page(listing, 0, time.monotonic(), None) for listing in listings)
            )
            assert sorted(result.own for result in results) == [False, True]
            assert _lists(fake) == 3


async def test_a_fleet_sweeping_the_same_lists_shares_pages_and_sees_every_end(
    redis_url: str, keys: dict[str, Any]
) -> None:
    policy = PollPolicy(initial_delay=0.2, max_delay=0.4, timeout=60)
    async with FakeWorkspace(**keys) as fake:
        start = time.monotonic()
        own = [
            [
                fake.add_job(
                    [snap(f"7{p}{n:016d}", "RUNNING"), snap(f"7{p}{n:016d}", "SUCCESS")],
                    every=1.0 + n / 10,
                    start=start,
                )
                for n in range(20)
            ]
            for p in range(3)
        ]
        async with contextlib.AsyncExitStack() as stack:
            fleet = [
                await stack.enter_async_context(fake.client(redis_url=redis_url, sweeps=True))
                for _ in own
            ]
            taken: list[bool] = []
            for client in fleet:
                sweeper = client._hub._sweeper._groups[None]  # the client's own gate's
                list_page = sweeper._list_page
                assert list_page is not None

                async def counted(*args: Any, list_page: Any = list_page) -> PageResult:
                    result: PageResult = await list_page(*args)
                    taken.append(not result.own)
                    return result

                sweeper._list_page = counted

            async def wait(client: Client, ids: list[str]) -> list[str]:
                return [o.job.status.value async for o in client.wait_many(ids, policy) if o.job]

            seen = await asyncio.gather(*map(wait, fleet, own))
    assert seen == [["SUCCESS"] * 20] * 3
    assert any(taken)  # some sweep took a page another process had fetched
    assert _lists(fake) < len(taken)


async def test_every_process_of_a_fleet_finds_the_same_instants_to_sweep_at(
    redis_url: str,
) -> None:
    fleets = [
        Fleet(
            redis_url,
            "imagejobs:{ticks}",
            max_in_flight=10,
            rate=10.0,
            pace=1.0,
            burst=1.0,
            lease=30.0,
            max_retry_after=30.0,
        )
        for _ in range(2)
    ]
    try:
        for fleet in fleets:
            await fleet.join()
        now = time.monotonic()
        a, b = (SharedPages(fleet) for fleet in fleets)
        instant = a.tick(now, 2.0)
        # The next instant, or one a little past (TICK_SLACK of a period) that it falls on.
        assert now - TICK_SLACK * 2.0 <= instant < now + 2
        # Due a moment apart, the sweeps of two processes go at one instant of the grid.
        due = instant + 2
        assert a.tick(due - 1.0, 2.0) == pytest.approx(due, abs=0.05)
        assert b.tick(due - 0.5, 2.0) == pytest.approx(due, abs=0.05)
        # One a little past an instant stays on it: planned from the last, it has not slipped.
        assert b.tick(due + 0.1, 2.0) == pytest.approx(due, abs=0.05)
    finally:
        for fleet in fleets:
            await fleet.close()
