"""Scenario 8: hundreds of jobs behind a gateway of 10 requests a second, swept or polled.

Runs in-process on virtual time (FakeClock): a minute of jobs takes seconds,
and every figure is exact, not a sample of a busy machine's timing. The fake
throttles like the gateway (429 ``APIGW.0308``, no ``Retry-After``) and, like
the English reference says the real one does, refuses a job list without
``job_type``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
from collections.abc import AsyncIterator
from typing import Any

from imagejobs import Client
from imagejobs.testing import FakeClock, FakeWorkspace

TYPES = ("CREATE_SERVER", "CREATE_SERVER_IMAGE", "DELETE_SERVER")
GATEWAY_LIMIT = 10  # requests a second
VARIANTS = {"sweeps": None, "per-job GETs": False}  # Client(sweeps=...)


def job_snapshot(job_id: str, job_type: str, status: str, error: str = "") -> dict[str, Any]:
    """Return a job of one sub-job in wire form (its error code when it FAILED)."""
    ended = status in ("SUCCESS", "FAILED")
    sub = {
        "id": f"{job_id}1",
        "job_type": job_type,
        "status": status if ended else "RUNNING",
        "job_execute_info": {"error_code": error, "error_message": error and "quota exceeded"},
    }
    return {
        "id": job_id,
        "job_type": job_type,
        "status": status,
        "sub_jobs_total": 1,
        "sub_jobs": [sub],
    }


def tenant(fake: FakeWorkspace, jobs: int, old: int, seconds: float, seed: int) -> dict[str, Any]:
    """Script ``jobs`` jobs of three types ending over ``seconds`` (5% FAILED), and ``old`` done.

    Each job waits a third of its life, runs, and ends; returns each job's end
    time (on the fake's clock) and final status.
    """
    draw = random.Random(seed)  # noqa: S311 - a repeatable tenant, not a secret
    for n in range(old):
        fake.add_job(
            [job_snapshot(f"9{n:017d}", TYPES[n % 3], "FAILED" if n % 7 == 0 else "SUCCESS")]
        )
    ends: dict[str, Any] = {}
    for n in range(jobs):
        job_id, job_type = f"7{n:017d}", TYPES[n % 3]
        end = draw.uniform(5.0, seconds)
        final = "FAILED" if n % 20 == 0 else "SUCCESS"
        steps = [
            job_snapshot(job_id, job_type, "WAITING"),
            job_snapshot(job_id, job_type, "RUNNING"),
            job_snapshot(job_id, job_type, "RUNNING"),
            job_snapshot(job_id, job_type, final, "WKS.0042" if final == "FAILED" else ""),
        ]
        fake.add_job(steps, every=end / 3, start=0.0)
        ends[job_id] = (end, final)
    return ends


@contextlib.asynccontextmanager
async def _tenant(
    variant: str, jobs: int, old: int, seconds: float, seed: int
) -> AsyncIterator[tuple[FakeClock, FakeWorkspace, Client, dict[str, Any]]]:
    """Yield a clock, the throttling fake with the tenant scripted, a client, and the ends."""
    clock = FakeClock()
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=GATEWAY_LIMIT, require_job_type=True
    ) as fake:
        ends = tenant(fake, jobs, old, seconds, seed)
        client = fake.client(clock=clock, rate=GATEWAY_LIMIT, sweeps=VARIANTS[variant])
        async with client:
            yield clock, fake, client, ends


async def _run(variant: str, jobs: int, old: int, seconds: float, seed: int) -> dict[str, Any]:
    async with _tenant(variant, jobs, old, seconds, seed) as (clock, fake, client, ends):
        late: list[float] = []
        right = 0
        async for outcome in client.wait_many(list(ends)):
            end, final = ends[outcome.job_id]
            late.append(clock.monotonic() - end)
            job = outcome.job
            codes = [] if job is None else [s.job_execute_info for s in job.failed_sub_jobs]
            failed_right = final == "SUCCESS" or (
                len(codes) == 1 and codes[0] is not None and codes[0].error_code == "WKS.0042"
            )
            right += job is not None and job.status.value == final and failed_right
        requests = fake.requests
    late.sort()
    return {
        "right": right,
        "jobs": jobs,
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
        "requests": len(requests),
        "requests_per_job": len(requests) / jobs,
        "lists": sum(1 for r in requests if r.job_id is None),
        "throttled_share": sum(1 for r in requests if r.status == 429) / len(requests),
        "answered_400": sum(1 for r in requests if r.status == 400),
    }


def simulate(variant: str, jobs: int, old: int, seconds: float, seed: int) -> dict[str, Any]:
    """Wait on the tenant's jobs with ``Client(rate=10)`` and ``wait_many``; return the figures."""
    return asyncio.run(_run(variant, jobs, old, seconds, seed))


async def _watch(variant: str, jobs: int, old: int, seconds: float, seed: int) -> dict[str, Any]:
    async with _tenant(variant, jobs, old, seconds, seed) as (clock, fake, client, ends):
        late: list[float] = []
        transitions = 0
        async for transition in client.watch_many(list(ends)):
            transitions += 1
            if transition.is_terminal:
                late.append(clock.monotonic() - ends[transition.job_id][0])
        requests = fake.requests
    late.sort()
    return {
        "transitions": transitions,
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
        "requests_per_job": len(requests) / jobs,
        "lists": sum(1 for r in requests if r.job_id is None),
    }


def simulate_watch(variant: str, jobs: int, old: int, seconds: float, seed: int) -> dict[str, Any]:
    """Watch every transition of the tenant's jobs with ``watch_many``; return the figures."""
    return asyncio.run(_watch(variant, jobs, old, seconds, seed))
