"""The hub: one scheduler per client, one budget, one poll per job, waits that outlive outages.

Every test runs the real client against the fake server on virtual time
(FakeClock), so an hour of polling takes milliseconds and nothing is timed.
"""

from __future__ import annotations

import asyncio
import gc
import random
import subprocess
import sys
import textwrap
import weakref
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from imagejobs import (
    Client,
    ClientClosed,
    InvalidArgument,
    JobFailed,
    JobStatus,
    PollPolicy,
    RetryPolicy,
    ServerError,
    Throttled,
    Transition,
    WaitTimeout,
)
from imagejobs.scheduling.subscriptions import KEPT_TRANSITIONS
from imagejobs.testing import FakeClock, FakeWorkspace, Faults, Reply

JOB = "702364883651395584"
BUSY = Reply.error(503, "WKS.0503", "Service unavailable")


def snap(status: str, *subs: str, job_id: str = JOB) -> dict[str, Any]:
    sub_jobs = [
        {"id": f"{job_id}-{n}", "status": sub, "job_type": "BUILD_IMAGE"}
        for n, sub in enumerate(subs)
    ]
    return {"id": job_id, "status": status, "sub_jobs": sub_jobs}


def story(job_id: str) -> list[dict[str, Any]]:
    """A job that goes through three sub-job stages and ends SUCCESS."""
    return [
        snap("RUNNING", job_id=job_id),
        snap("RUNNING", "RUNNING", job_id=job_id),
        snap("RUNNING", "SUCCESS", "RUNNING", job_id=job_id),
        snap("RUNNING", "SUCCESS", "SUCCESS", "RUNNING", job_id=job_id),
        snap("SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", job_id=job_id),
    ]


def moves(transitions: list[Transition]) -> list[tuple[str | None, str | None, str | None]]:
    return [(t.sub_job_id, t.previous, t.current) for t in transitions]


# --- one budget, one poll per job ----------------------------------------------------


async def _requests_for_waits(keys: dict[str, Any], *, concurrent: bool) -> tuple[int, int]:
    """Wait on 60 jobs, by 300 concurrent wait() calls or by one wait_many; count requests."""
    random.seed(7)
    clock = FakeClock()
    ids = [f"{n:018d}" for n in range(60)]
    max_in_flight = 8
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        for n, job_id in enumerate(ids):
            fake.add_job(story(job_id), every=30 + n)  # 2 to 2.5 minutes each
        budget = {"max_in_flight": max_in_flight, "rate": 10}
        async with fake.client(clock=clock, **budget) as client:
            if concurrent:
                jobs = await asyncio.gather(*(client.wait(ids[n % 60]) for n in range(300)))
                assert Counter(job.id for job in jobs) == dict.fromkeys(ids, 5)
            else:
                outcomes = [o async for o in client.wait_many(ids)]
                assert all(o.ok for o in outcomes)
        return len(fake.requests), fake.peak_in_flight


async def test_300_concurrent_waits_on_60_jobs_cost_about_one_wait_many(
    keys: dict[str, Any],
) -> None:
    shared, shared_peak = await _requests_for_waits(keys, concurrent=True)
    batch, _ = await _requests_for_waits(keys, concurrent=False)
    print(f"300 waits: {shared} requests; one wait_many: {batch}")
    assert shared <= 1.15 * batch, (shared, batch)
    assert shared_peak <= 8


async def test_many_subscribers_of_one_job_cost_one_poll_stream(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job(story(JOB), every=10)
    policy = PollPolicy(jitter=0)
    async with server.client(clock=clock) as client:
        await client.wait(JOB, policy)
        alone = len(server.requests)
        server.requests.clear()
        server.add_job(story(JOB), every=10)
        watchers = asyncio.gather(*(_collect(client.watch(JOB, policy)) for _ in range(5)))
        results, job = await asyncio.gather(watchers, client.wait(JOB, policy))
    assert job.status is JobStatus.SUCCESS
    assert len(server.requests) == alone
    seen = [moves(result) for result in results]
    assert all(one == seen[0] for one in seen)
    assert seen[0][-1] == (None, "RUNNING", "SUCCESS")


async def _collect(stream: AsyncIterator[Transition]) -> list[Transition]:
    return [t async for t in stream]


async def test_the_most_demanding_subscriber_sets_the_pace_and_leaving_relaxes_it(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING")])
    eager = PollPolicy(initial_delay=1, max_delay=1, jitter=0, timeout=10)
    lax = PollPolicy(initial_delay=20, max_delay=20, jitter=0, timeout=100)
    async with server.client(clock=clock) as client:
        ended = await asyncio.gather(
            client.wait(JOB, eager), client.wait(JOB, lax), return_exceptions=True
        )
    assert [type(e) for e in ended] == [WaitTimeout, WaitTimeout]
    times = [r.at for r in server.requests]
    assert times[:10] == list(range(10)), "polled every second while the eager one waited"
    assert times[10:] == [29, 49, 69, 89], "then at the lax one's pace, from its last poll"


async def test_a_late_subscriber_gets_the_transitions_from_where_it_joined(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job(story(JOB), every=10)
    policy = PollPolicy(initial_delay=1, max_delay=1, jitter=0)
    async with server.client(clock=clock) as client:
        early = asyncio.ensure_future(_collect(client.watch(JOB, policy)))
        await clock.sleep(25)
        late = await _collect(client.watch(JOB, policy))
        first = await early
    assert moves(first)[0] == (None, None, "RUNNING")
    assert len(first) == 8
    # Joined at 25 s, in stage 2: it sees that state as new, then what followed.
    assert moves(late)[:3] == [
        (f"{JOB}-0", None, "SUCCESS"),
        (f"{JOB}-1", None, "RUNNING"),
        (None, None, "RUNNING"),
    ]
    assert moves(late)[-1] == (None, "RUNNING", "SUCCESS")
    assert late[-1].observed_at == first[-1].observed_at, "one poll told both"


async def test_each_subscriber_keeps_its_own_deadline(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job(story(JOB), every=30)
    async with server.client(clock=clock) as client:
        short = client.wait(JOB, PollPolicy(timeout=40))
        long = client.wait(JOB, PollPolicy(timeout=400))
        ended = await asyncio.gather(short, long, return_exceptions=True)
    assert isinstance(ended[0], WaitTimeout)
    assert ended[0].waited == 40
    assert not isinstance(ended[1], BaseException)
    assert ended[1].status is JobStatus.SUCCESS


async def test_a_job_nobody_waits_on_is_polled_no_more(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING")])
    async with server.client(clock=clock) as client:
        async for _ in client.watch(JOB, PollPolicy(initial_delay=1, jitter=0)):
            break
        gc.collect()
        await clock.sleep(3600)
        assert len(server.requests) == 1


async def test_get_job_spends_the_same_budget(keys: dict[str, Any]) -> None:
    async with FakeWorkspace(latency=0.01, **keys) as fake:
        fake.add_job([snap("RUNNING")])
        async with fake.client(max_in_flight=3) as client:
            jobs = await asyncio.gather(*(client.get_job(JOB) for _ in range(30)))
    assert len(jobs) == 30
    assert fake.peak_in_flight == 3


async def test_requests_queue_in_the_client_not_in_the_pool(keys: dict[str, Any]) -> None:
    # 400 answers of 0.1 s, 50 at a time, take 0.8 s: more than the 0.5 s a request may
    # take. Had they queued in aiohttp's pool, the timeout would count the queueing.
    ids = [f"{n:03d}" for n in range(400)]
    async with FakeWorkspace(latency=0.1, **keys) as fake:
        for job_id in ids:
            fake.add_job([snap("SUCCESS", job_id=job_id)])
        async with fake.client(
            timeout=0.5, max_in_flight=50, retry=RetryPolicy(max_attempts=1)
        ) as c:
            jobs = await asyncio.gather(*(c.wait(job_id) for job_id in ids))
    assert [job.id for job in jobs] == ids
    assert len(fake.requests) == 400
    assert fake.peak_in_flight == 50


async def test_a_borrowed_session_with_a_smaller_pool_is_refused() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)) as session:
        with pytest.raises(InvalidArgument, match=r"pool holds 2 connections.*max_in_flight=4"):
            Client(project_id="p", endpoint="https://example.test", session=session)
        client = Client(
            project_id="p", endpoint="https://example.test", session=session, max_in_flight=2
        )
        assert client.max_in_flight == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_in_flight": 0}, "max_in_flight must be at least 1"),
        ({"max_in_flight": 2.5}, "max_in_flight must be an integer"),
        ({"rate": 0}, "rate must be a positive number"),
        ({"rate": "fast"}, "rate must be a positive number"),
    ],
)
def test_bad_budgets_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Client(project_id="p", endpoint="https://example.test", **kwargs)


# --- outages and throttling --------------------------------------------------------


async def test_a_wait_rides_out_30_consecutive_503s(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING"), *[BUSY] * 30, snap("SUCCESS")], job_id=JOB)
    async with server.client(clock=clock) as client:  # default retry settings
        job = await client.wait(JOB)
    assert job.status is JobStatus.SUCCESS
    assert [r.status for r in server.requests] == [200, *[503] * 30, 200]
    gaps = [b.at - a.at for a, b in zip(server.requests[1:], server.requests[2:], strict=False)]
    assert max(gaps) <= RetryPolicy().max_delay, "failed polls back off up to the retry cap"
    assert sum(gaps) > 60, "and back off they did"


async def test_polls_failing_at_the_deadline_end_with_that_error(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING"), snap("RUNNING"), BUSY], job_id=JOB)
    policy = PollPolicy(initial_delay=10, max_delay=10, timeout=100, jitter=0)
    async with server.client(clock=clock) as client:
        with pytest.raises(ServerError) as info:
            await client.wait(JOB, policy)
    error = info.value
    assert error.http_status == 503
    assert error.failing_for == 80  # the first failed poll went out at 20 s
    assert "polls failing for 80.0s" in str(error)
    assert clock.monotonic() == 100


async def test_a_transport_outage_does_not_end_a_wait(keys: dict[str, Any]) -> None:
    clock = FakeClock()
    drop = Reply(connection="drop")
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        fake.add_job([snap("RUNNING"), *[drop] * 6, snap("SUCCESS")], job_id=JOB)
        async with fake.client(clock=clock) as client:
            job = await client.wait(JOB)
    assert job.status is JobStatus.SUCCESS


async def test_a_retry_after_silences_every_poll_of_the_client(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    throttled = Reply.error(429, "APIGW.0308", "throttled", retry_after=2)
    server.add_job(
        [snap("RUNNING", job_id="a"), throttled, snap("SUCCESS", job_id="a")], job_id="a"
    )
    for job_id in ("b", "c"):
        server.add_job([*[snap("RUNNING", job_id=job_id)] * 40, snap("SUCCESS", job_id=job_id)])
    server.add_job([BUSY, BUSY, snap("SUCCESS", job_id="d")], job_id="d")
    quick = PollPolicy(initial_delay=0.1, max_delay=0.1, jitter=0)
    async with server.client(clock=clock) as client:  # default retries for get_job
        waits = asyncio.gather(*(client.wait(job_id, quick) for job_id in "abc"))
        await clock.sleep(0.15)
        job, done = await asyncio.gather(client.get_job("d"), waits)
    assert job.status is JobStatus.SUCCESS
    assert all(j.status is JobStatus.SUCCESS for j in done)
    (hit,) = [r.at for r in server.requests if r.status == 429]
    silent = [r for r in server.requests if hit < r.at < hit + 2]
    assert silent == [], "a request went out during the Retry-After"
    assert any(r.job_id == "d" and r.at >= hit + 2 for r in server.requests)


async def test_a_gateway_at_10_a_second_throttles_few_requests_of_a_client_told_50(
    keys: dict[str, Any],
) -> None:
    random.seed(3)
    clock = FakeClock()
    ids = [f"{n:03d}" for n in range(100)]
    async with FakeWorkspace(clock=clock.monotonic, rate_limit=10, **keys) as fake:
        for n, job_id in enumerate(ids):
            fake.add_job(story(job_id), every=5 + n % 7)
        async with fake.client(clock=clock, rate=50, max_in_flight=16) as client:
            outcomes = [o async for o in client.wait_many(ids)]
    assert sorted(o.job_id for o in outcomes) == ids
    assert all(o.ok for o in outcomes)
    print(f"throttled {fake.throttled} of {len(fake.requests)}")
    assert fake.throttled <= 0.05 * len(fake.requests), (fake.throttled, len(fake.requests))
    assert fake.throttled >= 1, "the gateway's limit was reached, or this proves nothing"


async def test_get_job_keeps_its_retry_policy(server: FakeWorkspace, clock: FakeClock) -> None:
    server.add_job([BUSY] * 10, job_id=JOB)
    async with server.client(clock=clock) as client:
        with pytest.raises(ServerError, match=r"after 4 attempts"):
            await client.get_job(JOB)
    assert len(server.requests) == 4


async def test_a_throttled_get_job_reports_the_429(server: FakeWorkspace, clock: FakeClock) -> None:
    server.add_job([Reply.error(429, "APIGW.0308", "over ratelimit")], job_id=JOB)
    async with server.client(clock=clock, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(Throttled, match=r"APIGW\.0308"):
            await client.get_job(JOB)


# --- lifetime and memory -----------------------------------------------------------


async def test_closing_the_client_ends_every_wait(server: FakeWorkspace, clock: FakeClock) -> None:
    for job_id in ("a", "b", "c"):
        server.add_job([snap("RUNNING", job_id=job_id)])
    client = server.client(clock=clock)
    waits = [asyncio.ensure_future(client.wait(job_id)) for job_id in "ab"]
    watching = asyncio.ensure_future(_collect(client.watch("c")))
    many = asyncio.ensure_future(_collect_outcomes(client, ["a", "c"]))
    await clock.sleep(30)
    await client.close()
    for task in [*waits, watching]:
        with pytest.raises(ClientClosed, match="the client was closed while waiting for job"):
            await task
    outcomes = await many
    # Not "cancelled": the callers were still waiting, and learn the wait did not end.
    assert [o.kind for o in outcomes] == ["error", "error"]
    assert all(isinstance(o.error, ClientClosed) for o in outcomes)
    with pytest.raises(ClientClosed, match="the client is closed"):
        await client.wait("a")
    with pytest.raises(ClientClosed, match="the client is closed"):
        await client.get_job("a")
    await client.close()  # twice is harmless
    assert _library_tasks() == set()


async def _collect_outcomes(client: Client, ids: list[str]) -> list[Any]:
    return [o async for o in client.wait_many(ids)]


def _library_tasks() -> set[asyncio.Task[Any]]:
    import imagejobs  # noqa: PLC0415

    package = imagejobs.__file__.rsplit("/", 1)[0]
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.done()
        and getattr(task.get_coro(), "cr_code", None) is not None
        and task.get_coro().cr_code.co_filename.startswith(package)  # type: ignore[union-attr]
        and "/testing/" not in task.get_coro().cr_code.co_filename  # type: ignore[union-attr]
    }


def test_closing_mid_wait_gives_no_warning_under_python_dev_mode(tmp_path: Any) -> None:
    script = tmp_path / "close_mid_wait.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from imagejobs import ImageJobsError
            from imagejobs.testing import FakeWorkspace, Reply

            async def main():
                async with FakeWorkspace(latency=0.05) as fake:
                    fake.add_job([{"id": "1", "status": "RUNNING"}])
                    fake.add_job([Reply(body=b"{}", delay=5)], job_id="2")
                    client = fake.client()
                    waits = [asyncio.ensure_future(client.wait(i)) for i in ("1", "2")]
                    await asyncio.sleep(0.2)
                    await client.close()
                    for wait in waits:
                        try:
                            await wait
                        except ImageJobsError as error:
                            print(type(error).__name__, error)

            asyncio.run(main())
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("ClientClosed the client was closed while waiting for job") == 2


@pytest.mark.filterwarnings("ignore:Unclosed:ResourceWarning")  # aiohttp: never closed
def test_a_client_left_unclosed_with_waits_pending_is_freed_when_its_run_ends() -> None:
    # A job's records are out of the collector's sight (imagejobs.core.untracked): they
    # must still go when asyncio.run cancels the waits it finds pending at its end.
    held: list[weakref.ref[Client]] = []

    async def main() -> None:
        async with FakeWorkspace() as fake:
            ids = [f"job-{n}" for n in range(20)]
            for job_id in ids:
                fake.add_job([{"id": job_id, "status": "RUNNING"}], job_id=job_id)
            client = fake.client()
            held.append(weakref.ref(client))

            async def wait_all() -> None:
                async for _ in client.wait_many(ids, PollPolicy(initial_delay=0.01)):
                    pass

            waiting = asyncio.create_task(wait_all())
            await asyncio.sleep(0.2)
            assert not waiting.done()
            assert len(client._hub._streams) == len(ids)  # waiting, never closed

    asyncio.run(main())
    gc.collect()
    assert held[0]() is None


@pytest.mark.filterwarnings("ignore:Unclosed:ResourceWarning")  # aiohttp: never closed
def test_a_client_whose_failing_waits_timed_out_with_looks_out_is_freed_unclosed() -> None:
    # A look cancelled as its job was let go came back after the loop had stopped: it was
    # kept, and its failure's frames led back to the hub through an untracked stream.
    held: list[weakref.ref[Any]] = []

    async def main() -> None:
        async with FakeWorkspace(faults=Faults(rate=1.0, kinds=("503",)), latency=0.15) as fake:
            ids = [f"job-{n}" for n in range(5)]
            for job_id in ids:
                fake.add_job([{"id": job_id, "status": "RUNNING"}], job_id=job_id)
            client = fake.client()
            held.extend([weakref.ref(client), weakref.ref(client._hub)])
            policy = PollPolicy(initial_delay=0.01, timeout=0.5)
            outcomes = [outcome async for outcome in client.wait_many(ids, policy)]
            assert len(outcomes) == len(ids)
            assert not any(outcome.ok for outcome in outcomes)  # timed out, failing
            await asyncio.sleep(0.5)  # the looks cancelled at the deadlines come back

    asyncio.run(main())
    gc.collect()
    assert [ref() for ref in held] == [None, None]


async def test_a_flapping_job_keeps_a_bounded_history(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    flaps = [snap("RUNNING", "RUNNING" if n % 2 else "ABNORMAL") for n in range(1200)]
    server.add_job([*flaps, snap("FAILED", "FAILED")])
    policy = PollPolicy(initial_delay=30, max_delay=30, jitter=0, timeout=None)
    async with server.client(clock=clock) as client:
        with pytest.raises(JobFailed) as info:
            await client.wait(JOB, policy)
    assert clock.monotonic() >= 10 * 3600, "ten simulated hours"
    assert len(info.value.transitions) == KEPT_TRANSITIONS
    assert moves(list(info.value.transitions))[-1] == (None, "RUNNING", "FAILED")


# --- virtual time ------------------------------------------------------------------


async def test_fake_clock_interleaves_concurrent_sleeps() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delays: list[float]) -> None:
        for delay in delays:
            await clock.sleep(delay)
            woke.append((name, clock.monotonic()))

    await asyncio.gather(sleeper("a", [10, 10, 10]), sleeper("b", [15, 1]), sleeper("c", [0]))
    assert woke == [("c", 0), ("a", 10), ("b", 15), ("b", 16), ("a", 20), ("a", 30)]
    assert clock.monotonic() == 30


async def test_fake_clock_waits_for_a_request_in_flight(keys: dict[str, Any]) -> None:
    # The fake answers after 50 real milliseconds; virtual time must not run on meanwhile.
    clock = FakeClock()
    async with FakeWorkspace(clock=clock.monotonic, latency=0.05, **keys) as fake:
        fake.add_job([snap("RUNNING"), snap("SUCCESS")])
        policy = PollPolicy(initial_delay=5, max_delay=5, timeout=6, jitter=0)
        async with fake.client(clock=clock) as client:
            job = await client.wait(JOB, policy)
    assert job.status is JobStatus.SUCCESS
    assert [r.at for r in fake.requests] == [0, 5]


async def test_fake_clock_advance_wakes_due_sleeps() -> None:
    clock = FakeClock()
    sleeping = asyncio.ensure_future(clock.sleep(5))
    await asyncio.sleep(0)
    clock.advance(5)
    await sleeping
    assert clock.monotonic() == 5


async def test_a_cancelled_sleep_does_not_move_time() -> None:
    clock = FakeClock()
    long = asyncio.ensure_future(clock.sleep(1000))
    await asyncio.sleep(0)
    long.cancel()
    await clock.sleep(1)
    assert clock.monotonic() == 1


async def test_a_transport_error_is_a_failed_poll_not_an_ending(keys: dict[str, Any]) -> None:
    clock = FakeClock()
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        fake.add_job([snap("RUNNING"), Reply(connection="drop-mid-body"), snap("SUCCESS")])
        async with fake.client(clock=clock) as client:
            seen = [t async for t in client.watch(JOB)]
    assert moves(seen) == [(None, None, "RUNNING"), (None, "RUNNING", "SUCCESS")]
    assert len(fake.requests) == 3, "the cut-off answer was polled again, once"


# --- found in review --------------------------------------------------------------


class _FlakyAuthorization:
    """Credentials whose first signing awaits a task that someone else cancels."""

    def __init__(self, signer: Any) -> None:
        self.signer = signer
        self.calls = 0

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], project_id: str
    ) -> dict[str, str]:
        self.calls += 1
        if self.calls == 1:
            shared = asyncio.ensure_future(asyncio.sleep(10))
            asyncio.get_running_loop().call_soon(shared.cancel)
            await shared
        signed: dict[str, str] = await self.signer.authorize(method, url, headers, project_id)
        return signed


async def test_a_poll_cancelled_from_below_is_polled_again(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING"), snap("SUCCESS")])
    flaky = _FlakyAuthorization(server.credentials)
    async with server.client(clock=clock, credentials=flaky) as client:
        job = await client.wait(JOB, PollPolicy(timeout=600))
    assert job.status is JobStatus.SUCCESS
    assert clock.monotonic() < 600


async def test_a_since_newer_than_the_last_poll_never_goes_backwards(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job(
        [snap("RUNNING", "RUNNING"), snap("RUNNING", "SUCCESS"), snap("SUCCESS", "SUCCESS")],
        every=1.0,
    )
    policy = PollPolicy(initial_delay=2, max_delay=2, jitter=0, timeout=60)
    async with server.client(clock=clock) as client:
        other = asyncio.ensure_future(client.wait(JOB, policy))  # the hub sees stage 0 at 0 s
        await clock.sleep(1.5)
        since = await client.get_job(JOB)  # stage 1, newer than what the hub saw
        seen = [t async for t in client.watch(JOB, policy, since=since)]
        await other
    assert moves(seen) == [(None, "RUNNING", "SUCCESS")]


async def test_a_narrow_call_holds_back_neither_other_calls_nor_shared_jobs(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    slow_ids = [f"slow-{n}" for n in range(10)]
    for job_id in slow_ids:
        server.add_job([snap("RUNNING", job_id=job_id)])
    server.add_job([snap("RUNNING", job_id="shared"), snap("SUCCESS", job_id="shared")], every=3)
    server.add_job([snap("SUCCESS", job_id="other")])
    async with server.client(clock=clock, max_in_flight=4) as client:
        crawl = client.wait_many([*slow_ids, "shared"], PollPolicy(timeout=600), rate=0.01)
        crawling = asyncio.ensure_future(anext(crawl))
        await clock.sleep(1)
        other = await client.wait("other", PollPolicy(timeout=60))
        assert clock.monotonic() == 1, "another call's poll went at once"
        shared = await client.wait("shared", PollPolicy(initial_delay=2, max_delay=2, jitter=0))
        # Done at 4 s, polled every 2 s or sooner: seen by 6 s, not at the crawl's 100 s.
        assert clock.monotonic() <= 6, "a shared job's polls skip a narrow caller's cap"
        crawling.cancel()
        await crawl.aclose()
    assert other.status is shared.status is JobStatus.SUCCESS


async def test_ended_waits_do_not_pile_up_behind_a_long_one(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", job_id="long")])
    for n in range(500):
        server.add_job([snap("SUCCESS", job_id=f"short-{n}")])
    async with server.client(clock=clock) as client:
        long = asyncio.ensure_future(client.wait("long", PollPolicy(timeout=3600)))
        for n in range(500):
            await client.wait(f"short-{n}")
        hub = client._hub
        assert len(hub._deadlines) < 200, "ended waits are dropped from the deadline heap"
        assert hub._due.entries() < 200
        long.cancel()


async def test_get_job_gives_up_at_once_on_a_retry_after_past_its_max_time(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([Reply.error(429, "APIGW.0308", "slow down", retry_after=600)], job_id=JOB)
    async with server.client(clock=clock, retry=RetryPolicy(max_time=30)) as client:
        with pytest.raises(Throttled) as info:
            await client.get_job(JOB)
    assert info.value.retry_after == 600
    assert clock.monotonic() == 0
    assert len(server.requests) == 1


async def test_two_fake_clocks_on_one_loop_both_move_on() -> None:
    first, second = FakeClock(), FakeClock()
    await asyncio.gather(first.sleep(1), second.sleep(1))
    assert first.monotonic() == second.monotonic() == 1


async def test_closing_stops_a_narrow_calls_timer_too(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    for job_id in "abc":
        server.add_job([snap("RUNNING", job_id=job_id)])
    client = server.client(clock=clock)
    outcomes = asyncio.ensure_future(_collect_outcomes_narrow(client, list("abc")))
    await clock.sleep(5)
    await client.close()
    assert [o.kind for o in await outcomes] == ["error"] * 3
    await asyncio.sleep(0)
    assert _library_tasks() == set()


async def _collect_outcomes_narrow(client: Client, ids: list[str]) -> list[Any]:
    return [o async for o in client.wait_many(ids, rate=0.1)]
