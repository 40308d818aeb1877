"""The one I/O layer: an aiohttp session that sends the GET and reads the answer.

Everything else (URL parts, headers, parsing, error mapping) is delegated to
the pure modules; this module only moves bytes.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self
from urllib.parse import quote, urlsplit

import aiohttp

from ._version import __version__
from .auth import Credentials
from .codec import decode_response
from .errors import ImageJobsError, InvalidArgument, TransportError
from .models import ImageJob
from .validation import check_id
from .waiter import wait, wait_many, watch, watch_many

__all__ = ["DEFAULT_REQUEST_TIMEOUT", "USER_AGENT", "Client"]

DEFAULT_REQUEST_TIMEOUT = 30.0
"""Seconds one request may take, connecting included."""

USER_AGENT = f"imagejobs/{__version__}"


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


class Client:
    """An async client for the image-job API of one project.

    Use it as an async context manager, or call :meth:`close` when done. It
    creates its own aiohttp session on first use and closes it, unless a
    ``session`` is passed in: a borrowed session is used and left open.

    Raises :class:`InvalidArgument` at once for a bad ``project_id``,
    ``endpoint`` or ``timeout``.
    """

    def __init__(
        self,
        *,
        project_id: str,
        endpoint: str,
        credentials: Credentials | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self.project_id = check_id("project_id", project_id)
        self.endpoint = _check_endpoint(endpoint)
        if not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
            raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        self._credentials = credentials
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._jobs_url = f"{self.endpoint}/v1/{quote(self.project_id, safe='')}/image-server-jobs/"
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)

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
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._credentials is not None:
            headers = await self._credentials.authorize("GET", url, headers, self.project_id)
        try:
            async with session.get(
                url, headers=headers, allow_redirects=False, timeout=self._client_timeout
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise TransportError(f"GET {url} timed out after {self.timeout:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"GET {url} failed: {str(exc) or type(exc).__name__}") from exc
        return decode_response(response.status, response.headers, body)
