"""Wire-form job snapshots for tests that script the fake's lists."""

from __future__ import annotations

from typing import Any


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
