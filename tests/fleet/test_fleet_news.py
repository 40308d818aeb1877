"""A job's end one process of a fleet saw reaches the others at once.

On a real redis-server; each client has its own connection and member ID, as a
separate process would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wire_data import snap

from imagejobs import PollPolicy, RequestCounter
from imagejobs.testing import FakeWorkspace

SLOW = PollPolicy(initial_delay=600, max_delay=600, timeout=3600)
QUICK = PollPolicy(initial_delay=0.05, max_delay=0.05, timeout=60)


async def test_an_end_another_process_kept_is_taken_at_once_without_a_request(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job(
            [snap("700000000000000001", "RUNNING"), snap("700000000000000001", "SUCCESS")],
            every=0.3,
        )
        frugal = RequestCounter()
        async with (
            fake.client(redis_url=redis_url, sweeps=False, hooks=[frugal]) as slow,
            fake.client(redis_url=redis_url, sweeps=False) as quick,
        ):
            # The slow one looks once (RUNNING), then not for ten minutes.
            slow_wait = asyncio.ensure_future(slow.wait(job_id, SLOW))
            while frugal.total == 0:
                await asyncio.sleep(0.01)
            ended = await quick.wait(job_id, QUICK)
            # Well before its own next look: the fleet's news of the end, and its snapshot.
            taken = await asyncio.wait_for(slow_wait, 30)
    assert ended.status.value == taken.status.value == "SUCCESS"
    assert frugal.by_source == {"first": 1}  # the end cost the slow one no request
