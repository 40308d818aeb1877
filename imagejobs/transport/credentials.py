"""Credentials: what the client calls, once per request, to authenticate it.

Signing is pure (:mod:`imagejobs.core.signing`); the one form here that does I/O is
:class:`RefreshableTokenCredentials`, and only through the callable it is given.
No credentials object shows a secret in its ``repr``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol, cast, runtime_checkable

import attrs

from imagejobs.core.errors import InvalidArgument
from imagejobs.core.signing import HeaderSetSigner, format_date
from imagejobs.core.validation import check_header_value

__all__ = [
    "AkSkCredentials",
    "Credentials",
    "RefreshableCredentials",
    "RefreshableTokenCredentials",
    "TokenCredentials",
    "account_of",
    "authorizer_for",
    "mask",
]

_SHOWN = 4


def mask(secret: str) -> str:
    """Return ``secret`` with all but its last 4 characters hidden (all, if short)."""
    if len(secret) <= 2 * _SHOWN:
        return "****"
    return "****" + secret[-_SHOWN:]


@runtime_checkable
class Credentials(Protocol):
    """Anything that can authenticate a request to the service."""

    async def authorize(
        self, method: str, url: str, headers: Mapping[str, str], project_id: str
    ) -> dict[str, str]:
        """Return the headers to send: ``headers`` plus what authenticates the request.

        Called afresh for every request, retries included, so a signature or a
        timestamp is never reused.
        """
        ...


@runtime_checkable
class RefreshableCredentials(Credentials, Protocol):
    """Credentials that can fetch a new secret after the service rejected one."""

    async def refresh(self, rejected: Mapping[str, str]) -> None:
        """Replace the secret in ``rejected`` (headers a 401 answered) if still current."""
        ...


def _check_token(value: object) -> str:
    return check_header_value("token", value)


@attrs.frozen(repr=False)
class TokenCredentials:
    """An IAM user token, sent as ``X-Auth-Token``."""

    token: str = attrs.field(converter=_check_token)

    def __repr__(self) -> str:
        return "TokenCredentials(token=<hidden>)"

    async def authorize(
        self, method: str, url: str, headers: Mapping[str, str], project_id: str
    ) -> dict[str, str]:
        """Return ``headers`` with ``X-Auth-Token`` added."""
        return {**headers, "X-Auth-Token": self.token}

    def _authorizer_for(
        self, method: str, headers: Mapping[str, str], project_id: str, session_url: str | None
    ) -> tuple[Callable[[str], dict[str, str]], dict[str, str]]:
        """:meth:`authorize` made once for one method and header set (see AkSkCredentials')."""
        every = {**headers, "X-Auth-Token": self.token}
        if session_url is None:
            return (lambda url: every.copy()), {}
        return (lambda url: {}), every  # a token never changes: all of it a session's


class RefreshableTokenCredentials:
    """A token fetched by an async callable: once at first use, again after a 401.

    Concurrent requests share one fetch, and a burst of 401s for the same token
    refreshes it once. Exceptions from ``fetch`` propagate unchanged.
    ``account`` names whose tokens they are (the IAM user's name or ID): a
    fleet on Redis is keyed by it, as it is by the access key of an
    :class:`AkSkCredentials`, so one user's processes share a budget across
    token refreshes and another user's never join it.
    """

    def __init__(self, fetch: Callable[[], Awaitable[str]], *, account: str | None = None) -> None:
        if account is not None and (not isinstance(account, str) or not account.strip()):
            raise InvalidArgument("account must be a non-empty string naming the tokens' user")
        self._fetch = fetch
        self.account = account
        self._token: str | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RefreshableTokenCredentials(fetch={getattr(self._fetch, '__qualname__', '?')})"

    async def _current(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._token is None or self._token == stale:
                self._token = check_header_value("fetched token", await self._fetch())
            return self._token

    async def authorize(
        self, method: str, url: str, headers: Mapping[str, str], project_id: str
    ) -> dict[str, str]:
        """Return ``headers`` with the current token as ``X-Auth-Token``."""
        return {**headers, "X-Auth-Token": await self._current()}

    async def refresh(self, rejected: Mapping[str, str]) -> None:
        """Fetch a new token unless another request already replaced the rejected one."""
        await self._current(stale=rejected.get("X-Auth-Token"))


def _check_ak(value: object) -> str:
    return check_header_value("ak", value).strip()


def _check_sk(value: object) -> str:
    return check_header_value("sk", value).strip()


def _check_optional_token(value: object) -> str | None:
    return None if value is None else check_header_value("security_token", value)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# [second, its X-Sdk-Date]: one tuple, swapped whole, so no thread reads a mixed pair.
_last_date: list[tuple[int, str]] = [(-1, "")]


def _sdk_date_now() -> str:
    """Return ``X-Sdk-Date`` for now, formatted once a second, not once a request."""
    second = int(time.time())
    last = _last_date[0]
    if last[0] != second:
        last = (second, format_date(datetime.fromtimestamp(second, UTC)))
        _last_date[0] = last
    return last[1]


@attrs.frozen(repr=False)
class AkSkCredentials:
    """An access key pair that signs each request (``SDK-HMAC-SHA256``).

    ``security_token`` is for temporary credentials. Each request gets a fresh
    ``X-Sdk-Date``: the gateway refuses signatures older than about 15 minutes.
    ``clock`` (aware UTC ``datetime`` now) is for tests.
    """

    ak: str = attrs.field(converter=_check_ak)
    sk: str = attrs.field(converter=_check_sk)
    security_token: str | None = attrs.field(default=None, converter=_check_optional_token)
    clock: Callable[[], datetime] = attrs.field(default=_utc_now, kw_only=True)

    _key: bytes = attrs.field(init=False, eq=False, repr=False)

    @_key.default
    def _encode_sk(self) -> bytes:
        return self.sk.encode()

    def __repr__(self) -> str:
        token = ", security_token=<hidden>" if self.security_token is not None else ""
        return f"AkSkCredentials(ak={mask(self.ak)!r}, sk=<hidden>{token})"

    async def authorize(
        self, method: str, url: str, headers: Mapping[str, str], project_id: str
    ) -> dict[str, str]:
        """Return ``headers`` plus ``X-Project-Id``, ``X-Sdk-Date``, ``Host``, ``Authorization``."""
        return self._authorizer_for(method, headers, project_id, None)[0](url)

    def _authorizer_for(
        self, method: str, headers: Mapping[str, str], project_id: str, session_url: str | None
    ) -> tuple[Callable[[str], dict[str, str]], dict[str, str]]:
        """:meth:`authorize` made once for one method and header set: a function of the URL,
        and the headers a session should send itself.

        With no ``session_url``, the function gives every header, and the session
        none. Given one (a URL of the session's host), the session sends what never
        changes, and the function gives only ``X-Sdk-Date`` and ``Authorization``.
        """
        signed = {**headers, "X-Project-Id": project_id}
        if self.security_token is not None:
            signed["X-Security-Token"] = self.security_token
        changing_only = session_url is not None
        signer = HeaderSetSigner(
            method, signed, ak=self.ak, key=self._key, changing_only=changing_only
        )
        defaults = signer.constant_headers(session_url) if session_url is not None else {}
        if self.clock is _utc_now:
            return (lambda url: signer.headers(url, _sdk_date_now())), defaults
        clock = self.clock
        return (lambda url: signer.headers(url, format_date(clock()))), defaults


def authorizer_for(
    credentials: Credentials | None,
    headers: Mapping[str, str],
    project_id: str,
    session_url: str | None,
) -> tuple[Callable[[str], dict[str, str]] | None, dict[str, str]]:
    """Return how to authorize a GET to a URL without a coroutine, and a session's headers.

    The function is None for credentials that may wait (a subclass of the two
    built-in static kinds included), which are awaited as the :class:`Credentials`
    protocol says, every header with each request. Given ``session_url`` (the
    client's own session), the session sends the headers that never change, and
    the function gives the rest: the HTTP library merges two headers a request, not six.
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


def account_of(credentials: Credentials | None, endpoint: str) -> str | None:
    """Return what names the account a fleet shares, or None if the credentials do not say.

    The access key; the token; a refreshable token's ``account``; or, for
    credentials of another kind, their ``account`` attribute if they have one (a
    non-empty string). Without credentials, nobody is signed in: the endpoint.
    """
    if isinstance(credentials, AkSkCredentials):
        return f"ak:{credentials.ak}"
    if isinstance(credentials, TokenCredentials):
        return f"token:{credentials.token}"
    if credentials is None:
        return f"endpoint:{endpoint}"
    account = getattr(credentials, "account", None)
    if isinstance(account, str) and account.strip():
        return f"account:{account.strip()}"
    return None
