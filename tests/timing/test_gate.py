"""The gate: requests wait for the budget in order of need, on the client's clock."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagejobs import ImageJobsError
from imagejobs.planning.budget import PACE, RequestBudget
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate


def gate(max_in_flight: int, rate: float, clock: FakeClock) -> Gate:
    return Gate(RequestBudget.create(max_in_flight, rate, clock.monotonic()), clock)


async def test_waiters_are_served_earliest_need_first() -> None:
    clock = FakeClock()
    one = gate(1, math.inf, clock)
    held = await one.acquire()
    order: list[float] = []

    async def need(priority: float) -> None:
        passed = await one.acquire(priority)
        order.append(priority)
        one.release(passed, answered=True)

    waiting = [asyncio.ensure_future(need(p)) for p in (5.0, 1.0, 3.0)]
    await asyncio.sleep(0)
    one.release(held, answered=True)
    await asyncio.gather(*waiting)
    assert order == [1.0, 3.0, 5.0]


async def test_the_rate_spaces_grants_on_virtual_time() -> None:
    clock = FakeClock()
    slow = gate(10, 2.0, clock)
    granted = []
    for _ in range(5):
        passed = await slow.acquire()
        granted.append(clock.monotonic())
        slow.release(passed, answered=True)
    assert granted == pytest.approx([n * 0.5 / PACE for n in range(5)])


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    clock = FakeClock()
    one = gate(1, math.inf, clock)
    held = await one.acquire()
    cancelled = asyncio.ensure_future(one.acquire(0.0))
    later = asyncio.ensure_future(one.acquire(1.0))
    await asyncio.sleep(0)
    cancelled.cancel()
    one.release(held)
    passed = await later
    assert one.budget.in_flight == 1
    one.release(passed)
    one.release(passed)  # a pass goes back once, however often it is handed in
    assert one.budget.in_flight == 0


async def test_closing_refuses_waiters_and_newcomers() -> None:
    clock = FakeClock()
    one = gate(1, math.inf, clock)
    await one.acquire()
    waiting = asyncio.ensure_future(one.acquire())
    await asyncio.sleep(0)
    await one.close(ImageJobsError("the client is closed"))
    with pytest.raises(ImageJobsError, match="closed"):
        await waiting
    with pytest.raises(ImageJobsError, match="closed"):
        await one.acquire()


async def test_a_closed_gate_forgets_what_its_requests_taught_the_rate() -> None:
    clock = FakeClock()
    one = gate(2, 10.0, clock)
    passed = await one.acquire()
    one.release(passed, answered=True)
    assert len(one.budget.adaptive.accepted) == 1
    await one.close(ImageJobsError("the client is closed"))
    assert len(one.budget.adaptive.accepted) == 0
    assert one.budget.refilled_at == -math.inf


async def test_a_waiter_gives_up_at_its_deadline_and_leaves_its_place() -> None:
    clock = FakeClock()
    slow = gate(10, 0.5, clock)
    first = await slow.acquire()
    with pytest.raises(TimeoutError):
        await slow.acquire(deadline=1.0)
    assert clock.monotonic() == 1.0
    slow.release(first)
    second = await slow.acquire()
    assert clock.monotonic() == pytest.approx(2.0 / PACE), "the rate, not the abandoned waiter"
    slow.release(second)


@given(
    arrivals=st.lists(
        st.tuples(
            st.sampled_from(["first", "final", "sweep", "safety", "poll"]),
            st.floats(min_value=0, max_value=30),  # when the request arrives
            st.floats(min_value=0, max_value=30),  # how long before that it became due
        ),
        min_size=1,
        max_size=60,
    ),
    rate=st.floats(min_value=0.5, max_value=20),
)
@settings(deadline=None, max_examples=50)
def test_no_source_starves_another_each_waits_only_for_what_was_due_before_it(
    arrivals: list[tuple[str, float, float]], rate: float
) -> None:
    async def run() -> None:
        clock = FakeClock()
        shared = gate(1, rate, clock)
        granted: dict[int, float] = {}

        async def request(n: int, at: float, due: float) -> None:
            await clock.sleep(at)
            passed = await shared.acquire(due)
            granted[n] = clock.monotonic()
            shared.release(passed, answered=True)

        await asyncio.gather(
            *(request(n, at, at - before) for n, (_, at, before) in enumerate(arrivals))
        )
        assert len(granted) == len(arrivals)  # every source's every request went out
        spacing = 1 / (rate * PACE)
        for n, (_, at, before) in enumerate(arrivals):
            due = at - before
            # Only requests due no later than it (or sent before it came) go first.
            ahead = sum(
                1
                for m, (_, other_at, other_before) in enumerate(arrivals)
                if m != n and (other_at - other_before <= due or granted[m] <= at)
            )
            assert granted[n] <= at + (ahead + 1) * spacing + 1e-6

    asyncio.run(run())
