"""The client side: one variant of one scenario, measured in its own process.

``python -m benchmarks.variants SCENARIO VARIANT URL PARAMS`` prints one JSON line:
``cpu`` and ``wall`` seconds, ``rss_kb`` peak resident memory, ``requests``, and
what else the scenario reports.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import decimal
import json
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.bodies import CHANGING_ID, REFERENCE, REFERENCE_ID, big_job

PROJECT_ID = "0123456789abcdef0123456789abcdef"
AK, SK = "BENCHACCESSKEY000000", "bench-secret-key-0000000000000000000000"


def _measure_polls(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def counted() -> int:
        found.update(work())
        return int(found["polls"])

    return {**_measure(counted), "ended": found["ended"]}


def _measure(work: Callable[[], int]) -> dict[str, Any]:
    # getrusage, not os.times: microseconds, where os.times counts 10 ms ticks.
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    requests = work()
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return {
        "cpu": user + system,
        "cpu_user": user,
        "cpu_system": system,
        "wall": time.perf_counter() - wall,
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "requests": requests,
    }


async def _hammer(get: Callable[[], Awaitable[Any]], total: int, concurrency: int) -> int:
    """Send ``total`` requests from ``concurrency`` workers, after one to connect."""
    await get()
    per_worker = total // concurrency

    async def worker() -> None:
        for _ in range(per_worker):
            await get()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_worker * concurrency


# --- imagejobs ---------------------------------------------------------------


def _imagejobs_client(url: str, **options: Any) -> Any:
    from imagejobs import AkSkCredentials, Client

    return Client(
        project_id=PROJECT_ID, endpoint=url, credentials=AkSkCredentials(AK, SK), **options
    )


async def _imagejobs_gets(url: str, total: int, concurrency: int, job_id: str) -> int:
    # As fast as the floor may go: no rate, room for every worker.
    async with _imagejobs_client(url, rate=float("inf"), max_in_flight=concurrency) as client:
        return await _hammer(lambda: client.get_job(job_id), total, concurrency)


async def _imagejobs_wait_many(url: str, prefix: str, count: int, params: dict[str, Any]) -> int:
    from imagejobs import PollPolicy

    ids = [f"{prefix}-{n}" for n in range(count)]
    delay = params["delay"]
    policy = PollPolicy(initial_delay=delay, max_delay=delay * 4)
    budget = {"max_in_flight": params["in_flight"], "rate": params["rate"]}
    ended = 0
    async with _imagejobs_client(url, **budget) as client:
        async for outcome in client.wait_many(ids, policy):
            ended += outcome.ok
    return ended


def _callers(params: dict[str, Any]) -> list[str]:
    """The job each caller of the service scenario waits on: ``callers`` over ``count`` jobs."""
    return [f"{params['prefix']}-{n % params['count']}" for n in range(params["callers"])]


async def _imagejobs_service(url: str, params: dict[str, Any]) -> int:
    """A service: every caller awaits its job with ``client.wait``, on one shared client."""
    from imagejobs import PollPolicy

    scale = params["scale"]  # seconds of real life per second of benchmark
    policy = PollPolicy(initial_delay=2 / scale, max_delay=30 / scale)
    budget = {"max_in_flight": params["in_flight"], "rate": params["rate"] * scale}
    async with _imagejobs_client(url, **budget) as client:
        jobs = await asyncio.gather(*(client.wait(job_id, policy) for job_id in _callers(params)))
    return sum(job.status.value == "SUCCESS" for job in jobs)


async def _scheduler_only(prefix: str, count: int, params: dict[str, Any]) -> dict[str, Any]:
    """The hub alone: ``wait_many`` over ``count`` jobs whose polls answer at once, no HTTP.

    Each job is RUNNING at its first look and SUCCESS at its second, as in the
    waiters scenario; what is left is the scheduler's own cost per poll.
    """
    from imagejobs import ImageJob, JobStatus, PollPolicy, RetryPolicy
    from imagejobs.scheduling.hub import Hub
    from imagejobs.scheduling.looks import Look, LookResult
    from imagejobs.scheduling.waiter import wait_many
    from imagejobs.timing.clock import SYSTEM_CLOCK

    looks: dict[str, int] = {}

    async def poll(job_id: str, priority: float, gate: Any, look: Look) -> LookResult:
        looks[job_id] = seen = looks.get(job_id, 0) + 1
        status = JobStatus.SUCCESS if seen >= 2 else JobStatus.RUNNING
        return LookResult(
            ((ImageJob(id=job_id, status=status), SYSTEM_CLOCK.monotonic()),), look.mark
        )

    delay = params["delay"]
    policy = PollPolicy(initial_delay=delay, max_delay=delay * 4)
    hub = Hub(poll, SYSTEM_CLOCK, RetryPolicy(), max_polls=params["in_flight"], sweeps=False)
    ids = [f"{prefix}-{n}" for n in range(count)]
    ended = 0
    try:
        async for outcome in wait_many(hub, ids, policy):
            ended += outcome.ok
    finally:
        await hub.close()
    return {"ended": ended, "polls": sum(looks.values())}


# --- the floor: bare aiohttp ---------------------------------------------------


async def _floor_gets(url: str, total: int, concurrency: int, job_id: str) -> int:
    import aiohttp

    job_url = f"{url}/v1/{PROJECT_ID}/image-server-jobs/{job_id}"
    async with aiohttp.ClientSession() as session:

        async def get() -> Any:
            async with session.get(job_url) as response:
                return json.loads(await response.read())

        return await _hammer(get, total, concurrency)


# --- the official SDK ------------------------------------------------------------


def _sdk_client(url: str, threads: int, asynchronous: bool = False) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkworkspaceapp.v1 import WorkspaceAppAsyncClient, WorkspaceAppClient

    config = HttpConfig.get_default_config()
    config.pool_connections = config.pool_maxsize = max(10, threads)
    kind = WorkspaceAppAsyncClient if asynchronous else WorkspaceAppClient
    return (
        kind.new_builder()
        .with_credentials(BasicCredentials(AK, SK, PROJECT_ID))
        .with_endpoints([url])
        .with_http_config(config)
        .build()
    )


def _sdk_request(job_id: str) -> Any:
    from huaweicloudsdkworkspaceapp.v1 import ShowImageJobRequest

    return ShowImageJobRequest(job_id=job_id)


def _sdk_thread_gets(url: str, total: int, concurrency: int, job_id: str) -> int:
    client = _sdk_client(url, concurrency)
    client.show_image_job(_sdk_request(job_id))
    per_thread = total // concurrency

    def worker() -> None:
        for _ in range(per_thread):
            client.show_image_job(_sdk_request(job_id))

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    return per_thread * concurrency


async def _sdk_async_gets(url: str, total: int, concurrency: int, job_id: str) -> int:
    """The SDK's "async" client from asyncio code: its future can only be waited on
    by blocking, so each wait takes a thread of the loop's default pool."""
    client = _sdk_client(url, concurrency, asynchronous=True)

    async def get() -> Any:
        return await asyncio.to_thread(client.show_image_job_async(_sdk_request(job_id)).result)

    return await _hammer(get, total, concurrency)


def _sdk_wait_all(client: Any, job_ids: list[str], delay: float, threads: int) -> int:
    """The way it is done today: a thread per wait, a get and a sleep until the job ends."""

    def wait(job_id: str) -> bool:
        while True:
            status = client.show_image_job(_sdk_request(job_id)).status
            if status in ("SUCCESS", "FAILED"):
                return bool(status == "SUCCESS")
            time.sleep(delay)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(wait, job_ids))


def _sdk_thread_polling(url: str, prefix: str, count: int, delay: float, threads: int) -> int:
    """Many jobs, a pool of threads each polling one job at a time."""
    job_ids = [f"{prefix}-{n}" for n in range(count)]
    return _sdk_wait_all(_sdk_client(url, threads), job_ids, delay, threads)


def _sdk_service(url: str, params: dict[str, Any]) -> int:
    """The service today: each caller blocks a thread in a get-and-sleep loop."""
    callers = _callers(params)
    delay = params["sdk_sleep"] / params["scale"]
    return _sdk_wait_all(_sdk_client(url, len(callers)), callers, delay, len(callers))


# --- parse cost ------------------------------------------------------------------


def _parse(variant: str, body_name: str, rounds: int) -> dict[str, Any]:
    body = json.dumps(REFERENCE if body_name == "reference" else big_job()).encode()
    if variant == "imagejobs":
        from imagejobs.core.codec import decode_response

        def parse() -> Any:
            return decode_response(200, {}, body)
    elif variant == "floor":

        def parse() -> Any:
            return json.loads(body)
    else:
        client = _sdk_client("http://127.0.0.1:9", 1)

        def parse() -> Any:
            data = json.loads(body.decode(), parse_float=decimal.Decimal)
            return client._deserialize(data, "ShowImageJobResponse")

    parse()
    start = time.process_time()
    for _ in range(rounds):
        parse()
    spent = time.process_time() - start
    return {"cpu": spent, "us_per_parse": spent / rounds * 1e6, "requests": rounds}


def _install(variant: str) -> str:
    """Load imagejobs as the variant says, and return the variant's name without the suffix.

    ``imagejobs`` is the core install: orjson, if this environment has it, is hidden,
    as if the extra were not installed. ``imagejobs_speedups`` is
    ``pip install 'imagejobs[speedups]'``: it needs orjson.
    """
    if not variant.startswith("imagejobs"):
        return variant
    if "imagejobs" in sys.modules:
        raise RuntimeError("imagejobs was loaded before its variant chose how")
    if variant == "imagejobs_speedups":
        import orjson  # noqa: F401  # missing: pip install -e '.[bench]'
    else:
        sys.modules["orjson"] = None  # type: ignore[assignment]  # import orjson now fails
    from imagejobs.core import codec

    if (codec._orjson_loads is not None) != (variant == "imagejobs_speedups"):
        raise RuntimeError(f"{variant}: orjson is not as the variant says")
    return "imagejobs"


def run(scenario: str, variant: str, url: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one variant of one scenario and return its figures."""
    variant = _install(variant)
    if scenario == "scheduler":
        return _measure_polls(lambda: asyncio.run(_scheduler_only("s", params["count"], params)))
    if scenario == "callers":
        from benchmarks.callers import measure

        return measure(params["callers"])
    if scenario == "parse":
        return _parse(variant, params["body"], params["rounds"])
    if scenario == "gets":
        job_id = CHANGING_ID if params.get("changing") else REFERENCE_ID
        args = (url, params["total"], params["concurrency"], job_id)
        if variant == "imagejobs":
            return _measure(lambda: asyncio.run(_imagejobs_gets(*args)))
        if variant == "floor":
            return _measure(lambda: asyncio.run(_floor_gets(*args)))
        if variant == "sdk_threads":
            return _measure(lambda: _sdk_thread_gets(*args))
        return _measure(lambda: asyncio.run(_sdk_async_gets(*args)))
    if scenario == "jobs":
        prefix, count, delay = params["prefix"], params["count"], params["delay"]
        if variant == "imagejobs":
            return _measure(lambda: asyncio.run(_imagejobs_wait_many(url, prefix, count, params)))
        return _measure(lambda: _sdk_thread_polling(url, prefix, count, delay, params["threads"]))
    if scenario == "service":
        if variant == "imagejobs":
            return _measure(lambda: asyncio.run(_imagejobs_service(url, params)))
        return _measure(lambda: _sdk_service(url, params))
    raise ValueError(f"unknown scenario {scenario!r} / variant {variant!r}")


if __name__ == "__main__":
    _, scenario_name, variant_name, base_url, raw = sys.argv
    print(json.dumps(run(scenario_name, variant_name, base_url, json.loads(raw))))
