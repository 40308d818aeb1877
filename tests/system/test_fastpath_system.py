"""The fast paths in the client: cached dates, job URLs and try timeouts, the core install."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from imagejobs import (
    AkSkCredentials,
    Client,
    InvalidArgument,
)
from imagejobs.core.signing import sign_request
from imagejobs.transport.aiohttp import AiohttpTransport
from imagejobs.transport.answers import JOBS_KEPT

CORE_INSTALL = """
import asyncio, json, sys
sys.modules["orjson"] = None  # the core install: no speedups extra
from imagejobs import Client, MalformedResponse
from imagejobs.core import codec
from imagejobs.testing import FakeWorkspace

async def main():
    assert codec._orjson_loads is None
    async with FakeWorkspace() as fake:
        good = fake.add_job([{"id": "j1", "status": "SUCCESS", "sub_jobs_total": 2**70}])
        bad = fake.add_job([{"id": "j2", "status": 7}])
        async with Client(project_id=fake.project_id, endpoint=fake.url) as client:
            job = await client.get_job(good)
            try:
                await client.get_job(bad)
            except MalformedResponse as exc:
                error = (str(exc), exc.path)
    print(json.dumps([job.sub_jobs_total == 2**70, job.status.value, error]))

asyncio.run(main())
"""


async def test_credentials_sign_with_the_cached_date_as_sign_request_does() -> None:
    credentials = AkSkCredentials("AK0000", "SK0000000000", "temporary")
    url = "https://h.example.com/v1/p/image-server-jobs/1"
    headers = await credentials.authorize("GET", url, {"User-Agent": "t"}, "p")
    when = datetime.strptime(headers["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = sign_request(
        "GET",
        url,
        {"User-Agent": "t", "X-Project-Id": "p", "X-Security-Token": "temporary"},
        b"",
        ak="AK0000",
        sk="SK0000000000",
        when=when,
    )
    assert headers == expected.headers


def test_job_urls_are_kept_within_a_bound_and_stay_right() -> None:
    client = Client(project_id="p", endpoint="http://127.0.0.1:9")
    for n in range(JOBS_KEPT + 50):
        assert client.job_url(f"job-{n}") == f"http://127.0.0.1:9/v1/p/image-server-jobs/job-{n}"
    assert len(client._jobs) == JOBS_KEPT
    assert client.job_url("job-0").endswith("/job-0")  # dropped, then made again
    with pytest.raises(InvalidArgument, match="job_id"):
        client.job_url("a/b")
    with pytest.raises(InvalidArgument, match="job_id"):
        client.job_url(["not", "a", "string"])  # type: ignore[arg-type]
    assert "a/b" not in client._jobs


def test_a_try_with_little_time_left_gets_a_timeout_no_longer_than_that() -> None:
    transport = AiohttpTransport()
    for left in (0.0, 0.004, 0.5, 1.2345, 29.999):
        timeout = transport._timeout_for(left)
        assert timeout.total is not None
        assert timeout.total <= max(left, 0.001)  # never more time than is left
        assert timeout.total >= left - 0.01
        if left >= 0.01:
            assert transport._timeout_for(left) is timeout  # made once


def test_the_core_install_reads_answers_and_names_errors_without_orjson() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CORE_INSTALL],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    big, status, (message, path) = json.loads(done.stdout)
    assert big is True
    assert status == "SUCCESS"
    assert path == "$.status"
    assert "expected a string" in message
