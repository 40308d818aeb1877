"""Credentials end to end: AK/SK signing, temporary keys, refreshable tokens, transport safety."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from conftest import TEST_AK, TEST_SK

from imagejobs import (
    AkSkCredentials,
    AuthenticationError,
    Client,
    InvalidArgument,
    JobStatus,
    RefreshableTokenCredentials,
    TokenCredentials,
)
from imagejobs.testing import FakeWorkspace

JOB_ID = "702364883651395584"
RUNNING = {"id": JOB_ID, "status": "RUNNING"}


async def test_signed_requests_are_accepted(fake: FakeWorkspace, client: Client) -> None:
    fake.add_job([RUNNING])
    assert (await client.get_job(JOB_ID)).status is JobStatus.RUNNING
    sent = fake.requests[-1].headers
    assert sent["Authorization"].startswith("SDK-HMAC-SHA256 Access=AKTESTFIXTURE0000001, ")
    assert sent["X-Project-Id"] == fake.project_id
    assert sent["Host"] == fake.url.removeprefix("http://")  # the port is signed as sent


async def test_every_request_gets_a_fresh_date(keys: dict[str, Any]) -> None:
    times = iter([datetime(2026, 11, 27, 10, 0, s, tzinfo=UTC) for s in (1, 2)])
    clock_now = [datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)]

    def now() -> datetime:
        clock_now[0] = next(times)
        return clock_now[0]

    credentials = AkSkCredentials(keys["ak"], keys["sk"], clock=now)
    async with FakeWorkspace(**keys, now=lambda: clock_now[0]) as server:
        server.add_job([RUNNING])
        async with server.client(credentials=credentials) as client:
            await client.get_job(JOB_ID)
            await client.get_job(JOB_ID)
        dates = [r.headers["X-Sdk-Date"] for r in server.requests]
    assert dates == ["20261127T100001Z", "20261127T100002Z"]


async def test_a_wrong_secret_is_a_signature_mismatch(
    fake: FakeWorkspace, keys: dict[str, Any]
) -> None:
    fake.add_job([RUNNING])
    wrong = AkSkCredentials(keys["ak"], "SKnotthesecret0000000000000000000000000")
    async with fake.client(credentials=wrong) as client:
        with pytest.raises(AuthenticationError, match="signature mismatch") as info:
            await client.get_job(JOB_ID)
    assert info.value.error_code == "APIGW.0301"
    assert info.value.http_status == 401


async def test_an_old_signature_is_expired(fake: FakeWorkspace, keys: dict[str, Any]) -> None:
    fake.add_job([RUNNING])
    stale = datetime.now(UTC) - timedelta(minutes=16)
    late = AkSkCredentials(keys["ak"], keys["sk"], clock=lambda: stale)
    async with fake.client(credentials=late) as client:
        with pytest.raises(AuthenticationError, match="signature expired"):
            await client.get_job(JOB_ID)


async def test_an_unsigned_request_is_refused(fake: FakeWorkspace) -> None:
    fake.add_job([RUNNING])
    async with fake.client(credentials=None) as client:
        with pytest.raises(AuthenticationError, match="no token or signature"):
            await client.get_job(JOB_ID)


async def test_temporary_credentials_send_and_sign_the_security_token(
    keys: dict[str, Any],
) -> None:
    async with FakeWorkspace(**keys, security_token="temporary-token-1") as fake:
        fake.add_job([RUNNING])
        async with fake.client() as client:
            await client.get_job(JOB_ID)
        sent = fake.requests[-1].headers
        assert sent["X-Security-Token"] == "temporary-token-1"
        assert "x-security-token" in sent["Authorization"]
        other = AkSkCredentials(keys["ak"], keys["sk"], "temporary-token-2")
        async with fake.client(credentials=other) as client:
            with pytest.raises(AuthenticationError, match="security token"):
                await client.get_job(JOB_ID)


async def test_a_refreshable_token_is_fetched_once_and_renewed_once_after_a_401() -> None:
    tokens = iter(["expired-token", "fresh-token", "unused-token"])
    fetched: list[str] = []

    async def fetch() -> str:
        fetched.append(next(tokens))
        return fetched[-1]

    credentials = RefreshableTokenCredentials(fetch)
    async with FakeWorkspace(token="fresh-token") as fake:
        fake.add_job([RUNNING])
        async with fake.client(credentials=credentials) as client:
            assert (await client.get_job(JOB_ID)).status is JobStatus.RUNNING
            assert (await client.get_job(JOB_ID)).status is JobStatus.RUNNING
        statuses = [r.status for r in fake.requests]
    assert fetched == ["expired-token", "fresh-token"]
    assert statuses == [401, 200, 200]


async def test_a_token_still_refused_after_refreshing_raises() -> None:
    async def fetch() -> str:
        return "never-good"

    async with FakeWorkspace(token="the-good-one") as fake:
        fake.add_job([RUNNING])
        client = fake.client(credentials=RefreshableTokenCredentials(fetch))
        async with client:
            with pytest.raises(AuthenticationError, match="decrypt token fail"):
                await client.get_job(JOB_ID)
        assert [r.status for r in fake.requests] == [401, 401]


async def test_concurrent_401s_refresh_the_token_once() -> None:
    count = 0

    async def fetch() -> str:
        nonlocal count
        count += 1
        return "stale" if count == 1 else f"fresh-{count}"

    async with FakeWorkspace(token="fresh-2") as fake:
        ids = [str(n) for n in range(10)]
        for job_id in ids:
            fake.add_job([{"id": job_id, "status": "SUCCESS"}])
        async with fake.client(credentials=RefreshableTokenCredentials(fetch)) as client:
            async for outcome in client.wait_many(ids, max_in_flight=10):
                assert outcome.ok
    assert count == 2


async def test_a_fetched_token_that_cannot_be_a_header_is_refused() -> None:
    async def fetch() -> str:
        return "line\r\nX-Injected: 1"

    async with FakeWorkspace(token="x") as fake:
        fake.add_job([RUNNING])
        async with fake.client(credentials=RefreshableTokenCredentials(fetch)) as client:
            with pytest.raises(InvalidArgument, match="fetched token contains a control"):
                await client.get_job(JOB_ID)
        assert fake.requests == []


@pytest.mark.parametrize(
    "endpoint",
    ["http://appstream.cn-north-4.myhuaweicloud.com", "http://10.0.0.5:8080", "http://[fe80::1]"],
)
def test_credentials_over_plain_http_are_refused(endpoint: str, keys: dict[str, Any]) -> None:
    credentials = AkSkCredentials(keys["ak"], keys["sk"])
    with pytest.raises(InvalidArgument, match="plain http") as info:
        Client(project_id="p", endpoint=endpoint, credentials=credentials)
    assert keys["sk"] not in str(info.value)


def test_allow_insecure_permits_plain_http_with_a_warning(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    credentials = AkSkCredentials(keys["ak"], keys["sk"])
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        client = Client(
            project_id="p",
            endpoint="http://gateway.internal",
            credentials=credentials,
            allow_insecure=True,
        )
    assert client.endpoint == "http://gateway.internal"
    assert "plain http to gateway.internal" in caplog.text


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:1234", "http://localhost:80", "http://[::1]:9", "http://127.8.0.1"],
)
def test_loopback_needs_no_permission(endpoint: str, keys: dict[str, Any]) -> None:
    Client(project_id="p", endpoint=endpoint, credentials=AkSkCredentials(keys["ak"], keys["sk"]))


def test_plain_http_without_credentials_is_fine() -> None:
    assert Client(project_id="p", endpoint="http://10.0.0.5").endpoint == "http://10.0.0.5"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"ak": "", "sk": "s" * 40}, "ak must not be empty"),
        ({"ak": "AK", "sk": None}, "sk must be a string"),
        ({"ak": "AK", "sk": "bad\nsecret"}, "sk contains a control"),
        ({"ak": "AK", "sk": "s", "security_token": "t\r"}, "security_token contains a control"),
    ],
)
def test_bad_keys_are_rejected_without_echoing_them(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem) as info:
        AkSkCredentials(**kwargs)
    assert "bad\nsecret" not in str(info.value)


def test_credentials_that_are_not_credentials_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="authorize"):
        Client(project_id="p", endpoint="https://x", credentials="a-token")  # type: ignore[arg-type]


def test_repr_shows_only_the_last_four_characters_of_the_access_key() -> None:
    credentials = AkSkCredentials(
        "AKIDEXAMPLE12345WXYZ", "SECRETSECRETSECRETSECRET", "SECURITYTOKENSECURITYTOKEN"
    )
    assert repr(credentials) == (
        "AkSkCredentials(ak='****WXYZ', sk=<hidden>, security_token=<hidden>)"
    )


@pytest.mark.parametrize(
    ("server", "credentials"),
    [
        ({"ak": TEST_AK, "sk": TEST_SK}, AkSkCredentials(TEST_AK, TEST_SK)),
        (
            {"ak": TEST_AK, "sk": TEST_SK, "security_token": "temporary-token-1"},
            AkSkCredentials(TEST_AK, TEST_SK, "temporary-token-1"),
        ),
        ({"token": "good-token"}, TokenCredentials("good-token")),
        ({}, None),
    ],
)
async def test_an_own_session_sends_what_a_borrowed_one_does(
    server: dict[str, Any], credentials: AkSkCredentials | TokenCredentials | None
) -> None:
    # A client's own session sends its constant headers as defaults: the wire must not
    # tell the two apart, and every request must still pass the server's check.
    async with FakeWorkspace(**server) as fake:
        fake.add_job([RUNNING])
        async with fake.client(credentials=credentials) as client:
            await client.get_job(JOB_ID)
            await client.get_job(JOB_ID)
        async with (
            aiohttp.ClientSession() as session,
            fake.client(credentials=credentials, session=session) as client,
        ):
            await client.get_job(JOB_ID)
        own, again, borrowed = (dict(r.headers) for r in fake.requests)
    assert {r.status for r in fake.requests} == {200}
    changing = {"X-Sdk-Date", "Authorization"}
    assert own.keys() == again.keys() == borrowed.keys()
    assert {k: v for k, v in own.items() if k not in changing} == {
        k: v for k, v in borrowed.items() if k not in changing
    }
    assert ("Authorization" in own) == (credentials is not None and "token" not in server)
