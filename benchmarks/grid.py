"""Scenario 12: one budget for every source of requests, across job counts, rates and policies.

The issue-27 grid, on virtual time through the real client and the fake gateway
(429 without ``Retry-After`` past its limit, a job list refused without
``job_type``): jobs of three types, WAITING a third of their life, then RUNNING,
then done (5% FAILED), their ends spread evenly over a window, among 2,000 old
finished jobs; the gateway's limit is the client's rate; ``wait_many(ids,
policy=PollPolicy(initial_delay=0.5, max_delay=M))``. Every request is counted
under why it was sent (:class:`imagejobs.RequestCounter`).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from typing import Any

from benchmarks.sweeps import TYPES, tenant
from imagejobs import PollPolicy, RequestCounter
from imagejobs.core.codec import MAX_PAGE_SIZE
from imagejobs.planning.allocation import SAFETY_SHARE
from imagejobs.testing import FakeClock, FakeWorkspace

OLD = 2000
CELLS = (
    (400, 60.0, 10.0),
    (1000, 120.0, 20.0),
    (2000, 600.0, 10.0),
)
"""Jobs, the window their ends are spread over (s), and the rate (requests a second)."""
POLICIES = {400: (0.5, 2.0, 10.0, None), 1000: (1.0,), 2000: (0.5, 2.0, 10.0, None)}
"""The ``max_delay`` values each cell is run with (None: the default policy)."""


def bound(jobs: int, seconds: float, rate: float) -> dict[str, float]:
    """The back-of-envelope bound: a sweep as often as the budget left by the ends allows.

    A sweep pages every active list (a WAITING and a RUNNING list a type, of
    ``jobs / 100`` pages together at first); each end costs its GET. With the
    ends at ``jobs / seconds`` a second, the pages may take what is left of the
    rate but the safety GETs' share: the sweep period, and lateness near it.
    """
    pages = 2 * len(TYPES) + math.ceil(jobs / MAX_PAGE_SIZE)
    left = rate * (1 - SAFETY_SHARE) - jobs / seconds
    period = pages / left if left > 0 else math.inf
    # Pages shrink as jobs end: on average half of the first sweep's, over the window.
    requests = 1 + (seconds / period) * (pages / 2) / jobs if period < math.inf else math.inf
    return {"period_s": period, "late_s": period + 1 / rate, "requests_per_job": requests}


async def _run(
    jobs: int, seconds: float, rate: float, max_delay: float | None, seed: int, *, sweeps: bool
) -> dict[str, Any]:
    clock = FakeClock()
    counter = RequestCounter()
    async with FakeWorkspace(clock=clock.monotonic, rate_limit=rate, require_job_type=True) as fake:
        ends = tenant(fake, jobs, OLD, seconds, seed)
        policy = (
            PollPolicy()
            if max_delay is None
            else PollPolicy(initial_delay=0.5, max_delay=max_delay)
        )
        options: dict[str, Any] = {"sweeps": None if sweeps else False}
        async with fake.client(clock=clock, rate=rate, hooks=[counter], **options) as client:
            late = []
            async for outcome in client.wait_many(list(ends), policy):
                late.append(clock.monotonic() - ends[outcome.job_id][0])
        requests = len(fake.requests)
    late.sort()
    return {
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
        "requests_per_job": requests / jobs,
        "by_source": {source: count / jobs for source, count in counter.by_source.items()},
        "throttled_share": sum(1 for r in fake.requests if r.status == 429) / max(requests, 1),
    }


def simulate(
    jobs: int,
    seconds: float,
    rate: float,
    max_delay: float | None,
    seed: int,
    *,
    sweeps: bool = True,
) -> dict[str, Any]:
    """Run one cell of the grid with one seed; return lateness and requests by source."""
    return asyncio.run(_run(jobs, seconds, rate, max_delay, seed, sweeps=sweeps))
