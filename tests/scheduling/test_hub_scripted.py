"""The hub alone: scripted poll and list functions on virtual time, no HTTP.

Each test scripts when jobs end and what a look or a list page answers, then
checks who is looked at when, under which budget, and with which priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest

from imagejobs import (
    AuthenticationError,
    ImageJob,
    ImageJobInfo,
    JobNotFound,
    JobStatus,
    JobType,
    Outcome,
    PollPolicy,
    RetryPolicy,
    ServerError,
    SubJob,
)
from imagejobs.core.codec import Page
from imagejobs.planning.budget import RequestBudget
from imagejobs.planning.sweeps import Listing
from imagejobs.scheduling.hub import Hub
from imagejobs.scheduling.looks import Look, LookResult, PageResult
from imagejobs.scheduling.waiter import wait_many
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate

TYPE = JobType.CREATE_SERVER_IMAGE
EXACT = PollPolicy(initial_delay=2, multiplier=2, max_delay=8, jitter=0, timeout=600)


class World:
    """Jobs that run until a scripted time and then succeed; every look is recorded."""

    def __init__(self, clock: FakeClock, ends: dict[str, float], latency: float = 0.0) -> None:
        self.clock = clock
        self.ends = ends
        self.latency = latency
        self.looks: list[tuple[float, str, float, Gate | None]] = []
        self.pages: list[tuple[float, Listing, float]] = []
        self.in_flight: dict[Gate | None, int] = {}
        self.peak: dict[Gate | None, int] = {}
        self.fail: Callable[[str, int], BaseException | None] = lambda job_id, n: None
        self.shared_age: float | None = None
        """Pages come from another process of a fleet, answered this long ago."""

    def status(self, job_id: str) -> JobStatus:
        return (
            JobStatus.SUCCESS if self.clock.monotonic() >= self.ends[job_id] else JobStatus.RUNNING
        )

    async def poll(self, job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        self.looks.append((self.clock.monotonic(), job_id, priority, gate))
        self.in_flight[gate] = self.in_flight.get(gate, 0) + 1
        self.peak[gate] = max(self.peak.get(gate, 0), self.in_flight[gate])
        try:
            if self.latency:
                await self.clock.sleep(self.latency)
            error = self.fail(job_id, sum(1 for look in self.looks if look[1] == job_id))
            if error is not None:
                raise error
            job = ImageJob(id=job_id, status=self.status(job_id), job_type=TYPE)
            return LookResult(((job, self.clock.monotonic()),), look.mark)
        finally:
            self.in_flight[gate] -= 1

    async def list_page(
        self, listing: Listing, offset: int, priority: float, gate: Gate | None
    ) -> PageResult:
        self.pages.append((self.clock.monotonic(), listing, priority))
        shown: list[ImageJobInfo | SubJob] = [
            ImageJobInfo(id=job_id, status=JobStatus.RUNNING, job_type=TYPE)
            for job_id in sorted(self.ends)
            if listing.job_type == TYPE.value
            and listing.status == "RUNNING"
            and self.status(job_id) is JobStatus.RUNNING
        ]
        page = Page(len(shown), tuple(shown[offset : offset + 100]))
        if self.shared_age is not None:
            return PageResult(page, self.clock.monotonic() - self.shared_age, own=False)
        return PageResult(page, self.clock.monotonic())

    def look_times(self, job_id: str) -> list[float]:
        return [at for at, looked, _, _ in self.looks if looked == job_id]


def _hub(world: World, **options: Any) -> Hub:
    options.setdefault("max_polls", 4)
    return Hub(world.poll, world.clock, RetryPolicy(), random=lambda: 0.5, **options)


async def _wait(
    hub: Hub, ids: list[str], policy: PollPolicy = EXACT, gate: Gate | None = None
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    try:
        async with contextlib.aclosing(wait_many(hub, ids, policy, call_gate=gate)) as waits:
            async for outcome in waits:
                outcomes[outcome.job_id] = outcome
    finally:
        await hub.close()
    return outcomes


async def test_a_job_is_looked_at_as_its_policy_says_and_its_end_seen_at_the_next_look() -> None:
    clock = FakeClock()
    world = World(clock, {"j": 60.0})
    outcomes = await _wait(_hub(world), ["j"])
    # Gaps of 2 s plus the job's age, at most 8 s: 2, 4, then 8 for ever.
    assert world.look_times("j") == [0, 2, 6, 14, 22, 30, 38, 46, 54, 62]
    # Each look goes to the budget with the time it was due as its priority.
    assert [priority for _, _, priority, _ in world.looks] == world.look_times("j")
    assert outcomes["j"].ok
    assert outcomes["j"].polls == 10


async def test_many_callers_on_one_job_share_each_look() -> None:
    clock = FakeClock()
    world = World(clock, {"j": 30.0})
    hub = _hub(world)
    callers = [asyncio.ensure_future(_wait_one(hub, "j")) for _ in range(50)]
    results = await asyncio.gather(*callers)
    await hub.close()
    assert all(outcome.ok for outcome in results)
    times = world.look_times("j")
    assert len(times) == len(set(times)), "one look at a time, whoever waits"
    assert len(times) <= 8


async def _wait_one(hub: Hub, job_id: str) -> Outcome:
    async with contextlib.aclosing(wait_many(hub, [job_id], EXACT)) as waits:
        async for outcome in waits:
            return outcome
    raise AssertionError("no outcome")


async def test_looks_in_flight_stay_within_max_polls_and_go_earliest_due_first() -> None:
    clock = FakeClock()
    ids = [f"j{n}" for n in range(12)]
    world = World(clock, dict.fromkeys(ids, 5.0), latency=1.0)
    outcomes = await _wait(_hub(world, max_polls=3), ids)
    assert all(o.ok for o in outcomes.values())
    assert world.peak[None] == 3
    priorities = [priority for _, _, priority, _ in world.looks]
    starts = [at for at, _, _, _ in world.looks]
    # A look that had to wait for room is sent later than it was due, never before an
    # earlier-due one that waited too.
    waited = [(p, s) for p, s in zip(priorities, starts, strict=True) if s > p]
    assert waited, "some looks waited for room"
    assert [p for p, _ in waited] == sorted(p for p, _ in waited)


async def test_a_calls_own_gate_bounds_only_its_own_jobs() -> None:
    clock = FakeClock()
    narrow = [f"a{n}" for n in range(5)]
    wide = [f"b{n}" for n in range(5)]
    world = World(clock, dict.fromkeys(narrow + wide, 6.0), latency=1.0)
    hub = _hub(world, max_polls=10)
    gate = Gate(RequestBudget.create(1, math.inf, clock.monotonic()), clock)
    first = asyncio.ensure_future(_collect(hub, narrow, gate))
    second = asyncio.ensure_future(_collect(hub, wide, None))
    done = {**await first, **await second}
    await hub.close()
    assert all(o.ok for o in done.values())
    assert world.peak[gate] == 1  # the narrow call's cap
    assert world.peak[None] == 5  # not held back by it
    assert all(g is gate for _, job_id, _, g in world.looks if job_id in narrow)


async def _collect(hub: Hub, ids: list[str], gate: Gate | None) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    async with contextlib.aclosing(wait_many(hub, ids, EXACT, call_gate=gate)) as waits:
        async for outcome in waits:
            found[outcome.job_id] = outcome
    return found


async def test_failing_looks_back_off_and_the_deadline_ends_the_wait_with_the_error() -> None:
    clock = FakeClock()
    world = World(clock, {"j": math.inf})
    world.fail = lambda job_id, n: ServerError(503, "WKS.0503", "busy")
    policy = PollPolicy(initial_delay=2, jitter=0, timeout=30)
    outcomes = await _wait(_hub(world), ["j"], policy)
    gaps = [b - a for a, b in zip(world.look_times("j"), world.look_times("j")[1:], strict=False)]
    # Doubling from the retry policy's 0.5 s, three quarters of each step (drawn at 0.5).
    assert gaps[:5] == pytest.approx([0.375, 0.75, 1.5, 3, 6])
    assert max(gaps) <= 8
    error = outcomes["j"].error
    assert isinstance(error, ServerError)
    assert error.failing_for == pytest.approx(30)


async def test_a_new_job_is_looked_at_again_within_its_grace_and_let_go_after() -> None:
    clock = FakeClock()
    world = World(clock, {"new": 20.0, "never": math.inf})
    missing = JobNotFound(404, "WKS.00081104", "The job does not exist.")
    world.fail = lambda job_id, n: missing if job_id == "never" or n <= 2 else None
    policy = PollPolicy(initial_delay=2, jitter=0, not_found_grace=10, timeout=600)
    outcomes = await _wait(_hub(world), ["new", "never"], policy)
    assert outcomes["new"].ok
    assert isinstance(outcomes["never"].error, JobNotFound)
    assert world.look_times("never")[-1] >= 10


async def test_a_refused_credential_ends_every_wait_at_once() -> None:
    clock = FakeClock()
    world = World(clock, {"a": math.inf, "b": math.inf})
    refused = AuthenticationError(401, "APIGW.0301", "Incorrect IAM authentication information")
    world.fail = lambda job_id, n: refused if job_id == "a" else None
    outcomes = await _wait(_hub(world), ["a", "b"])
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes.values())
    assert len(world.looks) <= 3


async def test_another_process_looking_holds_this_ones_look_back_a_growing_while() -> None:
    clock = FakeClock()
    answers = iter([0.25, 0.25])

    async def poll(job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        looks.append(clock.monotonic())
        retry_in = next(answers, 0.0)
        if retry_in:
            return LookResult((), look.mark, own=False, retry_in=retry_in)
        job = ImageJob(id=job_id, status=JobStatus.SUCCESS)
        return LookResult(((job, clock.monotonic()),), look.mark)

    looks: list[float] = []
    hub = Hub(poll, clock, RetryPolicy(), max_polls=4, random=lambda: 0.5)
    outcomes = await _wait(hub, ["j"])
    assert outcomes["j"].ok
    assert looks == [0, 0.25, 0.75]  # 0.25 s, then twice that: the other's answer is near


async def test_many_jobs_are_swept_and_each_fetched_once_when_it_left_its_list() -> None:
    clock = FakeClock()
    ids = [f"{n:03d}" for n in range(200)]
    world = World(clock, {job_id: 30.0 + n for n, job_id in enumerate(ids)})
    hub = _hub(world, list_page=world.list_page, rate=lambda now: 5.0, max_polls=8)
    outcomes = await _wait(hub, ids, PollPolicy(timeout=3600))
    assert len(outcomes) == 200
    assert all(o.ok for o in outcomes.values())
    assert world.pages, "the lists stood in for the GETs"
    assert len(world.looks) <= 1.2 * len(ids)
    # No GET of a job still running: each one answers a list that no longer shows it.
    assert all(at >= world.ends[job_id] for at, job_id, _, _ in world.looks)
    # Each end seen within a few sweeps' gap of it.
    assert max(max(world.look_times(j)) - world.ends[j] for j in ids) <= 10
    # A sweep's pages go to the budget with the sweep's start as their priority.
    assert all(priority <= at for at, _, priority in world.pages)


async def test_pages_another_process_sent_cost_nothing_and_the_next_sweep_follows_them() -> None:
    async def sweep_starts(shared_age: float | None, sharers: int) -> list[float]:
        clock = FakeClock()
        ids = [f"{n:03d}" for n in range(200)]
        world = World(clock, dict.fromkeys(ids, 40.0))
        world.shared_age = shared_age
        # At one request a second, a sweep comes no sooner than a third of it pays its pages.
        hub = _hub(
            world,
            list_page=world.list_page,
            rate=lambda now: 1.0,
            sharers=lambda: sharers,
            max_polls=8,
        )
        await _wait(hub, ids, PollPolicy(initial_delay=2, max_delay=8, timeout=3600))
        return sorted({priority for _, _, priority in world.pages})

    alone = await sweep_starts(None, 1)
    assert all(b - a >= 9 for a, b in itertools.pairwise(alone))
    # In a fleet of three, pages another process sent: once this one is seen to send none,
    # its budget is not what paces its sweeps, its policy is (up to 8 s).
    shared = await sweep_starts(0.0, 3)
    assert len(shared) > 2 * len(alone)
    assert all(b - a <= 8 for a, b in itertools.pairwise(shared[1:]))
    # And each sweep is planned from when its pages were answered, not from when it started.
    older = await sweep_starts(1.0, 3)
    assert older[: len(shared)] == pytest.approx([start - n for n, start in enumerate(shared)])


async def test_sweeps_fall_due_on_the_instants_the_fleet_aligns_them_to() -> None:
    clock = FakeClock()
    ids = [f"{n:03d}" for n in range(200)]
    world = World(clock, dict.fromkeys(ids, 40.0))
    world.shared_age = 0.0
    hub = _hub(
        world,
        list_page=world.list_page,
        rate=lambda now: 100.0,
        sharers=lambda: 3,
        align=lambda when, period: math.ceil(when / (2.5 * period)) * 2.5 * period,
        max_polls=8,
    )
    await _wait(hub, ids, PollPolicy(initial_delay=2, max_delay=8, timeout=3600))
    starts = sorted({priority for _, _, priority in world.pages})
    assert len(starts) > 3
    assert all(start % 5 == 0 for start in starts)


async def test_news_of_an_end_that_comes_while_a_look_is_out_is_taken_up_when_it_is_back() -> None:
    # The look out was sent before the end: its answer (RUNNING) must not pass for the
    # look the news asks for, or the end waits for the next look, ten minutes on.
    clock = FakeClock()
    end = 600.9  # after the second look is sent (600.8), before the news (601.0)
    looks: list[float] = []
    hub: Hub | None = None

    async def poll(job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        sent = clock.monotonic()
        looks.append(sent)
        status = JobStatus.SUCCESS if sent >= end else JobStatus.RUNNING
        if len(looks) == 2:
            await clock.sleep(0.2)
            assert hub is not None
            hub.news(job_id)  # another process kept the end meanwhile
        await clock.sleep(0.8)
        return LookResult(((ImageJob(id=job_id, status=status, job_type=TYPE), sent),), look.mark)

    hub = Hub(poll, clock, RetryPolicy(), max_polls=4, random=lambda: 0.5)
    slow = PollPolicy(initial_delay=600, max_delay=600, jitter=0, timeout=3600)
    outcomes = await _wait(hub, ["j"], slow)
    assert outcomes["j"].ok
    assert looks[:2] == pytest.approx([0, 600.8])
    assert looks[2] < 602  # at once when the look out came back (601.6), not 600 s on
