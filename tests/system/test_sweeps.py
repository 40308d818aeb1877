"""Sweeps: many jobs waited on for a few requests each, through the real client and fake.

Virtual time (FakeClock), so minutes of jobs take a moment and nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from typing import Any

from imagejobs import JobType, Outcome, PollPolicy, Transition
from imagejobs.testing import FakeClock, FakeWorkspace, Faults

TYPES = ("CREATE_SERVER", "CREATE_SERVER_IMAGE", "DELETE_SERVER")


def job(job_id: str, job_type: str, status: str, *, error: str = "") -> dict[str, Any]:
    sub_status = status if status in ("SUCCESS", "FAILED") else "RUNNING"
    sub = {
        "id": f"{job_id}1",
        "job_type": job_type,
        "status": sub_status,
        "job_execute_info": {"error_code": error, "error_message": error and "no quota"},
    }
    return {
        "id": job_id,
        "job_type": job_type,
        "status": status,
        "sub_jobs_total": 1,
        "sub_jobs": [sub],
        "begin_time": "2026-11-27T10:00:00Z",
    }


def script_tenant(
    fake: FakeWorkspace, count: int, old: int, seconds: float, seed: int = 3, soonest: float = 5
) -> dict[str, tuple[float, str]]:
    """Script ``count`` jobs ending between ``soonest`` and ``seconds`` (some FAILED) among
    ``old`` finished ones.

    Returns each job's end time on the fake's clock and its final status.
    """
    draw = random.Random(seed)  # noqa: S311 - a repeatable tenant, not a secret
    for n in range(old):
        job_id = f"9{n:017d}"
        fake.add_job([job(job_id, TYPES[n % 3], "SUCCESS" if n % 7 else "FAILED")])
    ends = {}
    for n in range(count):
        job_id = f"7{n:017d}"
        job_type = TYPES[n % 3]
        end = draw.uniform(soonest, seconds)
        final = "FAILED" if n % 20 == 0 else "SUCCESS"
        timeline = [
            job(job_id, job_type, "WAITING"),
            job(job_id, job_type, "RUNNING"),
            job(job_id, job_type, "RUNNING"),
            job(job_id, job_type, final, error="WKS.0042" if final == "FAILED" else ""),
        ]
        fake.add_job(timeline, every=end / 3, start=0)
        ends[job_id] = (end, final)
    return ends


async def wait_all(
    fake: FakeWorkspace, clock: FakeClock, ids: list[str], **options: Any
) -> dict[str, tuple[Outcome, float]]:
    seen: dict[str, tuple[Outcome, float]] = {}
    async with fake.client(clock=clock, **options) as client:
        async for outcome in client.wait_many(ids):
            seen[outcome.job_id] = (outcome, clock.monotonic())
    return seen


async def test_sweeps_see_every_end_for_few_requests_and_never_end_a_job_from_a_list(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(
        clock=clock.monotonic, rate_limit=10, require_job_type=True, **keys
    ) as fake:
        ends = script_tenant(fake, count=200, old=1000, seconds=60)
        seen = await wait_all(fake, clock, list(ends), rate=10)
        requests = list(fake.requests)
    assert set(seen) == set(ends)
    for job_id, (outcome, _) in seen.items():
        assert outcome.job is not None
        assert outcome.job.status.value == ends[job_id][1]
        if outcome.kind == "failed":
            codes = [
                s.job_execute_info.error_code if s.job_execute_info else None
                for s in outcome.job.failed_sub_jobs
            ]
            assert codes == ["WKS.0042"]
    assert Counter(o.kind for o, _ in seen.values()) == {"success": 190, "failed": 10}
    assert not [r for r in requests if r.status == 400]
    lists = [r for r in requests if r.job_id is None]
    assert lists, "no sweep ran"
    for request in lists:
        assert request.query.get("job_type") in [t.value for t in JobType]
        assert request.query.get("status") in ("WAITING", "RUNNING")
    # Ended only by a GET that showed the end: the last GET of each job served its last step.
    for job_id in ends:
        gets = [r for r in requests if r.job_id == job_id and r.status == 200]
        assert gets
        assert gets[-1].step == 3
    assert len(requests) <= 2 * len(ends), len(requests)
    late = sorted(at - ends[job_id][0] for job_id, (_, at) in seen.items())
    assert late[0] >= 0, "an end was seen before it happened"
    # Sweeps keep coming while ends do, not at the pace of one job's own schedule.
    rounds = [
        r
        for r in lists
        if r.query.get("job_type") == "CREATE_SERVER"
        and r.query.get("status") == "RUNNING"
        and r.query.get("offset") == "0"
    ]
    assert len(rounds) >= 15, len(rounds)


async def test_sweeps_off_polls_each_job_by_get(clock: FakeClock, keys: dict[str, Any]) -> None:
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        ends = script_tenant(fake, count=30, old=30, seconds=20)
        seen = await wait_all(fake, clock, list(ends), rate=2, sweeps=False)
        assert all(o.job is not None for o, _ in seen.values())
        assert [r for r in fake.requests if r.job_id is None] == []


async def test_a_few_jobs_with_a_roomy_budget_are_polled_by_get(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        ends = script_tenant(fake, count=4, old=10, seconds=20)
        seen = await wait_all(fake, clock, list(ends), rate=10)
        assert len(seen) == 4
        assert [r for r in fake.requests if r.job_id is None] == []


async def test_watchers_are_swept_with_the_sub_job_lists_and_miss_no_transition(
    keys: dict[str, Any],
) -> None:
    async def transitions(**options: Any) -> tuple[list[Transition], list[Any]]:
        clock = FakeClock()  # each run from time zero, as the jobs' timelines are
        random.seed(11)  # the jitter: the same draws for both runs
        async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
            ends = script_tenant(fake, count=60, old=60, seconds=120)
            async with fake.client(clock=clock, rate=5, **options) as client:
                seen = [t async for t in client.watch_many(list(ends))]
            return seen, list(fake.requests)

    swept, swept_requests = await transitions()
    polled, polled_requests = await transitions(sweeps=False)
    sub_lists = [r for r in swept_requests if r.path.endswith("/image-server-sub-jobs")]
    assert sub_lists, "no sub-job list was paged"
    for request in sub_lists:
        assert request.query.get("status") in ("WAITING", "RUNNING", "ROLLBACK", "ABORTING")

    # Every change a GET-only watch reports, the swept watch reports too, each once.
    def story(seen: list[Transition]) -> Counter[tuple[str, str | None, Any, Any]]:
        return Counter((t.job_id, t.sub_job_id, t.previous, t.current) for t in seen)

    assert story(swept) == story(polled)
    last: dict[tuple[str, str | None], Any] = {}
    for t in swept:  # each job's and sub-job's changes form one unbroken chain
        assert t.previous == last.get((t.job_id, t.sub_job_id))
        last[t.job_id, t.sub_job_id] = t.current
    assert all(t.job.status == t.current for t in swept if t.sub_job_id is None)
    assert len(swept_requests) < len(polled_requests)


async def test_a_list_that_never_shows_the_end_does_not_hide_it(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    # A per-poll timeline moves only when GET: its lists show the last step served,
    # like a list that lags. The jobs still end, fetched at the lists' trust limit.
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        ids = [f"5{n:017d}" for n in range(6)]
        for job_id in ids:
            running = job(job_id, "CREATE_SERVER", "RUNNING")
            fake.add_job([running, running, job(job_id, "CREATE_SERVER", "SUCCESS")])
        policy = PollPolicy(initial_delay=0.1, max_delay=1, timeout=600)
        async with fake.client(clock=clock, sweeps=True) as client:
            outcomes = [o async for o in client.wait_many(ids, policy)]
        assert all(o.ok for o in outcomes)
        assert [r for r in fake.requests if r.job_id is None], "no sweep ran"


async def test_many_concurrent_waits_share_the_sweeps(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(clock=clock.monotonic, rate_limit=3, **keys) as fake:
        ends = script_tenant(fake, count=45, old=100, seconds=40)
        ids = list(ends)
        async with fake.client(clock=clock) as client:  # the default budget: 1.5 a second
            jobs = await asyncio.gather(
                *(client.wait(ids[n % len(ids)], raise_on_failure=False) for n in range(135))
            )
        assert Counter(j.status.value for j in jobs) == Counter(
            final for _, final in ends.values() for _ in range(3)
        )
        assert [r for r in fake.requests if r.job_id is None], "no sweep ran"
        assert len(fake.requests) <= 2.5 * len(ids)


async def test_lists_that_keep_failing_hand_their_jobs_back_to_gets(
    clock: FakeClock, keys: dict[str, Any], caplog: Any
) -> None:
    lists_fail = Faults(rate=1.0, kinds=("500",))
    async with FakeWorkspace(clock=clock.monotonic, list_faults=lists_fail, **keys) as fake:
        ends = script_tenant(fake, count=30, old=10, seconds=40)
        policy = PollPolicy(timeout=3000)
        async with fake.client(clock=clock, sweeps=True) as client:
            outcomes = [o async for o in client.wait_many(list(ends), policy)]
    assert all(o.job is not None and o.job.status.value == ends[o.job_id][1] for o in outcomes)
    # Seen by GETs soon after the end, not at the deadline.
    assert clock.monotonic() < 200
    assert "sweeps pause" in caplog.text


async def test_a_list_crowded_by_other_jobs_is_given_up_after_one_page(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        for n in range(3000):  # someone else's running jobs, of the same type
            fake.add_job([job(f"8{n:017d}", "CREATE_SERVER", "RUNNING")])
        ids = [f"6{n:017d}" for n in range(30)]
        for n, job_id in enumerate(ids):
            steps = [
                job(job_id, "CREATE_SERVER", "RUNNING"),
                job(job_id, "CREATE_SERVER", "SUCCESS"),
            ]
            fake.add_job(steps, every=20 + n, start=0)
        async with fake.client(clock=clock, sweeps=True) as client:
            outcomes = [o async for o in client.wait_many(ids)]
        assert all(o.ok for o in outcomes)
        pages = [r for r in fake.requests if r.path.endswith("/image-server-jobs")]
        assert len(pages) < 40, "the crowded list was paged through"


async def test_a_new_watcher_of_a_swept_job_is_told_at_once(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        ends = script_tenant(fake, count=30, old=10, seconds=600)
        ids = sorted(ends, key=lambda job_id: ends[job_id][0])
        async with fake.client(clock=clock, sweeps=True) as client:

            async def watch_all() -> None:
                async for _ in client.watch_many(ids):
                    pass

            waiting = asyncio.ensure_future(watch_all())
            await clock.sleep(300)
            assert [r for r in fake.requests if r.job_id is None], "no sweep ran"
            joined = clock.monotonic()
            first = await anext(client.watch(ids[-1]))
            told = clock.monotonic()
            waiting.cancel()
    assert first.current is not None
    assert told - joined < 5, "the new watcher waited for the job to change"


async def test_sweeps_keep_to_a_calls_narrowed_share(
    clock: FakeClock, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        ends = script_tenant(fake, count=60, old=10, seconds=300)
        async with fake.client(clock=clock, rate=10, sweeps=True) as client:
            calls = client.wait_many(list(ends), rate=0.5)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    async for _ in calls:
                        pass
            await calls.aclose()
        early = [r for r in fake.requests if r.at < 60]
    # Half a request a second for a minute, a burst and what was in flight aside.
    assert len(early) <= 0.5 * 60 + 5
