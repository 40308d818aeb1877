"""The provider's official SDK, signing with AK/SK, against our fake server.

If the official client is accepted and ours is too, the fake checks signatures
the way the real gateway does, and our signer agrees with the official one from
both sides. It also reads the fake's job and sub-job lists, so their shapes are
the ones the SDK parses. The SDK runs in a subprocess: importing it writes files
under HOME.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from imagejobs import AkSkCredentials, AuthenticationError, from_wire
from imagejobs.testing import FakeWorkspace

OFFICIAL_CLIENT = """
import json, os
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkworkspaceapp.v1 import ShowImageJobRequest, WorkspaceAppClient

credentials = BasicCredentials(
    os.environ["TEST_AK"], os.environ["TEST_SK"], os.environ["TEST_PROJECT_ID"]
)
client = (
    WorkspaceAppClient.new_builder()
    .with_credentials(credentials)
    .with_endpoints([os.environ["TEST_ENDPOINT"]])
    .build()
)
try:
    job = client.show_image_job(ShowImageJobRequest(job_id=os.environ["TEST_JOB_ID"]))
    print(json.dumps({"id": job.id, "status": job.status,
                      "sub_jobs": [[s.id, s.status] for s in job.sub_jobs or []]}))
except ClientRequestException as error:
    print(json.dumps({"http_status": error.status_code, "error_code": error.error_code,
                      "error_msg": error.error_msg}))
"""


OFFICIAL_LISTS = """
import json, os
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkworkspaceapp.v1 import (
    ListImageJobsRequest, ListImageSubJobsRequest, WorkspaceAppClient,
)

credentials = BasicCredentials(
    os.environ["TEST_AK"], os.environ["TEST_SK"], os.environ["TEST_PROJECT_ID"]
)
client = (
    WorkspaceAppClient.new_builder()
    .with_credentials(credentials)
    .with_endpoints([os.environ["TEST_ENDPOINT"]])
    .build()
)
jobs = client.list_image_jobs(
    ListImageJobsRequest(job_type="CREATE_SERVER_IMAGE", status="RUNNING", limit=2)
)
sub_jobs = client.list_image_sub_jobs(ListImageSubJobsRequest(job_id=os.environ["TEST_JOB_ID"]))
print(json.dumps({
    "jobs": [jobs.count, [[j.id, j.status, j.job_type, j.sub_jobs_total] for j in jobs.items]],
    "sub_jobs": [sub_jobs.count,
                 [[s.id, s.status, s.job_id, s.project_id] for s in sub_jobs.items]],
}))
"""


async def run_official_client(
    fake: FakeWorkspace,
    job_id: str,
    ak: str,
    sk: str,
    home: Path,
    script: str = OFFICIAL_CLIENT,
) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TEST_AK": ak,
        "TEST_SK": sk,
        "TEST_PROJECT_ID": fake.project_id,
        "TEST_ENDPOINT": fake.url,
        "TEST_JOB_ID": job_id,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


async def test_the_official_sdk_is_accepted_and_a_wrong_secret_is_not(
    fake: FakeWorkspace, keys: dict[str, Any], reference_wire: dict[str, Any], tmp_path: Path
) -> None:
    job_id = fake.add_job([reference_wire])
    accepted = await run_official_client(fake, job_id, keys["ak"], keys["sk"], tmp_path)
    expected = from_wire(reference_wire)
    assert accepted == {
        "id": expected.id,
        "status": expected.status.value,
        "sub_jobs": [[s.id, s.status.value if s.status else None] for s in expected.sub_jobs],
    }
    official = fake.requests[-1]
    assert official.status == 200
    assert official.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={keys['ak']}, ")

    refused = await run_official_client(fake, job_id, keys["ak"], keys["sk"][::-1], tmp_path)
    assert refused["http_status"] == 401
    assert refused["error_code"] == "APIGW.0301"
    assert "signature mismatch" in refused["error_msg"]


async def test_ours_and_the_official_sdk_sign_alike(
    fake: FakeWorkspace, keys: dict[str, Any], reference_wire: dict[str, Any], tmp_path: Path
) -> None:
    job_id = fake.add_job([reference_wire])
    await run_official_client(fake, job_id, keys["ak"], keys["sk"], tmp_path)
    async with fake.client() as client:
        assert await client.get_job(job_id) == from_wire(reference_wire)
    official, ours = fake.requests[-2:]
    assert [official.status, ours.status] == [200, 200]
    signed = [signed_headers(r.headers["Authorization"]) for r in (official, ours)]
    assert all({"host", "x-project-id", "x-sdk-date"} <= names for names in signed)
    assert official.headers["Host"] == ours.headers["Host"]

    wrong = AkSkCredentials(keys["ak"], "wrong-secret-000000")
    async with fake.client(credentials=wrong) as client:
        with pytest.raises(AuthenticationError, match="signature mismatch"):
            await client.get_job(job_id)


def signed_headers(authorization: str) -> set[str]:
    return set(authorization.split("SignedHeaders=")[1].split(",", maxsplit=1)[0].split(";"))


IMAGE = "CREATE_SERVER_IMAGE"


def job_wire(job_id: str, status: str, job_type: str, sub_jobs: int = 0) -> dict[str, Any]:
    return {
        "id": job_id,
        "job_type": job_type,
        "begin_time": "2024-05-20T10:39:49.61Z",
        "status": status,
        "sub_jobs_total": sub_jobs,
        "sub_jobs": [
            {"id": f"{job_id[:-1]}{n}", "job_type": "CREATE_SERVER", "status": status}
            for n in range(1, sub_jobs + 1)
        ],
    }


async def test_the_official_sdk_reads_the_fakes_lists(
    fake: FakeWorkspace, keys: dict[str, Any], reference_wire: dict[str, Any], tmp_path: Path
) -> None:
    running = {fake.add_job([job_wire(f"70236488365139{n}", "RUNNING", IMAGE)]) for n in range(3)}
    fake.add_job([job_wire("702364883651395000", "SUCCESS", IMAGE)])
    fake.add_job([reference_wire])
    parent = fake.add_job([job_wire("702364883651396000", "RUNNING", "CREATE_SERVER", 2)])

    seen = await run_official_client(
        fake, parent, keys["ak"], keys["sk"], tmp_path, script=OFFICIAL_LISTS
    )

    count, items = seen["jobs"]
    assert count == 3
    assert len(items) == 2
    assert {job_id for job_id, *_ in items} < running
    assert all(rest == ["RUNNING", IMAGE, 0] for _, *rest in items)
    listed = fake.requests[-2]
    assert (listed.status, listed.job_id) == (200, None)
    assert listed.query == {"job_type": IMAGE, "status": "RUNNING", "limit": "2"}
    assert listed.headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={keys['ak']}, ")

    count, items = seen["sub_jobs"]
    assert count == 2
    assert sorted(items) == [
        [sub_id, "RUNNING", parent, fake.project_id]
        for sub_id in ("702364883651396001", "702364883651396002")
    ]
    assert fake.requests[-1].query == {"job_id": parent}
    assert fake.requests[-1].status == 200
