"""The demo's jobs, as a scenario for the fake server. Pure data.

Jobs of different types move one step every two seconds, so the demo takes
about fifteen seconds: an image instance created, an image whose build goes
ABNORMAL, rolls back and recovers, an instance deleted, and (with
``with_failure``) an image build that fails with the service's error.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO_AK", "DEMO_SK", "FAKE_SERVER_STEP_SECONDS", "STEP_SECONDS", "demo_scenario"]

STEP_SECONDS = 2.0
FAKE_SERVER_STEP_SECONDS = 20.0
"""Seconds a step of the demo's jobs lasts in ``imagejobs fake-server``: minutes to watch."""
# Throwaway keys: the demo signs its requests and the fake checks them as the
# real gateway would, but they unlock nothing anywhere else.
DEMO_AK = "DEMOACCESSKEY0000000"
DEMO_SK = "demo-secret-key-for-the-local-fake-only"


def _job(
    job_id: str,
    job_type: str,
    sub_jobs: dict[str, tuple[str, str, str]],
    steps: list[tuple[str, dict[str, str]]],
    *,
    error: tuple[str, str] | None = None,
    every: float = STEP_SECONDS,
) -> dict[str, Any]:
    """Return a scenario job; ``sub_jobs`` maps an ID to (type, resource ID, name)."""
    timeline = []
    for status, sub_statuses in steps:
        wire_subs = []
        for sub_id, sub_status in sub_statuses.items():
            sub_type, resource_id, name = sub_jobs[sub_id]
            sub: dict[str, Any] = {
                "id": sub_id,
                "job_type": sub_type,
                "status": sub_status,
                "job_id": job_id,
                "job_resource_info": {"resource_id": resource_id, "resource_name": name},
            }
            if sub_status == "FAILED" and error is not None:
                sub["job_execute_info"] = {"error_code": error[0], "error_message": error[1]}
            wire_subs.append(sub)
        timeline.append(
            {
                "id": job_id,
                "job_type": job_type,
                "status": status,
                "sub_jobs_total": len(sub_jobs),
                "sub_jobs": wire_subs,
            }
        )
    return {"id": job_id, "every": every, "timeline": timeline}


def _create_instance(every: float) -> dict[str, Any]:
    server = "702364884037271552"
    resource = ("CREATE_SERVER", "f5d443de-7a1c-4b8e-9d61-2c0f5e3b9a10", "img-builder-01")
    return _job(
        "702364883651395584",
        "CREATE_SERVER",
        {server: resource},
        [
            ("WAITING", {}),
            ("RUNNING", {server: "WAITING"}),
            ("RUNNING", {server: "RUNNING"}),
            ("RUNNING", {server: "RUNNING"}),
            ("RUNNING", {server: "SUCCESS"}),
            ("SUCCESS", {server: "SUCCESS"}),
        ],
        every=every,
    )


def _create_image(every: float) -> dict[str, Any]:
    build, generate = "702364885102624768", "702364885102624769"
    return _job(
        "702364885091102720",
        "CREATE_SERVER_IMAGE",
        {
            build: ("BUILD_IMAGE", "0c7d9a53-5f0e-4f43-b1b2-6c5a1e8d2f47", "office-2026"),
            generate: ("GENERATE_IMAGE", "9e2b41f8-3d6a-4c1e-8f75-a0d3c6b5e912", "office-2026"),
        },
        [
            ("RUNNING", {build: "RUNNING"}),
            ("RUNNING", {build: "ABNORMAL"}),
            ("RUNNING", {build: "ROLLBACK"}),
            ("RUNNING", {build: "RUNNING"}),
            ("RUNNING", {build: "SUCCESS", generate: "RUNNING"}),
            ("RUNNING", {build: "SUCCESS", generate: "RUNNING"}),
            ("SUCCESS", {build: "SUCCESS", generate: "SUCCESS"}),
        ],
        every=every,
    )


def _delete_instance(every: float) -> dict[str, Any]:
    delete = "702364886713454592"
    return _job(
        "702364886700871680",
        "DELETE_SERVER",
        {delete: ("DELETE_SERVER", "5b1e7c20-8a94-4d36-a7f1-3e9c2d4b6a85", "old-builder")},
        [
            ("RUNNING", {delete: "RUNNING"}),
            ("RUNNING", {delete: "RUNNING"}),
            ("SUCCESS", {delete: "SUCCESS"}),
        ],
        every=every,
    )


def _failing_image(every: float) -> dict[str, Any]:
    build = "702364887302930433"
    return _job(
        "702364887302930432",
        "CREATE_SERVER_IMAGE",
        {build: ("BUILD_IMAGE", "7a3f9c1e-2b6d-4e80-95c4-d1e8f0a2b371", "broken-image")},
        [
            ("RUNNING", {build: "RUNNING"}),
            ("RUNNING", {build: "RUNNING"}),
            ("RUNNING", {build: "FAILED"}),
            ("FAILED", {build: "FAILED"}),
        ],
        error=("WKS.00081208", "The image instance is not stopped."),
        every=every,
    )


def demo_scenario(*, with_failure: bool = False, every: float = STEP_SECONDS) -> dict[str, Any]:
    """Return the demo's scenario (the fake server's format), keys included.

    Each job moves one step every ``every`` seconds (from its first look).
    """
    jobs = [_create_instance(every), _create_image(every), _delete_instance(every)]
    if with_failure:
        jobs.append(_failing_image(every))
    return {"ak": DEMO_AK, "sk": DEMO_SK, "jobs": jobs}
