"""Scenario 13: ten thousand and a hundred thousand jobs waited on by one process.

The tenant of scenario 8 (:func:`benchmarks.sweeps.tenant`: jobs of three types,
WAITING a third of their life, then RUNNING, then ended, 5% FAILED; ends uniform
over the window; 2,000 old finished jobs beside them) behind a gateway of
``rate`` requests a second, waited on with one ``wait_many`` on virtual time
(FakeClock). Virtual-time figures (lateness, requests) are exact; CPU, memory
and the loop's steps are this machine's, and as noisy as it is.

The fake gateway runs in the same process (virtual time needs it there), so
what is its own is kept apart: :class:`TenantGateway` answers the tenant's GETs
and active lists from a few numbers a job (the fake itself would keep every
snapshot of every job, and look at every job for every page), keeps a tally of
requests instead of their log, and the CPU spent in its handler is reported
beside the process's. Its setup is frozen out of the garbage collector's sight
(``gc.freeze()``), as a service would do after starting: what the collector
then scans is the client's.

Each run is a process of its own (``python -m benchmarks.scale PARAMS``), so
that its peak memory is its own.
"""

from __future__ import annotations

import array
import asyncio
import bisect
import gc
import hashlib
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

import imagejobs.scheduling.hub
from benchmarks.sweeps import TYPES, job_snapshot
from imagejobs import PollPolicy, RequestCounter
from imagejobs.planning.allocation import SWEEP_SHARE
from imagejobs.planning.sweeps import PAGE_SIZE
from imagejobs.testing import FakeClock, FakeWorkspace, RecordedRequest, Reply

OLD_JOBS = 2000
"""Finished jobs in the tenant beside the ones waited on: never on an active list."""

STATUSES = ("WAITING", "RUNNING", "RUNNING")
"""A job's statuses before its end, a third of its life each (then SUCCESS or FAILED)."""


class Tally(list[RecordedRequest]):
    """A request log that keeps counts, not requests: a hundred thousand jobs' would fill memory."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.lists = 0
        self.throttled = 0
        self.refused = 0

    def append(self, request: RecordedRequest) -> None:
        """Count a request: a GET or a list page, and whether it was throttled or refused."""
        if request.job_id is None:
            self.lists += 1
        else:
            self.gets += 1
        self.throttled += request.status == 429
        self.refused += request.status == 400

    @property
    def total(self) -> int:
        """Every request served."""
        return self.gets + self.lists


class TenantGateway(FakeWorkspace):
    """The fake, serving the tenant's jobs from a few numbers each: their GETs and active lists.

    Job ``n`` (ID ``7`` and ``n`` on 17 digits) is of type ``TYPES[n % 3]``, ends at
    ``ends[n]`` (FAILED if ``n % 20 == 0``) and moves a step every third of that, as
    :func:`benchmarks.sweeps.tenant` scripts it. Lists show the jobs in the fake's
    order (a hash of the ID and the list seed); anything else the fake answers.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.requests = self.tally = Tally()
        self.handler_cpu = 0.0
        """CPU seconds spent answering, in the fake's own handler."""
        self._ends = array.array("d")
        self._keys: list[int] = []
        self._step = array.array("b")
        self._lists: dict[tuple[str, str], list[int]] = {}
        self._moves = array.array("d")
        self._moving = array.array("l")
        self._next_move = 0

    def script(
        self, jobs: int, seconds: float, seed: int, *, first_end: float = 5.0
    ) -> dict[str, tuple[float, str]]:
        """Script ``jobs`` jobs ending from ``first_end`` to ``seconds`` among old ones; return
        each one's end and final status (the same tenant as :func:`benchmarks.sweeps.tenant`'s)."""
        for n in range(OLD_JOBS):
            final = "FAILED" if n % 7 == 0 else "SUCCESS"
            self.add_job([job_snapshot(f"9{n:017d}", TYPES[n % 3], final)])
        draw = random.Random(seed)  # noqa: S311 - a repeatable tenant, not a secret
        ends = {}
        moves: list[tuple[float, int]] = []
        for n in range(jobs):
            end = draw.uniform(first_end, seconds)
            job_id = f"7{n:017d}"
            ends[job_id] = (end, "FAILED" if n % 20 == 0 else "SUCCESS")
            self._ends.append(end)
            self._step.append(0)
            digest = hashlib.blake2b(f"{self.list_seed}\x00{job_id}".encode(), digest_size=8)
            self._keys.append(int.from_bytes(digest.digest()) << 20 | n)
            bisect.insort(self._lists.setdefault((TYPES[n % 3], "WAITING"), []), self._keys[n])
            moves += [(end / 3, n), (end, n)]  # to RUNNING, and off the lists
        moves.sort()
        self._moves = array.array("d", (at for at, _ in moves))
        self._moving = array.array("l", (n for _, n in moves))
        return ends

    def _job(self, job_id: str | None) -> int | None:
        if job_id is None or len(job_id) != 18 or job_id[0] != "7" or not job_id.isdigit():
            return None
        n = int(job_id[1:])
        return n if n < len(self._ends) else None

    def _snapshot(self, n: int, now: float) -> tuple[int, dict[str, Any]]:
        step = min(3, max(0, math.floor(now / (self._ends[n] / 3))))
        if step < 3:
            status, error = STATUSES[step], ""
        else:
            failed = n % 20 == 0
            status, error = ("FAILED", "WKS.0042") if failed else ("SUCCESS", "")
        return step, job_snapshot(f"7{n:017d}", TYPES[n % 3], status, error)

    def _reply(
        self,
        request: web.Request,
        body: bytes,
        now: float,
        route: Any,
        query: Mapping[str, str],
    ) -> tuple[Reply, int | None, str | None]:
        started = time.process_time()
        try:
            n = self._job(getattr(route, "job_id", None))
            if n is None or request.method != "GET":
                return super()._reply(request, body, now, route, query)
            if self._over_rate_limit(now):
                message = "The throttling threshold has been reached: policy user over ratelimit"
                return Reply.error(429, "APIGW.0308", message), None, "throttled"
            step, job = self._snapshot(n, now)
            return Reply.json(job), step, None
        finally:
            self.handler_cpu += time.process_time() - started

    def _list_answer(self, kind: str, query: Mapping[str, str], now: float) -> Reply:
        job_type, status = query.get("job_type"), query.get("status")
        if kind != "jobs" or not job_type or status not in ("WAITING", "RUNNING"):
            return super()._list_answer(kind, query, now)
        self._move_on(now)
        members = self._lists.get((job_type, status), [])
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
        items = [
            {"id": f"7{n:017d}", "job_type": job_type, "status": status, "sub_jobs_total": 1}
            for n in (key & 0xFFFFF for key in members[offset : offset + limit])
        ]
        return Reply.json({"count": len(members), "items": items})

    def _move_on(self, now: float) -> None:
        """Move each job that changed since onto the list of its status now (or off them)."""
        while self._next_move < len(self._moves) and self._moves[self._next_move] <= now:
            n = self._moving[self._next_move]
            self._next_move += 1
            before = self._lists[TYPES[n % 3], STATUSES[self._step[n]]]
            del before[bisect.bisect_left(before, self._keys[n])]
            self._step[n] += 2  # WAITING (0) to RUNNING (2), then ended (4)
            if self._step[n] == 2:
                bisect.insort(self._lists.setdefault((TYPES[n % 3], "RUNNING"), []), self._keys[n])


class LoopSteps:
    """How long each step of the event loop held it, by whose step it was: the hub's, the
    caller's...; and the garbage collector's pauses within them, apart.

    In CPU time, not wall time: on a busy machine a step preempted by another process
    would look longer than it held the loop.
    """

    def __init__(self) -> None:
        self.longest: dict[str, float] = {}
        self.longest_without_gc: dict[str, float] = {}
        # Arrays, not lists of floats: the measure must not hold objects of its own a step.
        self.hub_steps = array.array("d")
        self.gc_pauses = array.array("d")
        self._gc_time = 0.0
        self._gc_started = 0.0
        self._original: Callable[[asyncio.Handle], None] | None = None

    def start(self) -> None:
        """Time every callback the loop runs from now on, and every collection."""
        original = asyncio.events.Handle._run
        self._original = original

        def timed(handle: asyncio.Handle) -> None:
            collected = self._gc_time
            started = time.process_time()
            original(handle)
            took = time.process_time() - started
            if self._original is None:
                return  # the step that stopped the timing goes on to close the client
            whose = _whose(handle)
            if whose == "hub":
                self.hub_steps.append(took)
            self.longest[whose] = max(self.longest.get(whose, 0.0), took)
            own = took - (self._gc_time - collected)
            self.longest_without_gc[whose] = max(self.longest_without_gc.get(whose, 0.0), own)

        asyncio.events.Handle._run = timed  # type: ignore[assignment,method-assign]
        gc.callbacks.append(self._collecting)

    def stop(self) -> None:
        """Stop timing."""
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[assignment,method-assign]
            gc.callbacks.remove(self._collecting)
            self._original = None

    def _collecting(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            pause = time.process_time() - self._gc_started
            self._gc_time += pause
            self.gc_pauses.append(pause)


def _whose(handle: asyncio.Handle) -> str:
    """Name whose step a loop callback is: a task's by its coroutine, else a callback's."""
    task = getattr(getattr(handle, "_callback", None), "__self__", None)
    if not isinstance(task, asyncio.Task):
        return "callbacks"
    code = getattr(task.get_coro(), "cr_code", None)
    if code is None:
        return "other tasks"
    if code is imagejobs.scheduling.hub.Hub._run.__code__:
        return "hub"
    if code is _run.__code__:
        return "caller"
    if "/imagejobs/" in code.co_filename and "/testing/" not in code.co_filename:
        return "client tasks"
    return "fake and transport"


def rss_mb() -> float:
    """This process's resident memory now, MB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _run(
    jobs: int, seconds: float, rate: float, sweeps: bool | None, seed: int
) -> dict[str, Any]:
    clock = FakeClock()
    steps = LoopSteps()
    counter = RequestCounter()
    # A deadline for every wait, past every end: the deadlines are part of the load.
    policy = PollPolicy(timeout=2 * seconds + 3600)
    gateway = TenantGateway(clock=clock.monotonic, rate_limit=rate, require_job_type=True)
    async with gateway as fake:
        ends = fake.script(jobs, seconds, seed)
        client = fake.client(clock=clock, rate=rate, sweeps=sweeps, hooks=[counter])
        late = array.array("d")
        right = 0
        async with client:
            gc.collect()
            gc.freeze()
            before, blocks = rss_mb(), sys.getallocatedblocks()
            fake_cpu, cpu, began = fake.handler_cpu, time.process_time(), clock.monotonic()
            steps.start()
            await asyncio.sleep(0)  # the next step, the one that subscribes, is timed
            async for outcome in client.wait_many(list(ends), policy):
                end, final = ends[outcome.job_id]
                late.append(clock.monotonic() - end)
                right += outcome.job is not None and outcome.job.status.value == final
            steps.stop()
            cpu, fake_cpu = time.process_time() - cpu, fake.handler_cpu - fake_cpu
            waited = clock.monotonic() - began
        # The gateway is here only to answer: its handlers of the connections close()
        # just closed end on the loop's next turns, and what they held is not the
        # client's (250 blocks at 10,000 jobs, 6 MB of arenas at 100,000).
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        after, blocks_after = rss_mb(), sys.getallocatedblocks()
        tally = fake.tally
    late = array.array("d", sorted(late))
    hub = sorted(steps.hub_steps)
    client_cpu = cpu - fake_cpu
    return {
        "jobs": jobs,
        "seconds": seconds,
        "rate": rate,
        "sweeps": sweeps,
        "right": right,
        "p50_late_s": statistics.median(late),
        "p95_late_s": late[min(len(late) - 1, int(0.95 * len(late)))],
        "max_late_s": late[-1],
        "requests_per_job": tally.total / jobs,
        "by_source": {source: count / jobs for source, count in counter.by_source.items()},
        "list_pages": tally.lists,
        "throttled": tally.throttled,
        "refused": tally.refused,
        "waited_s": waited,
        "cpu_s": cpu,
        "fake_cpu_s": fake_cpu,
        "client_cpu_s": client_cpu,
        "client_cpu_per_s": client_cpu / waited,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": before,
        "rss_after_close_mb": after,
        # Python's own count of its memory blocks: what the process still holds, not
        # what the allocator keeps mapped.
        "blocks_before": blocks,
        "blocks_after_close": blocks_after,
        "hub_steps": len(hub),
        "hub_step_p50_ms": 1000 * hub[len(hub) // 2] if hub else 0.0,
        "longest_step_ms": _ms(steps.longest),
        "longest_step_without_gc_ms": _ms(steps.longest_without_gc),
        "longest_gc_pause_ms": 1000 * max(steps.gc_pauses, default=0.0),
        "gc_pauses": len(steps.gc_pauses),
        "bound": bound(jobs, rate),
    }


def _ms(longest: Mapping[str, float]) -> dict[str, float]:
    return {whose: 1000 * took for whose, took in sorted(longest.items(), key=lambda i: -i[1])}


def bound(jobs: int, rate: float) -> dict[str, float]:
    """The back of the envelope: pages a sweep of every active job takes, and how often one comes.

    At the start every job is active: a sweep pages them a hundred a request, and
    sweeps take a third of the rate at most, so one comes every ``pages / (rate / 3)``
    seconds, and an end is seen about that late.
    """
    pages = math.ceil(jobs / PAGE_SIZE)
    period = pages / (SWEEP_SHARE * rate)
    return {"pages_per_sweep": pages, "sweep_period_s": period, "late_s": period}


def simulate(
    jobs: int, seconds: float, rate: float, sweeps: bool | None, *, again: bool = False
) -> dict[str, Any]:
    """Run one wait in this process; return its figures (peak memory is the process's).

    ``again``: then the same wait once more, with a new client and gateway, and the
    process's peak memory after it: no higher if what the first took was let go.
    """
    result = asyncio.run(_run(jobs, seconds, rate, sweeps, seed=1))
    if again:
        asyncio.run(_run(jobs, seconds, rate, sweeps, seed=1))
        result["peak_rss_again_mb"] = peak_rss_mb()
    return result


def measure(
    jobs: int, seconds: float, rate: float, sweeps: bool | None, *, again: bool = False
) -> dict[str, Any]:
    """Run one wait in a process of its own (see :func:`simulate`); return its figures."""
    params = {"jobs": jobs, "seconds": seconds, "rate": rate, "sweeps": sweeps, "again": again}
    return in_a_process_of_its_own("benchmarks.scale", params)


def in_a_process_of_its_own(module: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``python -m module PARAMS``; return the JSON of its last line of output."""
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(params)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{module} {params} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


Runs = dict[str, tuple[int, float, float, bool | None]]

RUNS: Runs = {
    "10,000 jobs, an hour, sweeps": (10_000, 3600.0, 20.0, None),
    "10,000 jobs, an hour, per-job GETs": (10_000, 3600.0, 20.0, False),
    "100,000 jobs, ten hours, sweeps": (100_000, 36_000.0, 20.0, None),
}
"""The full run's waits: jobs, seconds they end over, the gateway's rate, ``Client(sweeps=...)``."""

QUICK_RUNS: Runs = {
    "300 jobs, two minutes, sweeps": (300, 120.0, 20.0, None),
    "300 jobs, two minutes, per-job GETs": (300, 120.0, 20.0, False),
}


SECONDS_A_JOB = 0.36
"""The series' windows: ends at one pace, 10,000 an hour, whatever the job count."""

SERIES_SWEEPS_OFF_UP_TO = 30_000
"""Per-job GETs only up to here: at 100,000 jobs they are an hour of CPU to show a collapse
the smaller counts already show."""

Point = tuple[int, float, float, bool | None]


def series_points(quick: bool) -> list[Point]:
    """The runs of the lateness series at a fixed rate (20/s): sweeps on, and off up to
    :data:`SERIES_SWEEPS_OFF_UP_TO` jobs. They include :data:`RUNS`' own points."""
    counts = (100, 300) if quick else (1_000, 3_000, 10_000, 30_000, 100_000)
    points: list[Point] = []
    for jobs in counts:
        seconds = jobs * SECONDS_A_JOB
        points.append((jobs, seconds, 20.0, None))
        if jobs <= SERIES_SWEEPS_OFF_UP_TO:
            points.append((jobs, seconds, 20.0, False))
    return points


BAR = 60
"""Blocks in the longest bar of the series: the others to scale."""


def series_rows(results: Mapping[Point, Mapping[str, Any]]) -> Iterable[list[str]]:
    """One row per job count: the bound, then p95 lateness and requests with sweeps and
    without, each with a bar of its lateness, to one scale (the longest :data:`BAR` blocks)."""
    longest: float = max(r["p95_late_s"] for r in results.values())

    def bar(r: Mapping[str, Any]) -> str:
        late: float = r["p95_late_s"]
        return "█" * max(1, round(BAR * late / longest))

    for jobs in sorted({point[0] for point in results}):
        by_setting = {point[3]: r for point, r in results.items() if point[0] == jobs}
        on, off = by_setting[None], by_setting.get(False)
        row = [
            f"{jobs:,}",
            f"{on['bound']['late_s']:.1f}",
            f"{on['p95_late_s']:.1f}, {on['requests_per_job']:.2f}",
            bar(on),
        ]
        row += (
            ["", ""]
            if off is None
            else [
                f"{off['p95_late_s']:.1f}, {off['requests_per_job']:.2f}",
                bar(off),
            ]
        )
        yield row


SERIES_HEADER = [
    "jobs",
    "bound s",
    "sweeps: p95 late s, requests a job",
    "",
    "per-job GETs: p95 late s, requests a job",
    "",
]


def sources(by_source: Mapping[str, float]) -> str:
    """Requests per job by source, the largest first."""
    shown = sorted(by_source.items(), key=lambda item: -item[1])
    return ", ".join(f"{source} {count:.2f}" for source, count in shown if count >= 0.005)


def rows(results: Mapping[str, Mapping[str, Any]]) -> Iterable[list[str]]:
    """One table row per run."""
    for name, r in results.items():
        hub = r["longest_step_without_gc_ms"].get("hub", 0.0)
        yield [
            name,
            f"{r['right']:,}/{r['jobs']:,}",
            f"{r['p95_late_s']:.1f} ({r['bound']['late_s']:.1f})",
            f"{r['requests_per_job']:.2f}: {sources(r['by_source'])}",
            f"{r['client_cpu_s']:.1f} ({r['client_cpu_per_s']:.4f})",
            f"{r['peak_rss_mb']:.0f}"
            + (f" ({r['peak_rss_again_mb']:.0f})" if "peak_rss_again_mb" in r else ""),
            f"{r['rss_before_mb']:.0f} → {r['rss_after_close_mb']:.0f} "
            f"({r['blocks_after_close'] / r['blocks_before'] - 1:+.1%})",
            f"{hub:.1f} ({r['longest_gc_pause_ms']:.0f})",
        ]


HEADER = [
    "run",
    "outcomes right",
    "p95 late s (bound)",
    "requests a job: by source",
    "client CPU s (a second of waiting)",
    "peak RSS MB (after the same waits again)",
    "RSS before → after close MB (Python's blocks)",
    "longest hub step ms (longest collection)",
]


def main(argv: list[str]) -> int:
    """``python -m benchmarks.scale PARAMS``: one run, its figures as one line of JSON."""
    params = json.loads(argv[0])
    print(json.dumps(simulate(**params)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
