"""A fake Workspace image-job server: an aiohttp.web app that scripts job timelines."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import ssl as _ssl
import time
import uuid
from array import array
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import attrs
from aiohttp import web

from imagejobs import (
    AkSkCredentials,
    Client,
    Credentials,
    ImageJob,
    TokenCredentials,
    to_wire,
    verify_signature,
)

from . import _lists
from ._clock import FakeClock
from ._faults import Faults, FaultState, fault_reply, misbehave
from ._reply import Reply

__all__ = [
    "CONTROL_PREFIX",
    "FAKE_PROJECT_ID",
    "FakeWorkspace",
    "RecordedRequest",
    "Reply",
    "Step",
]

FAKE_PROJECT_ID = "0123456789abcdef0123456789abcdef"
"""The project the fake serves unless told otherwise."""


Step = ImageJob | Mapping[str, Any] | Reply
"""One step of a timeline: a job snapshot, a raw JSON object, or a raw reply."""


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """A request the fake served, for tests to assert on.

    Equal when every field is; hashable (a set of requests, a ``Counter``), by
    every field but the two mappings, ``headers`` and ``query``.
    """

    at: float
    method: str
    path: str
    project_id: str | None
    job_id: str | None
    status: int
    request_id: str
    # Holds credentials as sent; kept out of repr so failing tests do not print them.
    headers: Mapping[str, str] = attrs.field(repr=False, hash=False)
    step: int | None = None
    """The index of the timeline step this request was answered with, if any."""
    fault: str | None = None
    """The injected fault this request met, if any."""
    query: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    """The query parameters sent (the first value of a repeated one)."""


CONTROL_PREFIX = "/_fake/"
"""Paths no Workspace API uses, for a test to inspect and feed a running fake server."""


@attrs.define
class _Script:
    steps: tuple[Step, ...]
    every: float | None
    faults: FaultState | None = None
    started_at: float | None = None
    polls: int = 0
    served: int = 0
    """The index of the step the last GET was answered with."""

    def _timed_index(self, every: float, now: float) -> int:
        if self.started_at is None:
            self.started_at = now
        index = max(0, math.floor((now - self.started_at) / every))
        return min(index, len(self.steps) - 1)

    def next_step(self, now: float) -> tuple[int, Step]:
        """Return the step a GET gets, and move a per-poll timeline on."""
        if self.every is None:
            index = min(self.polls, len(self.steps) - 1)
        else:
            index = self._timed_index(self.every, now)
        self.polls += 1
        self.served = index
        return index, self.steps[index]

    def snapshot(self, now: float) -> Mapping[str, Any] | None:
        """Return what a list shows of the job in wire form, or None if nothing yet.

        That is the step a GET now gets (for a per-poll timeline, the one the last
        GET got) or, if that step is a raw reply, the latest snapshot before it.
        """
        index = self.served if self.every is None else self._timed_index(self.every, now)
        for step in reversed(self.steps[: index + 1]):
            if isinstance(step, ImageJob):
                return to_wire(step)
            if isinstance(step, Mapping):
                return step
        return None


@attrs.frozen
class _Route:
    kind: str
    """``"job"`` (a job's details), ``"jobs"``, ``"sub-jobs"`` or ``"count"``."""
    project_id: str
    job_id: str | None = None


def _route(path: str) -> _Route | None:
    parts = path.split("/")
    if len(parts) < 4 or parts[0] != "" or parts[1] != "v1":
        return None
    project_id, rest = parts[2], parts[3:]
    if rest == ["image-server-jobs"]:
        return _Route("jobs", project_id)
    if len(rest) == 2 and rest[0] == "image-server-jobs":
        return _Route("job", project_id, rest[1])
    if rest == ["image-server-sub-jobs"]:
        return _Route("sub-jobs", project_id)
    if rest == ["image-server-sub-jobs", "actions", "count"]:
        return _Route("count", project_id)
    return None


def _date_source(clock: Callable[[], float], now: Callable[[], datetime]) -> Callable[[], datetime]:
    """Return where answers' ``Date`` comes from: the FakeClock ``clock`` reads, if it is one's."""
    fake_clock = getattr(clock, "__self__", None)
    return fake_clock.now if isinstance(fake_clock, FakeClock) else now


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(when: datetime) -> str:
    """Return an aware ``when`` as an HTTP date in GMT (RFC 9110's IMF-fixdate).

    What ``email.utils.format_datetime(when, usegmt=True)`` returns, spelled out:
    on CPython 3.11 each call of that one leaves a string of three letters in the
    interpreter's attribute cache (its ``timetuple()`` asks the zone for ``dst`` by
    a name made anew each time). An answering fake left a few hundred of them among
    the memory of the jobs a client waited on, and each kept an arena of 1 MB
    mapped after the client closed, in the client's process when the fake shares it.
    """
    utc = when.astimezone(UTC)
    day, month = _WEEKDAYS[utc.weekday()], _MONTHS[utc.month - 1]
    return (
        f"{day}, {utc.day:02d} {month} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} GMT"
    )


def _answer_headers(date: datetime, reply: Reply, request_id: str) -> dict[str, str]:
    """Return an answer's headers: ``Date`` and JSON unless the reply says otherwise."""
    shown_date = http_date(date)
    return {
        "Date": shown_date,
        "Content-Type": "application/json",
        **reply.headers,
        "X-Request-Id": request_id,
    }


def _job_id_of(step: Step) -> str | None:
    if isinstance(step, ImageJob):
        return step.id
    if isinstance(step, Mapping) and isinstance(step.get("id"), str):
        job_id: str = step["id"]
        return job_id
    return None


def _drop_through(times: array[float], cutoff: float) -> None:
    """Drop the times at or before ``cutoff`` from the front, in the order they came (the
    clock may be one that steps back)."""
    old = 0
    while old < len(times) and times[old] <= cutoff:
        old += 1
    del times[:old]


class FakeWorkspace:
    """A fake of the Workspace image-job API, serving scripted timelines over HTTP.

    Each job follows a timeline of steps, advanced one step per poll, or one step
    every ``every`` seconds from the first request that looks at it, GET or
    list (or from its ``start``, see :meth:`add_job`); the last step
    repeats forever. Unknown jobs get 404, other paths 404 and other methods
    405, all in the service's error shape with an ``X-Request-Id``.

    It also serves the three lists: jobs (``GET .../image-server-jobs``, filters
    ``status`` and ``job_type``), sub-jobs (``.../image-server-sub-jobs``,
    filters ``status``, ``job_type`` and the parent ``job_id``; each item
    carries its parent's ``job_id`` and the ``project_id``) and the sub-job
    count (``.../image-server-sub-jobs/actions/count``, where ``job_type`` may
    be a comma-separated list and defaults to ``CREATE_SERVER``,
    ``CREATE_SERVER_IMAGE`` and ``DELETE_SERVER``). Lists page with ``offset``
    (from 0) and ``limit`` (1 to 100, default 10); a bad one gets 400
    ``WKS.00211102``, as does a job list without ``job_type`` when
    ``require_job_type`` is set (the English reference says the real service
    demands it). ``count`` is the number of matches, ``items`` one page of them.
    A list shows each job as its last GET saw it (its first step before any
    GET), or for an ``every`` timeline as a GET would see it now; if that step
    is a raw :class:`Reply`, the latest snapshot before it (no snapshot, no
    item). Listing never moves a timeline on. The order of items is no order
    a caller could guess (the real one is undocumented), but it stays the same
    while the jobs do, so paging sees each item once: items are sorted by a hash
    of their ID and ``list_seed`` (random unless given; see :attr:`list_seed`).

    With ``token`` or ``ak``/``sk`` set, every request must authenticate with that
    ``X-Auth-Token`` or an ``SDK-HMAC-SHA256`` signature by that key pair (dated within 15
    minutes of ``now()``, carrying ``security_token`` if one is set), or it gets 401
    ``APIGW.0301`` saying what was wrong, such as "signature mismatch" or "signature expired".
    Each answer's ``Date`` is ``now()``, or a :class:`FakeClock`'s ``now()`` when ``clock`` is
    its ``monotonic`` (signatures are still checked against ``now()``). Every request is
    recorded in :attr:`requests`; ``latency`` (real seconds) delays every answer, and
    :attr:`peak_in_flight` tells how many requests it was serving at once. With ``rate_limit``
    it throttles like the API gateway: a request that would be more than ``rate_limit`` in the
    last second (on ``clock``) gets 429 ``APIGW.0308`` with no ``Retry-After``, as the real
    gateway documents none.

    Start it with ``async with FakeWorkspace() as fake:`` (or :meth:`start` and
    :meth:`close`); it listens on ``127.0.0.1`` on a free port, see :attr:`url`.
    With ``ssl`` (a server :class:`ssl.SSLContext`) it speaks https; ``faults``
    injects failures into every request for a job or a list (see :class:`Faults`),
    ``list_faults`` into list and count requests only (lists that fail while
    job details answer).
    """

    def __init__(
        self,
        *,
        project_id: str = FAKE_PROJECT_ID,
        token: str | None = None,
        ak: str | None = None,
        sk: str | None = None,
        security_token: str | None = None,
        latency: float = 0.0,
        faults: Faults | None = None,
        ssl: _ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        rate_limit: float | None = None,
        require_job_type: bool = False,
        list_seed: int | None = None,
        list_faults: Faults | None = None,
    ) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number a second, got {rate_limit!r}")
        if (ak is None) != (sk is None):
            raise ValueError("pass both ak and sk, or neither")
        if security_token is not None and ak is None:
            raise ValueError("a security_token goes with an ak/sk pair")
        self.project_id = project_id
        self.token = token
        self.ak = ak
        self.sk = sk
        self.security_token = security_token
        self._now = now
        self._date = _date_source(clock, now)
        self._faults = FaultState(faults) if faults is not None else None
        self._list_faults = FaultState(list_faults) if list_faults is not None else None
        self._ssl = ssl
        self.latency = latency
        self.rate_limit = rate_limit
        self.require_job_type = require_job_type
        self.list_seed = secrets.randbits(64) if list_seed is None else list_seed
        """The seed of the list order: pass it as ``list_seed`` to see the same order again."""
        # The times as raw doubles, not float objects: see imagejobs.core.timelog.
        self._accepted = array("d")
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.control: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
        """Answers requests under :data:`CONTROL_PREFIX` when set (``imagejobs fake-server``)."""
        self._clock = clock
        self._scripts: dict[str, _Script] = {}
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._url: str | None = None
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    def __repr__(self) -> str:
        return f"FakeWorkspace(url={self._url!r}, jobs={len(self._scripts)})"

    @property
    def credentials(self) -> Credentials | None:
        """Credentials this server accepts (the key pair if it has one), or None."""
        if self.ak is not None and self.sk is not None:
            return AkSkCredentials(self.ak, self.sk, self.security_token)
        if self.token is not None:
            return TokenCredentials(self.token)
        return None

    def add_job(
        self,
        timeline: Sequence[Step],
        *,
        job_id: str | None = None,
        every: float | None = None,
        start: float | None = None,
        faults: Faults | None = None,
    ) -> str:
        """Script a job and return its ID.

        ``timeline`` is the list of steps the job goes through; the ID is
        ``job_id`` or else the ``id`` of the first snapshot. ``every`` advances the
        timeline by time (seconds per step) instead of one step per GET, from
        ``start`` (a time on the server's ``clock``) or else from the first
        request that looks at the job: its GET, or any list or count except one
        limited to another job's sub-jobs. Adding a job again replaces its script.
        ``faults`` injects faults into this job's GETs only (the server's own
        ``faults`` apply to every request, lists included).

        Raises ValueError for an empty timeline, an ``every`` that is not a
        positive number, a ``start`` that is not a finite number or comes
        without ``every``, or no ID.
        """
        steps = tuple(timeline)
        if not steps:
            raise ValueError("a timeline needs at least one step")
        if every is not None and not every > 0:
            raise ValueError(f"every must be a positive number of seconds, got {every!r}")
        if start is not None:
            is_number = isinstance(start, int | float) and not isinstance(start, bool)
            if not (is_number and math.isfinite(start)):
                raise ValueError(f"start must be a finite time on the clock, got {start!r}")
            if every is None:
                raise ValueError("start= goes with every=: a per-poll timeline has no clock")
        job_id = job_id or next(filter(None, map(_job_id_of, steps)), None)
        if job_id is None:
            raise ValueError("pass job_id= when no step is a snapshot with an id")
        self._scripts[job_id] = _Script(
            steps, every, FaultState(faults) if faults else None, started_at=start
        )
        return job_id

    def requests_for(self, job_id: str) -> list[RecordedRequest]:
        """Return the recorded requests for one job, oldest first."""
        return [r for r in self.requests if r.job_id == job_id]

    @property
    def url(self) -> str:
        """The base URL to pass as a client's ``endpoint``."""
        if self._url is None:
            raise RuntimeError("the fake server is not started")
        return self._url

    @property
    def throttled(self) -> int:
        """How many requests got the gateway's 429 from ``rate_limit``."""
        return sum(1 for request in self.requests if request.fault == "throttled")

    def client(self, **kwargs: Any) -> Client:
        """Return a :class:`~imagejobs.Client` set up for this server.

        Keyword arguments override the defaults: the project, endpoint and
        credentials of this server, and no rate limit (a fake has no gateway
        to spare; pass ``rate=`` to test your own budget).
        """
        options: dict[str, Any] = {
            "project_id": self.project_id,
            "endpoint": self.url,
            "credentials": self.credentials,
            "rate": math.inf,
        }
        options.update(kwargs)
        return Client(**options)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start listening and return the base URL."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        self._closing.clear()
        bound_port = runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        scheme = "https" if self._ssl is not None else "http"
        self._url = f"{scheme}://{shown_host}:{bound_port}"
        return self._url

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self._runner is not None:
            self._closing.set()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.control is not None and request.path.startswith(CONTROL_PREFIX):
            return await self.control(request)  # the test's own requests, never recorded
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        now = self._clock()
        request_id = uuid.uuid4().hex
        route = _route(request.path)
        body = await request.read()
        query = dict(request.query)
        reply, step, fault = self._reply(request, body, now, route, query)
        self.requests.append(
            RecordedRequest(
                at=now,
                method=request.method,
                path=request.path,
                project_id=route.project_id if route is not None else None,
                job_id=route.job_id if route is not None else None,
                status=reply.status,
                request_id=request_id,
                headers=dict(request.headers),
                step=step,
                fault=fault,
                query=query,
            )
        )
        delay = self.latency + reply.delay
        if delay:
            # Closing the fake cuts delays short, so tests never wait them out.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        headers = _answer_headers(self._date(), reply, request_id)
        if reply.connection is None:
            return web.Response(status=reply.status, body=reply.body, headers=headers)
        return await misbehave(request, reply, headers)

    def _authentication_problem(self, request: web.Request, body: bytes) -> str | None:
        """Return why the request is not authenticated, or None if it is (or need not be)."""
        if self.token is None and self.ak is None:
            return None
        sent_token = request.headers.get("X-Auth-Token")
        if sent_token is not None and self.token is not None:
            return None if sent_token == self.token else "decrypt token fail"
        if "Authorization" not in request.headers or self.ak is None:
            return "token missing" if self.ak is None else "no token or signature"
        problem = verify_signature(
            request.method,
            request.rel_url.raw_path,
            request.rel_url.raw_query_string,
            request.headers,
            body,
            secret_for={self.ak: self.sk}.get,
            now=self._now(),
        )
        token_ok = request.headers.get("X-Security-Token") == self.security_token
        if problem is None and self.security_token is not None and not token_ok:
            return "security token missing or wrong"
        return problem

    def _over_rate_limit(self, now: float) -> bool:
        """Count a request against ``rate_limit``; return whether it is one too many."""
        if self.rate_limit is None:
            return False
        _drop_through(self._accepted, now - 1.0)
        if len(self._accepted) >= self.rate_limit:
            return True
        self._accepted.append(now)
        return False

    def _reply(
        self,
        request: web.Request,
        body: bytes,
        now: float,
        route: _Route | None,
        query: Mapping[str, str],
    ) -> tuple[Reply, int | None, str | None]:
        """Return the reply, the timeline step it serves (if any) and the fault (if any)."""
        if route is None:
            message = "The API does not exist or has not been published in the environment"
            return Reply.error(404, "APIGW.0101", message), None, None
        if self._over_rate_limit(now):
            message = (
                "The throttling threshold has been reached: policy user over ratelimit,"
                f"limit:{self.rate_limit:g},time:1 second"
            )
            return Reply.error(429, "APIGW.0308", message), None, "throttled"
        if request.method != "GET":
            return (
                Reply.error(405, "APIGW.0106", f"Method {request.method} is not allowed"),
                None,
                None,
            )
        problem = self._authentication_problem(request, body)
        if problem is not None:
            message = f"Incorrect IAM authentication information: {problem}"
            return Reply.error(401, "APIGW.0301", message), None, None
        if route.job_id is None:
            return self._list_reply(route, query, now)
        script = self._scripts.get(route.job_id)
        if route.project_id != self.project_id or script is None:
            return Reply.error(404, "WKS.00081104", "The job does not exist."), None, None
        faults = script.faults or self._faults
        fault = plan = None
        if faults is not None:
            fault, plan = faults.pick(), faults.plan
        if plan is not None and fault is not None and fault != "slow":
            return fault_reply(fault, route.job_id, plan), None, fault
        index, step = script.next_step(now)
        if isinstance(step, Reply):
            reply = step
        elif isinstance(step, ImageJob):
            reply = Reply.json(to_wire(step))
        else:
            reply = Reply.json(dict(step))
        if plan is not None and fault == "slow":
            reply = attrs.evolve(reply, delay=reply.delay + plan.latency)
        return reply, index, fault

    def _list_reply(
        self, route: _Route, query: Mapping[str, str], now: float
    ) -> tuple[Reply, None, str | None]:
        """Answer a list or count request that passed the gateway's checks."""
        if route.project_id != self.project_id:
            return Reply.error(404, "WKS.00081104", "The project does not exist."), None, None
        fault = plan = None
        for faults in (self._list_faults, self._faults):
            if faults is not None and fault is None:
                fault, plan = faults.pick(), faults.plan
        if plan is not None and fault is not None and fault != "slow":
            return fault_reply(fault, "", plan), None, fault
        reply = self._list_answer(route.kind, query, now)
        if plan is not None and fault == "slow":
            reply = attrs.evolve(reply, delay=reply.delay + plan.latency)
        return reply, None, fault

    def _list_answer(self, kind: str, query: Mapping[str, str], now: float) -> Reply:
        if kind == "jobs":
            page = _lists.job_list_page(query, require_job_type=self.require_job_type)
            if isinstance(page, Reply):
                return page
            return _lists.list_jobs(self._snapshots(now), query, page, seed=self.list_seed)
        parent = _lists.parent_filter(query)
        if kind == "count":
            jobs = self._snapshots(now, parent)
            return _lists.count_sub_jobs(jobs, query, project_id=self.project_id)
        page = _lists.sub_job_list_page(query)
        if isinstance(page, Reply):
            return page
        return _lists.list_sub_jobs(
            self._snapshots(now, parent),
            query,
            page,
            seed=self.list_seed,
            project_id=self.project_id,
        )

    def _snapshots(
        self, now: float, only: str | None = None
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """Return each job's (ID, snapshot) a list shows now: of every job, or of ``only``.

        Looking starts the clock of a time-based timeline not yet started.
        """
        job_ids = list(self._scripts) if only is None else [only]
        shown = []
        for job_id in job_ids:
            script = self._scripts.get(job_id)
            snapshot = script.snapshot(now) if script is not None else None
            if snapshot is not None:
                shown.append((job_id, snapshot))
        return shown
