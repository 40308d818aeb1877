"""Scenario 11: many callers on one job, the README's "In a service" pattern.

N concurrent ``client.wait()`` calls on one job, on one client, against the fake
server in the same process, on the real clock. The job goes through three
sub-job stages, one a poll, then SUCCESS: every answer is news for every caller.

Two figures: how long the N calls take to subscribe (the one turn of the event
loop in which each runs up to its first wait), and the longest the event loop
stalls afterwards, while the job's answers are told to the N callers and its end
ends them all, as a probe that sleeps a millisecond at a time sees it: what
any other request of the service would wait meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.server import staged_job
from imagejobs import DEFAULT_RATE, PollPolicy
from imagejobs.testing import FakeWorkspace

JOB_ID = "callers-job"
WARM_UP_ID = "callers-warm-up"
TICK = 0.001
"""The loop-lag probe's sleep, seconds: a stall is how much later than that it wakes."""
POLICY = PollPolicy(initial_delay=0.05, max_delay=0.2, jitter=0)


async def _probe(stalls: list[float]) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        stalls.append(time.perf_counter() - before - TICK)


async def _run(callers: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    async with FakeWorkspace() as fake:
        fake.add_job(staged_job(JOB_ID))  # a step a poll
        fake.add_job([{"id": WARM_UP_ID, "status": "SUCCESS", "sub_jobs": []}])
        async with fake.client(rate=DEFAULT_RATE) as client:
            # The first request's connection and first imports are no caller's cost.
            await client.get_job(WARM_UP_ID)
            started = time.perf_counter()
            waits = asyncio.gather(*(client.wait(JOB_ID, POLICY) for _ in range(callers)))
            # Scheduled after every call's first step: it runs once all have subscribed.
            subscribed = loop.create_future()
            loop.call_soon(lambda: subscribed.set_result(time.perf_counter()))
            subscribe = await subscribed - started
            stalls: list[float] = []
            probe = loop.create_task(_probe(stalls))
            jobs = await waits
            await asyncio.sleep(10 * TICK)  # the probe sees the stall that ended the waits
            probe.cancel()
    return {
        "callers": callers,
        "succeeded": sum(job.status.value == "SUCCESS" for job in jobs),
        "requests": len(fake.requests_for(JOB_ID)),
        "subscribe": subscribe,
        "longest_stall": max(stalls, default=0.0),
    }


def measure(callers: int) -> dict[str, Any]:
    """Wait on one job with ``callers`` concurrent calls; return what it cost."""
    return asyncio.run(_run(callers))
