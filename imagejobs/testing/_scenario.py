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
(``status`` 200 to 599, ``error_code``, ``error_msg``; ``retry_after`` and ``delay``
optional). Durations are finite seconds from 0 to 86400 (``every`` above 0).
``"faults"``, at the top or in a job, injects faults: ``{"rate": 0.3, "seed": 1,
"kinds": ["503", "drop"], "at": {"2": "truncated"}, "latency": 0.05,
"retry_after": 0.01}``, every key optional (see :class:`Faults`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from imagejobs import (
    AkSkCredentials,
    Client,
    ConfigurationError,
    ImageJobsError,
    InvalidArgument,
    TokenCredentials,
    from_wire,
)

from ._faults import FAULT_KINDS, OVERSIZED, Faults
from ._reply import Reply
from ._server import CONTROL_PREFIX, FakeWorkspace, RecordedRequest, Step

__all__ = ["control_api", "load_scenario"]

_TOP_KEYS = {"project_id", "token", "ak", "sk", "security_token", "faults", "jobs"}
_JOB_KEYS = {"id", "every", "faults", "timeline"}
_REPLY_KEYS = {"status", "error_code", "error_msg", "retry_after", "delay"}

# A scenario is a few levels deep; far deeper is a broken file, and would overflow
# the stack where the fake encodes a step or a message quotes a value.
_MAX_DEPTH = 32
# Longer waits are typos (milliseconds given as seconds) or would hang a test.
_LONGEST = 86400.0
_REQUEST_NUMBER = re.compile(r"[1-9][0-9]{0,17}")


def _fail(where: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"scenario {where}: {problem}")


_CHECKS: dict[str, Callable[[str], object]] = {
    "project_id": lambda value: Client(project_id=value, endpoint="http://127.0.0.1"),
    "token": TokenCredentials,
    "ak": lambda value: AkSkCredentials(value, "sk"),
    "sk": lambda value: AkSkCredentials("ak", value),
    "security_token": lambda value: AkSkCredentials("ak", "sk", value),
}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _child(where: str, key: object) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    name = key if isinstance(key, str) and key.isidentifier() else f"[{_shown(key)}]"
    return name if where == "file" else f"{where}.{name}"


def _check_depth(data: object) -> None:
    """Refuse data nested deeper than ``_MAX_DEPTH``, naming where, without recursing."""
    pending: list[tuple[str, object, int]] = [("file", data, 1)]
    while pending:
        where, value, depth = pending.pop()
        if isinstance(value, Mapping):
            children: list[tuple[object, object]] = list(value.items())
        elif isinstance(value, list):
            children = list(enumerate(value))
        else:
            continue
        if depth > _MAX_DEPTH:
            raise _fail(where, f"nested more than {_MAX_DEPTH} levels deep")
        pending.extend((_child(where, key), child, depth + 1) for key, child in children)


def _finite(where: str, value: object, what: str) -> float:
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise _fail(where, f"must be a finite {what}, got {_shown(value)}")


def _seconds(where: str, value: object, *, positive: bool = False) -> float | None:
    """Return a duration from the scenario (None if absent), checked for type and range."""
    if value is None:
        return None
    what = "positive number" if positive else "non-negative number"
    number = _finite(where, value, what)
    if number < 0 or (positive and number == 0):
        raise _fail(where, f"must be a finite {what}, got {_shown(value)}")
    if number > _LONGEST:
        raise _fail(where, f"must be at most {_LONGEST:g} seconds, got {_shown(value)}")
    return number


def _text(where: str, value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, got {_shown(value)}")
    return value


def _unknown_keys(where: str, spec: Mapping[Any, Any], known: set[str]) -> None:
    unknown = set(spec) - known
    if unknown:
        raise _fail(where, f"unknown keys {sorted(unknown, key=repr)}")


def _reply(where: str, spec: object) -> Reply:
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be an object")
    _unknown_keys(where, spec, _REPLY_KEYS)
    status = spec.get("status")
    # 1xx would leave the client waiting for the real answer, which never comes.
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise _fail(
            f"{where}.status", f"must be an HTTP status from 200 to 599, got {_shown(status)}"
        )
    reply = Reply.error(
        status,
        _text(f"{where}.error_code", spec.get("error_code"), "WKS.0000"),
        _text(f"{where}.error_msg", spec.get("error_msg"), ""),
        retry_after=_seconds(f"{where}.retry_after", spec.get("retry_after")),
    )
    delay = _seconds(f"{where}.delay", spec.get("delay")) or 0.0
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


def _fault_kind(where: str, kind: object) -> str:
    if not isinstance(kind, str) or kind not in (*FAULT_KINDS, OVERSIZED):
        known = ", ".join(FAULT_KINDS)
        raise _fail(where, f"unknown fault kind {_shown(kind)}; known: {known}")
    return kind


def _rate(where: str, value: object) -> float:
    rate = _finite(where, value, "number from 0 to 1")
    if not 0 <= rate <= 1:
        raise _fail(where, f"must be a finite number from 0 to 1, got {rate!r}")
    return rate


def _seed(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, f"must be a non-negative whole number, got {_shown(value)}")
    return value


def _kinds(where: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _fail(where, f"must be a non-empty list, got {_shown(value)}")
    return [_fault_kind(f"{where}[{n}]", kind) for n, kind in enumerate(value)]


def _at(where: str, value: object) -> dict[int, str]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be an object, got {_shown(value)}")
    at = {}
    for number, kind in value.items():
        place = f"{where}[{_shown(number)}]"
        if not isinstance(number, str) or not _REQUEST_NUMBER.fullmatch(number):
            raise _fail(place, "a key must be a request number, counting from 1")
        at[int(number)] = _fault_kind(place, kind)
    return at


_FAULT_CHECKS: dict[str, Callable[[str, object], Any]] = {
    "rate": _rate,
    "seed": _seed,
    "kinds": _kinds,
    "at": _at,
    "latency": _seconds,
    "retry_after": _seconds,
}


def _same_job(where: str, job_id: str | None, steps: list[Step]) -> None:
    """Refuse a job no client could ask for, or whose snapshots are of another job."""
    ids = [(n, _snapshot_id(step)) for n, step in enumerate(steps)]
    named = job_id or next((found for _, found in ids if found is not None), None)
    if named is None:
        return  # add_job says a job needs an ID
    try:
        _CHECKS["project_id"](named)  # job and project IDs follow the same rules
    except InvalidArgument as exc:
        raise _fail(f"{where}.id", str(exc).replace("project_id", "job ID")) from None
    for n, found in ids:
        if found is not None and found != named:
            raise _fail(
                f"{where}.timeline[{n}].id",
                f"is {found!r}, but the job is {named!r}: every client would refuse the answer",
            )


def _snapshot_id(step: Step) -> str | None:
    if isinstance(step, Mapping) and isinstance(step.get("id"), str):
        found: str = step["id"]
        return found
    return None


def _faults(where: str, spec: object) -> Faults:
    """Return the plan, each value checked here so a mistake is named, not a TypeError."""
    if not isinstance(spec, Mapping):
        raise _fail(where, "must be an object")
    _unknown_keys(where, spec, set(_FAULT_CHECKS))
    options = {
        key: check(f"{where}.{key}", spec[key])
        for key, check in _FAULT_CHECKS.items()
        if spec.get(key) is not None
    }
    try:
        return Faults(**options)
    except (TypeError, ValueError) as exc:
        raise _fail(where, str(exc)) from None


def load_scenario(data: object, **options: Any) -> FakeWorkspace:
    """Return a (not yet started) fake server set up as the scenario says.

    ``options`` are further :class:`FakeWorkspace` arguments. Raises
    :class:`~imagejobs.ConfigurationError` naming the place of any mistake.
    """
    if not isinstance(data, Mapping):
        raise _fail("file", "must hold a JSON object")
    _check_depth(data)
    _unknown_keys("file", data, _TOP_KEYS)
    settings = {
        key: data[key] for key in _TOP_KEYS - {"jobs", "faults"} if data.get(key) is not None
    }
    for key, value in settings.items():
        if not isinstance(value, str) or not value:
            raise _fail(key, "must be a non-empty string")
        # What no client could send would only make every request fail: ask the
        # public API the client itself uses whether it would take the value.
        try:
            _CHECKS[key](value)
        except InvalidArgument as exc:
            raise _fail(key, str(exc)) from None
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
        _add_job(fake, f"jobs[{index}]", job)
    return fake


def _add_job(fake: FakeWorkspace, where: str, job: object) -> str:
    """Add one job of a scenario (its JSON form) to ``fake``; return its ID."""
    _check_depth(job)
    if not isinstance(job, Mapping) or not isinstance(job.get("timeline"), list):
        raise _fail(where, "must be an object with a timeline list")
    _unknown_keys(where, job, _JOB_KEYS)
    steps = [_step(f"{where}.timeline[{n}]", s) for n, s in enumerate(job["timeline"])]
    job_id = job.get("id")
    if job_id is not None and (not isinstance(job_id, str) or not job_id):
        raise _fail(f"{where}.id", "must be a non-empty string")
    _same_job(where, job_id, steps)
    faults = _faults(f"{where}.faults", job["faults"]) if "faults" in job else None
    every = _seconds(f"{where}.every", job.get("every"), positive=True)
    try:
        return fake.add_job(steps, job_id=job_id, every=every, faults=faults)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None


def control_api(fake: FakeWorkspace) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Return the handler of a fake's control paths (set it as ``fake.control``).

    Under ``/_fake/``, for tests in any language to inspect and feed a running fake:

    - ``GET /_fake/requests``: the request log as a JSON list (``at``, ``method``,
      ``path``, ``query``, ``job_id``, ``status``, ``request_id``, ``step``,
      ``fault``; never the headers, which hold credentials);
    - ``DELETE /_fake/requests``: empty the log;
    - ``POST /_fake/jobs`` with a job in the scenario form (``{"id", "every",
      "faults", "timeline"}``): add (or replace) it; answers ``{"id": ...}``, or
      400 with ``{"error": ...}`` naming the mistake.
    """

    async def control(request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(CONTROL_PREFIX).rstrip("/")
        if path == "requests" and request.method == "GET":
            return web.json_response([_recorded(r) for r in fake.requests])
        if path == "requests" and request.method == "DELETE":
            fake.requests.clear()
            return web.json_response({"cleared": True})
        if path == "jobs" and request.method == "POST":
            try:
                job = json.loads(await request.read())
                job_id = _add_job(fake, "job", job)
            except (ValueError, RecursionError) as exc:
                return web.json_response({"error": f"not a job: {exc}"}, status=400)
            except ConfigurationError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response({"id": job_id}, status=201)
        known = "GET or DELETE /_fake/requests, POST /_fake/jobs"
        return web.json_response({"error": f"unknown control request; {known}"}, status=404)

    return control


def _recorded(request: RecordedRequest) -> dict[str, Any]:
    return {
        "at": request.at,
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "job_id": request.job_id,
        "status": request.status,
        "request_id": request.request_id,
        "step": request.step,
        "fault": request.fault,
    }
