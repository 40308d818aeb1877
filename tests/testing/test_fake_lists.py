"""The fake server's three list endpoints, spoken to over HTTP with a plain aiohttp session."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_data import snap, sub
from yarl import URL

from imagejobs import ImageJob, JobStatus, SubJob, SubJobStatus, sign_request
from imagejobs.testing import FAKE_PROJECT_ID, FakeClock, FakeWorkspace, Faults, Reply

JOBS = f"/v1/{FAKE_PROJECT_ID}/image-server-jobs"
SUB_JOBS = f"/v1/{FAKE_PROJECT_ID}/image-server-sub-jobs"
COUNT = f"/v1/{FAKE_PROJECT_ID}/image-server-sub-jobs/actions/count"
INFO_FIELDS = {"id", "job_type", "begin_time", "end_time", "status", "sub_jobs_total"}


async def call(
    session: aiohttp.ClientSession, fake: FakeWorkspace, path: str, **query: object
) -> tuple[int, Any]:
    params = {name: str(value) for name, value in query.items()}
    async with session.get(fake.url + path, params=params) as response:
        return response.status, await response.json()


async def ids(session: aiohttp.ClientSession, fake: FakeWorkspace, **query: object) -> list[str]:
    status, body = await call(session, fake, JOBS, limit=100, **query)
    assert status == 200, body
    return [item["id"] for item in body["items"]]


@pytest.fixture
async def plain() -> AsyncIterator[FakeWorkspace]:
    """A fake that asks for no credentials, so plain requests need no signing."""
    async with FakeWorkspace() as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_a_job_list_counts_every_match_and_shows_ten_by_default(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    for n in range(25):
        plain.add_job([snap(f"job-{n}", sub_jobs=[sub(f"sub-{n}")])])
    status, body = await call(session, plain, JOBS)
    assert status == 200
    assert body["count"] == 25
    assert len(body["items"]) == 10
    assert all(set(item) == INFO_FIELDS for item in body["items"])
    assert {item["sub_jobs_total"] for item in body["items"]} == {1}

    status, body = await call(session, plain, JOBS, offset=20, limit=100)
    assert (status, body["count"], len(body["items"])) == (200, 25, 5)
    status, body = await call(session, plain, JOBS, offset=25)
    assert (status, body) == (200, {"count": 25, "items": []})


async def test_an_item_copies_only_the_fields_the_snapshot_has(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    plain.add_job([{"id": "bare", "status": "WAITING", "sub_jobs": [], "extra": 1}])
    plain.add_job([ImageJob(id="typed", status=JobStatus.SUCCESS, sub_jobs_total=0)])
    _, body = await call(session, plain, JOBS)
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id["bare"] == {"id": "bare", "status": "WAITING"}
    assert by_id["typed"]["status"] == "SUCCESS"
    assert by_id["typed"]["sub_jobs_total"] == 0
    assert "sub_jobs" not in by_id["typed"]


@pytest.mark.parametrize("path", [JOBS, SUB_JOBS])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "x"),
        ("limit", ""),
        ("limit", "+5"),
        ("limit", "1.5"),
        ("offset", "-1"),
        ("offset", "x"),
        ("offset", "99999999999"),
    ],
)
async def test_a_bad_page_is_an_invalid_parameter(
    plain: FakeWorkspace, session: aiohttp.ClientSession, path: str, name: str, value: str
) -> None:
    plain.add_job([snap("1", sub_jobs=[sub("s1")])])
    status, body = await call(session, plain, path, **{name: value})
    assert status == 400
    assert body["error_code"] == "WKS.00211102"
    assert name in body["error_msg"]


@pytest.mark.parametrize(("limit", "shown"), [(1, 1), (100, 100), (7, 7)])
async def test_the_limit_bounds_are_accepted(
    plain: FakeWorkspace, session: aiohttp.ClientSession, limit: int, shown: int
) -> None:
    for n in range(120):
        plain.add_job([snap(str(n))])
    status, body = await call(session, plain, JOBS, limit=limit, offset=0)
    assert (status, body["count"], len(body["items"])) == (200, 120, shown)


@settings(max_examples=25)
@given(total=st.integers(0, 35), limit=st.integers(1, 12), seed=st.integers(0, 2**64))
async def test_paging_a_list_that_does_not_change_sees_each_job_exactly_once(
    total: int, limit: int, seed: int
) -> None:
    async with FakeWorkspace(list_seed=seed) as fake, aiohttp.ClientSession() as session:
        for n in range(total):
            fake.add_job([snap(f"job-{n}", sub_jobs=[sub(f"a{n}"), sub(f"b{n}")])])
        for path, expected in [
            (JOBS, {f"job-{n}" for n in range(total)}),
            (SUB_JOBS, {f"{x}{n}" for n in range(total) for x in "ab"}),
        ]:
            seen: list[str] = []
            pages = math.ceil(len(expected) / limit)
            for page in range(pages + 1):
                status, body = await call(session, fake, path, offset=page * limit, limit=limit)
                assert status == 200
                assert body["count"] == len(expected)
                assert len(body["items"]) == max(0, min(limit, len(expected) - page * limit))
                seen += [item["id"] for item in body["items"]]
            assert sorted(seen) == sorted(expected)


async def test_filters_on_status_and_job_type(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    plain.add_job([snap("run-image", "RUNNING", "CREATE_SERVER_IMAGE")])
    plain.add_job([snap("run-server", "RUNNING", "CREATE_SERVER")])
    plain.add_job([snap("done-image", "SUCCESS", "CREATE_SERVER_IMAGE")])
    plain.add_job([{"id": "no-type", "status": "RUNNING"}])
    assert sorted(await ids(session, plain, status="RUNNING")) == [
        "no-type",
        "run-image",
        "run-server",
    ]
    assert sorted(await ids(session, plain, job_type="CREATE_SERVER_IMAGE")) == [
        "done-image",
        "run-image",
    ]
    assert await ids(session, plain, status="RUNNING", job_type="CREATE_SERVER") == ["run-server"]
    assert await ids(session, plain, status="FAILED") == []
    _, body = await call(session, plain, JOBS, status="RUNNING", limit=1)
    assert (body["count"], len(body["items"])) == (3, 1)


async def test_require_job_type_refuses_a_job_list_without_one(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeWorkspace(require_job_type=True) as fake:
        fake.add_job([snap("1")])
        status, body = await call(session, fake, JOBS)
        assert status == 400
        assert body == {"error_code": "WKS.00211102", "error_msg": body["error_msg"]}
        assert "job_type is required" in body["error_msg"]
        assert await ids(session, fake, job_type="CREATE_SERVER_IMAGE") == ["1"]
        # Only the job list demands it.
        status, _ = await call(session, fake, SUB_JOBS)
        assert status == 200


async def test_the_order_is_not_the_insertion_order_but_is_stable(
    session: aiohttp.ClientSession,
) -> None:
    added = [f"{n:03d}" for n in range(50)]
    orders = []
    for seed in (7, 7, 8):
        async with FakeWorkspace(list_seed=seed) as fake:
            for job_id in added:
                fake.add_job([snap(job_id)])
            first = await ids(session, fake)
            assert await ids(session, fake) == first
            assert fake.list_seed == seed
            orders.append(first)
    assert sorted(orders[0]) == added
    assert orders[0] not in (added, added[::-1])
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]


async def test_without_a_seed_each_fake_draws_its_own(session: aiohttp.ClientSession) -> None:
    async with FakeWorkspace() as one, FakeWorkspace() as two:
        assert one.list_seed != two.list_seed
        for fake in (one, two):
            for n in range(50):
                fake.add_job([snap(str(n))])
        assert await ids(session, one) != await ids(session, two)


async def test_removing_nothing_keeps_the_relative_order_when_jobs_are_added(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeWorkspace(list_seed=3) as fake:
        for n in range(20):
            fake.add_job([snap(str(n))])
        before = await ids(session, fake)
        fake.add_job([snap("late")])
        after = await ids(session, fake)
        assert [job_id for job_id in after if job_id != "late"] == before


async def test_sub_jobs_carry_their_parent_and_project_and_filter_by_job_id(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    own = {**sub("s3"), "job_id": "declared-parent", "project_id": "other-project"}
    plain.add_job([snap("p1", sub_jobs=[sub("s1"), sub("s2", "SUCCESS", "DELETE_SERVER")])])
    plain.add_job([snap("p2", sub_jobs=[own])])
    plain.add_job([snap("p3")])
    status, body = await call(session, plain, SUB_JOBS)
    assert (status, body["count"]) == (200, 3)
    by_id = {item["id"]: item for item in body["items"]}
    assert by_id["s1"] == {**sub("s1"), "job_id": "p1", "project_id": FAKE_PROJECT_ID}
    assert by_id["s3"] == own

    _, body = await call(session, plain, SUB_JOBS, job_id="p1")
    assert sorted(item["id"] for item in body["items"]) == ["s1", "s2"]
    assert {item["job_id"] for item in body["items"]} == {"p1"}
    _, body = await call(session, plain, SUB_JOBS, job_id="p1", status="SUCCESS")
    assert [item["id"] for item in body["items"]] == ["s2"]
    _, body = await call(session, plain, SUB_JOBS, job_type="CREATE_SERVER")
    assert sorted(item["id"] for item in body["items"]) == ["s1", "s3"]
    _, body = await call(session, plain, SUB_JOBS, job_id="unknown")
    assert body == {"count": 0, "items": []}


async def test_sub_jobs_of_a_typed_snapshot_are_listed_in_wire_form(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    job = ImageJob(
        id="typed",
        status=JobStatus.RUNNING,
        sub_jobs=(SubJob(id="t1", status=SubJobStatus.ROLLBACK),),
    )
    plain.add_job([job])
    _, body = await call(session, plain, SUB_JOBS, status="ROLLBACK")
    assert body["items"] == [
        {"id": "t1", "status": "ROLLBACK", "job_id": "typed", "project_id": FAKE_PROJECT_ID}
    ]


async def test_the_count_takes_a_list_of_job_types_and_defaults_to_the_documented_three(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    plain.add_job(
        [
            snap(
                "p1",
                sub_jobs=[
                    sub("a", job_type="CREATE_SERVER"),
                    sub("b", "SUCCESS", "CREATE_SERVER_IMAGE"),
                    sub("c", job_type="DELETE_SERVER"),
                    sub("d", job_type="BUILD_IMAGE"),
                ],
            )
        ]
    )
    plain.add_job([snap("p2", sub_jobs=[sub("e", job_type="CREATE_SERVER")])])

    async def count(**query: object) -> int:
        status, body = await call(session, plain, COUNT, **query)
        assert status == 200
        assert set(body) == {"count"}
        n: int = body["count"]
        return n

    assert await count() == 4
    assert await count(job_type="BUILD_IMAGE") == 1
    assert await count(job_type="BUILD_IMAGE,DELETE_SERVER") == 2
    assert await count(job_type="CREATE_SERVER,BUILD_IMAGE", job_id="p1") == 2
    assert await count(status="SUCCESS") == 1
    assert await count(job_id="p2") == 1
    assert await count(status="RUNNING", job_id="p1") == 2


async def test_a_list_shows_a_per_poll_timeline_where_the_last_get_left_it(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    job_id = plain.add_job([snap("1", "WAITING"), snap("1", "RUNNING"), snap("1", "SUCCESS")])

    async def listed() -> list[str]:
        _, body = await call(session, plain, JOBS)
        return [item["status"] for item in body["items"]]

    async def got() -> str:
        _, body = await call(session, plain, f"{JOBS}/{job_id}")
        status: str = body["status"]
        return status

    assert await listed() == ["WAITING"]
    assert await listed() == ["WAITING"]
    assert await got() == "WAITING"  # the lists did not move the timeline on
    assert await listed() == ["WAITING"]
    assert await got() == "RUNNING"
    assert await listed() == ["RUNNING"]
    assert await got() == "SUCCESS"
    assert await got() == "SUCCESS"
    assert await listed() == ["SUCCESS"]
    assert [r.step for r in plain.requests_for(job_id)] == [0, 1, 2, 2]


async def test_a_raw_reply_step_lists_the_snapshot_before_it(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    busy = Reply.error(503, "WKS.0503", "busy")
    plain.add_job([snap("1", "RUNNING"), busy, snap("1", "SUCCESS")])
    plain.add_job([busy, snap("2", "SUCCESS")], job_id="2")
    for _ in range(2):
        await call(session, plain, f"{JOBS}/1")
    assert plain.requests[-1].status == 503
    status, body = await call(session, plain, JOBS)
    assert status == 200
    # Job 2 has shown no snapshot yet, so it is not listed at all.
    assert [(item["id"], item["status"]) for item in body["items"]] == [("1", "RUNNING")]
    assert body["count"] == 1


async def test_a_time_based_timeline_is_listed_by_the_time_and_starts_at_the_first_list(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with FakeWorkspace(clock=clock.monotonic) as fake:
        statuses = ("WAITING", "RUNNING", "SUCCESS")
        fake.add_job([snap("1", s) for s in statuses], every=10)
        clock.advance(100)  # the clock starts with the first request, not with add_job

        async def listed() -> str:
            _, body = await call(session, fake, JOBS)
            status: str = body["items"][0]["status"]
            return status

        assert await listed() == "WAITING"
        clock.advance(10)
        # A GET now sees step 1, counted from the list, not step 0 of its own start.
        _, body = await call(session, fake, f"{JOBS}/1")
        assert body["status"] == "RUNNING"
        assert fake.requests[-1].step == 1
        clock.advance(5)
        assert await listed() == "RUNNING"
        clock.advance(5)
        assert await listed() == "SUCCESS"
        clock.advance(1000)
        assert await listed() == "SUCCESS"


async def test_start_sets_when_a_time_based_timeline_begins(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with FakeWorkspace(clock=clock.monotonic) as fake:
        statuses = ("WAITING", "RUNNING", "SUCCESS")
        fake.add_job([snap("early", s) for s in statuses], every=10, start=-15.0)
        fake.add_job([snap("late", s) for s in statuses], every=10, start=30)

        async def listed() -> dict[str, str]:
            _, body = await call(session, fake, JOBS)
            return {item["id"]: item["status"] for item in body["items"]}

        assert await listed() == {"early": "RUNNING", "late": "WAITING"}
        clock.advance(45)
        assert await listed() == {"early": "SUCCESS", "late": "RUNNING"}
        _, body = await call(session, fake, f"{JOBS}/late")
        assert body["status"] == "RUNNING"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"every": 1, "start": math.nan}, "finite"),
        ({"every": 1, "start": math.inf}, "finite"),
        ({"every": 1, "start": "0"}, "finite"),
        ({"every": 1, "start": True}, "finite"),
        ({"start": 0.0}, "every"),
    ],
)
def test_start_must_be_a_finite_time_with_every(options: dict[str, Any], problem: str) -> None:
    fake = FakeWorkspace()
    with pytest.raises(ValueError, match=problem):
        fake.add_job([snap("1")], **options)
    assert repr(fake).endswith("jobs=0)")


async def test_the_rate_limit_covers_lists(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeWorkspace(clock=clock.monotonic, rate_limit=2) as fake:
        fake.add_job([snap("1", sub_jobs=[sub("s")])])
        assert (await call(session, fake, JOBS))[0] == 200
        assert (await call(session, fake, f"{JOBS}/1"))[0] == 200
        for path in (JOBS, SUB_JOBS, COUNT):
            status, body = await call(session, fake, path)
            assert (status, body["error_code"]) == (429, "APIGW.0308")
        assert fake.throttled == 3
        clock.advance(1)
        assert (await call(session, fake, COUNT))[0] == 200


async def test_list_requests_are_recorded_with_their_query(
    plain: FakeWorkspace, session: aiohttp.ClientSession
) -> None:
    plain.add_job([snap("1")])
    await call(session, plain, JOBS, job_type="CREATE_SERVER_IMAGE", limit=5)
    await call(session, plain, f"{JOBS}/1")
    listed, got = plain.requests
    assert listed.query == {"job_type": "CREATE_SERVER_IMAGE", "limit": "5"}
    assert (listed.job_id, listed.project_id, listed.status) == (None, FAKE_PROJECT_ID, 200)
    assert listed.step is None
    assert got.query == {}
    assert plain.requests_for("1") == [got]


async def test_lists_pass_the_same_gateway_checks_as_job_details(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeWorkspace(token="secret-token") as fake:
        for path in (JOBS, SUB_JOBS, COUNT):
            status, body = await call(session, fake, path)
            assert (status, body["error_code"]) == (401, "APIGW.0301")
            assert "token missing" in body["error_msg"]
            async with session.post(fake.url + path) as response:
                assert response.status == 405
        headers = {"X-Auth-Token": "secret-token"}
        async with session.get(fake.url + COUNT, headers=headers) as response:
            assert response.status == 200
        wrong_project = JOBS.replace(FAKE_PROJECT_ID, "f" * 32)
        async with session.get(fake.url + wrong_project, headers=headers) as response:
            assert response.status == 404
            assert set(await response.json()) == {"error_code", "error_msg"}
        for other in (f"{SUB_JOBS}/x", f"{SUB_JOBS}/actions", f"{COUNT}/more"):
            async with session.get(fake.url + other, headers=headers) as response:
                assert response.status == 404
                assert (await response.json())["error_code"] == "APIGW.0101"


async def test_an_ak_sk_signature_covers_the_query(
    fake: FakeWorkspace, keys: dict[str, Any], session: aiohttp.ClientSession
) -> None:
    fake.add_job([snap("1", "SUCCESS")])
    signed = sign_request(
        "GET",
        f"{fake.url}{JOBS}?status=SUCCESS&limit=5",
        {"X-Project-Id": fake.project_id},
        b"",
        ak=keys["ak"],
        sk=keys["sk"],
        when=datetime.now(UTC),
    )
    async with session.get(URL(signed.url, encoded=True), headers=signed.headers) as response:
        assert response.status == 200
        assert (await response.json())["count"] == 1
    tampered = signed.url.replace("limit=5", "limit=6")
    async with session.get(URL(tampered, encoded=True), headers=signed.headers) as response:
        assert response.status == 401
        assert "signature mismatch" in (await response.json())["error_msg"]
    assert [r.query for r in fake.requests] == [
        {"status": "SUCCESS", "limit": "5"},
        {"status": "SUCCESS", "limit": "6"},
    ]


async def test_server_faults_reach_lists_but_a_jobs_own_do_not(
    session: aiohttp.ClientSession,
) -> None:
    async with FakeWorkspace(faults=Faults(at={1: "503", 3: "html"})) as fake:
        fake.add_job([snap("1")], faults=Faults(rate=1.0, kinds=("500",)))
        status, body = await call(session, fake, JOBS)
        assert (status, body["error_code"]) == (503, "WKS.0503")
        assert (await call(session, fake, SUB_JOBS))[0] == 200
        async with session.get(fake.url + COUNT) as response:
            assert response.status == 502
            assert response.content_type == "text/html"
        assert [r.fault for r in fake.requests] == ["503", None, "html"]
        assert (await call(session, fake, f"{JOBS}/1"))[0] == 500
