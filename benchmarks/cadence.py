"""Scenario 9: when to poll. Requests per job and lateness, our schedules against three anchors.

In-process, on virtual time (FakeClock): every job is waited on through the
real client and the fake server, each job on its own (no budget in the way,
no sweeps), so the figures are the schedule's alone and exact.

The anchors are the loops people write or get from other tools:
- fixed 15 s: a botocore-style waiter (poll, sleep 15 s, poll...);
- terraform's huaweicloud image-server waiter: 10 s, then every 30 s;
- exponential 1..60 s with full jitter (google-api-core-style retry polling).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from imagejobs import Client, DurationHistory
from imagejobs.testing import FakeClock, FakeWorkspace

STEPS = 40  # a timeline's resolution: its stages end at multiples of 1/40 of the whole

Job = tuple[str, str, float, list[float], float]  # id, type, seconds, stage fractions, lead


def _snapshot(
    job_id: str, job_type: str, begin: str, stages: list[str], done: bool
) -> dict[str, Any]:
    subs = [
        {"id": f"{job_id}{n}", "job_type": job_type, "status": status}
        for n, status in enumerate(stages)
    ]
    return {
        "id": job_id,
        "job_type": job_type,
        "status": "SUCCESS" if done else "RUNNING",
        "begin_time": begin,
        "sub_jobs_total": len(subs),
        "sub_jobs": subs,
    }


def script(fake: FakeWorkspace, clock: FakeClock, job: Job) -> None:
    """Script a job of ``seconds`` whose stages end at ``fractions``, begun ``lead`` s ago."""
    job_id, job_type, seconds, fractions, lead = job
    begin = (clock.now() - timedelta(seconds=lead)).isoformat()
    ends = [max(1, min(STEPS - 1, round(f * STEPS))) for f in fractions]
    steps = []
    for step in range(STEPS + 1):
        stages = ["SUCCESS" if step >= end else "RUNNING" for end in ends] + [
            "SUCCESS" if step >= STEPS else "RUNNING"
        ]
        steps.append(_snapshot(job_id, job_type, begin, stages, step >= STEPS))
    fake.add_job(steps, every=seconds / STEPS, start=-lead)


Waiter = Callable[[Client, FakeClock, str], Awaitable[None]]


async def _fixed(client: Client, clock: FakeClock, job_id: str) -> None:
    while not (await client.get_job(job_id)).is_terminal:
        await clock.sleep(15)


async def _terraform(client: Client, clock: FakeClock, job_id: str) -> None:
    await clock.sleep(10)
    while not (await client.get_job(job_id)).is_terminal:
        await clock.sleep(30)


def _exponential(draw: random.Random) -> Waiter:
    async def wait(client: Client, clock: FakeClock, job_id: str) -> None:
        cap = 1.0
        while not (await client.get_job(job_id)).is_terminal:
            await clock.sleep(draw.uniform(0, cap))
            cap = min(60.0, cap * 2)

    return wait


async def _ours(client: Client, clock: FakeClock, job_id: str) -> None:
    await client.wait(job_id, raise_on_failure=False)


ANCHORS = ("fixed 15 s", "terraform 10 s, then 30 s", "exponential 1..60 s, full jitter")


def _waiter(variant: str, draw: random.Random) -> Waiter:
    return {
        "fixed 15 s": _fixed,
        "terraform 10 s, then 30 s": _terraform,
        "exponential 1..60 s, full jitter": _exponential(draw),
    }.get(variant, _ours)


async def _run(
    variant: str, jobs: list[Job], history: DurationHistory | None, seed: int
) -> dict[str, Any]:
    clock = FakeClock()
    random.seed(seed)  # the hub's jitter draws: the same run again
    draw = random.Random(seed)  # noqa: S311 - a repeatable run, not a secret
    async with FakeWorkspace(clock=clock.monotonic, now=clock.now) as fake:
        for job in jobs:
            script(fake, clock, job)
        late: list[float] = []
        waiter = _waiter(variant, draw)
        # At most 64 at once: more connections than the listening backlog wait out a
        # real SYN retry that virtual time cannot see.
        options: dict[str, Any] = {"clock": clock, "max_in_flight": 64, "sweeps": False}
        if history is not None:
            options["history"] = history
        async with fake.client(**options) as client:

            async def one(job: Job) -> None:
                job_id, _, seconds, _, lead = job
                await waiter(client, clock, job_id)
                late.append(clock.monotonic() - (seconds - lead))

            await asyncio.gather(*(one(job) for job in jobs))
        requests = len(fake.requests)
    late.sort()
    return {
        "requests_per_job": requests / len(jobs),
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
    }


def ten_minute_jobs(count: int, seed: int) -> list[Job]:
    """Jobs of exactly ten minutes, three stages, waited on from 0 to 30 s after they began."""
    draw = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    return [
        (f"3{n:017d}", "CREATE_SERVER_IMAGE", 600.0, [0.25, 0.5, 0.75], draw.uniform(0, 30))
        for n in range(count)
    ]


def mixed_jobs(count: int, seed: int) -> list[Job]:
    """Log-normal durations between 1 and 40 minutes (median 6.3), stages at varying fractions."""
    draw = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    jobs = []
    for n in range(count):
        seconds = min(2400.0, max(60.0, draw.lognormvariate(math.log(380), 0.9)))
        fractions = sorted(draw.uniform(0.1, 0.9) for _ in range(3))
        jobs.append((f"4{n:017d}", "CREATE_SERVER", seconds, fractions, draw.uniform(0, 30)))
    return jobs


MEDIANS = {
    "CREATE_SERVER": 150.0,
    "CREATE_SERVER_IMAGE": 300.0,
    "DELETE_SERVER": 480.0,
    "BUILD_IMAGE": 720.0,
}
SIGMA = 0.2


def learned_jobs(count: int, seed: int) -> tuple[list[Job], DurationHistory]:
    """Jobs of four types (medians 2.5 to 12 min, sigma 0.2), and 30 past durations of each."""
    draw = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    history = DurationHistory()
    for job_type, median in MEDIANS.items():
        for _ in range(30):
            history.record(job_type, draw.lognormvariate(math.log(median), SIGMA))
    jobs = []
    types = list(MEDIANS)
    for n in range(count):
        job_type = types[n % len(types)]
        seconds = draw.lognormvariate(math.log(MEDIANS[job_type]), SIGMA)
        fractions = sorted(draw.uniform(0.15, 0.85) for _ in range(3))
        jobs.append((f"5{n:017d}", job_type, seconds, fractions, draw.uniform(0, 30)))
    return jobs, history


def simulate(workload: str, variant: str, count: int, seed: int) -> dict[str, Any]:
    """Wait on a workload's jobs with one variant; return requests per job and lateness."""
    history = None
    if workload == "ten-minute":
        jobs = ten_minute_jobs(count, seed)
    elif workload == "mixed":
        jobs = mixed_jobs(count, seed)
    else:
        jobs, learned = learned_jobs(count, seed)
        history = learned if variant == "imagejobs + history" else None
    return asyncio.run(_run(variant, jobs, history, seed))
