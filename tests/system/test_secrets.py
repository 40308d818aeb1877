"""Sentinel secrets go through success and failure paths and surface nowhere."""

from __future__ import annotations

import logging
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from imagejobs import (
    AkSkCredentials,
    Client,
    ConfigurationError,
    ImageJobsError,
    InvalidArgument,
    PollPolicy,
    RefreshableTokenCredentials,
    RetryPolicy,
    TokenCredentials,
)
from imagejobs.testing import FakeClock, FakeWorkspace, Reply

AK = "AKSENTINELACCESSKEY7"
SK = "SKSENTINELSECRETKEY000000000000000000007"
SECURITY_TOKEN = "STSENTINELSECURITYTOKEN7"
TOKEN = "TKSENTINELAUTHTOKEN7"
SECRETS = (AK, SK, SECURITY_TOKEN, TOKEN)
JOB = "702364883651395584"


def assert_hidden(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into: {text[:200]!r}"


def everything_about(error: BaseException) -> Iterator[str]:
    yield str(error)
    yield repr(error)
    yield "".join(traceback.format_exception(error))
    yield repr(vars(error))
    if isinstance(error, ImageJobsError):
        yield repr(pickle.loads(pickle.dumps(error)))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


async def test_signed_success_and_failure_paths_leak_nothing(
    logs: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    texts: list[str] = []
    async with FakeWorkspace(
        ak=AK, sk=SK, security_token=SECURITY_TOKEN, clock=clock.monotonic
    ) as fake:
        fake.add_job([{"id": JOB, "status": "RUNNING"}, {"id": JOB, "status": "SUCCESS"}])
        fake.add_job([{"id": "2", "status": "FAILED"}])
        fake.add_job([{"id": "3", "status": "RUNNING"}])
        fake.add_job([Reply(body=b"<html>oops", status=502)], job_id="4")
        credentials = AkSkCredentials(AK, SK, SECURITY_TOKEN)
        texts += [repr(credentials), repr(fake), repr(fake.credentials)]
        quick = RetryPolicy(initial_delay=0.001, max_delay=0.002)
        async with fake.client(credentials=credentials, retry=quick, clock=clock) as client:
            texts.append(repr(client))
            job = await client.wait(JOB, PollPolicy(initial_delay=1))
            texts.append(repr(job))
            policy = PollPolicy(initial_delay=1, timeout=5, not_found_grace=0)
            async for outcome in client.wait_many(["2", "3", "4", "5"], policy):
                texts.append(repr(outcome))
                assert outcome.error is not None
                texts += everything_about(outcome.error)
        texts += [repr(r) for r in fake.requests]
        wrong = AkSkCredentials(AK, SK[::-1], SECURITY_TOKEN)
        async with fake.client(credentials=wrong) as client:
            with pytest.raises(ImageJobsError) as info:
                await client.get_job(JOB)
            texts += everything_about(info.value)
    assert len(texts) > 20
    assert "image-server-jobs/702364883651395584: 200" in logs.text  # the debug log ran
    assert_hidden(*texts, logs.text)


async def test_token_paths_leak_nothing(logs: pytest.LogCaptureFixture) -> None:
    texts: list[str] = []

    async def fetch() -> str:
        return TOKEN

    async with FakeWorkspace(token=TOKEN) as fake:
        fake.add_job([{"id": JOB, "status": "RUNNING"}])
        for credentials in (TokenCredentials(TOKEN), RefreshableTokenCredentials(fetch)):
            async with fake.client(credentials=credentials) as client:
                await client.get_job(JOB)
                texts += [repr(credentials), repr(client)]
        async with fake.client(credentials=TokenCredentials(TOKEN[::-1])) as client:
            with pytest.raises(ImageJobsError) as info:
                await client.get_job(JOB)
            texts += everything_about(info.value)
    assert_hidden(*texts, logs.text)


async def test_transport_failures_leak_nothing(logs: pytest.LogCaptureFixture) -> None:
    credentials = AkSkCredentials(AK, SK, SECURITY_TOKEN)
    async with FakeWorkspace() as fake:
        fake.add_job([Reply(body=b"{}", delay=5)], job_id=JOB)
        once = RetryPolicy(max_attempts=1)
        async with fake.client(credentials=credentials, timeout=0.05, retry=once) as client:
            with pytest.raises(ImageJobsError) as slow:
                await client.get_job(JOB)
        url = fake.url
    async with Client(project_id="p", endpoint=url, credentials=credentials, retry=once) as client:
        with pytest.raises(ImageJobsError) as refused:
            await client.get_job(JOB)
    assert_hidden(*everything_about(slow.value), *everything_about(refused.value), logs.text)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Client(project_id="p", endpoint="http://x.example.com", credentials=_keys()),
        lambda: AkSkCredentials(AK, SK + "\n"),
        lambda: AkSkCredentials(AK, SK, SECURITY_TOKEN + "\r"),
        lambda: TokenCredentials(TOKEN + "\x00"),
    ],
)
def test_argument_errors_leak_nothing(make: Any, logs: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InvalidArgument) as info:
        make()
    assert_hidden(*everything_about(info.value), logs.text)


def test_configuration_errors_leak_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, logs: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "credentials"
    path.write_text(f"[basic]\nak={AK}\nsecurity_token={SECURITY_TOKEN}\n{SK}\n")
    monkeypatch.setenv("HUAWEICLOUD_SDK_CREDENTIALS_FILE", str(path))
    with pytest.raises(ConfigurationError) as broken:
        Client.from_env(region="cn-north-4")
    path.write_text(f"[basic]\nak={AK}\nsecurity_token={SECURITY_TOKEN}\n")
    with pytest.raises(ConfigurationError) as half:
        Client.from_env(region="cn-north-4", project_id="p")
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", SK)
    monkeypatch.setenv("IMAGEJOBS_AUTH_TOKEN", TOKEN)
    with pytest.raises(ConfigurationError) as both:
        Client.from_env(region="cn-north-4", project_id="p")
    assert_hidden(
        *everything_about(broken.value),
        *everything_about(half.value),
        *everything_about(both.value),
        logs.text,
    )


def _keys() -> AkSkCredentials:
    return AkSkCredentials(AK, SK)
