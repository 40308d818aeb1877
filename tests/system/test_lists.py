"""The client's list calls (jobs, sub-jobs, the sub-job count) against the fake, over HTTP."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_data import snap, sub

from imagejobs import (
    MAX_PAGE_SIZE,
    BadRequest,
    Client,
    ImageJobInfo,
    InvalidArgument,
    JobStatus,
    JobType,
    RetryPolicy,
    ServerError,
    SubJob,
    SubJobStatus,
)
from imagejobs.testing import FAKE_PROJECT_ID, FakeClock, FakeWorkspace, Faults

JOBS = f"/v1/{FAKE_PROJECT_ID}/image-server-jobs"
SUB_JOBS = f"/v1/{FAKE_PROJECT_ID}/image-server-sub-jobs"
COUNT = f"/v1/{FAKE_PROJECT_ID}/image-server-sub-jobs/actions/count"

# Tries come back at once: a retry test need not wait out a real backoff.
AK = "AKLISTTESTS000000001"
SK = "SKlisttests0000000000000000000000000001"

QUICK_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.001)


def add_jobs(fake: FakeWorkspace, count: int, prefix: str = "job", **fields: Any) -> set[str]:
    return {fake.add_job([snap(f"{prefix}-{n}", **fields)]) for n in range(count)}


def pages(fake: FakeWorkspace, path: str = JOBS) -> list[dict[str, str]]:
    """The queries of the list requests the fake served on ``path``."""
    return [dict(r.query) for r in fake.requests if r.path == path]


async def job_ids(client: Client, **options: Any) -> list[str]:
    return [info.id async for info in client.list_jobs(**options)]


async def collect(listing: AsyncIterator[ImageJobInfo], into: list[str]) -> None:
    async for item in listing:
        into.append(item.id)


# -- paging -------------------------------------------------------------------


async def test_list_jobs_pages_by_the_page_size(fake: FakeWorkspace, client: Client) -> None:
    expected = add_jobs(fake, 23)
    listed = [info async for info in client.list_jobs(page_size=7)]
    assert all(isinstance(info, ImageJobInfo) for info in listed)
    assert len(listed) == 23
    assert {info.id for info in listed} == expected
    assert pages(fake) == [
        {"limit": "7", "offset": "0"},
        {"limit": "7", "offset": "7"},
        {"limit": "7", "offset": "14"},
        {"limit": "7", "offset": "21"},
    ]
    assert all(r.status == 200 for r in fake.requests)


async def test_the_default_page_size_is_the_most_the_service_allows(
    fake: FakeWorkspace, client: Client
) -> None:
    assert MAX_PAGE_SIZE == 100
    expected = add_jobs(fake, 150)
    listed = await job_ids(client)
    assert sorted(listed) == sorted(expected)
    assert pages(fake) == [{"limit": "100", "offset": "0"}, {"limit": "100", "offset": "100"}]


async def test_an_empty_list_is_one_request(fake: FakeWorkspace, client: Client) -> None:
    assert await job_ids(client, status="RUNNING") == []
    assert pages(fake) == [{"status": "RUNNING", "limit": "100", "offset": "0"}]


async def test_a_list_that_fits_a_page_exactly_needs_no_empty_page(
    fake: FakeWorkspace, client: Client
) -> None:
    add_jobs(fake, 14)
    assert len(await job_ids(client, page_size=7)) == 14
    assert [q["offset"] for q in pages(fake)] == ["0", "7"]


@settings(max_examples=20)
@given(total=st.integers(0, 30), size=st.integers(1, 12), seed=st.integers(0, 2**64 - 1))
async def test_paging_an_unchanging_list_yields_each_job_once(
    total: int, size: int, seed: int
) -> None:
    async with FakeWorkspace(ak=AK, sk=SK, list_seed=seed) as fake:
        expected = add_jobs(fake, total)
        async with fake.client(retry=RetryPolicy(max_attempts=1)) as client:
            listed = await job_ids(client, page_size=size)
        assert sorted(listed) == sorted(expected)
        requested = pages(fake)
        assert len(requested) == max(1, math.ceil(total / size))
        assert [int(q["offset"]) for q in requested] == [n * size for n in range(len(requested))]
        assert {q["limit"] for q in requested} == {str(size)}


# -- filters and items --------------------------------------------------------


async def test_status_and_job_type_filters_are_sent_and_honoured(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job([snap("run-image", "RUNNING", "CREATE_SERVER_IMAGE")])
    fake.add_job([snap("run-server", "RUNNING", "CREATE_SERVER")])
    fake.add_job([snap("done-image", "SUCCESS", "CREATE_SERVER_IMAGE")])
    fake.add_job([snap("wait-image", "WAITING", "CREATE_SERVER_IMAGE")])

    running = [info async for info in client.list_jobs(status="RUNNING")]
    assert sorted(info.id for info in running) == ["run-image", "run-server"]
    assert {info.status for info in running} == {JobStatus.RUNNING}

    images = await job_ids(client, job_type="CREATE_SERVER_IMAGE")
    assert sorted(images) == ["done-image", "run-image", "wait-image"]

    both = [info async for info in client.list_jobs("RUNNING", "CREATE_SERVER_IMAGE")]
    assert [(i.id, i.status, i.job_type) for i in both] == [
        ("run-image", JobStatus.RUNNING, JobType.CREATE_SERVER_IMAGE)
    ]
    assert await job_ids(client, status="FAILED") == []

    queries = pages(fake)
    assert queries[0] == {"status": "RUNNING", "limit": "100", "offset": "0"}
    assert queries[1] == {"job_type": "CREATE_SERVER_IMAGE", "limit": "100", "offset": "0"}
    assert queries[2] == {
        "status": "RUNNING",
        "job_type": "CREATE_SERVER_IMAGE",
        "limit": "100",
        "offset": "0",
    }
    assert queries[3]["status"] == "FAILED"


async def test_items_are_job_infos_with_every_field_read(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job(
        [
            {
                "id": "odd",
                "job_type": "MAKE_COFFEE",
                "begin_time": "2024-05-20T18:39:49.5+08:00",
                "end_time": "2024-05-20T11:03:24.206Z",
                "status": "PAUSED",
                "sub_jobs_total": 3,
                "sub_jobs": [sub("a"), sub("b"), sub("c")],
            }
        ]
    )
    fake.add_job([{"id": "bare", "status": "SUCCESS"}])
    listed = {info.id: info async for info in client.list_jobs()}
    odd, bare = listed["odd"], listed["bare"]
    assert type(odd) is ImageJobInfo
    assert odd.begin_time == datetime(2024, 5, 20, 10, 39, 49, 500000, tzinfo=UTC)
    assert odd.begin_time.utcoffset() is not None
    assert odd.end_time == datetime(2024, 5, 20, 11, 3, 24, 206000, tzinfo=UTC)
    assert odd.end_time.tzinfo is not None
    assert odd.sub_jobs_total == 3
    assert odd.status.value == "PAUSED"
    assert not odd.status.is_known
    assert not odd.is_terminal
    assert odd.job_type is not None
    assert odd.job_type.value == "MAKE_COFFEE"
    assert not odd.job_type.is_known
    assert not hasattr(odd, "sub_jobs")
    assert bare == ImageJobInfo(id="bare", status=JobStatus.SUCCESS)
    assert bare.is_terminal


# -- a list that changes while it is paged ------------------------------------


async def test_jobs_added_while_paging_are_never_yielded_twice(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.list_seed = 11  # one fixed order, so the overlap checked below is certain
    original = add_jobs(fake, 30, "old")
    listing = client.list_jobs(page_size=10)
    first = [(await anext(listing)).id for _ in range(10)]
    assert len(fake.requests) == 1  # the second page is not asked for yet

    added = add_jobs(fake, 20, "new")
    rest = [info.id async for info in listing]
    yielded = first + rest

    assert len(yielded) == len(set(yielded))
    assert set(yielded) <= original | added
    # Insertions only push items later: nothing that was there all along is skipped.
    assert original <= set(yielded)
    # And the server did repeat items of the first page on later ones.
    now = await job_ids(client)
    assert set(first) & set(now[10:])
    assert [q["offset"] for q in pages(fake)[:2]] == ["0", "10"]


async def test_jobs_changing_status_between_pages_are_not_repeated(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.list_seed = 5
    statuses = [snap("x", "RUNNING"), snap("x", "SUCCESS")]
    flipping = {
        server.add_job([{**s, "id": f"flip-{n}"} for s in statuses], every=10, start=0)
        for n in range(8)
    }
    steady = {server.add_job([snap(f"steady-{n}")]) for n in range(7)}
    async with server.client(retry=RetryPolicy(max_attempts=1)) as client:
        listing = client.list_jobs(status="RUNNING", page_size=5)
        yielded = [await anext(listing) for _ in range(5)]
        assert len(server.requests) == 1
        clock.advance(10)  # the flip-* jobs end: the RUNNING list shrinks under the pager
        yielded += [info async for info in listing]
    ids = [info.id for info in yielded]
    assert len(ids) == len(set(ids))
    assert set(ids) <= flipping | steady
    assert {info.status for info in yielded} == {JobStatus.RUNNING}
    # After the shrink, the later pages show steady jobs only.
    assert all(job_id in steady for job_id in ids[5:])
    assert len(pages(server)) >= 2


# -- arguments checked before any request -------------------------------------


@pytest.mark.parametrize("page_size", [0, 101, -1, True, False, 1.5, "10", None])
async def test_a_bad_page_size_is_refused_before_any_request(
    fake: FakeWorkspace, client: Client, page_size: Any
) -> None:
    add_jobs(fake, 3)
    with pytest.raises(InvalidArgument, match="page_size"):
        async for _ in client.list_jobs(page_size=page_size):
            pass
    with pytest.raises(InvalidArgument, match="page_size"):
        async for _ in client.list_sub_jobs(page_size=page_size):
            pass
    assert fake.requests == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", "RUN NING"),
        ("status", ""),
        ("status", 5),
        ("status", b"RUNNING"),
        ("status", "RUNNING&limit=1000"),
        ("job_type", "CREATE_SERVER;DELETE"),
        ("job_type", "CREATE-SERVER"),
        ("job_type", "CREATE_SERVER,"),
        ("job_type", "x" * 65),
        ("job_type", ["CREATE_SERVER"]),
    ],
)
async def test_a_bad_filter_is_refused_before_any_request(
    fake: FakeWorkspace, client: Client, name: str, value: Any
) -> None:
    add_jobs(fake, 3)
    with pytest.raises(InvalidArgument, match=name):
        async for _ in client.list_jobs(**{name: value}):
            pass
    with pytest.raises(InvalidArgument, match=name):
        async for _ in client.list_sub_jobs(**{name: value}):
            pass
    with pytest.raises(InvalidArgument, match=name):
        await client.count_sub_jobs(**{name: value})
    assert fake.requests == []


@pytest.mark.parametrize("job_id", ["a/b", "", "..", "has space", 42, "x" * 129])
async def test_a_bad_job_id_is_refused_before_any_request(
    fake: FakeWorkspace, client: Client, job_id: Any
) -> None:
    with pytest.raises(InvalidArgument, match="job_id"):
        async for _ in client.list_sub_jobs(job_id=job_id):
            pass
    with pytest.raises(InvalidArgument, match="job_id"):
        await client.count_sub_jobs(job_id=job_id)
    assert fake.requests == []


async def test_the_bounds_of_page_size_are_accepted(fake: FakeWorkspace, client: Client) -> None:
    add_jobs(fake, 3)
    assert len(await job_ids(client, page_size=1)) == 3
    assert len(await job_ids(client, page_size=100)) == 3
    assert [q["limit"] for q in pages(fake)] == ["1", "1", "1", "100"]


# -- sub-jobs and the count ---------------------------------------------------


def script_sub_jobs(fake: FakeWorkspace) -> None:
    fake.add_job(
        [
            snap(
                "p1",
                sub_jobs=[
                    sub("a", job_type="CREATE_SERVER"),
                    sub("b", "SUCCESS", "CREATE_SERVER_IMAGE"),
                    sub("c", "FAILED", "DELETE_SERVER"),
                    sub("d", job_type="BUILD_IMAGE"),
                ],
            )
        ]
    )
    fake.add_job([snap("p2", sub_jobs=[sub("e", job_type="CREATE_SERVER")])])
    fake.add_job([snap("p3")])


async def test_list_sub_jobs_of_one_job_name_their_parent(
    fake: FakeWorkspace, client: Client
) -> None:
    script_sub_jobs(fake)
    subs = [s async for s in client.list_sub_jobs(job_id="p1", page_size=3)]
    assert all(type(s) is SubJob for s in subs)
    assert sorted(s.id for s in subs) == ["a", "b", "c", "d"]
    assert {s.job_id for s in subs} == {"p1"}
    assert {s.project_id for s in subs} == {FAKE_PROJECT_ID}
    by_id = {s.id: s for s in subs}
    assert by_id["c"].status is SubJobStatus.FAILED
    assert by_id["d"].job_type is JobType.BUILD_IMAGE
    assert pages(fake, SUB_JOBS) == [
        {"job_id": "p1", "limit": "3", "offset": "0"},
        {"job_id": "p1", "limit": "3", "offset": "3"},
    ]


async def test_list_sub_jobs_without_a_job_spans_jobs_and_filters(
    fake: FakeWorkspace, client: Client
) -> None:
    script_sub_jobs(fake)
    every = [s async for s in client.list_sub_jobs()]
    assert sorted(s.id for s in every) == ["a", "b", "c", "d", "e"]
    assert {s.id: s.job_id for s in every} == {
        "a": "p1",
        "b": "p1",
        "c": "p1",
        "d": "p1",
        "e": "p2",
    }

    running = [s async for s in client.list_sub_jobs(status="RUNNING")]
    assert sorted(s.id for s in running) == ["a", "d", "e"]
    assert {s.status for s in running} == {SubJobStatus.RUNNING}

    typed = [s.id async for s in client.list_sub_jobs("p1", "RUNNING", "CREATE_SERVER")]
    assert typed == ["a"]
    assert pages(fake, SUB_JOBS)[-1] == {
        "job_id": "p1",
        "status": "RUNNING",
        "job_type": "CREATE_SERVER",
        "limit": "100",
        "offset": "0",
    }
    assert [s async for s in client.list_sub_jobs(job_id="p3")] == []
    assert [s async for s in client.list_sub_jobs(job_id="unknown")] == []


async def test_count_sub_jobs(fake: FakeWorkspace, client: Client) -> None:
    script_sub_jobs(fake)
    # Without job_type only the three documented types count: not "d" (BUILD_IMAGE).
    assert await client.count_sub_jobs() == 4
    assert await client.count_sub_jobs(job_type="BUILD_IMAGE") == 1
    assert await client.count_sub_jobs(job_type="BUILD_IMAGE,DELETE_SERVER") == 2
    assert await client.count_sub_jobs(job_id="p1", job_type="CREATE_SERVER,BUILD_IMAGE") == 2
    assert await client.count_sub_jobs(status="SUCCESS") == 1
    assert await client.count_sub_jobs(job_id="p2") == 1
    assert await client.count_sub_jobs(job_id="p1", status="RUNNING") == 1
    assert await client.count_sub_jobs(job_id="p3") == 0
    queries = pages(fake, COUNT)
    assert len(queries) == len(fake.requests) == 8
    assert queries[0] == {}
    assert queries[2] == {"job_type": "BUILD_IMAGE,DELETE_SERVER"}
    assert queries[3] == {"job_id": "p1", "job_type": "CREATE_SERVER,BUILD_IMAGE"}
    assert all(r.status == 200 for r in fake.requests)


# -- errors and retries -------------------------------------------------------


async def test_a_service_that_demands_job_type_refuses_a_list_without_one(
    keys: dict[str, Any],
) -> None:
    async with FakeWorkspace(require_job_type=True, **keys) as fake:
        add_jobs(fake, 3)
        async with fake.client(retry=QUICK_RETRY) as client:
            with pytest.raises(BadRequest) as info:
                await job_ids(client)
            assert info.value.error_code == "WKS.00211102"
            assert info.value.http_status == 400
            assert len(fake.requests) == 1  # a 400 is not retried
            assert len(await job_ids(client, job_type="CREATE_SERVER_IMAGE")) == 3


async def test_a_transient_failure_is_retried_and_the_list_comes_back_whole(
    keys: dict[str, Any],
) -> None:
    async with FakeWorkspace(faults=Faults(at={1: "503", 3: "502"}), **keys) as fake:
        expected = add_jobs(fake, 12)
        async with fake.client(retry=QUICK_RETRY) as client:
            listed = await job_ids(client, page_size=5)
        assert sorted(listed) == sorted(expected)
        assert [(r.status, r.query["offset"]) for r in fake.requests] == [
            (503, "0"),
            (200, "0"),
            (502, "5"),
            (200, "5"),
            (200, "10"),
        ]


@pytest.mark.parametrize("at", [1, 2])
async def test_without_retries_a_failed_page_raises(keys: dict[str, Any], at: int) -> None:
    async with FakeWorkspace(faults=Faults(at={at: "503"}), **keys) as fake:
        add_jobs(fake, 12)
        async with fake.client(retry=RetryPolicy(max_attempts=1)) as client:
            seen: list[str] = []
            with pytest.raises(ServerError) as info:
                await collect(client.list_jobs(page_size=5), seen)
        assert info.value.http_status == 503
        assert len(seen) == 5 * (at - 1)  # the pages before the failure were yielded
        assert len(fake.requests) == at


async def test_the_count_is_retried_too(keys: dict[str, Any]) -> None:
    async with FakeWorkspace(faults=Faults(at={1: "500"}), **keys) as fake:
        script_sub_jobs(fake)
        async with fake.client(retry=QUICK_RETRY) as client:
            assert await client.count_sub_jobs() == 4
        assert [r.status for r in fake.requests] == [500, 200]


async def test_breaking_out_early_sends_no_further_request(
    fake: FakeWorkspace, client: Client
) -> None:
    add_jobs(fake, 30)
    async for _ in client.list_jobs(page_size=5):
        break
    assert len(fake.requests) == 1
    taken: list[ImageJobInfo] = []
    async with contextlib.aclosing(client.list_jobs(page_size=5)) as listing:
        async for info in listing:
            taken.append(info)
            if len(taken) == 7:
                break
    assert len(taken) == 7
    async with contextlib.aclosing(client.list_sub_jobs(page_size=5)) as subs:
        async for _ in subs:
            break
    assert len(fake.requests) == 1 + 2 + 1
    await client.close()
    assert len(fake.requests) == 4


async def test_a_server_that_ignores_the_offset_does_not_keep_the_client_paging() -> None:
    from aiohttp import web  # noqa: PLC0415

    served = 0

    async def same_page(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        items = [{"id": f"j{n}", "status": "RUNNING"} for n in range(5)]
        return web.json_response({"count": 10**6, "items": items})

    app = web.Application()
    app.router.add_get("/v1/{project}/image-server-jobs", same_page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with Client(project_id="p1", endpoint=endpoint) as client:
            ids = [info.id async for info in client.list_jobs(job_type="CREATE_SERVER")]
    finally:
        await runner.cleanup()
    assert ids == [f"j{n}" for n in range(5)]
    assert served == 2, "a page of nothing new did not end the listing"
