"""The transport seam: the one method between the request path and the network, ``send``.

Everything above it (signing, the budget, retries, decoding, paging) is the
same whatever carries the bytes; :class:`~imagejobs.transport.aiohttp.AiohttpTransport`
carries them over HTTP, :class:`~imagejobs.transport.memory.MemoryTransport` in
memory, for unit tests of the layers above without a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeAlias

__all__ = ["Response", "Transport"]

Response: TypeAlias = tuple[int, Mapping[str, str], bytes]
"""An answer as it came: ``(status, headers, body)``, the headers looked up by any case.

A plain tuple, not a named one: one is made for every request, and a named
tuple's constructor costs as much as a tenth of the client's own work on it."""


class Transport(Protocol):
    """Sends a GET and reads the whole answer."""

    async def send(self, url: str, headers: Mapping[str, str], time_left: float) -> Response:
        """Send a GET to ``url`` with ``headers``, waiting ``time_left`` seconds at most.

        Raises :class:`~imagejobs.TransportError` when no answer came (refused,
        dropped, timed out), :class:`~imagejobs.ResponseTooLarge` for a body
        over the transport's size cap (left unread), :class:`~imagejobs.InvalidArgument`
        for a URL it cannot send to, and :class:`~imagejobs.ClientClosed` once closed.
        An answer of any status is returned, not raised: the caller decides what it means.
        """
        ...

    def check(self) -> None:
        """Raise :class:`~imagejobs.ClientClosed` now if no request can be sent (closed).

        Called before a call waits for the budget: a closed transport, or a closed
        session it was lent, must not take a pass for a request it cannot send.
        """
        ...

    async def close(self) -> None:
        """Let go of what the transport holds (connections); closing twice is harmless."""
        ...
