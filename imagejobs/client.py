"""The one I/O layer: an aiohttp session that sends the GET and reads the answer.

Everything else (URL parts, headers, parsing, error mapping) is delegated to
the pure modules; this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import math
import random
import re
import ssl as _ssl
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, cast
from urllib.parse import quote, urlsplit

import aiohttp

from ._version import __version__
from .config import from_environment
from .core.codec import (
    MAX_PAGE_SIZE,
    Page,
    decode_answer,
    parse_http_date,
    read_count,
    read_job,
    read_job_page,
    read_sub_job_page,
    to_wire,
)
from .core.errors import (
    ApiError,
    AuthenticationError,
    ImageJobsError,
    InvalidArgument,
    MalformedResponse,
    ResponseTooLarge,
    Throttled,
    TransportError,
)
from .core.models import ImageJob, ImageJobInfo, JobStatus, JobType, SubJob
from .core.outcome import Outcome
from .core.regions import endpoint_for
from .core.transitions import Transition
from .core.validation import check_id, is_host
from .fleet.shared import Fleet, FleetPass, check_redis_url, fleet_key
from .observability.hooks import Hooks, RequestRecord, RetryRecord, ThrottleRecord
from .planning.budget import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RATE,
    MAX_RETRY_AFTER,
    PACE,
    RequestBudget,
    check_limits,
)
from .planning.history import MAX_SAMPLES, DurationHistory, duration_of
from .planning.policy import PollPolicy
from .planning.retry import RetryPolicy, is_transient
from .scheduling import waiter
from .scheduling.hub import Hub, Look, Seen
from .scheduling.waiter import OutcomeCallback, TransitionCallback
from .timing.clock import SYSTEM_CLOCK, Clock
from .timing.gate import Gate, Pass
from .transport.credentials import (
    AkSkCredentials,
    Credentials,
    RefreshableCredentials,
    TokenCredentials,
)

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_REQUEST_TIMEOUT",
    "USER_AGENT",
    "Client",
]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one request may take, connecting included."""

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
"""Bytes a response may hold; a job with hundreds of sub-jobs is well under 1 MB."""

USER_AGENT = f"imagejobs/{__version__}"

logger = logging.getLogger("imagejobs")

# How many job URLs a client keeps checked and quoted: more than the jobs a busy
# client watches at once, and a bound for one that sees endless new IDs.
_JOBS_KEPT = 8192
# The bytes of last answers a client keeps to recognise an unchanged job (see
# _KnownJob); the jobs read from them are kept with them, a few times that.
_ANSWERS_KEPT = 4 * 1024 * 1024

_T = TypeVar("_T")

# Status and job-type filters: the open sets' spelling.
_FILTER = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
# The count takes a comma-separated list of job types.
_FILTERS = re.compile(r"[A-Za-z0-9_]{1,64}(?:,[A-Za-z0-9_]{1,64}){0,15}", re.ASCII)


def _check_filter(name: str, value: object, *, several: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not (_FILTERS if several else _FILTER).fullmatch(value):
        listed = " or a comma-separated list of them" if several else ""
        raise InvalidArgument(
            f"{name} {value[:80]!r} is not a status or job type{listed} "
            "(letters, digits and underscores, like RUNNING or CREATE_SERVER)"
        )
    return str(value)


def _filters(
    job_id: object, status: object, job_type: object, *, several: bool = False
) -> dict[str, str | None]:
    """Return a list call's checked filters; ``several`` job types (comma-separated) or one."""
    return {
        "job_id": None if job_id is None else check_id("job_id", job_id),
        "status": _check_filter("status", status),
        "job_type": _check_filter("job_type", job_type, several=several),
    }


def _check_page_size(page_size: object) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise InvalidArgument(f"page_size must be a whole number, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def _with_query(url: str, query: Mapping[str, str | int | None]) -> str:
    # Sorted and encoded as the signature's canonical query, so what is signed is what is sent.
    pairs = sorted((key, str(value)) for key, value in query.items() if value is not None)
    if not pairs:
        return url
    return url + "?" + "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


# host, [IPv6] or user@host (refused below with its own message), then an optional :port
_NETLOC = re.compile(r"(?:[^@/\s]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^\[\]:@/\s]+)(?::\d+)?")


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str):
        raise InvalidArgument(f"endpoint must be a string, got {type(endpoint).__name__}")
    problem = f"endpoint {endpoint!r} is not an http(s) URL like https://host[:port]"
    try:
        parts = urlsplit(endpoint.strip())
        _ = parts.port  # out of range, or not a number: urllib raises only when asked
        usable = (
            parts.scheme in ("http", "https")
            and _NETLOC.fullmatch(parts.netloc) is not None
            and is_host(parts.hostname or "")
        )
    except (ValueError, UnicodeError):
        raise InvalidArgument(problem) from None
    if not usable:
        raise InvalidArgument(problem)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidArgument("endpoint must not contain a query, a fragment or user information")
    return endpoint.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """An async client for the image-job API of one project.

    Use it as an async context manager, or call :meth:`close` when done. It
    creates its own aiohttp session on first use and closes it, unless a
    ``session`` is passed in: a borrowed session is used and left open.

    The service is at ``endpoint``, or else at the known endpoint of ``region``.
    Credentials are refused over plain ``http://`` to anything but a loopback
    address unless ``allow_insecure`` is true (then a warning is logged). TLS
    certificates are verified, also through a borrowed session whose connector
    says otherwise; pass ``ssl`` (an :class:`ssl.SSLContext`) to trust another
    authority, or ``ssl=False`` with ``allow_insecure=True`` to check nothing.
    ``retry`` says how :meth:`get_job` retries transient failures
    (``RetryPolicy(max_attempts=1)`` for never); redirects are never followed,
    and a body over ``max_body_size`` bytes is refused unread.

    Everything the client sends shares one budget: at most ``max_in_flight``
    requests at once and ``rate`` a second. A 429 lowers the rate for the
    whole client, which climbs back while no 429 comes; a ``Retry-After``
    holds every request of the client until it has passed. Requests wait for
    the budget in the client, never in aiohttp's pool, so ``timeout`` counts
    from when a request is sent. Every wait (:meth:`wait`, :meth:`watch`,
    :meth:`wait_many`, :meth:`watch_many`) goes through one scheduler, the
    hub: a job is polled once however many callers wait on it. When many jobs
    are in play, the hub sweeps: it pages the lists of active jobs, a hundred
    a request, and GETs only the jobs that left them (see README, "Sweeps").
    ``sweeps=None`` (the default) sweeps when polling every job by GET would
    take over a third of the budget, ``True`` whenever a list is cheaper than
    the GETs it saves, ``False`` never. ``clock`` is where time comes from
    (:class:`imagejobs.testing.FakeClock` in tests). ``history`` (a
    :class:`DurationHistory`) records how long every job seen to succeed took,
    and places the polls of jobs of a type it knows where their end is likely.

    With ``redis_url`` (``redis://``, ``rediss://`` for TLS, or ``unix://``),
    ``max_in_flight`` and ``rate`` hold for every process of the same account
    that shares that Redis: a fleet-wide limiter on Redis's clock, slots that
    a crashed process cannot keep past their lease, a 429 anywhere slowing
    them all, and a job watched by several processes polled by one of them at
    a time, the others replaying its snapshots (see README, "Many
    processes"). The fleet is keyed by ``project_id`` and a hash of the access
    key or token; ``redis_key`` names another. If Redis is unreachable or
    slow, everything goes on under this client's own budget, with one
    warning, and shares again once Redis answers.

    ``hooks`` are objects with some of ``on_request``, ``on_retry``,
    ``on_throttle``, ``on_wait``, ``on_transition`` and ``on_outcome``, each
    called with a frozen record (see :mod:`imagejobs.observability.hooks`); one that raises is
    logged and never breaks a wait. :class:`imagejobs.otel.OpenTelemetryHook`
    is one (the ``otel`` extra).

    Raises :class:`InvalidArgument` at once for a bad ``project_id``,
    ``endpoint``, ``region``, ``timeout``, ``ssl``, ``max_in_flight``, ``rate``,
    ``sweeps``, ``redis_url``, ``redis_key`` or ``hooks``, and :class:`ConfigurationError`
    for ``redis_url`` without the ``redis`` extra installed.
    """

    def __init__(
        self,
        *,
        project_id: str,
        endpoint: str | None = None,
        region: str | None = None,
        credentials: Credentials | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        retry: RetryPolicy | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        allow_insecure: bool = False,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        rate: float = DEFAULT_RATE,
        clock: Clock | None = None,
        sweeps: bool | None = None,
        history: DurationHistory | None = None,
        redis_url: str | None = None,
        redis_key: str | None = None,
        hooks: Iterable[object] = (),
    ) -> None:
        self.project_id = check_id("project_id", project_id)
        if endpoint is None:
            if region is None:
                raise InvalidArgument("pass endpoint= or region= to say where the service is")
            endpoint = endpoint_for(region)
        self.endpoint = _check_endpoint(endpoint)
        if credentials is not None and not isinstance(credentials, Credentials):
            raise InvalidArgument(
                f"credentials must have an async authorize() method, "
                f"got {type(credentials).__name__}"
            )
        self._check_transport_security(credentials, allow_insecure=allow_insecure)
        if not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._closed = False
        project_url = f"{self.endpoint}/v1/{quote(self.project_id, safe='')}"
        self._jobs_url = f"{project_url}/image-server-jobs/"
        self._job_list_url = f"{project_url}/image-server-jobs"
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        # A session of its own sends what never changes (every URL has its host).
        own_session_url = self._job_list_url if session is None else None
        self._authorize_now, self._session_headers = _authorizer(
            credentials, self._headers, self.project_id, own_session_url
        )
        self._sub_job_list_url = f"{project_url}/image-server-sub-jobs"
        self._sub_job_count_url = f"{project_url}/image-server-sub-jobs/actions/count"
        # Job URLs and readers, checked, quoted and made once, not per request.
        self._jobs: dict[str, _KnownJob] = {}
        self._answers = _AnswerRoom(_ANSWERS_KEPT)
        self._timeouts: dict[int, aiohttp.ClientTimeout] = {}
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.max_body_size = _checked_body_size(max_body_size)
        self._ssl = _tls_context(ssl, allow_insecure=allow_insecure, session=session)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidArgument(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        self._retry = retry if retry is not None else RetryPolicy()
        check_limits(max_in_flight, rate)
        if session is not None:
            _check_pool(session, max_in_flight)
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        budget = RequestBudget.create(max_in_flight, rate, self.clock.monotonic())
        self._gate = Gate(budget, self.clock)
        self._call_gates: weakref.WeakSet[Gate] = weakref.WeakSet()
        if sweeps is not None and not isinstance(sweeps, bool):
            raise InvalidArgument(f"sweeps must be True, False or None, got {sweeps!r}")
        if history is not None and not isinstance(history, DurationHistory):
            raise InvalidArgument(
                f"history must be a DurationHistory, got {type(history).__name__}"
            )
        self.history = history
        self._hooks = Hooks(hooks)
        self._fleet = self._join_fleet(redis_url, redis_key, credentials, budget)
        self._hub = Hub(
            self._poll,
            self.clock,
            self._retry,
            max_polls=max_in_flight,
            list_page=self._list_page,
            sweeps=sweeps,
            rate=self._planning_rate,
            history=history,
            hooks=self._hooks,
        )

    def _join_fleet(
        self,
        redis_url: str | None,
        redis_key: str | None,
        credentials: Credentials | None,
        budget: RequestBudget,
    ) -> Fleet | None:
        if redis_url is None:
            if redis_key is not None:
                raise InvalidArgument("redis_key needs redis_url")
            return None
        check_redis_url(redis_url)
        if redis_key is not None and (not isinstance(redis_key, str) or not redis_key):
            raise InvalidArgument(f"redis_key must be a non-empty string, got {redis_key!r}")
        if self.clock is not SYSTEM_CLOCK:
            raise InvalidArgument("redis_url needs the system clock: a fleet keeps Redis's time")
        key = redis_key or fleet_key(self.project_id, _account_of(credentials, self.endpoint))
        return Fleet(
            redis_url,
            key,
            max_in_flight=budget.max_in_flight,
            # Lua has no infinity to parse: an unlimited rate is a billion a second.
            rate=min(budget.rate, 1e9),
            pace=PACE,
            burst=min(budget.burst(self.clock.monotonic()), 1e9),
            # A request ends within its timeout: a slot outlives it by a little.
            lease=self.timeout + 2.0,
            max_retry_after=MAX_RETRY_AFTER,
        )

    def _planning_rate(self, now: float) -> float:
        """The rate the hub plans sweeps by: this client's, or its part of the fleet's."""
        rate = self._gate.budget.adaptive.current(now)
        return rate if self._fleet is None else self._fleet.share(rate)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Make a client from arguments, then the environment, then the credentials file.

        Reads ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``,
        ``HUAWEICLOUD_SDK_SECURITY_TOKEN``, ``HUAWEICLOUD_SDK_PROJECT_ID``,
        ``IMAGEJOBS_AUTH_TOKEN``, ``IMAGEJOBS_ENDPOINT``, ``IMAGEJOBS_REGION``,
        ``IMAGEJOBS_REDIS_URL`` and
        the provider's credentials file (``~/.huaweicloud/credentials``, or the
        one ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` names). ``overrides`` are
        :class:`Client` arguments and win. Raises :class:`ConfigurationError`
        naming whatever is missing and where it may come from.
        """
        return cls(**from_environment(overrides))

    def _check_transport_security(
        self, credentials: Credentials | None, *, allow_insecure: bool
    ) -> None:
        parts = urlsplit(self.endpoint)
        if credentials is None or parts.scheme == "https" or _is_loopback(parts.hostname or ""):
            return
        if not allow_insecure:
            raise InvalidArgument(
                f"refusing to send credentials over plain http to {parts.hostname}; "
                "use an https endpoint, or pass allow_insecure=True (--allow-insecure)"
            )
        logger.warning("sending credentials over plain http to %s (allow_insecure)", parts.hostname)

    def __repr__(self) -> str:
        fleet = "" if self._fleet is None else f", fleet={self._fleet.where}"
        return f"Client(endpoint={self.endpoint!r}, project_id={self.project_id!r}{fleet})"

    @property
    def max_in_flight(self) -> int:
        """The most requests this client has in flight at once."""
        return self._gate.budget.max_in_flight

    @property
    def rate(self) -> float:
        """The most requests this client sends a second (429s may hold it lower)."""
        return self._gate.budget.rate

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End every wait with :class:`ImageJobsError`, then close the session if it is ours.

        A borrowed session stays open. Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        await self._hub.close()
        closed = ImageJobsError("the client is closed")
        for gate in [self._gate, *self._call_gates]:
            await gate.close(closed)
        if self._fleet is not None:
            await self._fleet.close()
        await self._hooks.close()
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ImageJobsError("the client is closed")
        if self._session is None:
            # No pool limit: the gate caps what is in flight, so nothing ever queues in
            # the pool, where the wait would count against the request's timeout.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._session_headers
            )
        elif self._session.closed:
            raise ImageJobsError("the aiohttp session passed to the client is closed")
        return self._session

    def watch(
        self, job_id: str, policy: PollPolicy | None = None, since: ImageJob | None = None
    ) -> AsyncGenerator[Transition]:
        """Yield a job's transitions until, and including, the job's SUCCESS or FAILED.

        ``since`` resumes from a saved snapshot: only what changed after it is
        yielded. Raises :class:`WaitTimeout` at the policy's deadline, and the
        error that ended the wait otherwise (``JobNotFound`` after the grace,
        ``PermissionDenied``, or the error polls kept failing with until the
        deadline). A FAILED job is not an error here: its transition is the last
        one. Closing the iterator or cancelling the task unsubscribes.
        Raises :class:`InvalidArgument` for a bad ``job_id`` or ``since``.
        """
        return waiter.watch(self._hub, job_id, policy, since)

    async def wait(
        self,
        job_id: str,
        policy: PollPolicy | None = None,
        raise_on_failure: bool = True,
        *,
        on_transition: TransitionCallback | None = None,
        since: ImageJob | None = None,
    ) -> ImageJob:
        """Wait until a job ends and return its final snapshot.

        Raises :class:`JobFailed` if it ends FAILED (unless ``raise_on_failure``
        is false, then the FAILED job is returned), :class:`WaitTimeout` at the
        deadline, or the error that ended the wait. Transient failures (5xx,
        429, no answer, a malformed body) do not end it: the job is polled
        again with backoff until the deadline. ``on_transition`` (a function or
        coroutine function) is called with each transition as it is seen.
        """
        return await waiter.wait(
            self._hub, job_id, policy, raise_on_failure, on_transition=on_transition, since=since
        )

    def wait_many(
        self,
        job_ids: Iterable[str],
        policy: PollPolicy | None = None,
        *,
        max_in_flight: int | None = None,
        rate: float | None = None,
        on_transition: TransitionCallback | None = None,
    ) -> AsyncGenerator[Outcome]:
        """Wait on many jobs at once; yield each job's :class:`Outcome` as it ends.

        Every job ends in an outcome (success, failed, timeout or error); one bad
        job never stops the others, but refused credentials (401) end them all.
        Duplicate IDs are waited on once. The polls use the client's budget;
        ``max_in_flight`` and ``rate`` narrow this call's share of it.
        Raises :class:`InvalidArgument` before any request if an ID is not valid.
        """
        return waiter.wait_many(
            self._hub,
            job_ids,
            policy,
            call_gate=self._call_gate(max_in_flight, rate),
            on_transition=on_transition,
        )

    def watch_many(
        self,
        job_ids: Iterable[str],
        policy: PollPolicy | None = None,
        *,
        max_in_flight: int | None = None,
        rate: float | None = None,
        on_outcome: OutcomeCallback | None = None,
    ) -> AsyncGenerator[Transition]:
        """Yield the transitions of many jobs, interleaved as they are seen.

        Budget and duplicates as in :meth:`wait_many`. ``on_outcome`` is called
        with each job's :class:`Outcome` as it ends. Without it, a job that ends
        in an error or a timeout does not stop the others, but once all have
        ended the first such error is raised, so none goes unnoticed. FAILED
        jobs are not errors here: their terminal transition says it.
        """
        return waiter.watch_many(
            self._hub,
            job_ids,
            policy,
            call_gate=self._call_gate(max_in_flight, rate),
            on_outcome=on_outcome,
        )

    def _call_gate(self, max_in_flight: int | None, rate: float | None) -> Gate | None:
        """Return a gate narrowing one call's share of the budget, if it asks for one."""
        if max_in_flight is None and rate is None:
            return None
        cap = self.max_in_flight if max_in_flight is None else max_in_flight
        per_second = self.rate if rate is None else rate
        check_limits(cap, per_second)
        gate = Gate(RequestBudget.create(cap, per_second, self.clock.monotonic()), self.clock)
        self._call_gates.add(gate)
        return gate

    def job_url(self, job_id: str) -> str:
        """Return the URL of a job's details; raises :class:`InvalidArgument` for a bad ID."""
        return self._job(job_id).url

    def _job(self, job_id: str) -> _KnownJob:
        """Return what the client keeps of a job: its URL and reader, checked and made once."""
        plain = type(job_id) is str  # a str subclass could hash or compare as another ID
        known = self._jobs.get(job_id) if plain else None
        if known is None:
            url = self._jobs_url + quote(check_id("job_id", job_id), safe="")
            # One the client does not keep keeps no answer: nothing would give its room back.
            known = _KnownJob(url, read_job(job_id), self._answers if plain else _NO_ROOM)
            if plain:
                if len(self._jobs) >= _JOBS_KEPT:
                    # The oldest: a fleet moves on.
                    self._jobs.pop(next(iter(self._jobs))).forget()
                self._jobs[job_id] = known
        return known

    async def get_job(self, job_id: str) -> ImageJob:
        """Fetch a job's details.

        Transient failures (no answer, 429, 500, 502, 503, 504, a malformed body)
        are retried as the client's :class:`RetryPolicy` says; when the tries run
        out, the last error is raised, its message giving the number of attempts.
        Raises :class:`InvalidArgument` (before any request) for a bad ``job_id``;
        the :class:`ApiError` subclass for an error status; :class:`TransportError`
        when no answer came back; :class:`MalformedResponse` for a body that is not
        a job (:class:`ResponseTooLarge` for one over the size cap).
        """
        known = self._job(job_id)
        return await self._send(_Call(known.url, known.read, "job", job_id))

    async def get_job_json(self, job_id: str) -> dict[str, Any]:
        """Fetch a job's details as the service sent them: its JSON object, every field kept.

        The body must still be a job (:class:`MalformedResponse` names what is
        wrong otherwise); fields the models do not know are kept as they came.
        Retries and errors as in :meth:`get_job`.
        """
        known = self._job(job_id)

        def read_as_sent(body: bytes) -> dict[str, Any]:
            known.read(body)  # a job, or the error that says why not
            sent: dict[str, Any] = json.loads(body)  # a new dict each time: the caller's own
            return sent

        return await self._send(_Call(known.url, read_as_sent, "job", job_id))

    def list_jobs(
        self,
        status: str | None = None,
        job_type: str | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncGenerator[ImageJobInfo]:
        """Yield the project's jobs, filtered by ``status`` and ``job_type``, paging for you.

        Each page is one request (``page_size`` items, 1 to 100), with the same
        signing, retries, budget and size cap as :meth:`get_job`. The service
        documents no order, and a list that changes while it is paged can skip
        a job (or show one twice; each is yielded once): a list is a snapshot in
        motion, a hint of what is running, never proof that a job ended. The
        English API reference marks ``job_type`` mandatory: pass it. Raises
        :class:`InvalidArgument` before any request for a bad filter or page size.
        """
        query = _filters(None, status, job_type)
        size = _check_page_size(page_size)
        return self._paged(self._job_list_url, query, size, read_job_page, lambda info: info.id)

    def list_sub_jobs(
        self,
        job_id: str | None = None,
        status: str | None = None,
        job_type: str | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncGenerator[SubJob]:
        """Yield sub-jobs (of one job, given ``job_id``), filtered by ``status`` and ``job_type``.

        Each :class:`SubJob` names its parent in ``job_id``. Paging, order and
        errors as in :meth:`list_jobs`.
        """
        query = _filters(job_id, status, job_type)
        size = _check_page_size(page_size)
        # Sub-job IDs are only known unique within their job.
        return self._paged(
            self._sub_job_list_url, query, size, read_sub_job_page, lambda sub: (sub.job_id, sub.id)
        )

    async def count_sub_jobs(
        self, job_id: str | None = None, status: str | None = None, job_type: str | None = None
    ) -> int:
        """Return how many sub-jobs match: one request.

        ``job_type`` may be a comma-separated list; without it the service counts
        ``CREATE_SERVER``, ``CREATE_SERVER_IMAGE`` and ``DELETE_SERVER`` sub-jobs.
        """
        query = _filters(job_id, status, job_type, several=True)
        url = _with_query(self._sub_job_count_url, query)
        return await self._send(_Call(url, read_count, "sub-job count"))

    async def learn_history(
        self, job_types: Iterable[str] | None = None, *, pages: int = 2
    ) -> dict[str, int]:
        """Fill the client's history from the tenant's finished jobs; return how many per type.

        Pages the ``SUCCESS`` jobs of each type (``job_types``, or every type
        the enum knows), at most ``pages`` requests a type, and keeps each
        type's most recent durations (by ``end_time``) in place of what the
        history held for it; items of another type or status, or durations
        outside what :class:`DurationHistory` takes, are left out. Raises
        :class:`ImageJobsError` if the client has no history,
        :class:`InvalidArgument` for a bad type.
        """
        if self.history is None:
            raise ImageJobsError("the client has no history: pass Client(history=...)")
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise InvalidArgument(f"pages must be a whole number of at least 1, got {pages!r}")
        if job_types is None:
            types = sorted(t.value for t in JobType)
        elif isinstance(job_types, str):
            raise InvalidArgument("job_types must be an iterable of types, not a single string")
        else:
            types = [_check_filter("job_type", t) or "" for t in job_types]
        learned: dict[str, int] = {}
        for job_type in types:
            finished: list[tuple[datetime, float]] = []
            listing = self._paged(
                self._job_list_url,
                {"status": "SUCCESS", "job_type": job_type},
                MAX_PAGE_SIZE,
                read_job_page,
                lambda info: info.id,
                max_pages=pages,
            )
            async with contextlib.aclosing(listing) as infos:
                async for info in infos:
                    seconds = duration_of(info)
                    if (
                        info.status is JobStatus.SUCCESS
                        and info.job_type == job_type
                        and info.end_time is not None
                        and seconds is not None
                    ):
                        finished.append((info.end_time, seconds))
            if finished:
                finished.sort()
                kept = [seconds for _, seconds in finished[-MAX_SAMPLES:]]
                self.history.replace(job_type, kept)
                learned[job_type] = len(kept)
        return learned

    async def _paged(
        self,
        url: str,
        query: Mapping[str, str | None],
        size: int,
        read: Callable[[bytes], Page[Any]],
        key: Callable[[Any], object],
        *,
        max_pages: int | None = None,
    ) -> AsyncGenerator[Any]:
        seen: set[object] = set()
        offset = pages = 0
        while max_pages is None or pages < max_pages:
            pages += 1
            page_url = _with_query(url, {**query, "offset": offset, "limit": size})
            what = "sub-job list" if read is read_sub_job_page else "job list"
            page = await self._send(_Call(page_url, read, what))
            known = len(seen)
            for item in page.items:
                if key(item) not in seen:
                    seen.add(key(item))
                    yield item
            # By what came back, not by the page size: a shorter page skips nothing.
            offset += len(page.items)
            # A page of nothing new: a server that ignores the offset would loop for ever.
            if not page.items or offset >= page.count or len(seen) == known:
                return

    async def _send(self, call: _Call[_T]) -> _T:
        """Send one call, retrying transient failures as the client's :class:`RetryPolicy` says."""
        session = self._get_session()
        waits = None  # made on the first failure: a first try that works pays for no retry
        started = self.clock.monotonic()
        # max_time bounds the whole call, waits for the budget included: the last
        # try gets only the time left.
        call.deadline = started + self._retry.max_time
        tries = 0
        while True:
            tries += 1
            call.attempt = tries
            try:
                return await self._attempt(session, call)
            except ImageJobsError as error:
                elapsed = self.clock.monotonic() - started
                if waits is None and is_transient(error):
                    waits = self._retry.waits(random.random)
                    next(waits)
                delay = waits.send(error) if waits is not None and is_transient(error) else 0.0
                # No try that could not start within max_time: the error at hand is
                # more use than a timeout of a try given no time.
                if (
                    not is_transient(error)
                    or tries >= self._retry.max_attempts
                    or elapsed + delay >= self._retry.max_time
                    or self._closed
                ):
                    if tries > 1:
                        error.attempts = tries
                    raise
                logger.debug("retrying in %.2fs after attempt %d: %s", delay, tries, error)
                if self._hooks.wants("on_retry"):
                    reason = f"{type(error).__name__}: {error}"
                    retry = RetryRecord(call.url, call.job_id, tries, delay, reason)
                    self._hooks.call("on_retry", retry)
            # The gate holds the next try too while a Retry-After runs.
            await self.clock.sleep(delay)

    async def _poll(self, job_id: str, priority: float, call_gate: Gate | None, look: Look) -> Seen:
        """Look at a job once for the hub: no retries (the hub polls again with backoff).

        In a fleet, another process's recent look serves instead of a GET, and a
        GET's answer is shared.
        """
        known = self._job(job_id)
        call = _Call(known.url, known.read, "job", job_id)
        if self._fleet is not None:
            return await self._shared_poll(self._fleet, call, priority, call_gate, look)
        job = await self._attempt(self._get_session(), call, priority, call_gate)
        return Seen(((job, self.clock.monotonic()),), look.mark)

    async def _shared_poll(
        self, fleet: Fleet, call: _Call[ImageJob], priority: float, gate: Gate | None, look: Look
    ) -> Seen:
        claim = ""
        try:
            shared = await fleet.look(call.url, look.fresh_after, look.mark)
            claim = "" if shared is None else shared.claim
            replayed: tuple[tuple[ImageJob, float], ...] = ()
            mark = look.mark
            if shared is not None and shared.entries:
                try:
                    replayed = tuple((call.read(body), at) for _, body, at in shared.entries)
                    mark = shared.entries[-1][0]
                except ImageJobsError:
                    logger.warning("a snapshot in Redis is not a job: fetching %s", call.url)
                    shared = None
            if shared is not None and shared.state == "wait":
                return Seen(replayed, mark, own=False, retry_in=_SHARED_WAIT)
            if shared is not None and shared.state == "fresh":
                return Seen(replayed, mark, own=False)
            job = await self._attempt(self._get_session(), call, priority, gate)
            answered = self.clock.monotonic()
            if claim:
                body = json.dumps(to_wire(job), separators=(",", ":"), sort_keys=True).encode()
                published = await fleet.publish(
                    call.url, claim, body, final=job.is_terminal, answered=answered
                )
                claim = ""  # published or not, the fleet gives it back
                mark = published or mark
            return Seen((*replayed, (job, answered)), mark)
        finally:
            if claim:
                fleet.let_go(call.url, claim)  # no answer to share: another process may look

    async def _list_page(
        self,
        sub_jobs: bool,
        query: Mapping[str, str | int | None],
        priority: float,
        call_gate: Gate | None,
    ) -> Page[Any]:
        """Fetch one page of the job or sub-job list for the hub's sweeps, once."""
        if sub_jobs:
            call: _Call[Page[Any]] = _Call(
                _with_query(self._sub_job_list_url, query), read_sub_job_page, "sub-job list"
            )
        else:
            call = _Call(_with_query(self._job_list_url, query), read_job_page, "job list")
        return await self._attempt(self._get_session(), call, priority, call_gate)

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        call: _Call[_T],
        priority: float | None = None,
        call_gate: Gate | None = None,
    ) -> _T:
        """One try: wait for the budget (the call's, then the client's), sign afresh, send, decode.

        On a 401 with refreshable credentials, the token is refreshed and the
        request sent once more (once per call, not per try). An exception outside
        the error tree (from credentials, or anything aiohttp did not foresee)
        becomes an :class:`ImageJobsError` naming only its type: its text may
        quote a header, and it is no reason to try again.
        """
        # The common case passes the gate at once, without a coroutine.
        state = _Try(call_gate, self._gate.try_pass() if call_gate is None else None)
        refreshable: RefreshableCredentials | None = None
        try:
            if state.ticket is None:
                await self._passes(call, priority, state)
            call.sent = headers = (
                self._authorize_now(call.url)
                if self._authorize_now is not None
                else await self._authorize(call.url)
            )
            if self._fleet is not None:
                # After signing: a fleet's slot is held no longer than the request.
                state.fleet_pass = await self._fleet_pass(self._fleet, call)
            fetch = self._told_fetch if self._hooks.wants("on_request") else self._fetch
            answer = await fetch(session, call, headers)
            state.answered = True
            return answer
        except Throttled as error:
            state.throttled, state.retry_after = True, error.retry_after
            raise
        except AuthenticationError:
            state.answered = True
            if call.refreshed or not isinstance(self._credentials, RefreshableCredentials):
                raise
            refreshable = self._credentials
        except (ApiError, MalformedResponse):
            state.answered = True
            raise
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # raised again, inside the error tree
            raise self._unexpected(call, exc) from (None if self._closed else exc)
        finally:
            self._settle(call, state)
        # A 401 that a fresh token may fix: refresh it (the budget given back), then once more.
        call.refreshed = True
        try:
            await refreshable.refresh(call.sent)
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # raised again, inside the error tree
            raise self._unexpected(call, exc) from (None if self._closed else exc)
        return await self._attempt(session, call, priority, call_gate)

    async def _passes(self, call: _Call[Any], priority: float | None, state: _Try) -> None:
        """Wait for the call's own gate, if it has one, then the client's."""
        try:
            if state.call_gate is not None:
                state.narrow = await state.call_gate.acquire(priority, call.deadline)
            state.ticket = await self._gate.acquire(priority, call.deadline)
        except TimeoutError:
            raise self._held(call) from None

    async def _fleet_pass(self, fleet: Fleet, call: _Call[Any]) -> FleetPass | None:
        try:
            return await fleet.acquire(call.deadline)
        except TimeoutError:
            raise self._held(call) from None

    def _settle(self, call: _Call[Any], state: _Try) -> None:
        """Give the passes back, telling the client's gate and the fleet how the request ended."""
        try:
            self._give_back(call, state)
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # none from outside the error tree, here either
            raise self._unexpected(call, exc) from (None if self._closed else exc)

    def _give_back(self, call: _Call[Any], state: _Try) -> None:
        if state.narrow is not None and state.call_gate is not None:
            state.call_gate.release(state.narrow)  # a call's cap stays as given: it learns nothing
        if state.ticket is not None:
            self._gate.release(
                state.ticket,
                answered=state.answered,
                throttled=state.throttled,
                retry_after=state.retry_after,
            )
        if self._fleet is not None:
            self._fleet.release(
                state.fleet_pass,
                answered=state.answered,
                throttled=state.throttled,
                retry_after=state.retry_after,
            )
        if state.throttled and self._hooks.wants("on_throttle"):
            rate = self._gate.budget.adaptive.current(self.clock.monotonic())
            throttle = ThrottleRecord(
                call.url, call.job_id, state.retry_after, rate, call.request_id
            )
            self._hooks.call("on_throttle", throttle)

    def _unexpected(self, call: _Call[Any], exc: BaseException) -> ImageJobsError:
        """An exception from outside the error tree, as one inside it naming only its type."""
        if self._closed:
            return ImageJobsError(f"GET {call.url}: the client was closed")
        return ImageJobsError(f"GET {call.url} failed unexpectedly: {type(exc).__name__}")

    def _held(self, call: _Call[Any]) -> TransportError:
        return TransportError(
            f"GET {call.url}: not sent, the client's request budget held it past "
            f"the retry policy's max_time ({self._retry.max_time:g}s)"
        )

    async def _authorize(self, url: str) -> dict[str, str]:
        """Ask credentials that may wait (only those: see :func:`_authorizer`)."""
        credentials = cast(Credentials, self._credentials)
        # A copy: an authorize() that adds to the dict it is given must not change the next.
        return await credentials.authorize("GET", url, dict(self._headers), self.project_id)

    async def _told_fetch(
        self, session: aiohttp.ClientSession, call: _Call[_T], headers: Mapping[str, str]
    ) -> _T:
        """:meth:`_fetch`, telling the hooks how it went (a frame only when they ask)."""
        started = self.clock.monotonic()
        failed: BaseException | None = None
        try:
            return await self._fetch(session, call, headers)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            self._tell_request(call, self.clock.monotonic() - started, failed)

    def _tell_request(self, call: _Call[Any], took: float, failed: BaseException | None) -> None:
        error = None if failed is None else type(failed).__name__
        record = RequestRecord(
            "GET",
            call.url,
            call.what,
            call.job_id,
            call.status,
            took,
            call.attempt,
            call.request_id,
            error,
        )
        self._hooks.call("on_request", record)

    async def _fetch(
        self, session: aiohttp.ClientSession, call: _Call[_T], headers: Mapping[str, str]
    ) -> _T:
        """Send one request and decode the answer."""
        call.status = call.answer_headers = None
        url = call.url
        left = min(self.timeout, call.deadline - self.clock.monotonic())
        timeout = (
            self._client_timeout
            if left >= self.timeout
            else self._timeouts.get(int(left * 100)) or self._timeout_for(left)
        )
        try:
            async with session.get(
                url, headers=headers, allow_redirects=False, timeout=timeout, ssl=self._ssl
            ) as response:
                length = response.content_length
                if (
                    length is not None
                    and length <= self.max_body_size
                    and "Content-Encoding" not in response.headers
                ):
                    body = await response.read()  # exactly Content-Length bytes, as sent
                else:
                    body = await self._read(response)
        except TimeoutError as exc:
            raise TransportError(f"GET {url} timed out after {max(left, 0.0):.3g}s") from exc
        except aiohttp.InvalidURL:
            # Refused by aiohttp's own URL parser: no later try can fix it.
            raise InvalidArgument(f"GET {url}: not a URL aiohttp can send to") from None
        except (aiohttp.ClientError, RuntimeError) as exc:
            if self._closed:
                raise ImageJobsError(f"GET {url}: the client was closed") from None
            if isinstance(exc, RuntimeError):
                raise
            raise TransportError(f"GET {url} failed: {str(exc) or type(exc).__name__}") from exc
        call.status = response.status
        call.answer_headers = response.headers
        if logger.isEnabledFor(logging.DEBUG):
            request_id = call.request_id
            logger.debug(
                "GET %s: %s (request id %s)",
                url,
                response.status,
                request_id or "none",
                extra={"job_id": call.job_id, "status": response.status, "request_id": request_id},
            )
        try:
            return decode_answer(response.status, response.headers, body, call.read)
        except AuthenticationError as error:
            raise _with_clock_hint(error, response.headers.get("Date")) from None
        except ImageJobsError:
            raise
        except Exception as exc:
            detail = f"unreadable answer: {type(exc).__name__}: {exc}"
            raise MalformedResponse(detail, http_status=response.status) from exc

    def _timeout_for(self, left: float) -> aiohttp.ClientTimeout:
        """The timeout of a try that has only ``left`` seconds: rounded down to 10 ms, kept.

        Under 10 ms, the time left itself (1 ms at least), made afresh.
        """
        hundredths = int(left * 100)
        if hundredths < 1:
            return aiohttp.ClientTimeout(total=max(left, 0.001))
        timeout = self._timeouts.get(hundredths)
        if timeout is None:
            if len(self._timeouts) >= 1024:
                self._timeouts.clear()
            timeout = self._timeouts[hundredths] = aiohttp.ClientTimeout(total=hundredths / 100)
        return timeout

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the body, refusing one over the size cap before it fills memory.

        The cap holds on the decoded bytes: a gzip body that is small on the
        wire (its ``Content-Length``) can inflate a thousandfold, so an encoded
        body, or one of unknown length, is read in pieces as aiohttp decodes it.
        (:meth:`_fetch` reads a plain body of a known length within the cap at once.)
        """
        length = response.content_length
        if length is not None and length > self.max_body_size:
            raise self._too_large(response, f"response of {length} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_body_size:
                raise self._too_large(response, "decoded response")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, response: aiohttp.ClientResponse, what: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"{what} is over the {self.max_body_size}-byte cap",
            http_status=response.status,
            request_id=response.headers.get("X-Request-Id"),
        )


def _tls_context(
    ssl: object, *, allow_insecure: bool, session: aiohttp.ClientSession | None
) -> _ssl.SSLContext | bool:
    """Return what to verify servers with: a context, True, or False only when told twice.

    A context that checks nothing counts as ``ssl=False``. By default a borrowed
    session's connector decides, if it verifies; if it was made not to, our own
    verifying context goes with every request instead.
    """
    if isinstance(ssl, _ssl.SSLContext) and not _verifies(ssl):
        ssl = False
    if ssl is False:
        if not allow_insecure:
            raise InvalidArgument(
                "ssl=False (or a context that checks nothing) turns TLS certificate checks "
                "off, and credentials would go to whoever answers; pass allow_insecure=True "
                "as well if that is meant"
            )
        logger.warning("TLS certificate checks are off (ssl=False, allow_insecure)")
        return False
    if ssl is None or ssl is True:
        connector = session.connector if session is not None else None
        own = getattr(connector, "_ssl", True)  # aiohttp keeps the connector's choice here
        if isinstance(own, _ssl.SSLContext) and _verifies(own):
            return True  # the session's own trust (a private authority, say) applies
        return _default_tls_context()
    if not isinstance(ssl, _ssl.SSLContext):
        raise InvalidArgument(f"ssl must be an ssl.SSLContext, got {type(ssl).__name__}")
    return ssl


def _verifies(context: _ssl.SSLContext) -> bool:
    return context.verify_mode != _ssl.CERT_NONE and context.check_hostname


@functools.cache
def _default_tls_context() -> _ssl.SSLContext:
    # One per process: making a context loads the system's certificates.
    return _ssl.create_default_context()


def _checked_body_size(max_body_size: object) -> int:
    if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
        raise InvalidArgument(f"max_body_size must be a whole number, got {max_body_size!r}")
    if max_body_size < 1:
        raise InvalidArgument(f"max_body_size must be positive, got {max_body_size}")
    return max_body_size


def _check_pool(session: aiohttp.ClientSession, max_in_flight: int) -> None:
    """Refuse a borrowed session whose pool is smaller than the budget: requests would queue."""
    connector = session.connector
    limits = [connector.limit, connector.limit_per_host] if connector is not None else []
    smallest = min((limit for limit in limits if limit), default=0)
    if smallest and smallest < max_in_flight:
        raise InvalidArgument(
            f"the session's connection pool holds {smallest} connections, fewer than "
            f"max_in_flight={max_in_flight}: requests would queue in the pool and time out; "
            f"pass max_in_flight={smallest} or a session with a larger pool"
        )


_SHARED_WAIT = 0.25
"""Seconds before looking again at a job another process of the fleet is fetching."""


def _authorizer(
    credentials: Credentials | None,
    headers: Mapping[str, str],
    project_id: str,
    session_url: str | None,
) -> tuple[Callable[[str], dict[str, str]] | None, dict[str, str]]:
    """Return how to authorize a GET to a URL without a coroutine, and a session's headers.

    The function is None for credentials that may wait (a subclass of these two
    included), which are awaited as the :class:`Credentials` protocol says, every
    header with each request. Given ``session_url`` (the client's own session), the
    session sends the headers that never change, and the function gives the rest:
    aiohttp merges two headers a request, not six.
    """
    if credentials is None:
        if session_url is None:
            return (lambda url: dict(headers)), {}
        return (lambda url: {}), dict(headers)
    if type(credentials) in (AkSkCredentials, TokenCredentials):
        # Exactly these: a subclass may change how it authorizes, so it is awaited.
        return cast(AkSkCredentials | TokenCredentials, credentials)._authorizer_for(
            "GET", headers, project_id, session_url
        )
    return None, {}


def _account_of(credentials: Credentials | None, endpoint: str) -> str:
    """Return what names the account a fleet shares: the access key, or else the token."""
    if isinstance(credentials, AkSkCredentials):
        return f"ak:{credentials.ak}"
    if isinstance(credentials, TokenCredentials):
        return f"token:{credentials.token}"
    # Credentials of another kind: the endpoint is all there is (redis_key= names a fleet).
    return f"endpoint:{endpoint}"


class _Try:
    """One try's passes, and how its request ended, for the budget: only an answer
    that is not a 429 shows what the gateway accepts, and only a 429 slows the
    client down."""

    __slots__ = (
        "answered",
        "call_gate",
        "fleet_pass",
        "narrow",
        "retry_after",
        "throttled",
        "ticket",
    )

    def __init__(self, call_gate: Gate | None, ticket: Pass | None) -> None:
        self.call_gate = call_gate
        self.narrow: Pass | None = None
        self.ticket = ticket
        self.fleet_pass: FleetPass | None = None
        self.answered = False
        self.throttled = False
        self.retry_after: float | None = None


class _AnswerRoom:
    """The bytes of last answers the jobs of one client may keep, all together."""

    __slots__ = ("left",)

    def __init__(self, size: int) -> None:
        self.left = size


class _KnownJob:
    """A job the client has asked about: its URL, its reader, and its last answer.

    Most polls of a running job find it as it was: the body is the very bytes of
    the last answer, and the job read from them is the one read then (models are
    immutable), without parsing them again. Only a body the reader accepted is
    kept, while the client's :class:`_AnswerRoom` has room for it.
    """

    __slots__ = ("_body", "_job", "_read", "_room", "url")

    def __init__(self, url: str, read: Callable[[bytes], ImageJob], room: _AnswerRoom) -> None:
        self.url = url
        self._read = read
        self._room = room
        self._body = b""
        self._job: ImageJob | None = None

    def read(self, body: bytes) -> ImageJob:
        """Return the job in a body of its details (raising what the reader raises)."""
        if body == self._body and self._job is not None:
            return self._job
        job = self._read(body)
        room = self._room
        freed = len(self._body)
        if len(body) <= room.left + freed:
            room.left += freed - len(body)
            self._body, self._job = body, job
        return job

    def forget(self) -> None:
        """Give the last answer's room back: the client no longer keeps this job.

        A request still in flight may read one more answer: it is not kept.
        """
        self._room.left += len(self._body)
        self._body, self._job = b"", None
        self._room = _NO_ROOM


# The room of jobs the client does not keep, or no longer: none, so they keep no answer.
_NO_ROOM = _AnswerRoom(0)


class _Call(Generic[_T]):
    """One request, across its tries: its URL and how to read a 2xx body.

    ``refreshed`` says whether it already refreshed its token (once per request,
    not per try); ``sent`` holds the headers of the last try, for the
    credentials to see which token was refused; ``deadline`` is when the retry
    policy's ``max_time`` runs out, on the client's clock.
    """

    __slots__ = (
        "answer_headers",
        "attempt",
        "deadline",
        "job_id",
        "read",
        "refreshed",
        "sent",
        "status",
        "url",
        "what",
    )

    def __init__(
        self, url: str, read: Callable[[bytes], _T], what: str = "job", job_id: str | None = None
    ) -> None:
        self.url = url
        self.read = read
        self.what = what
        self.job_id = job_id
        self.refreshed = False
        self.sent: Mapping[str, str] = {}
        self.deadline = math.inf  # on the client's clock: when the retry policy's max_time ends
        self.attempt = 1
        self.status: int | None = None  # of the last answer, for the hooks and the log
        self.answer_headers: Mapping[str, str] | None = None

    @property
    def request_id(self) -> str | None:
        """The last answer's ``X-Request-Id``, looked up when asked: most are never read."""
        headers = self.answer_headers
        return None if headers is None else headers.get("X-Request-Id")


def _with_clock_hint(error: AuthenticationError, server_date: str | None) -> AuthenticationError:
    """Add how far this machine's clock is off when the gateway says a signature expired."""
    if "expired" not in error.error_msg.lower():
        return error
    hint = "the gateway accepts signatures up to 15 minutes old: check this machine's clock"
    server_now = parse_http_date(server_date)
    if server_now is not None:
        skew = (datetime.now(UTC) - server_now).total_seconds()
        side = "ahead of" if skew >= 0 else "behind"
        hint += f", which is {abs(skew):.0f}s {side} the server's"
    hinted = type(error)(
        error.http_status,
        error.error_code,
        f"{error.error_msg} ({hint})",
        error.request_id,
        error.retry_after,
    )
    hinted.attempts = error.attempts
    return hinted
