"""The poll schedule end to end: the real client against the fake server, on a FakeClock."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from imagejobs import Client, ImageJobsError, InvalidArgument, JobFailed, PollPolicy, RetryPolicy
from imagejobs.planning.history import DurationHistory
from imagejobs.planning.policy import DEFAULT_MAX_DELAY
from imagejobs.testing import FakeClock, FakeWorkspace

NO_JITTER = PollPolicy(jitter=0)

LONGEST = DEFAULT_MAX_DELAY  # max_delay=None: the longest gap without a history


def job_snap(
    job_id: str,
    status: str,
    *,
    job_type: str | None = "CREATE_SERVER",
    begin: Any = None,
    end: Any = None,
) -> dict[str, Any]:
    snap: dict[str, Any] = {"id": job_id, "status": status, "sub_jobs": []}
    if job_type is not None:
        snap["job_type"] = job_type
    if begin is not None:
        snap["begin_time"] = begin.isoformat()
    if end is not None:
        snap["end_time"] = end.isoformat()
    return snap


def gaps(requests: list[Any]) -> list[float]:
    return [round(b.at - a.at, 6) for a, b in itertools.pairwise(requests)]


@pytest.fixture
async def plain_client(server: FakeWorkspace, clock: FakeClock) -> AsyncIterator[Client]:
    async with server.client(retry=RetryPolicy(max_attempts=1), clock=clock) as client:
        yield client


def lognormal_around(median: float, count: int, sigma: float = 0.15) -> list[float]:
    rng = random.Random(3)  # noqa: S311 - reproducible samples
    return [rng.lognormvariate(math.log(median), sigma) for _ in range(count)]


async def _wait_on_a_300s_job(
    server: FakeWorkspace, clock: FakeClock, job_id: str, history: DurationHistory | None
) -> int:
    """Script a job that begins now and ends SUCCESS at 300 s; wait on it; return the polls."""
    began = clock.now()
    steps = [
        job_snap(job_id, "RUNNING", begin=began),
        job_snap(job_id, "SUCCESS", begin=began, end=began + timedelta(seconds=300)),
    ]
    server.add_job(steps, every=300, start=clock.monotonic())
    async with server.client(clock=clock, history=history) as client:
        job = await client.wait(job_id, NO_JITTER)
    assert job.status.value == "SUCCESS"
    assert clock.monotonic() - server.requests_for(job_id)[0].at >= 300
    return len(server.requests_for(job_id))


async def test_an_old_job_is_polled_at_the_longest_gap_from_its_first_poll(
    server: FakeWorkspace, plain_client: Client, clock: FakeClock
) -> None:
    began = clock.now() - timedelta(minutes=20)
    running = job_snap("1", "RUNNING", begin=began)
    done = job_snap("1", "SUCCESS", begin=began, end=clock.now() + timedelta(minutes=2))
    server.add_job([running] * 5 + [done])
    await plain_client.wait("1", NO_JITTER)
    assert gaps(server.requests) == [LONGEST] * 5


async def test_a_job_seen_to_succeed_adds_its_duration_to_the_history(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    began = clock.now() - timedelta(seconds=400)
    ended = began + timedelta(seconds=250)
    server.add_job(
        [job_snap("1", "RUNNING", begin=began), job_snap("1", "SUCCESS", begin=began, end=ended)]
    )
    server.add_job(
        [
            job_snap("2", "RUNNING", job_type="DELETE_SERVER", begin=began),
            job_snap(
                "2",
                "SUCCESS",
                job_type="DELETE_SERVER",
                begin=began,
                end=began + timedelta(seconds=42.5),
            ),
        ]
    )
    failed_end = began + timedelta(seconds=100)
    server.add_job([job_snap("3", "FAILED", begin=began, end=failed_end)])
    server.add_job([job_snap("4", "SUCCESS")])  # no times
    server.add_job([job_snap("5", "SUCCESS", job_type=None, begin=began, end=ended)])
    history = DurationHistory({"CREATE_SERVER": [100]})
    async with server.client(clock=clock, history=history) as client:
        assert client.history is history
        await client.wait("1", NO_JITTER)
        assert history.durations("CREATE_SERVER") == (100.0, 250.0)
        await client.wait("2", NO_JITTER)
        assert history.durations("DELETE_SERVER") == (42.5,)
        # A wait on a job long finished does not count it again: it saw nothing run.
        await client.wait("1", NO_JITTER)
        assert history.durations("CREATE_SERVER") == (100.0, 250.0)
        with pytest.raises(JobFailed):
            await client.wait("3", NO_JITTER)
        await client.wait("4", NO_JITTER)
        await client.wait("5", NO_JITTER)
    assert history.job_types == ("CREATE_SERVER", "DELETE_SERVER")
    assert history.durations("CREATE_SERVER") == (100.0, 250.0), "FAILED and timeless: nothing"


async def test_a_history_of_the_type_spends_far_fewer_polls(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    history = DurationHistory({"CREATE_SERVER": lognormal_around(300, 30)})
    with_history = await _wait_on_a_300s_job(server, clock, "1", history)
    without = await _wait_on_a_300s_job(server, clock, "2", None)
    # Without: 0, 2, 6, 14, 30, then every longest gap until 300 s.
    times = list(itertools.accumulate(itertools.islice(NO_JITTER.delays(), 40), initial=0.0))
    assert without == 1 + next(n for n, at in enumerate(times) if at >= 300)
    assert without >= 14
    assert with_history <= 0.6 * without, (with_history, without)
    # The history's polls: one at 0, none for minutes, then close together near 300 s.
    first, *rest = gaps(server.requests_for("1"))
    assert first > 180
    assert all(gap < LONGEST for gap in rest)
    assert len(history.durations("CREATE_SERVER")) == 31, "the job's own duration is recorded"
    assert history.durations("CREATE_SERVER")[-1] == 300.0


async def test_learn_history_reads_one_page_of_successful_jobs_of_the_type(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    base = clock.now() - timedelta(days=1)
    expected: set[float] = set()
    for n in range(150):
        began = base + timedelta(minutes=n)
        seconds = 200.0 + n
        expected.add(seconds)
        end = began + timedelta(seconds=seconds)
        server.add_job([job_snap(str(10_000 + n), "SUCCESS", begin=began, end=end)])
    for n in range(5):  # jobs the filters leave out
        began = base + timedelta(minutes=n)
        end = began + timedelta(seconds=9_999)
        server.add_job([job_snap(str(20_000 + n), "FAILED", begin=began, end=end)])
        server.add_job(
            [job_snap(str(30_000 + n), "SUCCESS", job_type="DELETE_SERVER", begin=began, end=end)]
        )
    history = DurationHistory({"CREATE_SERVER": [1.0] * 20})
    async with server.client(clock=clock, history=history) as client:
        learned = await client.learn_history(["CREATE_SERVER"], pages=1)
    assert learned == {"CREATE_SERVER": 100}
    lists = [r for r in server.requests if r.job_id is None]
    assert len(lists) == 1, "at most one page"
    assert lists == server.requests
    assert lists[0].query["status"] == "SUCCESS"
    assert lists[0].query["job_type"] == "CREATE_SERVER"
    assert lists[0].query.get("limit") == "100"
    kept = history.durations("CREATE_SERVER")
    assert len(kept) == 100, "what the history held for the type is replaced"
    assert set(kept) <= expected
    assert list(kept) == sorted(kept), "oldest end first (here, the shortest)"
    assert history.job_types == ("CREATE_SERVER",)


async def test_learn_history_needs_a_history_and_a_page(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    async with server.client(clock=clock) as client:
        with pytest.raises(ImageJobsError, match="history"):
            await client.learn_history(["CREATE_SERVER"])
    async with server.client(clock=clock, history=DurationHistory()) as client:
        bad_pages: list[Any] = [0, -1, True, 1.5]
        for pages in bad_pages:
            with pytest.raises(InvalidArgument):
                await client.learn_history(["CREATE_SERVER"], pages=pages)
        with pytest.raises(InvalidArgument):
            await client.learn_history("CREATE_SERVER")
    assert server.requests == [], "nothing is sent for a refused call"


async def test_an_empty_job_type_spoils_no_wait(server: FakeWorkspace, clock: FakeClock) -> None:
    began = clock.now()
    odd = {**job_snap("odd", "RUNNING", begin=began), "job_type": ""}
    server.add_job(
        [odd, {**odd, "status": "SUCCESS", "end_time": (began + timedelta(seconds=9)).isoformat()}]
    )
    server.add_job(
        [
            job_snap("ok", "RUNNING", begin=began),
            job_snap("ok", "SUCCESS", begin=began, end=began + timedelta(seconds=30)),
        ]
    )
    history = DurationHistory()
    async with server.client(clock=clock, history=history) as client:
        outcomes = [o async for o in client.wait_many(["odd", "ok"], NO_JITTER)]
    assert all(o.ok for o in outcomes)
    assert history.job_types == ("CREATE_SERVER",)  # the odd one is not recorded


async def test_a_history_that_expects_a_long_job_still_sees_a_quick_end(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    fifty_minutes = [3000.0 * (1 + n / 100) for n in range(30)]
    history = DurationHistory({"CREATE_SERVER": fifty_minutes})
    began = clock.now()
    done = began + timedelta(seconds=300)
    server.add_job(
        [job_snap("q", "RUNNING", begin=began), job_snap("q", "SUCCESS", begin=began, end=done)],
        every=300,
        start=0,
    )
    async with server.client(clock=clock, history=history) as client:
        job = await client.wait("q", PollPolicy(timeout=1200, jitter=0))
    assert job.status.value == "SUCCESS"
    assert clock.monotonic() <= 300 + 8 * DEFAULT_MAX_DELAY
