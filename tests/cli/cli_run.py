"""Running the command line as a user does: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import attrs

from imagejobs.testing import FakeWorkspace

# The fake has no gateway limit to respect: no budget to slow the test down.
FAST = ["--initial-delay", "10ms", "--max-delay", "50ms", "--rate", "10000"]
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \S+ (job|sub \S+) \S+ \S+ -> \S+( resource=\S+)?( name=\S+)?"
)


@attrs.frozen
class Run:
    code: int
    stdout: str
    stderr: str


def environment(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **extra}


def fake_env(fake: FakeWorkspace, home: Path, **extra: str) -> dict[str, str]:
    assert fake.ak is not None
    assert fake.sk is not None
    settings = {
        "HUAWEICLOUD_SDK_AK": fake.ak,
        "HUAWEICLOUD_SDK_SK": fake.sk,
        "HUAWEICLOUD_SDK_PROJECT_ID": fake.project_id,
        "IMAGEJOBS_ENDPOINT": fake.url,
    }
    return environment(home, **{**settings, **extra})


async def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagejobs",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(None if stdin is None else stdin.encode()), timeout=90
    )
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def job(job_id: str, status: str, *subs: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": job_id,
        "job_type": "CREATE_SERVER_IMAGE",
        "status": status,
        "sub_jobs": [
            {
                "id": f"{job_id}-{n}",
                "job_type": "BUILD_IMAGE",
                "status": sub_status,
                "job_resource_info": {"resource_id": f"res-{job_id}-{n}", "resource_name": "img"},
                "job_execute_info": {"error_code": code, "error_message": f"{code} happened"}
                if code
                else None,
            }
            for n, (sub_status, code) in enumerate(subs)
        ],
    }


async def start_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start the command line, for a test that reads its output as it comes or signals it."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imagejobs", *args, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
