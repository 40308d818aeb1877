"""The one I/O layer: an aiohttp session that sends the GET and reads the answer.

Everything else (URL parts, headers, parsing, error mapping) is delegated to
the pure modules; this module only moves bytes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit

import aiohttp

from ._version import __version__
from .auth import Credentials, RefreshableCredentials
from .codec import decode_response
from .config import from_environment
from .errors import AuthenticationError, ImageJobsError, InvalidArgument, TransportError
from .models import ImageJob
from .regions import endpoint_for
from .validation import check_id
from .waiter import wait, wait_many, watch, watch_many

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "USER_AGENT", "Client"]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one request may take, connecting included."""

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
    address unless ``allow_insecure`` is true (then a warning is logged).
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
                "use an https endpoint, or pass allow_insecure=True"
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

        Raises :class:`InvalidArgument` (before any request) for a bad ``job_id``;
        the :class:`ApiError` subclass for an error status; :class:`TransportError`
        when no answer came back; :class:`MalformedResponse` for a body that is not
        a job.
        """
        url = self.job_url(job_id)
        session = self._get_session()
        headers = await self._authorize(url)
        try:
            return await self._get(session, url, headers)
        except AuthenticationError:
            if not isinstance(self._credentials, RefreshableCredentials):
                raise
        # One more try, and only one, with whatever the credentials now hold.
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
                url, headers=headers, allow_redirects=False, timeout=self._client_timeout
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise TransportError(f"GET {url} timed out after {self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"GET {url} failed: {str(exc) or type(exc).__name__}") from exc
        logger.debug(
            "GET %s: %s (request id %s)",
            url,
            response.status,
            response.headers.get("X-Request-Id", "none"),
        )
        return decode_response(response.status, response.headers, body)
