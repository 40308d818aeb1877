"""Scenario files: a fake server's jobs and credentials as JSON, for ``imagejobs fake-server``.

Format::

    {
      "project_id": "0123456789abcdef0123456789abcdef",   (optional)
      "token": "...", "ak": "...", "sk": "...",            (optional: demand these)
      "security_token": "...",                             (optional, with ak/sk)
      "jobs": [
        {"id": "702364883651395584", "every": 2,           (every: optional seconds)
         "timeline": [
            {"id": "702364883651395584", "status": "RUNNING", "sub_jobs": []},
            {"reply": {"status": 503, "error_code": "WKS.0503", "error_msg": "busy",
                       "retry_after": 1, "delay": 0}},
            {"id": "702364883651395584", "status": "SUCCESS", "sub_jobs": []}]}
      ]
    }

A step is a job snapshot in wire form, or ``{"reply": {...}}`` for an error reply
(``status``, ``error_code``, ``error_msg``; ``retry_after`` and ``delay`` optional).
``"faults"``, at the top or in a job, injects faults: ``{"rate": 0.3, "seed": 1,
"kinds": ["503", "drop"], "at": {"2": "truncated"}, "latency": 0.05,
"retry_after": 0.01}``, every key optional (see :class:`Faults`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagejobs import ConfigurationError, ImageJobsError, from_wire

from ._faults import Faults
from ._reply import Reply
from ._server import FakeWorkspace, Step

__all__ = ["load_scenario"]

_TOP_KEYS = {"project_id", "token", "ak", "sk", "security_token", "faults", "jobs"}
_JOB_KEYS = {"id", "every", "faults", "timeline"}
_REPLY_KEYS = {"status", "error_code", "error_msg", "retry_after", "delay"}


def _fail(where: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"scenario {where}: {problem}")


def _number(where: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _fail(where, f"must be a non-negative number, got {value!r}")
    return float(value)


def _reply(where: str, spec: object) -> Reply:
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be an object")
    unknown = set(spec) - _REPLY_KEYS
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown)}")
    status = spec.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _fail(f"{where}.status", f"must be an HTTP status, got {status!r}")
    reply = Reply.error(
        status,
        str(spec.get("error_code", "WKS.0000")),
        str(spec.get("error_msg", "")),
        retry_after=_number(f"{where}.retry_after", spec.get("retry_after")),
    )
    delay = _number(f"{where}.delay", spec.get("delay")) or 0.0
    return Reply(status=reply.status, body=reply.body, headers=reply.headers, delay=delay)


def _step(where: str, step: object) -> Step:
    if not isinstance(step, Mapping):
        raise _fail(where, "must be an object (a job snapshot or a reply)")
    if "reply" in step:
        return _reply(f"{where}.reply", step["reply"])
    try:
        from_wire(dict(step))
    except ImageJobsError as exc:
        raise _fail(where, f"not a job snapshot: {exc}") from None
    return dict(step)


def _faults(where: str, spec: object) -> Faults:
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be an object")
    try:
        return Faults.from_scenario(spec)
    except (TypeError, ValueError) as exc:
        raise _fail(where, str(exc)) from None


def load_scenario(data: object, **options: Any) -> FakeWorkspace:
    """Return a (not yet started) fake server set up as the scenario says.

    ``options`` are further :class:`FakeWorkspace` arguments. Raises
    :class:`~imagejobs.ConfigurationError` naming the place of any mistake.
    """
    if not isinstance(data, Mapping):
        raise _fail("file", "must hold a JSON object")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail("file", f"unknown keys {sorted(unknown)}")
    settings = {
        key: data[key] for key in _TOP_KEYS - {"jobs", "faults"} if data.get(key) is not None
    }
    for key, value in settings.items():
        if not isinstance(value, str) or not value:
            raise _fail(key, "must be a non-empty string")
    if data.get("faults") is not None:
        options = {**options, "faults": _faults("faults", data["faults"])}
    try:
        fake = FakeWorkspace(**settings, **options)
    except ValueError as exc:
        raise _fail("file", str(exc)) from None
    jobs = data.get("jobs", [])
    if not isinstance(jobs, list):
        raise _fail("jobs", "must be a list")
    for index, job in enumerate(jobs):
        where = f"jobs[{index}]"
        if not isinstance(job, Mapping) or not isinstance(job.get("timeline"), list):
            raise _fail(where, "must be an object with a timeline list")
        unknown = set(job) - _JOB_KEYS
        if unknown:
            raise _fail(where, f"unknown keys {sorted(unknown)}")
        steps = [_step(f"{where}.timeline[{n}]", s) for n, s in enumerate(job["timeline"])]
        job_id = job.get("id")
        if job_id is not None and not isinstance(job_id, str):
            raise _fail(f"{where}.id", "must be a string")
        faults = _faults(f"{where}.faults", job["faults"]) if job.get("faults") else None
        every = _number(f"{where}.every", job.get("every"))
        try:
            fake.add_job(steps, job_id=job_id, every=every, faults=faults)
        except ValueError as exc:
            raise _fail(where, str(exc)) from None
    return fake
