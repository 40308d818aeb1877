"""The benchmark's fake server, in a process of its own.

It prints its URL, then obeys lines on stdin: ``jobs PREFIX COUNT POLLS`` scripts
COUNT jobs named PREFIX-N that reach SUCCESS on their POLLS-th poll;
``timed PREFIX COUNT SECONDS`` scripts COUNT jobs that go through three sub-job
stages and reach SUCCESS SECONDS after their first poll, however often they are
polled; ``latency SECONDS`` delays every answer from then on; ``reset`` empties the
request log; ``stats PREFIX``
prints, as JSON, the requests for those jobs, the most started in any one
second, and the most served at once. Besides, it serves the reference job, a big
job, and a job whose every answer differs from the one before (see
:func:`benchmarks.bodies.changing_job`).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
from typing import Any

from benchmarks.bodies import REFERENCE, big_job, changing_job
from imagejobs.testing import FakeWorkspace


def staged_job(job_id: str) -> list[dict[str, Any]]:
    """Return a timeline of four steps: three sub-job stages, then SUCCESS."""

    def step(status: str, *subs: str) -> dict[str, Any]:
        sub_jobs = [
            {"id": f"{job_id}-{n}", "status": sub, "job_type": "BUILD_IMAGE"}
            for n, sub in enumerate(subs)
        ]
        return {"id": job_id, "status": status, "sub_jobs": sub_jobs}

    return [
        step("RUNNING", "RUNNING"),
        step("RUNNING", "SUCCESS", "RUNNING"),
        step("RUNNING", "SUCCESS", "SUCCESS", "RUNNING"),
        step("SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS"),
    ]


# More steps than one run polls the changing job: it never sticks at its last.
_CHANGING_STEPS = 30_000


def _stats(fake: FakeWorkspace, prefix: str) -> dict[str, Any]:
    times = sorted(r.at for r in fake.requests if (r.job_id or "").startswith(prefix))
    busiest = max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)
    return {
        "requests": len(times),
        "max_per_second": busiest,
        "peak_in_flight": fake.peak_in_flight,
    }


async def serve() -> None:
    async with FakeWorkspace() as fake:
        fake.add_job([REFERENCE])
        fake.add_job([big_job()])
        fake.add_job(changing_job(_CHANGING_STEPS))
        print(fake.url, flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().split():
            if line[0] == "jobs":
                prefix, count, polls = line[1], int(line[2]), int(line[3])
                running = {"status": "RUNNING", "sub_jobs": []}
                for n in range(count):
                    job_id = f"{prefix}-{n}"
                    steps = [{**running, "id": job_id}] * (polls - 1)
                    fake.add_job([*steps, {"id": job_id, "status": "SUCCESS", "sub_jobs": []}])
                fake.peak_in_flight = 0
                print("ok", flush=True)
            elif line[0] == "timed":
                prefix, count, seconds = line[1], int(line[2]), float(line[3])
                for n in range(count):
                    job_id = f"{prefix}-{n}"
                    fake.add_job(staged_job(job_id), every=seconds / 3)
                fake.peak_in_flight = 0
                print("ok", flush=True)
            elif line[0] == "latency":
                fake.latency = float(line[1])
                print("ok", flush=True)
            elif line[0] == "reset":
                # A log that grows through a scenario makes every later request dearer
                # to serve, which skews the client figures of whoever runs last.
                fake.requests.clear()
                fake.peak_in_flight = 0
                fake.add_job(changing_job(_CHANGING_STEPS))  # from its first step again
                print("ok", flush=True)
            elif line[0] == "stats":
                print(json.dumps(_stats(fake, line[1])), flush=True)


if __name__ == "__main__":
    asyncio.run(serve())
