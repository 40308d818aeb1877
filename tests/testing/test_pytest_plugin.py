"""The pytest plugin, as a new project would use it: nothing but the installed package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_TESTS = """
import asyncio

import pytest

from imagejobs import PollPolicy
from imagejobs.testing import Faults

RUNNING = {"id": "700000000000000001", "status": "RUNNING", "sub_jobs": []}
DONE = {"id": "700000000000000001", "status": "SUCCESS", "sub_jobs": []}


@pytest.mark.asyncio
async def test_a_job_waited_on(imagejobs_fake, imagejobs_client):
    job_id = imagejobs_fake.add_job([RUNNING, DONE])
    job = await imagejobs_client.wait(job_id, PollPolicy(initial_delay=0.01))
    assert job.status.value == "SUCCESS"
    assert len(imagejobs_fake.requests) == 2


@pytest.mark.asyncio
async def test_half_an_hour_on_virtual_time(imagejobs_fake, imagejobs_client, imagejobs_clock):
    job_id = imagejobs_fake.add_job([RUNNING, DONE], every=1800)
    job = await imagejobs_client.wait(job_id)
    assert job.status.value == "SUCCESS"
    assert imagejobs_clock.monotonic() >= 1800


@pytest.mark.asyncio
@pytest.mark.imagejobs_fake(ak="AKPLUGINTEST00000001", sk="SK1", faults=Faults(at={1: "503"}))
async def test_a_configured_fake(imagejobs_fake, imagejobs_client):
    job_id = imagejobs_fake.add_job([DONE])
    job = await imagejobs_client.get_job(job_id)  # the 503 is retried, the signature checked
    assert job.status.value == "SUCCESS"
    assert [r.status for r in imagejobs_fake.requests] == [503, 200]
    assert imagejobs_fake.ak == "AKPLUGINTEST00000001"
"""

_OVERRIDE = """
import pytest


@pytest.fixture
def imagejobs_fake_options():
    return {"token": "a-token-of-the-suite"}


@pytest.mark.asyncio
async def test_the_suite_wide_options(imagejobs_fake, imagejobs_client):
    job_id = imagejobs_fake.add_job([{"id": "700000000000000001", "status": "SUCCESS"}])
    assert (await imagejobs_client.get_job(job_id)).status.value == "SUCCESS"
    assert imagejobs_fake.requests[0].headers["X-Auth-Token"] == "a-token-of-the-suite"
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_a_fresh_project_uses_the_fixtures_in_either_mode(tmp_path: Path, mode: str) -> None:
    (tmp_path / "test_jobs.py").write_text(_TESTS)
    (tmp_path / "test_override.py").write_text(_OVERRIDE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            f"asyncio_mode={mode}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
