"""The hub reads a job's age on the service's clock: a skewed local clock plans no look late.

Scripted looks on virtual time, no HTTP: the job's ``begin_time`` is on the service's
clock (the FakeClock's), this machine's wall clock is skewed against it, and the offset
is what the requester would have read from one answer's ``Date``.
"""

from __future__ import annotations

import contextlib
import math
import random
from datetime import timedelta

import pytest
from skewed_clock import SkewedClock

from imagejobs import DurationHistory, ImageJob, JobStatus, JobType, PollPolicy, RetryPolicy
from imagejobs.planning.skew import ClockOffset
from imagejobs.scheduling.hub import Hub
from imagejobs.scheduling.looks import Look, LookResult
from imagejobs.scheduling.waiter import wait_many
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate

TYPE = JobType.CREATE_SERVER
AGE = 280.0  # the job's age when the wait joins it
ENDS_AT = 20.0  # seconds into the wait: it takes 300 s, as its type usually does


def _durations_around(median: float) -> list[float]:
    rng = random.Random(3)  # noqa: S311 - reproducible samples
    return [rng.lognormvariate(math.log(median), 0.15) for _ in range(30)]


async def _seen_late(skew: float) -> float:
    """Wait on the job with this machine's clock ``skew`` s off; return how late its end is seen."""
    service = FakeClock()
    local = SkewedClock(service, skew)
    began = service.now() - timedelta(seconds=AGE)
    looks: list[float] = []

    async def poll(job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        looks.append(service.monotonic())
        done = service.monotonic() >= ENDS_AT
        status = JobStatus.SUCCESS if done else JobStatus.RUNNING
        job = ImageJob(id=job_id, status=status, job_type=TYPE, begin_time=began)
        return LookResult(((job, service.monotonic()),), look.mark)

    offset = ClockOffset()
    offset.read(local.monotonic(), service.now().replace(microsecond=0), local.now())
    history = DurationHistory({TYPE.value: _durations_around(300)})
    hub = Hub(
        poll,
        local,
        RetryPolicy(),
        max_polls=4,
        random=lambda: 0.5,
        history=history,
        clock_offset=offset,
    )
    try:
        async with contextlib.aclosing(wait_many(hub, ["1"], PollPolicy(jitter=0))) as waits:
            outcomes = [outcome async for outcome in waits]
    finally:
        await hub.close()
    assert [outcome.kind for outcome in outcomes] == ["success"]
    return looks[-1] - ENDS_AT


async def test_with_correct_clocks_the_history_sees_the_end_within_seconds() -> None:
    assert 0 <= await _seen_late(0.0) <= 5


@pytest.mark.parametrize("skew", [-300.0, 300.0, -840.0, 840.0, -45.0, 45.0])
async def test_a_skewed_clock_sees_the_end_as_soon_as_a_correct_one(skew: float) -> None:
    correct = await _seen_late(0.0)
    skewed = await _seen_late(skew)
    assert abs(skewed - correct) <= 2, (skew, skewed, correct)
