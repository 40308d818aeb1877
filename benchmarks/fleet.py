"""Scenario 10: a fleet of processes on one account, with and without Redis.

Real processes on real time: the fake gateway runs here, throttling like the
real one (429 ``APIGW.0308`` past its limit, no ``Retry-After``) and taking
``LATENCY`` to answer; each worker is ``python -m benchmarks.fleet worker``, a
``Client(max_in_flight=8, rate=20)`` that waits on the shared jobs and its own
with ``wait_many``, and prints what it saw as one JSON line.

``python -m benchmarks.fleet`` runs the scenario alone; ``python -m benchmarks``
runs it with the others. Both need ``redis-server`` (the Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.sweeps import TYPES, job_snapshot
from imagejobs import Client, PollPolicy
from imagejobs.testing import FAKE_PROJECT_ID, FakeWorkspace

GATEWAY_LIMIT = 20  # requests a second, for the whole account
IN_FLIGHT = 8
LATENCY = 0.2  # seconds the gateway takes to answer
ALONE = "one process, shared jobs only"
EVERY_JOB = "one process, every job"
NO_REDIS = "fleet, no Redis"
REDIS = "fleet, Redis"
DEFAULT_INITIAL_DELAY = PollPolicy().initial_delay


def script(
    fake: FakeWorkspace, ids: list[str], start: float, seconds: float, seed: int
) -> dict[str, Any]:
    """Script jobs that end between 10 s (or half ``seconds``) and ``seconds`` after ``start``.

    5% of them FAILED.
    """
    draw = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    ends = {}
    for n, job_id in enumerate(ids):
        job_type = TYPES[n % 3]
        end = draw.uniform(min(10.0, seconds / 2), seconds)
        final = "FAILED" if n % 20 == 0 else "SUCCESS"
        steps = [
            job_snapshot(job_id, job_type, "WAITING"),
            job_snapshot(job_id, job_type, "RUNNING"),
            job_snapshot(job_id, job_type, "RUNNING"),
            job_snapshot(job_id, job_type, final),
        ]
        fake.add_job(steps, every=end / 3, start=start)
        ends[job_id] = (start + end, final)
    return ends


# --- a worker process -----------------------------------------------------------------


async def _work(
    endpoint: str, redis_url: str | None, ids: list[str], policy: PollPolicy
) -> dict[str, Any]:
    client = Client(
        project_id=FAKE_PROJECT_ID,
        endpoint=endpoint,
        credentials=None,
        max_in_flight=IN_FLIGHT,
        rate=GATEWAY_LIMIT,
        redis_url=redis_url,
    )
    seen: dict[str, tuple[float, str]] = {}
    async with client:
        async for outcome in client.wait_many(ids, policy):
            status = "error" if outcome.job is None else outcome.job.status.value
            seen[outcome.job_id] = (time.monotonic(), status)
        fleet = client._fleet  # the benchmark counts Redis calls
        calls = 0 if fleet is None else fleet.calls
    return {"seen": seen, "redis_calls": calls}


def worker(argv: list[str]) -> None:
    endpoint, redis_url, ids_file, initial_delay = argv
    ids = Path(ids_file).read_text().split()
    policy = PollPolicy(initial_delay=float(initial_delay))
    result = asyncio.run(_work(endpoint, None if redis_url == "-" else redis_url, ids, policy))
    print(json.dumps(result))


# --- the scenario ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A throwaway ``redis-server`` on a free loopback port."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = _free_port()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                directory,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def _fleet(
    processes: int,
    shared: int,
    own: int,
    *,
    seconds: float,
    redis_url: str | None,
    seed: int,
    initial_delay: float,
) -> dict[str, Any]:
    """Run ``processes`` workers, each waiting on the ``shared`` jobs and ``own`` of its own."""
    async with FakeWorkspace(rate_limit=GATEWAY_LIMIT, latency=LATENCY) as fake:
        shared_ids = [f"5{n:017d}" for n in range(shared)]
        own_ids = [[f"6{p:03d}{n:014d}" for n in range(own)] for p in range(processes)]
        start = time.monotonic() + 1.0  # the workers start in about a second
        ends = script(fake, shared_ids + [i for ids in own_ids for i in ids], start, seconds, seed)
        with tempfile.TemporaryDirectory() as directory:
            workers = []
            for p in range(processes):
                ids_file = Path(directory) / f"ids{p}"
                ids_file.write_text("\n".join(shared_ids + own_ids[p]))
                workers.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-m",
                        "benchmarks.fleet",
                        "worker",
                        fake.url,
                        redis_url or "-",
                        str(ids_file),
                        str(initial_delay),
                        stdout=asyncio.subprocess.PIPE,
                    )
                )
            outputs = [await w.communicate() for w in workers]
        results = [json.loads(out) for out, _ in outputs]
        requests = list(fake.requests)
        peak = fake.peak_in_flight
    late, right = [], 0
    for result in results:
        for job_id, (at, status) in result["seen"].items():
            end, final = ends[job_id]
            late.append(max(0.0, at - end))
            right += status == final
    late.sort()
    times = sorted(r.at for r in requests)
    busiest = max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)
    shared_set = set(shared_ids)
    gets = [r for r in requests if r.job_id is not None]
    return {
        "processes": processes,
        "waits": sum(len(r["seen"]) for r in results),
        "right": right,
        "requests": len(requests),
        "gets_shared": sum(1 for r in gets if r.job_id in shared_set),
        "lists": len(requests) - len(gets),
        "throttled_share": sum(1 for r in requests if r.status == 429) / max(1, len(requests)),
        "busiest_second": busiest,
        "peak_in_flight": peak,
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
        "redis_calls": sum(r["redis_calls"] for r in results),
    }


def simulate(
    processes: int,
    shared: int,
    own: int,
    *,
    seconds: float,
    redis_url: str | None,
    seed: int = 0,
    initial_delay: float = DEFAULT_INITIAL_DELAY,
) -> dict[str, Any]:
    """Run one fleet, its clients on the default policy unless told another first gap."""
    return asyncio.run(
        _fleet(
            processes,
            shared,
            own,
            seconds=seconds,
            redis_url=redis_url,
            seed=seed,
            initial_delay=initial_delay,
        )
    )


def run(
    processes: int, shared: int, own: int, seconds: float, redis_url: str | None = None
) -> dict[str, dict[str, Any]]:
    """Run the variants: one process on the shared jobs, one on every job of the fleet,
    the fleet alone, the fleet on Redis.

    On the Redis at ``redis_url``, or else on a ``redis-server`` of its own. One
    process waiting on every job under the same budget is what the fleet's lateness
    is measured against: the fleet does that work, shared out.
    """
    with tempfile.TemporaryDirectory() as directory:
        redis = None if redis_url else RedisProcess(directory)
        url = redis_url or (redis.url if redis else "")
        try:
            return {
                ALONE: simulate(1, shared, 0, seconds=seconds, redis_url=None),
                EVERY_JOB: simulate(1, shared, processes * own, seconds=seconds, redis_url=None),
                NO_REDIS: simulate(processes, shared, own, seconds=seconds, redis_url=None),
                REDIS: simulate(processes, shared, own, seconds=seconds, redis_url=url),
            }
        finally:
            if redis is not None:
                redis.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "worker":
        worker(args[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__)
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--shared", type=int, default=100)
    parser.add_argument("--own", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--redis", metavar="URL", help="a running Redis (default: start one)")
    options = parser.parse_args(args)
    results = run(options.processes, options.shared, options.own, options.seconds, options.redis)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
