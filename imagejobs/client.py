"""The client: the public face that wires the layers together for one project.

:class:`Client` checks its arguments, then builds and holds the pieces, each
of which does one job: the transport (aiohttp) under the request path
(:class:`~imagejobs.transport.requester.Requester`: admission, signing,
decoding, retries), the fleet if there is one, and the hub (the one
scheduler behind every wait). Its methods are the API; what they do lives in
those pieces.
"""

from __future__ import annotations

import functools
import logging
import math
import ssl as _ssl
import weakref
from collections.abc import AsyncGenerator, Iterable
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp

from imagejobs._version import __version__
from imagejobs.config import from_environment
from imagejobs.core.codec import (
    MAX_PAGE_SIZE,
)
from imagejobs.core.errors import ClientClosed, ConfigurationError, ImageJobsError, InvalidArgument
from imagejobs.core.memo import forget_memos
from imagejobs.core.models import ImageJob, ImageJobInfo, SubJob
from imagejobs.core.outcome import Outcome
from imagejobs.core.regions import endpoint_for
from imagejobs.core.transitions import Transition
from imagejobs.core.urls import (
    ProjectUrls,
    check_endpoint,
    is_loopback,
)
from imagejobs.core.validation import check_id
from imagejobs.fleet.shared import Fleet, check_redis_url, fleet_key
from imagejobs.observability.hooks import Hooks
from imagejobs.planning.budget import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_RATE,
    MAX_RETRY_AFTER,
    PACE,
    RequestBudget,
    check_limits,
)
from imagejobs.planning.history import DurationHistory
from imagejobs.planning.policy import PollPolicy
from imagejobs.planning.retry import RetryPolicy
from imagejobs.scheduling import waiter
from imagejobs.scheduling.hub import Hub
from imagejobs.scheduling.polls import Poller
from imagejobs.scheduling.waiter import OutcomeCallback, TransitionCallback
from imagejobs.timing.clock import SYSTEM_CLOCK, Clock
from imagejobs.timing.gate import Gate
from imagejobs.transport.admission import Admission
from imagejobs.transport.aiohttp import DEFAULT_MAX_BODY_SIZE, AiohttpTransport
from imagejobs.transport.answers import KnownJobs
from imagejobs.transport.credentials import Credentials, account_of, authorizer_for
from imagejobs.transport.listing import Lists
from imagejobs.transport.requester import Call, Requester

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_REQUEST_TIMEOUT",
    "USER_AGENT",
    "Client",
]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one request may take, connecting included."""

USER_AGENT = f"imagejobs/{__version__}"

logger = logging.getLogger("imagejobs")


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
    a request, and GETs only the jobs that left them (see docs/sweeps.md).
    ``sweeps=None`` (the default) sweeps when polling every job by GET would
    take over a third of the budget, ``True`` whenever a list is cheaper than
    the GETs it saves, ``False`` never. ``clock`` is where time comes from
    (:class:`imagejobs.testing.FakeClock` in tests); jobs' ages are read on the
    service's clock, by the ``Date`` of its answers (a skew past 30 s is one
    warning; see docs/cadence.md). ``history`` (a
    :class:`DurationHistory`) records how long every job seen to succeed took,
    and places the polls of jobs of a type it knows where their end is likely.

    With ``redis_url`` (``redis://``, ``rediss://`` for TLS, or ``unix://``),
    every process of the same account that shares that Redis shares one
    budget: a fleet-wide limiter on Redis's clock, slots that a crashed
    process cannot keep past their lease, a 429 anywhere slowing them all, and
    a job or a list page several processes want fetched by one of them at a
    time, the others taking what it saw (see docs/fleet.md). ``max_in_flight``
    holds for the fleet; ``rate`` caps this process alone, and the fleet's is
    ``fleet_rate``: the lowest a member sets, or else the highest ``rate``
    among them. The fleet is keyed by ``project_id`` and a hash of the access
    key or token; ``redis_key`` names another. If Redis is unreachable or
    slow, everything goes on under this client's own budget, with one
    warning, and shares again once Redis answers.

    ``hooks`` are objects with some of ``on_request``, ``on_retry``,
    ``on_throttle``, ``on_wait``, ``on_transition`` and ``on_outcome``, each
    called with a frozen record (see :mod:`imagejobs.observability.hooks`); one
    that raises is logged and never breaks a wait.
    :class:`imagejobs.otel.OpenTelemetryHook` is one (the ``otel`` extra).

    Raises :class:`InvalidArgument` at once for a bad ``project_id``,
    ``endpoint``, ``region``, ``timeout``, ``ssl``, ``max_in_flight``, ``rate``,
    ``sweeps``, ``redis_url``, ``redis_key``, ``fleet_rate`` or ``hooks``, and
    :class:`ConfigurationError` for ``redis_url`` without the ``redis`` extra.
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
        fleet_rate: float | None = None,
        hooks: Iterable[object] = (),
    ) -> None:
        self.project_id = check_id("project_id", project_id)
        self.endpoint = _checked_endpoint(endpoint, region)
        _check_credentials(credentials)
        _check_transport_security(self.endpoint, credentials, allow_insecure=allow_insecure)
        self.timeout = _checked_timeout(timeout)
        self._credentials = credentials
        self._urls = ProjectUrls(self.endpoint, self.project_id)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        # A session of its own sends what never changes (every URL has its host).
        own_session_url = self._urls.job_list if session is None else None
        authorize_now, session_headers = authorizer_for(
            credentials, headers, self.project_id, own_session_url
        )
        transport = AiohttpTransport(
            session=session,
            headers=session_headers,
            ssl=ssl,
            allow_insecure=allow_insecure,
            max_body_size=max_body_size,
        )
        _check_kinds(retry, sweeps, history)
        retry = retry if retry is not None else RetryPolicy()
        check_limits(max_in_flight, rate)
        transport.check_pool(max_in_flight)
        self.max_body_size = transport.max_body_size
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        budget = RequestBudget.create(max_in_flight, rate, self.clock.monotonic())
        self._gate = Gate(budget, self.clock)
        self._call_gates: weakref.WeakSet[Gate] = weakref.WeakSet()
        self.history = history
        self._hooks = Hooks(hooks)
        key = _fleet_key(redis_url, redis_key, self.project_id, credentials, self.endpoint)
        if key is not None and self.clock is not SYSTEM_CLOCK:
            raise InvalidArgument("redis_url needs the system clock: a fleet keeps Redis's time")
        self._fleet = _fleet(redis_url or "", key, budget, self.timeout, fleet_rate)
        self._requester = Requester(
            transport,
            Admission(self._gate, self._fleet),
            credentials=credentials,
            authorize_now=authorize_now,
            headers=headers,
            project_id=self.project_id,
            retry=retry,
            timeout=self.timeout,
            clock=self.clock,
            hooks=self._hooks,
        )
        # Job URLs and readers, checked, quoted and made once, not per request.
        self._jobs = KnownJobs(self._urls)
        self._lists = Lists(self._requester, self._urls)
        poller = Poller(self._requester, self._jobs, self._urls, self.clock, self._fleet)
        self._hub = Hub(
            poller.poll,
            self.clock,
            retry,
            max_polls=max_in_flight,
            list_page=poller.list_page,
            sweeps=sweeps,
            rate=functools.partial(_planning_rate, self._gate.budget, self._fleet),
            sharers=poller.sharers,
            align=poller.align,
            history=history,
            hooks=self._hooks,
            clock_offset=self._requester.clock_offset,
        )
        poller.on_end, self._closed = self._hub.news, False
        self._closed_error = ClientClosed("the client is closed")  # made before the waits

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Make a client from arguments, then the environment, then the credentials file.

        Reads ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``,
        ``HUAWEICLOUD_SDK_SECURITY_TOKEN``, ``HUAWEICLOUD_SDK_PROJECT_ID``,
        ``IMAGEJOBS_AUTH_TOKEN``, ``IMAGEJOBS_ENDPOINT``, ``IMAGEJOBS_REGION``,
        ``IMAGEJOBS_REDIS_URL``, ``IMAGEJOBS_FLEET_RATE`` (with a Redis URL) and
        the provider's credentials file (``~/.huaweicloud/credentials``, or the
        one ``HUAWEICLOUD_SDK_CREDENTIALS_FILE`` names). ``overrides`` are
        :class:`Client` arguments and win. Raises :class:`ConfigurationError`
        naming whatever is missing and where it may come from.
        """
        return cls(**from_environment(overrides))

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
        """End every wait with :class:`ClientClosed`, then close the session if it is ours
        (a borrowed session stays open). Closing twice is harmless."""
        if self._closed:
            return
        self._closed = self._requester.closed = True
        await self._hub.close()
        for gate in [self._gate, *self._call_gates]:
            await gate.close(self._closed_error)
        if self._fleet is not None:
            await self._fleet.close()
        await self._hooks.close()
        await self._requester.transport.close()
        self._jobs.clear()  # no request is sent any more: nothing to recognise
        self._requester.clock_offset.forget()
        forget_memos()  # what the waits left in them would keep their memory mapped

    # --- waiting: each way is a subscriber of the hub -----------------------------------

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
        deadline (``policy=PollPolicy(timeout=...)``), or the error that ended
        the wait. Transient failures (5xx, 429, no answer, a malformed body) do
        not end it: the job is polled again with backoff until the deadline.
        ``on_transition`` (a function or coroutine function) is called with
        each transition as it is seen.
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

    # --- the REST calls: one request each (a page each, for lists) ----------------------

    def job_url(self, job_id: str) -> str:
        """Return the URL of a job's details; raises :class:`InvalidArgument` for a bad ID."""
        return self._jobs[job_id].url

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
        known = self._jobs[job_id]
        return await self._requester.send(Call(known.url, known.read, "job", job_id))

    async def get_job_json(self, job_id: str) -> dict[str, Any]:
        """Fetch a job's details as the service sent them: its JSON object, every field kept.

        The body must still be a job (:class:`MalformedResponse` names what is
        wrong otherwise); fields the models do not know are kept as they came.
        Retries and errors as in :meth:`get_job`.
        """
        known = self._jobs[job_id]
        return await self._requester.send(Call(known.url, known.read_as_sent, "job", job_id))

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
        return self._lists.jobs(status, job_type, page_size)

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
        return self._lists.sub_jobs(job_id, status, job_type, page_size)

    async def count_sub_jobs(
        self, job_id: str | None = None, status: str | None = None, job_type: str | None = None
    ) -> int:
        """Return how many sub-jobs match: one request.

        ``job_type`` may be a comma-separated list; without it the service counts
        ``CREATE_SERVER``, ``CREATE_SERVER_IMAGE`` and ``DELETE_SERVER`` sub-jobs.
        """
        return await self._lists.count_sub_jobs(job_id, status, job_type)

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
        return await self._lists.learn(self.history, job_types, pages)


def _checked_endpoint(endpoint: object, region: str | None) -> str:
    if endpoint is None:
        if region is None:
            raise InvalidArgument("pass endpoint= or region= to say where the service is")
        endpoint = endpoint_for(region)
    return check_endpoint(endpoint)


def _checked_timeout(timeout: object) -> float:
    if not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _check_credentials(credentials: object) -> None:
    if credentials is not None and not isinstance(credentials, Credentials):
        raise InvalidArgument(
            f"credentials must have an async authorize() method, got {type(credentials).__name__}"
        )


def _check_kinds(retry: object, sweeps: object, history: object) -> None:
    """Refuse arguments of the wrong kind, each with a message naming it."""
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise InvalidArgument(f"retry must be a RetryPolicy, got {type(retry).__name__}")
    if sweeps is not None and not isinstance(sweeps, bool):
        raise InvalidArgument(f"sweeps must be True, False or None, got {sweeps!r}")
    if history is not None and not isinstance(history, DurationHistory):
        raise InvalidArgument(f"history must be a DurationHistory, got {type(history).__name__}")


def _check_transport_security(
    endpoint: str, credentials: Credentials | None, *, allow_insecure: bool
) -> None:
    """Refuse credentials over plain http but to this machine, unless told twice."""
    parts = urlsplit(endpoint)
    if credentials is None or parts.scheme == "https" or is_loopback(parts.hostname or ""):
        return
    if not allow_insecure:
        raise InvalidArgument(
            f"refusing to send credentials over plain http to {parts.hostname}; "
            "use an https endpoint, or pass allow_insecure=True (--allow-insecure)"
        )
    logger.warning("sending credentials over plain http to %s (allow_insecure)", parts.hostname)


def _planning_rate(budget: RequestBudget, fleet: Fleet | None, now: float) -> float:
    """The rate sweeps are planned by (the client's, or its part of the fleet's): the one it
    was given, not what a 429 left, which the gate paces at and which climbs only on demand."""
    rate = budget.rate if math.isfinite(budget.rate) else budget.adaptive.potential(now)
    return rate if fleet is None else fleet.share(rate)


def _fleet_key(
    redis_url: str | None,
    redis_key: str | None,
    project_id: str,
    credentials: Credentials | None,
    endpoint: str,
) -> str | None:
    """Return the Redis key of the fleet a client joins, or None without ``redis_url``."""
    if redis_url is None:
        if redis_key is not None:
            raise InvalidArgument("redis_key needs redis_url")
        return None
    check_redis_url(redis_url)
    if redis_key is not None and (not isinstance(redis_key, str) or not redis_key):
        raise InvalidArgument(f"redis_key must be a non-empty string, got {redis_key!r}")
    if redis_key:
        return redis_key
    account = account_of(credentials, endpoint)
    if account is None:
        # Two users' processes must never share a fleet: its budget, nor its snapshots.
        raise ConfigurationError(
            f"a fleet on Redis must know whose credentials these are "
            f"({type(credentials).__name__}): give them an account "
            "(RefreshableTokenCredentials(fetch, account=...), or an account attribute), "
            "or pass redis_key= naming this user's fleet"
        )
    return fleet_key(project_id, account)


def _checked_fleet_rate(fleet_rate: object, key: str | None) -> float | None:
    if fleet_rate is None:
        return None
    if key is None:
        raise InvalidArgument("fleet_rate needs redis_url")
    if (
        isinstance(fleet_rate, bool)
        or not isinstance(fleet_rate, int | float)
        or not fleet_rate > 0
    ):
        raise InvalidArgument(
            f"fleet_rate must be a positive number per second, got {fleet_rate!r}"
        )
    return float(fleet_rate)


def _fleet(
    redis_url: str, key: str | None, budget: RequestBudget, timeout: float, fleet_rate: object
) -> Fleet | None:
    """Join the fleet at ``key`` with this client's limits; None without ``redis_url``."""
    rate = _checked_fleet_rate(fleet_rate, key)
    if key is None:
        return None
    return Fleet(
        redis_url,
        key,
        max_in_flight=budget.max_in_flight,
        # Lua has no infinity to parse: an unlimited rate is a billion a second.
        rate=min(budget.rate if rate is None else rate, 1e9),
        explicit=rate is not None,
        pace=PACE,
        burst=min(budget.burst(budget.refilled_at), 1e9),
        # A request ends within its timeout: a slot outlives it by a little.
        lease=timeout + 2.0,
        max_retry_after=MAX_RETRY_AFTER,
    )
