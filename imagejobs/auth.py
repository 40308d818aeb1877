"""Credentials: what the client calls, once per request, to authenticate it.

Pure: a credentials object turns request parts into headers; it performs no
I/O of its own unless it is a form that must fetch a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

from .errors import InvalidArgument

__all__ = ["Credentials", "TokenCredentials"]

_UNSAFE_HEADER_VALUE = re.compile(r"[\x00-\x1f\x7f]")


def check_header_value(name: str, value: object) -> str:
    """Return ``value`` if it can be sent as an HTTP header value.

    Raises :class:`InvalidArgument` (without echoing the value, which may be a
    secret) if it is not a non-empty string free of CR, LF and other controls.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgument(f"{name} must not be empty")
    if _UNSAFE_HEADER_VALUE.search(value):
        raise InvalidArgument(f"{name} contains a control character (CR, LF, ...)")
    return value


def _check_token(value: object) -> str:
    return check_header_value("token", value)


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
