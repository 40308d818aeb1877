"""The HTTP transport: one aiohttp session that sends a GET and reads the answer.

It only moves bytes: TLS as configured, no redirects, a timeout per request,
and the size cap on the decoded body. What the answer means is decided above
it (:mod:`imagejobs.transport.requester`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import ssl as _ssl
import sys
from collections.abc import Mapping

import aiohttp

from imagejobs.core.errors import (
    ClientClosed,
    InvalidArgument,
    ResponseTooLarge,
    TransportError,
)
from imagejobs.transport.base import Response

__all__ = ["DEFAULT_MAX_BODY_SIZE", "AiohttpTransport"]

DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
"""Bytes a response may hold; a job with hundreds of sub-jobs is well under 1 MB."""

logger = logging.getLogger("imagejobs")

# Timeouts made for the tries that have less than the full time left, by hundredths
# of a second: a bound for a process that sees every value.
_TIMEOUTS_KEPT = 1024

# yarl's caches of parsed URLs (module, function): every URL aiohttp sends to or serves
# goes through them. Private names, looked up each time: a yarl without one is skipped.
_YARL_URL_CACHES = (
    ("yarl._url", "encode_url"),
    ("yarl._url", "pre_encoded_url"),
    ("yarl._url", "build_pre_encoded_url"),
    ("yarl._url", "from_parts"),
    ("yarl._parse", "split_url"),
)


class AiohttpTransport:
    """Sends GETs through an aiohttp session: its own (made on first use), or one borrowed.

    ``headers`` are what the session sends with every request when it is its
    own (a borrowed session gets them from the caller with each request).
    ``ssl``, ``allow_insecure`` and ``max_body_size`` are the client's
    arguments of those names.
    """

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None = None,
        headers: Mapping[str, str] | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        allow_insecure: bool = False,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self.max_body_size = _checked_body_size(max_body_size)
        self._ssl = _tls_context(ssl, allow_insecure=allow_insecure, session=session)
        self._session = session
        self._owns_session = session is None
        self._lent = session  # a borrowed session, which may be closed under us
        self._headers = dict(headers or {})
        self._timeouts: dict[int, aiohttp.ClientTimeout] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"AiohttpTransport(own_session={self._owns_session}, closed={self._closed})"

    def check_pool(self, max_in_flight: int) -> None:
        """Refuse a borrowed session whose pool is smaller than ``max_in_flight``.

        Requests would queue there, where the wait counts against their timeout.
        """
        if self._session is not None and not self._owns_session:
            _check_pool(self._session, max_in_flight)

    def check(self) -> None:
        """Raise :class:`ClientClosed` if closed, or lent a session that is closed."""
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._lent is not None and self._lent.closed:
            raise ClientClosed("the aiohttp session passed to the client is closed")

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._session is None:
            # No pool limit: the gate caps what is in flight, so nothing ever queues in
            # the pool, where the wait would count against the request's timeout.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        elif self._session.closed:
            raise ClientClosed("the aiohttp session passed to the client is closed")
        return self._session

    async def send(self, url: str, headers: Mapping[str, str], time_left: float) -> Response:
        """Send a GET and read the whole answer (see :class:`.base.Transport`)."""
        session = self._get_session()
        try:
            async with session.get(
                url,
                headers=headers,
                allow_redirects=False,
                timeout=self._timeout_for(time_left),
                ssl=self._ssl,
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
            raise TransportError(f"GET {url} timed out after {max(time_left, 0.0):.3g}s") from exc
        except aiohttp.InvalidURL:
            # Refused by aiohttp's own URL parser: no later try can fix it.
            raise InvalidArgument(f"GET {url}: not a URL aiohttp can send to") from None
        except (aiohttp.ClientError, RuntimeError) as exc:
            if self._closed:
                raise ClientClosed(f"GET {url}: the client was closed") from None
            if isinstance(exc, RuntimeError):
                raise
            raise TransportError(f"GET {url} failed: {_reason(exc)}") from exc
        return response.status, response.headers, body

    def _timeout_for(self, seconds: float) -> aiohttp.ClientTimeout:
        """The timeout of a try that has ``seconds`` left: rounded down to 10 ms, kept.

        Under 10 ms, the time left itself (1 ms at least), made afresh.
        """
        hundredths = int(seconds * 100)
        timeout = self._timeouts.get(hundredths)
        if timeout is None:
            if hundredths < 1:
                return aiohttp.ClientTimeout(total=max(seconds, 0.001))
            if len(self._timeouts) >= _TIMEOUTS_KEPT:
                self._timeouts.clear()
            timeout = self._timeouts[hundredths] = aiohttp.ClientTimeout(total=hundredths / 100)
        return timeout

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """Read the body, refusing one over the size cap before it fills memory.

        The cap holds on the decoded bytes: a gzip body that is small on the
        wire (its ``Content-Length``) can inflate a thousandfold, so an encoded
        body, or one of unknown length, is read in pieces as aiohttp decodes it.
        (:meth:`send` reads a plain body of a known length within the cap at once.)
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

    async def close(self) -> None:
        """Close the session if it is this transport's own; a borrowed one stays open."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # the pool's closing task and its wake-ups are let go
        self._session = None
        self._timeouts.clear()
        _forget_parsed_urls()


def _forget_parsed_urls() -> None:
    """Empty yarl's caches of the last URLs it parsed (128 each), ours among them.

    They outlive the requests: made as the last jobs of a long wait were asked
    about, they sit among the memory those jobs' records freed, and CPython keeps
    an arena of 1 MB mapped while one object in it lives. After 100,000 jobs they
    kept 5 to 10 MB of the process's memory after ``close()``. Emptied, they only
    parse their next URLs again.
    """
    for module_name, function in _YARL_URL_CACHES:
        clear = getattr(getattr(sys.modules.get(module_name), function, None), "cache_clear", None)
        if callable(clear):
            clear()


def _reason(exc: aiohttp.ClientError) -> str:
    """Return why a request got no answer, in words (aiohttp's own text names its TLS object)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error: BaseException = exc.os_error
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            error = exc.certificate_error
        if isinstance(error, _ssl.SSLError):
            why = str(error)  # names the check that failed: CERTIFICATE_VERIFY_FAILED
        elif isinstance(error, OSError) and error.errno and not isinstance(error, socket.gaierror):
            why = os.strerror(error.errno)
        else:
            why = getattr(error, "strerror", None) or str(error) or type(error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {why[:1].lower()}{why[1:]}"
    return str(exc) or type(exc).__name__


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
