"""The client against the fake server on 127.0.0.1, through real HTTP."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import yarl

from imagejobs import (
    ApiError,
    AuthenticationError,
    BadRequest,
    Client,
    ClientClosed,
    InvalidArgument,
    JobNotFound,
    JobStatus,
    JobType,
    MalformedResponse,
    PermissionDenied,
    RetryPolicy,
    ServerError,
    SubJobStatus,
    Throttled,
    TokenCredentials,
    TransportError,
    __version__,
)
from imagejobs.core import signing
from imagejobs.testing import FakeWorkspace, Reply
from imagejobs.transport.aiohttp import AiohttpTransport

JOB_ID = "702364883651395584"


async def test_reference_example_over_http(
    fake: FakeWorkspace, client: Client, reference_wire: dict[str, Any]
) -> None:
    job_id = fake.add_job([reference_wire])
    job = await client.get_job(job_id)
    assert job.id == JOB_ID
    assert job.job_type is JobType.CREATE_SERVER_IMAGE
    assert job.begin_time == datetime(2024, 5, 20, 10, 39, 49, 610000, tzinfo=UTC)
    assert job.end_time == datetime(2024, 5, 20, 11, 3, 24, 206000, tzinfo=UTC)
    assert job.status is JobStatus.SUCCESS
    assert job.sub_jobs_total == 1
    sub = job.sub_jobs[0]
    assert sub.id == "702364884037271552"
    assert sub.status is SubJobStatus.SUCCESS
    assert sub.job_resource_info is not None
    assert sub.job_resource_info.resource_id == "f5d443de-a623-4950-a74d-569fe63c1f7a"
    assert sub.job_resource_info.resource_name == "123"
    assert sub.job_execute_info is not None
    assert (sub.job_execute_info.error_code, sub.job_execute_info.error_message) == ("", "")
    assert sub.project_id == "a4da8115c9d8464ead3a38309130523f"
    assert sub.job_id == JOB_ID
    assert sub.end_time == datetime(2024, 5, 20, 11, 3, 24, 194000, tzinfo=UTC)


async def test_request_path_and_headers(fake: FakeWorkspace, client: Client) -> None:
    fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
    await client.get_job(JOB_ID)
    (request,) = fake.requests
    assert request.method == "GET"
    assert request.path == f"/v1/{fake.project_id}/image-server-jobs/{JOB_ID}"
    assert request.headers["User-Agent"] == f"imagejobs/{__version__}"
    assert request.headers["Content-Type"] == "application/json"
    assert "X-Auth-Token" not in request.headers


async def test_timeline_advances_per_poll_and_sticks_at_the_end(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job(
        [{"id": JOB_ID, "status": s} for s in ("WAITING", "RUNNING", "SUCCESS")],
    )
    seen = [(await client.get_job(JOB_ID)).status for _ in range(5)]
    assert seen == ["WAITING", "RUNNING", "SUCCESS", "SUCCESS", "SUCCESS"]


async def test_timeline_advances_by_time(keys: dict[str, Any]) -> None:
    now = [100.0]
    async with FakeWorkspace(clock=lambda: now[0], **keys) as fake, fake.client() as client:
        fake.add_job([{"id": JOB_ID, "status": s} for s in ("WAITING", "RUNNING")], every=5)
        assert (await client.get_job(JOB_ID)).status is JobStatus.WAITING
        now[0] += 4.9
        assert (await client.get_job(JOB_ID)).status is JobStatus.WAITING
        now[0] += 0.1
        assert (await client.get_job(JOB_ID)).status is JobStatus.RUNNING


DOCUMENTED_ERRORS = [
    (400, BadRequest, "WKS.0001", "The request is invalid."),
    (401, AuthenticationError, "APIGW.0301", "Incorrect IAM authentication information"),
    (403, PermissionDenied, "WKS.0003", "Permission denied."),
    (404, JobNotFound, "WKS.00081104", "The job does not exist."),
    (405, BadRequest, "WKS.0005", "Method not allowed."),
    (429, Throttled, "APIGW.0308", "The throttling threshold has been reached"),
    (500, ServerError, "WKS.0500", "Internal error."),
    (503, ServerError, "WKS.0503", "Service unavailable."),
]


@pytest.mark.parametrize(("status", "cls", "code", "msg"), DOCUMENTED_ERRORS)
async def test_documented_errors_map_to_their_exception(
    fake: FakeWorkspace,
    client: Client,
    status: int,
    cls: type[ApiError],
    code: str,
    msg: str,
) -> None:
    fake.add_job([Reply.error(status, code, msg)], job_id=JOB_ID)
    with pytest.raises(cls) as info:
        await client.get_job(JOB_ID)
    error = info.value
    assert type(error) is cls
    assert error.http_status == status
    assert error.error_code == code
    assert error.error_msg == msg
    assert error.request_id == fake.requests[-1].request_id
    # A 404 names the job asked for: the service's text does not.
    job = f"job {JOB_ID}, " if cls is JobNotFound else ""
    assert str(error) == f"{status} {code}: {msg} ({job}request id {error.request_id})"


async def test_throttled_reports_retry_after(fake: FakeWorkspace, client: Client) -> None:
    fake.add_job([Reply.error(429, "APIGW.0308", "throttled", retry_after=3)], job_id=JOB_ID)
    with pytest.raises(Throttled) as info:
        await client.get_job(JOB_ID)
    assert info.value.retry_after == 3.0


async def test_unknown_job_is_not_found(fake: FakeWorkspace, client: Client) -> None:
    with pytest.raises(JobNotFound, match=r"WKS\.00081104: .* \(job 1, request id ") as info:
        await client.get_job("1")
    assert info.value.job_id == "1"


async def test_a_list_that_is_not_found_names_no_job(fake: FakeWorkspace) -> None:
    fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
    async with fake.client(project_id="f" * 32, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(JobNotFound) as info:
            await client.count_sub_jobs(JOB_ID)
    assert info.value.job_id is None
    assert "(request id " in str(info.value)
    assert "job " not in str(info.value).partition("(")[2]


async def test_gateway_html_page_still_maps_by_status(fake: FakeWorkspace, client: Client) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    fake.add_job(
        [Reply(status=502, body=page, headers={"Content-Type": "text/html"})], job_id=JOB_ID
    )
    with pytest.raises(ServerError, match="502 Bad Gateway: <html>") as info:
        await client.get_job(JOB_ID)
    assert info.value.error_code is None
    assert info.value.request_id is not None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"id": JOB_ID}, "$.status"),
        (
            {"id": JOB_ID, "status": "RUNNING", "sub_jobs": [{"id": "s", "status": None}]},
            "$.sub_jobs[0].status",
        ),
        ([1, 2], "$"),
    ],
)
async def test_malformed_bodies_raise_with_path(
    fake: FakeWorkspace, client: Client, body: object, path: str
) -> None:
    fake.add_job([Reply.json(body)], job_id=JOB_ID)
    with pytest.raises(MalformedResponse) as info:
        await client.get_job(JOB_ID)
    assert info.value.path == path
    assert info.value.request_id == fake.requests[-1].request_id


@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b'{"id": "1", "stat'])
async def test_bodies_that_are_not_json_are_malformed(
    fake: FakeWorkspace, client: Client, body: bytes
) -> None:
    fake.add_job([Reply(body=body)], job_id=JOB_ID)
    with pytest.raises(MalformedResponse, match=r"@ \$"):
        await client.get_job(JOB_ID)


async def test_unknown_values_and_extra_fields_over_http(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job(
        [
            {
                "id": JOB_ID,
                "status": "PAUSED",
                "job_type": "RESIZE",
                "end_time": "",
                "shiny_new_field": [1, 2, 3],
                "sub_jobs": [{"id": "s", "status": "HIBERNATING", "end_time": None}],
            }
        ]
    )
    job = await client.get_job(JOB_ID)
    assert job.status.value == "PAUSED"
    assert not job.is_terminal
    assert job.end_time is None
    assert job.sub_jobs[0].status.value == "HIBERNATING"


BAD_IDS = ["", "a/b", "..", ".", "a b", "a\nb", "x" * 129, "tab\t", "nul\x00", "back\\slash"]


@pytest.mark.parametrize("job_id", BAD_IDS)
async def test_invalid_job_ids_make_no_request(
    fake: FakeWorkspace, client: Client, job_id: str
) -> None:
    with pytest.raises(InvalidArgument, match="job_id") as info:
        await client.get_job(job_id)
    assert isinstance(info.value, ValueError)
    assert fake.requests == []


async def test_non_string_job_id_is_rejected(fake: FakeWorkspace, client: Client) -> None:
    with pytest.raises(InvalidArgument, match="must be a string, got int"):
        await client.get_job(702364883651395584)  # type: ignore[arg-type]
    assert fake.requests == []


@pytest.mark.parametrize("project_id", BAD_IDS)
def test_invalid_project_ids_are_rejected_at_construction(project_id: str) -> None:
    with pytest.raises(InvalidArgument, match="project_id"):
        Client(project_id=project_id, endpoint="http://127.0.0.1:1")


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:8080", "ftp://host", "https://", "https://h/?q=1", "https://u:p@h"]
)
def test_bad_endpoints_are_rejected(endpoint: str) -> None:
    with pytest.raises(InvalidArgument, match="endpoint"):
        Client(project_id="p", endpoint=endpoint)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), "30"])
def test_bad_timeouts_are_rejected(timeout: Any) -> None:
    with pytest.raises(InvalidArgument, match="timeout"):
        Client(project_id="p", endpoint="http://127.0.0.1:1", timeout=timeout)


async def test_odd_but_legal_ids_are_percent_encoded(fake: FakeWorkspace, client: Client) -> None:
    odd = "a?b#c%d"
    fake.add_job([{"id": odd, "status": "RUNNING"}])
    job = await client.get_job(odd)
    assert job.id == odd
    assert fake.requests[-1].job_id == odd


async def test_borrowed_session_is_left_open(fake: FakeWorkspace) -> None:
    fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
    async with aiohttp.ClientSession() as session:
        async with fake.client(session=session) as client:
            await client.get_job(JOB_ID)
        assert not session.closed
        async with fake.client(session=session) as again:
            assert (await again.get_job(JOB_ID)).status is JobStatus.RUNNING


async def test_own_session_is_closed_and_client_refuses_after_close(fake: FakeWorkspace) -> None:
    fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
    async with fake.client() as client:
        await client.get_job(JOB_ID)
        transport = client._requester.transport
        assert isinstance(transport, AiohttpTransport)
        session = transport._session
    assert session is not None
    assert session.closed
    with pytest.raises(ClientClosed, match="client is closed"):
        await client.get_job(JOB_ID)
    assert len(fake.requests) == 1


async def test_closing_empties_yarls_caches_of_the_urls_it_parsed(
    fake: FakeWorkspace, reference_wire: dict[str, Any]
) -> None:
    # yarl keeps the last URLs it parsed, the client's and the in-process gateway's: made
    # as a long wait's last jobs were asked about, they would keep the memory those jobs
    # freed mapped after close(). Cached, a URL parsed again is the very same object.
    fake.add_job([reference_wire])
    sent = f"{fake.url}/v1/p/image-server-jobs/{JOB_ID}"
    served = f"/v1/p/image-server-jobs/{JOB_ID}"
    async with fake.client() as client:
        await client.get_job(JOB_ID)
        kept = yarl.URL(sent), yarl.URL(served, encoded=True)
        assert kept == (yarl.URL(sent), yarl.URL(served, encoded=True))
        assert kept[0] is yarl.URL(sent)
        assert kept[1] is yarl.URL(served, encoded=True)
    assert yarl.URL(sent) is not kept[0]
    assert yarl.URL(served, encoded=True) is not kept[1]


async def test_closing_empties_the_memos_and_forgets_what_the_requests_taught(
    fake: FakeWorkspace, reference_wire: dict[str, Any]
) -> None:
    # What the waits left process-wide, or in the client's rate and clock readings, was
    # made among the memory of the jobs they ended: kept, it would keep that mapped.
    fake.add_job([reference_wire])
    async with fake.client() as client:
        await client.get_job(JOB_ID)
        assert signing._canonical_uri.cache_info().currsize > 0
        assert len(client._gate.budget.adaptive.accepted) == 1
    assert signing._canonical_uri.cache_info().currsize == 0
    assert len(client._gate.budget.adaptive.accepted) == 0
    assert repr(client._requester.clock_offset) == "ClockOffset(seconds=0, readings=0)"


async def test_closing_cuts_a_request_in_flight_short_with_client_closed(
    fake: FakeWorkspace,
) -> None:
    fake.add_job([Reply(body=b"{}", delay=30)], job_id=JOB_ID)
    client = fake.client(retry=RetryPolicy(max_attempts=1))
    fetching = asyncio.ensure_future(client.get_job(JOB_ID))
    while not fake.in_flight:
        await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(ClientClosed, match=r"^GET \S+: the client was closed$"):
        await fetching


async def test_closed_borrowed_session_gives_a_typed_error(fake: FakeWorkspace) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(ClientClosed, match="session passed to the client is closed"):
        await fake.client(session=session).get_job(JOB_ID)


async def test_token_is_sent_and_checked() -> None:
    async with FakeWorkspace(token="good-token") as fake:
        fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
        async with fake.client() as client:
            assert (await client.get_job(JOB_ID)).status is JobStatus.RUNNING
        assert fake.requests[-1].headers["X-Auth-Token"] == "good-token"
        async with fake.client(credentials=TokenCredentials("wrong-token")) as client:
            with pytest.raises(AuthenticationError, match=r"APIGW\.0301") as info:
                await client.get_job(JOB_ID)
        assert "wrong-token" not in str(info.value)
        assert "wrong-token" not in repr(client)
        async with fake.client(credentials=None) as client:
            with pytest.raises(AuthenticationError, match=r"APIGW\.0301"):
                await client.get_job(JOB_ID)


@pytest.mark.parametrize("token", ["", "a\r\nX-Evil: 1", "tab\tinside", 42])
def test_bad_tokens_are_rejected_without_echoing_them(token: Any) -> None:
    with pytest.raises(InvalidArgument, match="token") as info:
        TokenCredentials(token)
    if isinstance(token, str) and token:
        assert token not in str(info.value)


def test_token_repr_hides_the_token() -> None:
    assert "s3cret" not in repr(TokenCredentials("s3cret"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_connection_refused_is_a_transport_error() -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"
    async with Client(
        project_id="p", endpoint=endpoint, retry=RetryPolicy(max_attempts=1)
    ) as client:
        with pytest.raises(TransportError, match=r"GET http://127\.0\.0\.1"):
            await client.get_job(JOB_ID)


async def test_slow_answer_is_a_transport_error(fake: FakeWorkspace) -> None:
    fake.add_job([Reply(body=b"{}", delay=5)], job_id=JOB_ID)
    async with fake.client(timeout=0.05, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(TransportError, match=r"timed out after 0\.05s"):
            await client.get_job(JOB_ID)


async def test_concurrent_requests_share_one_session(fake: FakeWorkspace, client: Client) -> None:
    ids = [str(n) for n in range(20)]
    for job_id in ids:
        fake.add_job([{"id": job_id, "status": "SUCCESS"}])
    jobs = await asyncio.gather(*(client.get_job(i) for i in ids))
    assert [j.id for j in jobs] == ids
    assert len(fake.requests) == 20


def test_client_repr_shows_endpoint_not_credentials() -> None:
    client = Client(
        project_id="p", endpoint="https://example.invalid/", credentials=TokenCredentials("hidden!")
    )
    assert repr(client) == "Client(endpoint='https://example.invalid', project_id='p')"


async def test_unknown_paths_and_methods_get_documented_error_shapes(fake: FakeWorkspace) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.url}/v2/nothing") as response:
            assert response.status == 404
            assert (await response.json())["error_code"] == "APIGW.0101"
            assert response.headers["X-Request-Id"]
        job_url = f"{fake.url}/v1/{fake.project_id}/image-server-jobs/{JOB_ID}"
        async with session.delete(job_url) as response:
            assert response.status == 405
            assert (await response.json())["error_code"] == "APIGW.0106"
    assert [r.status for r in fake.requests] == [404, 405]
