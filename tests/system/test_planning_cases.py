"""The request sources sharing one budget: no source blocks another (issue 27's three cases).

Each on virtual time (FakeClock) through the real client and the fake gateway,
which throttles like the real one (429, no Retry-After) and refuses a job list
without ``job_type``. Lateness is read on the virtual clock: exact, not timed.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from typing import Any

import pytest
from test_sweeps import job, script_tenant

from imagejobs import PollPolicy, RequestRecord
from imagejobs.client import _planning_rate
from imagejobs.planning.budget import RequestBudget
from imagejobs.testing import FakeClock, FakeWorkspace


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


@pytest.mark.parametrize("narrowed", [None, 8.0], ids=["client's share", "narrowed too"])
async def test_a_narrow_call_slows_only_its_own_jobs(
    narrowed: float | None, keys: dict[str, Any]
) -> None:
    clock = FakeClock()
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=10, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=400, old=200, seconds=60)
        frugal = "600000000000000001"
        steps = [job(frugal, "CREATE_SERVER", "RUNNING"), job(frugal, "CREATE_SERVER", "SUCCESS")]
        fake.add_job(steps, every=100, start=0)
        async with fake.client(clock=clock, rate=10) as client:

            async def frugal_wait() -> None:
                async for outcome in client.wait_many([frugal], rate=0.05):
                    assert outcome.ok

            narrow = asyncio.get_running_loop().create_task(frugal_wait())
            late = []
            async for outcome in client.wait_many(list(ends), rate=narrowed):
                assert outcome.job is not None
                assert outcome.job.status.value == ends[outcome.job_id][1]
                late.append(clock.monotonic() - ends[outcome.job_id][0])
            await narrow
        lists = sum(1 for r in fake.requests if r.job_id is None)
    # Swept at its own pace, not the frugal call's: 291 s late at p95 (14 list pages)
    # when every narrowed call's sweeps went through the narrowest call's gate.
    assert _p95(late) <= 10
    assert lists >= 40


async def test_a_policy_the_budget_cannot_honour_is_said_once(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=10, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=400, old=100, seconds=60)
        policy = PollPolicy(initial_delay=0.5, max_delay=0.5)
        with caplog.at_level(logging.INFO, logger="imagejobs"):
            async with fake.client(clock=clock, rate=10) as client:
                outcomes = [o async for o in client.wait_many(list(ends), policy)]
    assert len(outcomes) == len(ends)
    said = [r.getMessage() for r in caplog.records if "max_delay asks" in r.getMessage()]
    assert len(said) == 1
    assert "10 requests a second" in said[0]


def test_sweeps_are_planned_by_the_rate_given_not_by_what_a_429_left() -> None:
    budget = RequestBudget.create(max_in_flight=4, rate=10, now=0.0)
    budget.adaptive.on_accepted(0.0)
    budget.adaptive.on_throttled(0.5, sent_at=0.4)  # one answer in the last second: 0.7/s
    assert budget.adaptive.current(0.5) == pytest.approx(0.7)
    # Planned from 0.7/s, six pages would come every 25.7 s: too few requests for the
    # rate to climb on, a deadlock of planning and adaptation.
    assert _planning_rate(budget, None, 0.5) == 10
    unlimited = RequestBudget.create(max_in_flight=4, rate=math.inf, now=0.0)
    unlimited.adaptive.on_accepted(0.0)
    unlimited.adaptive.on_throttled(0.5, sent_at=0.4)
    # Told no rate, the client plans by what the climb allows, whatever the demand.
    assert _planning_rate(unlimited, None, 0.5) == pytest.approx(0.7)
    assert _planning_rate(unlimited, None, 20.0) > 5


async def test_safety_gets_due_together_go_at_their_share_not_in_one_burst(
    keys: dict[str, Any],
) -> None:
    clock = FakeClock()
    counted = Sources(clock)
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=20, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=1000, old=100, seconds=120)
        policy = PollPolicy(initial_delay=0.5, max_delay=1)
        async with fake.client(clock=clock, rate=20, hooks=[counted]) as client:
            outcomes = [o async for o in client.wait_many(list(ends), policy)]
    assert all(o.job is not None and o.job.status.value == ends[o.job_id][1] for o in outcomes)
    safety = sorted(at for at, source in counted.sent if source == "safety")
    # A tenth of 20/s, at most ten seconds' worth at once: never hundreds together.
    burst = max(bisect.bisect_right(safety, t + 10) - i for i, t in enumerate(safety))
    assert burst <= 0.1 * 20 * 10 * 2


class Sources:
    """A hook keeping when each request was sent, and why."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str]] = []

    def on_request(self, record: RequestRecord) -> None:
        self.sent.append((self.clock.monotonic() - record.duration, record.source))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_a_sweep_is_paced_by_the_lists_it_pages_now_not_the_last_ones(
    seed: int, keys: dict[str, Any]
) -> None:
    # As jobs end, the lists worth paging shrink: a sweep paced by the last sweep's pages
    # over the few jobs left came every 40 s or more, later than any poll of theirs would.
    clock = FakeClock()
    policy = PollPolicy()
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=20, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=20, old=200, seconds=20, seed=seed)
        async with fake.client(clock=clock, rate=20) as client:
            late = []
            async for outcome in client.wait_many(list(ends), policy):
                assert outcome.job is not None
                assert outcome.job.status.value == ends[outcome.job_id][1]
                late.append(clock.monotonic() - ends[outcome.job_id][0])
    assert max(late) <= policy.longest_gap, sorted(late)[-3:]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_young_jobs_swept_are_seen_about_when_their_own_polls_would(
    seed: int, keys: dict[str, Any]
) -> None:
    # Jobs that end within a second, on a policy that looks within a second: sweeps put
    # off until they cost no more than a GET a job each longest gap came 6 to 13 s late,
    # where the jobs' own polls see the ends within a second for as many requests.
    clock = FakeClock()
    policy = PollPolicy(initial_delay=0.05)
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=20, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=5, old=0, seconds=1.0, seed=seed, soonest=0.5)
        async with fake.client(clock=clock, rate=20) as client:
            late = [
                clock.monotonic() - ends[o.job_id][0] async for o in client.wait_many(ends, policy)
            ]
        requests = len(fake.requests)
        lists = sum(1 for r in fake.requests if r.job_id is None)
    assert lists > 0  # swept: GETs at a 0.05 s first pace ask more than the sweeps' share
    assert max(late) <= 2.0, sorted(late)
    assert requests <= 5 * 6  # as the jobs' own polls would have cost, not more
