"""The one I/O layer: an aiohttp session that sends the GET and reads the answer.

Everything else (URL parts, headers, parsing, error mapping) is delegated to
the pure modules; this module only moves bytes.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
import ssl as _ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import aiohttp
import backoff

from ._version import __version__
from .auth import Credentials, RefreshableCredentials
from .codec import decode_response
from .config import from_environment
from .errors import (
    AuthenticationError,
    ImageJobsError,
    InvalidArgument,
    ResponseTooLarge,
    TransportError,
)
from .models import ImageJob
from .regions import endpoint_for
from .retry import RetryPolicy, is_transient
from .validation import check_id
from .waiter import wait, wait_many, watch, watch_many

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_REQUEST_TIMEOUT", "USER_AGENT", "Client"]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one request may take, connecting included."""

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
"""Bytes a response may hold; a job with hundreds of sub-jobs is well under 1 MB."""

USER_AGENT = f"imagejobs/{__version__}"

logger = logging.getLogger("imagejobs")


def _check_endpoint(endpoint: object) -> str:
    if not isinstance(endpoint, str):
        raise InvalidArgument(f"endpoint must be a string, got {type(endpoint).__name__}")
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"endpoint {endpoint!r} is not an http(s) URL like https://host[:port]"
        )
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
    certificates are verified; pass ``ssl`` (an :class:`ssl.SSLContext`) to
    trust another authority. ``retry`` says how transient failures are retried
    (``RetryPolicy(max_attempts=1)`` for never); redirects are never followed,
    and a body over ``max_body_size`` bytes is refused unread.
    Raises :class:`InvalidArgument` at once for a bad ``project_id``,
    ``endpoint``, ``region`` or ``timeout``.
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
        ssl: _ssl.SSLContext | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        allow_insecure: bool = False,
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
        self._jobs_url = f"{self.endpoint}/v1/{quote(self.project_id, safe='')}/image-server-jobs/"
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise InvalidArgument(f"max_body_size must be a whole number, got {max_body_size!r}")
        if max_body_size < 1:
            raise InvalidArgument(f"max_body_size must be positive, got {max_body_size}")
        self.max_body_size = max_body_size
        self._ssl: _ssl.SSLContext | bool = True if ssl is None else ssl
        self._retry = retry if retry is not None else RetryPolicy()
        self._fetch = backoff.on_exception(
            functools.partial(self._retry.waits, random.random),
            ImageJobsError,
            max_tries=self._retry.max_attempts,
            max_time=self._retry.max_time,
            jitter=None,  # the wait generator jitters, keeping Retry-After a floor
            giveup=lambda error: not is_transient(error),
            on_backoff=_log_retry,
            on_giveup=_count_attempts,
            logger=None,
        )(self._attempt)

    @classmethod
    def from_env(cls, **overrides: Any) -> Self:
        """Make a client from arguments, then the environment, then the credentials file.

        Reads ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``,
        ``HUAWEICLOUD_SDK_SECURITY_TOKEN``, ``HUAWEICLOUD_SDK_PROJECT_ID``,
        ``IMAGEJOBS_AUTH_TOKEN``, ``IMAGEJOBS_ENDPOINT``, ``IMAGEJOBS_REGION`` and
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
        return f"Client(endpoint={self.endpoint!r}, project_id={self.project_id!r})"

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
        """Close the session if this client created it; a borrowed one stays open."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ImageJobsError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            raise ImageJobsError("the aiohttp session passed to the client is closed")
        return self._session

    # The waiter works on anything with get_job; as methods, it works on this client.
    watch = watch
    wait = wait
    wait_many = wait_many
    watch_many = watch_many

    def job_url(self, job_id: str) -> str:
        """Return the URL of a job's details; raises :class:`InvalidArgument` for a bad ID."""
        return self._jobs_url + quote(check_id("job_id", job_id), safe="")

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
        url = self.job_url(job_id)
        return await self._fetch(self._get_session(), url, _Refresh())

    async def _attempt(
        self, session: aiohttp.ClientSession, url: str, refresh: _Refresh
    ) -> ImageJob:
        """One try: sign afresh, send, decode; on a 401, refresh a token once."""
        headers = await self._authorize(url)
        try:
            return await self._get(session, url, headers)
        except AuthenticationError:
            if refresh.done or not isinstance(self._credentials, RefreshableCredentials):
                raise
        refresh.done = True
        await self._credentials.refresh(headers)
        return await self._get(session, url, await self._authorize(url))

    async def _authorize(self, url: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._credentials is None:
            return headers
        return await self._credentials.authorize("GET", url, headers, self.project_id)

    async def _get(
        self, session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
    ) -> ImageJob:
        try:
            async with session.get(
                url,
                headers=headers,
                allow_redirects=False,
                timeout=self._client_timeout,
                ssl=self._ssl,
            ) as response:
                body = await self._read(response)
        except TimeoutError as exc:
            raise TransportError(f"GET {url} timed out after {self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"GET {url} failed: {str(exc) or type(exc).__name__}") from exc
        if logger.isEnabledFor(logging.DEBUG):
            request_id = response.headers.get("X-Request-Id", "none")
            logger.debug("GET %s: %s (request id %s)", url, response.status, request_id)
        try:
            return decode_response(response.status, response.headers, body)
        except AuthenticationError as error:
            raise _with_clock_hint(error, response.headers.get("Date")) from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the body, refusing one over the size cap before it fills memory."""
        length = response.content_length
        if length is not None and length > self.max_body_size:
            raise self._too_large(response, f"response of {length} bytes")
        if length is not None:
            return await response.read()  # no longer than announced, and under the cap
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_body_size:
                raise self._too_large(response, "response")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, response: aiohttp.ClientResponse, what: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"{what} is over the {self.max_body_size}-byte cap",
            http_status=response.status,
            request_id=response.headers.get("X-Request-Id"),
        )


def _log_retry(details: Any) -> None:
    logger.debug(
        "retrying in %.2fs after attempt %d: %s",
        details["wait"],
        details["tries"],
        details["exception"],
    )


def _count_attempts(details: Any) -> None:
    error = details["exception"]
    if isinstance(error, ImageJobsError) and details["tries"] > 1:
        error.attempts = details["tries"]


class _Refresh:
    """Whether this request already refreshed its token: once per request, not per try."""

    done = False


def _with_clock_hint(error: AuthenticationError, server_date: str | None) -> AuthenticationError:
    """Add how far this machine's clock is off when the gateway says a signature expired."""
    if "expired" not in error.error_msg.lower():
        return error
    hint = "the gateway accepts signatures up to 15 minutes old: check this machine's clock"
    try:
        server_now = parsedate_to_datetime(server_date) if server_date else None
    except (TypeError, ValueError):
        server_now = None
    if server_now is not None:
        skew = (datetime.now(UTC) - server_now.astimezone(UTC)).total_seconds()
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
