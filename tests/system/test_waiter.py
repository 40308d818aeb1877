"""The waiter against the fake server, on a fake clock: no real waiting."""

from __future__ import annotations

import asyncio
import bisect
import gc
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import imagejobs
from imagejobs import (
    AkSkCredentials,
    AuthenticationError,
    Client,
    InvalidArgument,
    JobFailed,
    JobNotFound,
    JobStatus,
    Outcome,
    PermissionDenied,
    PollPolicy,
    RetryPolicy,
    Transition,
    WaitTimeout,
    from_wire,
)
from imagejobs.planning.policy import DEFAULT_MAX_DELAY
from imagejobs.testing import FakeClock, FakeWorkspace, Reply

JOB = "702364883651395584"


def snap(status: str, *subs: str | tuple[str, str, str], job_id: str = JOB) -> dict[str, Any]:
    """A wire snapshot; a sub-job is a status, or (status, error_code, error_message)."""
    sub_jobs = []
    for n, sub in enumerate(subs):
        status_, code, message = (sub, "", "") if isinstance(sub, str) else sub
        sub_jobs.append(
            {
                "id": f"{job_id}-{n}",
                "status": status_,
                "job_type": "CREATE_SERVER_IMAGE",
                "job_execute_info": {"error_code": code, "error_message": message},
            }
        )
    return {"id": job_id, "status": status, "sub_jobs": sub_jobs}


def moves(transitions: list[Transition]) -> list[tuple[str | None, str | None, str | None]]:
    short: dict[str | None, str | None] = {f"{JOB}-{n}": f"s{n}" for n in range(5)}
    short[None] = None
    return [(short[t.sub_job_id], t.previous, t.current) for t in transitions]


async def drain(stream: AsyncIterator[Transition], into: list[Transition]) -> None:
    async for item in stream:
        into.append(item)


NO_JITTER = PollPolicy(jitter=0)


def gaps(requests: list[Any]) -> list[float]:
    """Return the seconds between consecutive requests."""
    times = [r.at for r in requests]
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


@pytest.fixture
async def api(server: FakeWorkspace, clock: FakeClock) -> Any:
    # get_job's own retries are off, so a test sees every request the waiter makes.
    async with server.client(retry=RetryPolicy(max_attempts=1), clock=clock) as client:
        yield client


async def collect(client: Client, **kwargs: Any) -> list[Transition]:
    return [t async for t in client.watch(JOB, **kwargs)]


async def test_watch_success_path(server: FakeWorkspace, api: Client, clock: FakeClock) -> None:
    server.add_job(
        [
            snap("WAITING", "WAITING"),
            snap("RUNNING", "RUNNING"),
            snap("RUNNING", "RUNNING"),
            snap("SUCCESS", "SUCCESS"),
            snap("SUCCESS", "SUCCESS"),
        ]
    )
    transitions = await collect(api)
    assert moves(transitions) == [
        ("s0", None, "WAITING"),
        (None, None, "WAITING"),
        ("s0", "WAITING", "RUNNING"),
        (None, "WAITING", "RUNNING"),
        ("s0", "RUNNING", "SUCCESS"),
        (None, "RUNNING", "SUCCESS"),
    ]
    assert transitions[-1].is_terminal
    assert [t.poll for t in transitions] == [1, 1, 2, 2, 4, 4]
    assert len(server.requests) == 4, "no poll after the job ended"
    assert clock.sleep_count <= 2 * len(server.requests), "no busy loop"


async def test_watch_failure_path_ends_with_failed(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job(
        [
            snap("RUNNING", "RUNNING", "RUNNING"),
            snap("RUNNING", "ABNORMAL", "RUNNING"),
            snap("RUNNING", "ROLLBACK", "RUNNING"),
            snap("FAILED", ("FAILED", "WKS.0042", "disk full"), "SUCCESS"),
        ]
    )
    transitions = await collect(api)
    assert moves(transitions)[3:] == [
        ("s0", "RUNNING", "ABNORMAL"),
        ("s0", "ABNORMAL", "ROLLBACK"),
        ("s0", "ROLLBACK", "FAILED"),
        ("s1", "RUNNING", "SUCCESS"),
        (None, "RUNNING", "FAILED"),
    ]


async def test_wait_raises_job_failed_with_details(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job(
        [snap("RUNNING", "RUNNING"), snap("FAILED", ("FAILED", "WKS.0042", "disk full"))]
    )
    with pytest.raises(JobFailed) as info:
        await api.wait(JOB)
    error = info.value
    assert error.job.status is JobStatus.FAILED
    (failed,) = error.failed_sub_jobs
    assert failed.job_execute_info is not None
    assert failed.job_execute_info.error_code == "WKS.0042"
    assert "WKS.0042" in str(error)
    assert "disk full" in str(error)
    assert JOB in str(error)
    assert moves(list(error.transitions))[-1] == (None, "RUNNING", "FAILED")


async def test_wait_can_return_a_failed_job(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("FAILED", "FAILED")])
    job = await api.wait(JOB, raise_on_failure=False)
    assert job.status is JobStatus.FAILED


async def test_wait_returns_the_success_job_and_reports_progress(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", "RUNNING"), snap("SUCCESS", "SUCCESS")])
    seen: list[Transition] = []
    seen_async: list[Transition] = []

    async def record(t: Transition) -> None:
        seen_async.append(t)

    job = await api.wait(JOB, on_transition=seen.append)
    assert job.status is JobStatus.SUCCESS
    assert moves(seen)[-1] == (None, "RUNNING", "SUCCESS")
    assert len(seen) == 4
    server.add_job([snap("RUNNING"), snap("SUCCESS")])
    await api.wait(JOB, on_transition=record)
    assert moves(seen_async) == [(None, None, "RUNNING"), (None, "RUNNING", "SUCCESS")]


async def test_sub_jobs_appearing_late(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job(
        [
            snap("RUNNING"),
            snap("RUNNING", "RUNNING"),
            snap("RUNNING", "SUCCESS", "WAITING"),
            snap("SUCCESS", "SUCCESS", "SUCCESS"),
        ]
    )
    assert moves(await collect(api)) == [
        (None, None, "RUNNING"),
        ("s0", None, "RUNNING"),
        ("s0", "RUNNING", "SUCCESS"),
        ("s1", None, "WAITING"),
        ("s1", "WAITING", "SUCCESS"),
        (None, "RUNNING", "SUCCESS"),
    ]


async def test_since_resumes_without_replaying_history(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    saved = from_wire(snap("RUNNING", "SUCCESS", "RUNNING"))
    server.add_job([snap("RUNNING", "SUCCESS", "RUNNING"), snap("SUCCESS", "SUCCESS", "SUCCESS")])
    assert moves(await collect(api, since=saved)) == [
        ("s1", "RUNNING", "SUCCESS"),
        (None, "RUNNING", "SUCCESS"),
    ]


async def test_since_of_an_ended_job_makes_no_request(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    done = from_wire(snap("SUCCESS"))
    assert await collect(api, since=done) == []
    assert await api.wait(JOB, since=done) == done
    assert server.requests == []


async def test_since_of_another_job_is_rejected(api: Client, clock: FakeClock) -> None:
    with pytest.raises(InvalidArgument, match="since"):
        await collect(api, since=from_wire(snap("RUNNING", job_id="1")))


async def test_the_gap_grows_with_the_jobs_age_and_a_change_does_not_shorten_it(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    running = snap("RUNNING")
    server.add_job([*[running] * 7, snap("RUNNING", "RUNNING"), running, snap("SUCCESS")])
    policy = PollPolicy(initial_delay=2, max_delay=30, multiplier=2, jitter=0)
    await api.wait(JOB, policy)
    # No begin_time: the job is as old as the wait. The gap grows with its age, capped
    # at max_delay; a sub-job's change is progress, not a sign the end is near.
    assert gaps(server.requests) == [2, 4, 8, 16, 30, 30, 30, 30, 30]


async def test_a_wait_on_an_old_job_starts_at_the_gap_its_age_deserves(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    began = clock.now() - timedelta(minutes=20)
    old = {**snap("RUNNING"), "begin_time": began.isoformat()}
    server.add_job([old, old, {**old, "status": "SUCCESS"}])
    await api.wait(JOB, PollPolicy(jitter=0))
    assert gaps(server.requests) == [DEFAULT_MAX_DELAY, DEFAULT_MAX_DELAY]


async def test_jitter_spreads_each_delay_within_its_share(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([*[snap("RUNNING")] * 40, snap("SUCCESS")])
    policy = PollPolicy(initial_delay=10, max_delay=10, jitter=0.5)
    await api.wait(JOB, policy)
    spread = gaps(server.requests)
    assert len(spread) == 40
    assert all(5 <= gap <= 10 for gap in spread), spread
    assert len(set(spread)) > 10, "the delays were not drawn at random"


async def test_timeout_cuts_the_last_sleep_and_keeps_the_last_snapshot(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", "RUNNING")])
    policy = PollPolicy(initial_delay=2, max_delay=30, timeout=100, jitter=0)
    with pytest.raises(WaitTimeout) as info:
        await api.wait(JOB, policy)
    error = info.value
    assert clock.monotonic() == pytest.approx(100), "the wait ends on the deadline"
    assert [r.at for r in server.requests] == [0, 2, 6, 14, 30, 60, 90]
    assert error.waited == pytest.approx(100)
    assert error.job is not None
    assert error.job.status is JobStatus.RUNNING
    assert "still RUNNING after 100.0s" in str(error)
    assert moves(list(error.transitions)) == [("s0", None, "RUNNING"), (None, None, "RUNNING")]


async def test_watch_raises_wait_timeout(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING")])
    seen: list[Transition] = []
    with pytest.raises(WaitTimeout):
        await drain(api.watch(JOB, PollPolicy(timeout=10)), seen)
    assert moves(seen) == [(None, None, "RUNNING")]


async def test_not_found_inside_the_grace_keeps_polling(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    missing = Reply.error(404, "WKS.00081104", "The job does not exist.")
    server.add_job([missing, missing, snap("RUNNING"), snap("SUCCESS")], job_id=JOB)
    policy = PollPolicy(not_found_grace=10)
    job = await api.wait(JOB, attrs.evolve(policy, jitter=0))
    assert job.status is JobStatus.SUCCESS
    assert [r.status for r in server.requests] == [404, 404, 200, 200]


async def test_not_found_after_the_grace_raises(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([Reply.error(404, "WKS.00081104", "The job does not exist.")], job_id=JOB)
    with pytest.raises(JobNotFound):
        await api.wait(JOB, PollPolicy(not_found_grace=10, jitter=0))
    assert clock.monotonic() >= 10
    assert len(server.requests) == 4  # at 0, 2, 6 and 14 seconds


async def test_not_found_after_the_job_was_seen_is_not_graced(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING"), Reply.error(404, "WKS.00081104", "gone")], job_id=JOB)
    with pytest.raises(JobNotFound):
        await api.wait(JOB, PollPolicy(not_found_grace=60))
    assert len(server.requests) == 2


async def test_retry_after_is_a_floor_for_the_next_delay(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    throttled = Reply.error(429, "APIGW.0308", "throttled", retry_after=7)
    server.add_job([snap("RUNNING"), throttled, snap("SUCCESS")], job_id=JOB)
    await api.wait(JOB, NO_JITTER)
    assert [r.at for r in server.requests] == [0, 2, 9]


async def test_permanent_errors_end_the_wait(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING"), Reply.error(401, "APIGW.0301", "token expired")])
    with pytest.raises(AuthenticationError, match="token expired"):
        await api.wait(JOB)


async def test_breaking_out_of_watch_stops_polling(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", "RUNNING"), snap("RUNNING", "SUCCESS"), snap("SUCCESS")])
    async for _ in api.watch(JOB):
        break
    await _settle()
    assert len(server.requests) == 1
    assert _other_tasks() == set()


async def test_aclose_stops_polling(server: FakeWorkspace, api: Client, clock: FakeClock) -> None:
    server.add_job([snap("RUNNING"), snap("SUCCESS")])
    stream = api.watch(JOB)
    first = await anext(stream)
    assert first.current == "RUNNING"
    await stream.aclose()
    assert len(server.requests) == 1
    await _settle()
    assert _other_tasks() == set()


async def test_cancelling_the_waiting_task_leaves_nothing_behind(server: FakeWorkspace) -> None:
    # Real clock, slow server: the task is cancelled while a request is in flight.
    server.add_job([Reply(body=b"{}", delay=30)], job_id=JOB)
    async with server.client() as client:
        task = asyncio.create_task(client.wait(JOB))
        while not server.requests:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _settle()
        assert _other_tasks() == set()


async def test_cancelling_wait_many_leaves_nothing_behind(server: FakeWorkspace) -> None:
    for n in range(5):
        server.add_job([Reply(body=b"{}", delay=30)], job_id=str(n))

    async def consume(client: Client) -> list[Outcome]:
        return [o async for o in client.wait_many([str(n) for n in range(5)])]

    async with server.client(max_in_flight=5) as client:
        task = asyncio.create_task(consume(client))
        while len(server.requests) < 5:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _settle()
        assert _other_tasks() == set()


async def _settle() -> None:
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)


def _other_tasks() -> set[asyncio.Task[Any]]:
    """Return the live tasks running the library's own code: requests and timers.

    The fake server's handler tasks are left out; they live until the server closes.
    """
    package = Path(imagejobs.__file__).parent
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and not task.done()
        and _code_path(task).is_relative_to(package)
        and not _code_path(task).is_relative_to(package / "testing" / "_server.py")
    }


def _code_path(task: asyncio.Task[Any]) -> Path:
    code = getattr(task.get_coro(), "cr_code", None)
    return Path(code.co_filename) if code is not None else Path()


# --- many jobs -----------------------------------------------------------------


async def test_wait_many_reports_every_outcome_and_one_bad_job_stops_nothing(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", job_id="ok"), snap("SUCCESS", job_id="ok")])
    server.add_job([snap("RUNNING", job_id="bad"), snap("FAILED", "FAILED", job_id="bad")])
    server.add_job([Reply.error(403, "WKS.0003", "no permission")], job_id="denied")
    server.add_job([snap("RUNNING", job_id="slow")])
    policy = PollPolicy(timeout=60, not_found_grace=0)
    outcomes = {
        o.job_id: o
        async for o in api.wait_many(["ok", "bad", "denied", "slow", "ghost", "ok"], policy)
    }
    assert {k: o.kind for k, o in outcomes.items()} == {
        "ok": "success",
        "bad": "failed",
        "denied": "error",
        "slow": "timeout",
        "ghost": "error",
    }
    assert outcomes["ok"].ok
    assert isinstance(outcomes["denied"].error, PermissionDenied)
    assert isinstance(outcomes["ghost"].error, JobNotFound)
    assert outcomes["ghost"].error.job_id == "ghost"  # each waiter's own copy names it too
    assert isinstance(outcomes["bad"].error, JobFailed)
    assert outcomes["slow"].job is not None
    assert outcomes["denied"].job is None
    assert len(server.requests_for("ok")) == 2, "a duplicate ID is waited on once"


async def test_wait_many_rejects_bad_ids_before_any_request(
    server: FakeWorkspace, api: Client
) -> None:
    with pytest.raises(InvalidArgument, match="job_id"):
        async for _ in api.wait_many(["1", "bad/id"]):
            pass
    with pytest.raises(InvalidArgument, match="not a single string"):
        async for _ in api.wait_many("123"):
            pass
    assert server.requests == []


async def test_wait_many_of_nothing_yields_nothing(api: Client) -> None:
    assert [o async for o in api.wait_many([])] == []


async def test_wait_many_calls_on_transition(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    for job_id in ("a", "b"):
        server.add_job([snap("RUNNING", job_id=job_id), snap("SUCCESS", job_id=job_id)])
    seen: list[Transition] = []
    outcomes = [o async for o in api.wait_many(["a", "b"], on_transition=seen.append)]
    assert sorted(o.job_id for o in outcomes) == ["a", "b"]
    assert Counter(t.job_id for t in seen) == {"a": 2, "b": 2}


async def test_watch_many_interleaves_and_raises_the_first_error_at_the_end(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    server.add_job([snap("RUNNING", job_id="a"), snap("SUCCESS", job_id="a")])
    server.add_job([snap("RUNNING", job_id="b"), snap("FAILED", job_id="b")])
    seen: list[Transition] = []
    stream = api.watch_many(["a", "ghost", "b"], PollPolicy(not_found_grace=0))
    with pytest.raises(JobNotFound):
        await drain(stream, seen)
    assert {(t.job_id, t.current) for t in seen if t.is_terminal} == {
        ("a", "SUCCESS"),
        ("b", "FAILED"),
    }

    outcomes: list[Outcome] = []
    transitions = [
        t
        async for t in api.watch_many(
            ["a", "ghost"], PollPolicy(not_found_grace=0), on_outcome=outcomes.append
        )
    ]
    assert sorted(o.kind for o in outcomes) == ["error", "success"]
    assert all(t.job_id == "a" for t in transitions)


async def test_a_429_slows_every_job(server: FakeWorkspace, api: Client, clock: FakeClock) -> None:
    throttled = Reply.error(429, "APIGW.0308", "throttled", retry_after=20)
    server.add_job([throttled, snap("SUCCESS", job_id="a")], job_id="a")
    server.add_job(
        [snap("RUNNING", job_id="b"), snap("RUNNING", job_id="b"), snap("SUCCESS", job_id="b")]
    )
    outcomes = [o async for o in api.wait_many(["a", "b"], NO_JITTER, max_in_flight=1)]
    assert all(o.ok for o in outcomes)
    after_429 = [r for r in server.requests if r.at > 0]
    assert after_429, "polls went on after the 429"
    assert min(r.at for r in after_429) >= 20, "no job was polled during the Retry-After"


async def test_wait_many_holds_the_rate_and_in_flight_limits_over_400_jobs(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    max_in_flight, rate = 16, 50.0
    ids = [f"{n:018d}" for n in range(400)]
    # Real latency, so requests overlap at the server; virtual time waits for them.
    async with FakeWorkspace(clock=clock.monotonic, latency=0.002, **keys) as server:
        for job_id in ids:
            server.add_job([snap("RUNNING", job_id=job_id), snap("SUCCESS", job_id=job_id)])
        budget = {"max_in_flight": max_in_flight, "rate": rate}
        # GETs only: this is about the budget holding, not about sweeps saving requests.
        async with server.client(clock=clock, sweeps=False, **budget) as client:
            outcomes = [o async for o in client.wait_many(ids, PollPolicy(initial_delay=0.5))]
    assert sorted(o.job_id for o in outcomes) == ids
    assert all(o.ok for o in outcomes)
    assert Counter(r.job_id for r in server.requests) == dict.fromkeys(ids, 2)
    assert 1 < server.peak_in_flight <= max_in_flight
    times = sorted(r.at for r in server.requests)
    # Any one-second window holds at most the rate, the burst, and what was
    # already in flight when the window opened.
    busiest = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    assert busiest <= rate + 10 + max_in_flight
    assert times[-1] >= (len(times) - 10) / rate - 1, "the rate was not exceeded overall"


# --- deadlines and errors shared by every job ------------------------------------


async def test_a_slow_answer_is_cut_off_at_the_deadline(server: FakeWorkspace) -> None:
    # Real clock: the one request takes 5 s, the deadline is 0.2 s away.
    server.add_job([Reply(body=b"{}", delay=5)], job_id=JOB)
    async with server.client() as client:
        with pytest.raises(WaitTimeout) as info:
            await client.wait(JOB, PollPolicy(timeout=0.2))
    assert info.value.job is None
    assert info.value.waited < 5, "the wait outlasted its deadline"
    assert len(server.requests) == 1


async def test_jobs_held_back_by_the_budget_still_end_on_the_deadline(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    ids = [f"{n:03d}" for n in range(200)]
    for job_id in ids:
        server.add_job([snap("RUNNING", job_id=job_id)])
    outcomes = [o async for o in api.wait_many(ids, PollPolicy(timeout=10), rate=2.0)]
    assert {o.kind for o in outcomes} == {"timeout"}
    assert len(outcomes) == 200
    waited = {o.error.waited for o in outcomes if isinstance(o.error, WaitTimeout)}
    assert waited == {10.0}
    assert len(server.requests) <= 10 * 2 + 1, "polls went on after the deadline"


async def test_refused_credentials_end_every_job_without_asking_for_each(
    server: FakeWorkspace, clock: FakeClock, keys: dict[str, Any]
) -> None:
    ids = [f"{n:03d}" for n in range(300)]
    for job_id in ids:
        server.add_job([snap("SUCCESS", job_id=job_id)])
    wrong = AkSkCredentials(keys["ak"], "not-the-secret-000000000")
    async with server.client(credentials=wrong) as client:
        outcomes = [o async for o in client.wait_many(ids, max_in_flight=8)]
    assert sorted(o.job_id for o in outcomes) == ids
    assert all(isinstance(o.error, AuthenticationError) for o in outcomes)
    assert 1 <= len(server.requests) <= 8
    await _settle()
    assert _other_tasks() == set()


async def test_the_not_found_grace_runs_from_each_jobs_first_poll(
    server: FakeWorkspace, api: Client, clock: FakeClock
) -> None:
    # At 5 requests a second the last of 100 jobs is first polled after about 20 s,
    # well past the 10 s grace counted from the start.
    missing = Reply.error(404, "WKS.00081104", "The job does not exist.")
    ids = [f"{n:03d}" for n in range(100)]
    for job_id in ids:
        server.add_job([missing, snap("SUCCESS", job_id=job_id)], job_id=job_id)
    outcomes = [o async for o in api.wait_many(ids, rate=5.0)]
    assert {o.kind for o in outcomes} == {"success"}
    assert max(r.at for r in server.requests) > 20
