"""Many callers on one job: the hub's work grows with the callers, not with their square.

Work is counted, not timed: the function calls the profiler sees (the same on
any machine), for N and then 8N callers of one job, as they subscribe (at once,
or one by one as requests to a service come), as one look's answer is told to
them all and the next one ends every wait, and as they leave.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
from collections.abc import Awaitable, Callable
from typing import Any

from imagejobs import ImageJob, JobStatus, Outcome, PollPolicy, RetryPolicy
from imagejobs.core.codec import Page
from imagejobs.planning.sweeps import Listing
from imagejobs.scheduling.hub import Hub
from imagejobs.scheduling.looks import Look, LookResult, PageResult
from imagejobs.scheduling.subscriptions import Mailbox
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate

POLICY = PollPolicy(initial_delay=2, multiplier=2, max_delay=8, jitter=0, timeout=600)
CALLERS = 100
MORE = 8
LINEAR_ENOUGH = 10  # 8x the callers may cost this many times the work, and no more


async def _calls(work: Callable[[], Awaitable[Any]]) -> int:
    """Return the function calls made while ``work`` runs: its cost, counted, never timed."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        await work()
    finally:
        profile.disable()
    return int(pstats.Stats(profile).total_calls)  # type: ignore[attr-defined]


def _hub(clock: FakeClock, **options: Any) -> Hub:
    """A hub whose job is RUNNING at its first look and SUCCESS at its second."""
    looks = 0

    async def poll(job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        nonlocal looks
        looks += 1
        status = JobStatus.RUNNING if looks == 1 else JobStatus.SUCCESS
        return LookResult(((ImageJob(id=job_id, status=status), clock.monotonic()),), look.mark)

    options.setdefault("sweeps", False)
    return Hub(poll, clock, RetryPolicy(), max_polls=4, random=lambda: 0.5, **options)


async def _outcome(mailbox: Mailbox) -> Outcome:
    while not isinstance(event := await mailbox.get(), Outcome):
        pass
    return event


async def _work(callers: int) -> tuple[int, int]:
    """Return the calls to subscribe ``callers`` to one job, and to serve them to its end."""
    hub = _hub(FakeClock())
    mailboxes = [Mailbox() for _ in range(callers)]

    async def subscribe() -> None:
        for mailbox in mailboxes:
            hub.subscribe("j", POLICY, None, mailbox)

    async def serve() -> None:
        outcomes = await asyncio.gather(*map(_outcome, mailboxes))
        assert all(outcome.ok for outcome in outcomes)

    try:
        return await _calls(subscribe), await _calls(serve)
    finally:
        await hub.close()


async def test_subscribing_and_serving_8x_the_callers_of_one_job_costs_about_8x() -> None:
    few_subscribe, few_serve = await _work(CALLERS)
    many_subscribe, many_serve = await _work(MORE * CALLERS)
    assert many_subscribe <= LINEAR_ENOUGH * few_subscribe, (few_subscribe, many_subscribe)
    assert many_serve <= LINEAR_ENOUGH * few_serve, (few_serve, many_serve)


async def test_callers_leaving_one_by_one_cost_about_as_much_each_however_many_stay() -> None:
    async def leaving(callers: int) -> int:
        hub = _hub(FakeClock())
        subs = [hub.subscribe("j", POLICY, None, Mailbox()) for _ in range(callers)]

        async def leave() -> None:
            for sub in subs:
                hub.unsubscribe(sub)

        try:
            return await _calls(leave)
        finally:
            await hub.close()

    few, many = await leaving(CALLERS), await leaving(MORE * CALLERS)
    assert many <= LINEAR_ENOUGH * few, (few, many)


async def _no_jobs_listed(
    listing: Listing, offset: int, priority: float, gate: Gate | None
) -> PageResult:
    return PageResult(Page(0, ()), priority)


async def test_callers_arriving_one_by_one_cost_about_as_much_each_however_many_came() -> None:
    async def arriving(callers: int) -> int:
        # Sweeps are weighed after every change with few jobs: a rate they could use.
        hub = _hub(FakeClock(), list_page=_no_jobs_listed, rate=lambda now: 1000.0, sweeps=None)

        async def arrive() -> None:
            for _ in range(callers):
                hub.subscribe("j", POLICY, None, Mailbox())
                await asyncio.sleep(0)  # the hub's loop runs between two requests
                await asyncio.sleep(0)

        try:
            return await _calls(arrive)
        finally:
            await hub.close()

    few, many = await arriving(CALLERS), await arriving(MORE * CALLERS)
    assert many <= LINEAR_ENOUGH * few, (few, many)
