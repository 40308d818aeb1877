"""The client's resident memory before the waits and after ``close()``, the gateway apart.

Scenario 13 (:mod:`benchmarks.scale`) runs the gateway in the client's process,
on virtual time; its answers are made among the client's objects. Here the
tenant's gateway (:class:`benchmarks.scale.TenantGateway`, on real time: a
job's end is ``seconds`` after the gateway started at most) runs in a process
of its own, and the client's process holds only the client and its caller, as
a service's would. One ``wait_many`` on every job, in a function of its own
that keeps nothing but a count; then the client closes, the collector runs,
and the process's resident memory is read again, with the 1 MB arenas CPython
keeps its small objects in (what stays mapped after ``close()``: see the
scale notes in ``benchmarks/README.md``).

``python -m benchmarks.rss '{"jobs": 10000, "seconds": 120, "rate": 100}'``
prints one line of JSON (``"first_end"``: when the first jobs may end, 5 s by
default, as in scenario 13); ``python -m benchmarks.rss serve ...`` is the
gateway's process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.scale import TenantGateway, in_a_process_of_its_own, rss_mb
from imagejobs import Client, PollPolicy


def arenas() -> int | None:
    """Return how many 1 MB arenas CPython's small-object allocator has mapped now."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None
    # It writes to the C library's stderr, not sys.stderr: read it from a file.
    with tempfile.TemporaryFile("w+") as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        for line in out:
            if "arenas allocated current" in line:
                return int(line.split()[-1].replace(",", ""))
    return None


async def serve(jobs: int, seconds: float, rate: float, first_end: float) -> None:
    """Serve the tenant on real time until a line comes on stdin."""
    started = time.monotonic()
    gateway = TenantGateway(
        clock=lambda: time.monotonic() - started, rate_limit=rate, require_job_type=True
    )
    async with gateway as fake:
        fake.script(jobs, seconds, seed=1, first_end=first_end)
        print(json.dumps({"url": fake.url, "project_id": fake.project_id}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _waits(client: Client, job_ids: list[str], policy: PollPolicy) -> int:
    """Wait on every job; return how many ended as the tenant scripts them."""
    right = 0
    async for outcome in client.wait_many(job_ids, policy):
        final = "FAILED" if int(outcome.job_id[1:]) % 20 == 0 else "SUCCESS"
        right += outcome.job is not None and outcome.job.status.value == final
    return right


async def _client(where: dict[str, str], jobs: int, seconds: float, rate: float) -> dict[str, Any]:
    job_ids = [f"7{n:017d}" for n in range(jobs)]
    client = Client(project_id=where["project_id"], endpoint=where["url"], rate=rate)
    async with client:
        gc.collect()
        before, arenas_before = rss_mb(), arenas()
        blocks_before = sys.getallocatedblocks()
        right = await _waits(client, job_ids, PollPolicy(timeout=2 * seconds + 3600))
        arenas_at_end = arenas()
    gc.collect()
    after = rss_mb()
    return {
        "jobs": jobs,
        "seconds": seconds,
        "rate": rate,
        "right": right,
        "rss_before_mb": before,
        "rss_after_close_mb": after,
        "rss_change": after / before - 1,
        "arenas_before": arenas_before,
        "arenas_as_the_waits_end": arenas_at_end,
        "arenas_after_close": arenas(),
        "blocks_before": blocks_before,
        "blocks_after_close": sys.getallocatedblocks(),
    }


def _run(jobs: int, seconds: float, rate: float, first_end: float) -> dict[str, Any]:
    serve = [str(jobs), str(seconds), str(rate), str(first_end)]
    gateway = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.rss", "serve", *serve],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gateway.stdin is not None
    assert gateway.stdout is not None
    try:
        where = json.loads(gateway.stdout.readline())
        return asyncio.run(_client(where, jobs, seconds, rate))
    finally:
        gateway.stdin.write("\n")
        gateway.stdin.close()
        gateway.wait()


def measure(jobs: int, seconds: float, rate: float, first_end: float = 5.0) -> dict[str, Any]:
    """Run one wait in a process of its own, the gateway in another; return its figures.

    The jobs end from ``first_end`` to ``seconds`` after the gateway starts.
    """
    params = {"jobs": jobs, "seconds": seconds, "rate": rate, "first_end": first_end}
    return in_a_process_of_its_own("benchmarks.rss", params)


def main(argv: list[str]) -> int:
    """Measure (``PARAMS``, JSON), or serve the gateway (``serve JOBS SECONDS RATE FIRST_END``)."""
    if argv[:1] == ["serve"]:
        asyncio.run(serve(int(argv[1]), float(argv[2]), float(argv[3]), float(argv[4])))
        return 0
    params = json.loads(argv[0])
    first_end = params.get("first_end", 5.0)
    print(json.dumps(_run(params["jobs"], params["seconds"], params["rate"], first_end)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
