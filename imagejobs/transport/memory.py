"""A transport in memory: answers come from a function, no socket, no server.

It serves unit tests of the layers above the transport (signing, the budget,
retries, decoding, paging, the hub's polls) the way the HTTP transport serves
the real client: the request path is the same, only the bytes stay in memory.
Not a mock of aiohttp: it is the other implementation of
:class:`~imagejobs.transport.base.Transport`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import attrs

from imagejobs.core.errors import ClientClosed
from imagejobs.transport.base import Response

__all__ = ["Headers", "MemoryTransport", "Sent", "json_response"]


class Headers(Mapping[str, str]):
    """Response headers looked up by any case, as an HTTP library's are."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._items = {name.lower(): (name, value) for name, value in (items or {}).items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


def json_response(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Return an answer whose body is ``value`` as JSON."""
    return status, Headers(headers), json.dumps(value).encode()


@attrs.frozen
class Sent:
    """One request the transport was given: where, with which headers, within how long."""

    url: str
    headers: Mapping[str, str]
    time_left: float


Answer = Callable[[Sent], Response | Awaitable[Response]]


class MemoryTransport:
    """Answers each request with ``answer(sent)``, a function or a coroutine function.

    ``answer`` may raise what a transport raises (:class:`~imagejobs.TransportError`
    for no answer, say). Every request is kept in :attr:`sent`, in order.
    """

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.sent: list[Sent] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"MemoryTransport(sent={len(self.sent)}, closed={self.closed})"

    async def send(self, url: str, headers: Mapping[str, str], time_left: float) -> Response:
        """Record the request and return what ``answer`` says."""
        if self.closed:
            raise ClientClosed("the client is closed")
        sent = Sent(url, dict(headers), time_left)
        self.sent.append(sent)
        answer = self._answer(sent)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    def check(self) -> None:
        """Raise :class:`ClientClosed` once closed."""
        if self.closed:
            raise ClientClosed("the client is closed")

    async def close(self) -> None:
        """Answer no more."""
        self.closed = True
