"""Credentials: what the client calls, once per request, to authenticate it.

Pure: a credentials object turns request parts into headers; it performs no
I/O of its own unless it is a form that must fetch a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import attrs

from .validation import check_header_value

__all__ = ["Credentials", "TokenCredentials"]


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
