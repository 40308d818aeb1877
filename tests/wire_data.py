"""Wire-form job snapshots for tests that script the fake's answers and lists."""

from __future__ import annotations

import json
from typing import Any

JOB_ID = "702364883651395584"


def snap(
    job_id: str,
    status: str = "RUNNING",
    job_type: str = "CREATE_SERVER_IMAGE",
    sub_jobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    subs = sub_jobs or []
    return {
        "id": job_id,
        "job_type": job_type,
        "begin_time": "2024-05-20T10:39:49.61Z",
        "end_time": None,
        "status": status,
        "sub_jobs_total": len(subs),
        "sub_jobs": subs,
    }


def sub(sub_id: str, status: str = "RUNNING", job_type: str = "CREATE_SERVER") -> dict[str, Any]:
    return {"id": sub_id, "job_type": job_type, "status": status}


def one_sub_job(status: str, sub_status: str = "RUNNING", job_id: str = JOB_ID) -> dict[str, Any]:
    """A job with one sub-job, in wire form."""
    return {
        "id": job_id,
        "status": status,
        "begin_time": "2024-05-20T10:39:49.61Z",
        "sub_jobs": [{"id": "1", "status": sub_status, "job_type": "CREATE_SERVER_IMAGE"}],
    }


def one_sub_job_body(status: str, sub_status: str, job_id: str = JOB_ID) -> bytes:
    """:func:`one_sub_job` as the bytes of an answer."""
    return json.dumps(one_sub_job(status, sub_status, job_id)).encode()
