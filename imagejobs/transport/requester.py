"""The request path, once for every request: admit, sign, send, decode, retry, tell the hooks.

A :class:`Requester` turns a :class:`Call` (a URL and how to read its 2xx body)
into what the body holds, or the error that says why not:

1. **admit**: the call's own gate, if a caller narrowed its share, then the
   client's gate (in-flight cap, rate, pauses), then the fleet's slot, if the
   client is in one (:mod:`imagejobs.transport.admission`);
2. **sign** afresh for every try;
3. **send** through the :class:`~imagejobs.transport.base.Transport`, and
   **decode** the answer (:func:`~imagejobs.core.codec.decode_answer`);
4. **settle**: give the passes back saying how the try ended (an answer, a 429
   and its ``Retry-After``, nothing), so the budget learns the gateway's limit;
5. **retry** what is transient, as the client's :class:`~imagejobs.RetryPolicy`
   says, with :mod:`imagejobs.planning.backoff`'s delays; a refreshable token
   is renewed once after a 401.

Nothing here knows HTTP libraries: the transport is given.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from imagejobs.core.codec import decode_answer, parse_http_date
from imagejobs.core.errors import (
    ApiError,
    AuthenticationError,
    ClientClosed,
    ImageJobsError,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    Throttled,
    TransportError,
)
from imagejobs.observability.hooks import Hooks
from imagejobs.observability.records import RequestRecord, RetryRecord, ThrottleRecord
from imagejobs.planning.retry import RETRIED_STATUSES, RetryPolicy, is_transient
from imagejobs.planning.skew import ClockOffset
from imagejobs.timing.clock import Clock
from imagejobs.timing.gate import Gate
from imagejobs.transport.admission import Admission, Passes
from imagejobs.transport.base import Response, Transport
from imagejobs.transport.credentials import Credentials, RefreshableCredentials

__all__ = ["Call", "Requester"]

logger = logging.getLogger("imagejobs")

_T = TypeVar("_T")


class Call(Generic[_T]):
    """One request, across its tries: its URL and how to read a 2xx body.

    ``what`` names it for the hooks (``"job"``, ``"job list"``, ``"sub-job
    list"``, ``"sub-job count"``). ``refreshed`` says whether it already
    refreshed its token (once per request, not per try); ``sent`` holds the
    headers of the last try, for the credentials to see which token was
    refused; ``deadline`` is when the retry policy's ``max_time`` runs out, on
    the client's clock; ``source`` says why it is sent, for the hooks (see
    :data:`~imagejobs.observability.records.SOURCES`).
    """

    __slots__ = (
        "answer_headers",
        "attempt",
        "deadline",
        "job_id",
        "read",
        "refreshed",
        "sent",
        "source",
        "status",
        "url",
        "what",
    )

    def __init__(
        self,
        url: str,
        read: Callable[[bytes], _T],
        what: str = "job",
        job_id: str | None = None,
        source: str = "call",
    ) -> None:
        self.url = url
        self.source = source
        self.read = read
        self.what = what
        self.job_id = job_id
        self.refreshed = False
        self.sent: Mapping[str, str] = {}
        self.deadline = math.inf
        self.attempt = 1
        self.status: int | None = None  # of the last answer, for the hooks and the log
        self.answer_headers: Mapping[str, str] | None = None

    @property
    def request_id(self) -> str | None:
        """The last answer's ``X-Request-Id``, looked up when asked: most are never read."""
        headers = self.answer_headers
        return None if headers is None else headers.get("X-Request-Id")


class Requester:
    """Sends the calls of one client: admission, signing, the transport, decoding, retries.

    ``authorize_now`` gives a URL's headers without a coroutine (the built-in
    static credentials); without it ``credentials`` are awaited for every try,
    given a copy of ``headers``. :attr:`clock_offset` learns from the answers'
    ``Date`` how far the service's clock is from ``clock``.
    """

    def __init__(
        self,
        transport: Transport,
        admission: Admission,
        *,
        credentials: Credentials | None,
        authorize_now: Callable[[str], dict[str, str]] | None,
        headers: Mapping[str, str],
        project_id: str,
        retry: RetryPolicy,
        timeout: float,
        clock: Clock,
        hooks: Hooks,
    ) -> None:
        self.transport = transport
        self.admission = admission
        self._credentials = credentials
        self._refreshable = credentials if isinstance(credentials, RefreshableCredentials) else None
        self._authorize_now = authorize_now
        self._headers = dict(headers)
        self._project_id = project_id
        self.retry = retry
        self.timeout = timeout
        self._clock = clock
        self._hooks = hooks
        self.clock_offset = ClockOffset()
        self.closed = False
        self.accepted = False
        """Whether the service accepted these credentials on the last answer that told:
        until it has, and after a 401 or 403, nothing another process saw is taken
        as this client's (:mod:`imagejobs.scheduling.polls`)."""

    def __repr__(self) -> str:
        return f"Requester({self.transport!r}, closed={self.closed})"

    def check(self) -> None:
        """Raise :class:`ClientClosed` now if the client, or its transport, is closed."""
        if self.closed:
            raise ClientClosed("the client is closed")
        self.transport.check()

    async def send(self, call: Call[_T]) -> _T:
        """Send one call, retrying transient failures as the retry policy says."""
        if self.closed:
            raise ClientClosed("the client is closed")
        self.transport.check()  # before the budget: no pass for what cannot be sent
        retry = self.retry
        started = self._clock.monotonic()
        # max_time bounds the whole call, waits for the budget included: the last
        # try gets only the time left.
        call.deadline = started + retry.max_time
        tries = 0
        while True:
            tries += 1
            call.attempt = tries
            try:
                return await self.attempt(call)
            except ImageJobsError as error:
                elapsed = self._clock.monotonic() - started
                transient = is_transient(error)
                delay = retry.delay(tries, error) if transient else 0.0
                # No try that could not start within max_time: the error at hand is
                # more use than a timeout of a try given no time.
                if (
                    not transient
                    or tries >= retry.max_attempts
                    or elapsed + delay >= retry.max_time
                    or self.closed
                ):
                    if tries > 1:
                        error.attempts = tries
                    raise
                if self._hooks.wants("on_retry"):
                    reason = f"{type(error).__name__}: {error}"
                    record = RetryRecord(call.url, call.job_id, tries, delay, reason)
                    self._hooks.call("on_retry", record)
            # The gate holds the next try too while a Retry-After runs.
            await self._clock.sleep(delay)

    async def attempt(  # noqa: PLR0912 - one try reads best top to bottom, in one place
        self, call: Call[_T], priority: float | None = None, call_gate: Gate | None = None
    ) -> _T:
        """One try: wait for the budget, sign afresh, send, decode.

        On a 401 with refreshable credentials, the token is refreshed and the
        request sent once more (once per call, not per try). An exception outside
        the error tree (from credentials, or anything the transport did not
        foresee) becomes an :class:`ImageJobsError` naming only its type: its
        text may quote a header, and it is no reason to try again.
        """
        admission = self.admission
        # The common case passes the gate at once, without a coroutine.
        passes = Passes(call_gate, admission.gate.try_pass() if call_gate is None else None)
        refreshable: RefreshableCredentials | None = None
        try:
            if passes.client is None:
                await self._admitted(call, admission.wait(passes, priority, call.deadline))
            call.sent = headers = (
                self._authorize_now(call.url)
                if self._authorize_now is not None
                else await self._authorize(call.url)
            )
            if admission.shared is not None:
                # After signing: a fleet's slot is held no longer than the request.
                await self._admitted(call, admission.wait_shared(passes, call.deadline))
            if self._hooks.wants("on_request"):
                answer = await self._told_exchange(call, headers)
            else:
                left = min(self.timeout, call.deadline - self._clock.monotonic())
                answer = self._read(call, await self.transport.send(call.url, headers, left))
            passes.answered = self.accepted = True
            return answer
        except Throttled as error:
            passes.throttled, passes.retry_after = True, error.retry_after
            raise
        except AuthenticationError:
            passes.answered, self.accepted = True, False
            refreshable = None if call.refreshed else self._refreshable
            if refreshable is None:
                raise
        except (ApiError, MalformedResponse) as error:
            passes.answered, passes.retry_after = True, _hold_asked(error)
            self.accepted = self.accepted and not isinstance(error, PermissionDenied)
            raise
        except TransportError:
            if self.closed:
                raise ClientClosed(f"GET {call.url}: the client was closed") from None
            raise
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # raised again, inside the error tree
            raise self._unexpected(call, exc) from (None if self.closed else exc)
        finally:
            self._settle(call, passes)
        # A 401 that a fresh token may fix: refresh it (the budget given back), then once more.
        call.refreshed = True
        try:
            await refreshable.refresh(call.sent)
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # raised again, inside the error tree
            raise self._unexpected(call, exc) from (None if self.closed else exc)
        return await self.attempt(call, priority, call_gate)

    async def _admitted(self, call: Call[Any], wait: Awaitable[None]) -> None:
        """Wait for passes; the budget holding them past the call's deadline is an error."""
        try:
            await wait
        except TimeoutError:
            raise self._held(call) from None

    def _settle(self, call: Call[Any], passes: Passes) -> None:
        """Give the passes back; tell the hooks of a 429."""
        try:
            self.admission.settle(passes)
            if passes.throttled and self._hooks.wants("on_throttle"):
                rate = self.admission.gate.budget.adaptive.current(self._clock.monotonic())
                record = ThrottleRecord(
                    call.url, call.job_id, passes.retry_after, rate, call.request_id
                )
                self._hooks.call("on_throttle", record)
        except ImageJobsError:
            raise
        except Exception as exc:  # noqa: BLE001  # none from outside the error tree, here either
            raise self._unexpected(call, exc) from (None if self.closed else exc)

    def _unexpected(self, call: Call[Any], exc: BaseException) -> ImageJobsError:
        """An exception from outside the error tree, as one inside it naming only its type."""
        if self.closed:
            return ClientClosed(f"GET {call.url}: the client was closed")
        return ImageJobsError(f"GET {call.url} failed unexpectedly: {type(exc).__name__}")

    async def _authorize(self, url: str) -> dict[str, str]:
        """Ask credentials that may wait (only those: see :func:`authorizer_for`)."""
        credentials = cast(Credentials, self._credentials)
        # A copy: an authorize() that adds to the dict it is given must not change the next.
        return await credentials.authorize("GET", url, dict(self._headers), self._project_id)

    def _send(self, call: Call[Any], headers: Mapping[str, str]) -> Awaitable[Response]:
        """Hand the request to the transport, with the time the try has left."""
        call.status = call.answer_headers = None
        left = min(self.timeout, call.deadline - self._clock.monotonic())
        return self.transport.send(call.url, headers, left)

    async def _told_exchange(self, call: Call[_T], headers: Mapping[str, str]) -> _T:
        """Send and read, telling the hooks how it went (a frame only when they ask)."""
        started = self._clock.monotonic()
        failed: BaseException | None = None
        ended = False
        try:
            answer = self._read(call, await self._send(call, headers))
            # A look of the hub's that saw the job end: what a caller asked for stays a call.
            ended = call.source != "call" and getattr(answer, "is_terminal", False) is True
            return answer
        except BaseException as exc:
            failed = exc
            raise
        finally:
            error = message = None
            if failed is not None:
                error = type(failed).__name__
                # The library's errors are built to be shown; another's text may quote a header.
                message = str(failed) if isinstance(failed, ImageJobsError) else error
            record = RequestRecord(
                "GET",
                call.url,
                call.what,
                call.job_id,
                call.status,
                self._clock.monotonic() - started,
                call.attempt,
                call.request_id,
                error,
                message,
                "retry" if call.attempt > 1 else "final" if ended else call.source,
            )
            self._hooks.call("on_request", record)

    def _read(self, call: Call[_T], response: Response) -> _T:
        """Decode an answer: what ``call.read`` makes of a 2xx body, or the error it means."""
        status, headers, body = response
        call.status = status
        call.answer_headers = headers
        if self._clock.monotonic() >= self.clock_offset.read_after:
            self._read_date(headers)
        try:
            return decode_answer(status, headers, body, call.read)
        except AuthenticationError as error:
            raise _with_clock_hint(error, headers.get("Date")) from None
        except JobNotFound as error:
            error.job_id = call.job_id  # the service's text does not say which job
            raise
        except ImageJobsError:
            raise
        except Exception as exc:
            detail = f"unreadable answer: {type(exc).__name__}: {exc}"
            raise MalformedResponse(detail, http_status=status) from exc

    def _read_date(self, headers: Mapping[str, str]) -> None:
        """Tell the clock offset the service's time in an answer's ``Date``, if it says one."""
        service_date = parse_http_date(headers.get("Date"))
        if service_date is None:
            return
        clock = self._clock
        warning = self.clock_offset.read(clock.monotonic(), service_date, clock.now())
        if warning is not None:
            logger.warning(warning)

    def _held(self, call: Call[Any]) -> TransportError:
        """The error of a call the budget held past its retry policy's ``max_time``."""
        return TransportError(
            f"GET {call.url}: not sent, the client's request budget held it past "
            f"the retry policy's max_time ({self.retry.max_time:g}s)"
        )


def _hold_asked(error: ImageJobsError) -> float | None:
    """Return the ``Retry-After`` of an answer saying "later": a 503's holds as a 429's does."""
    if isinstance(error, ApiError) and error.http_status in RETRIED_STATUSES:
        return error.retry_after
    return None


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
