"""A raw reply the fake server sends: status, body, headers, and how it misbehaves."""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

__all__ = ["Reply"]


@attrs.frozen(kw_only=True)
class Reply:
    """A raw response the fake sends as one step of a timeline."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering, to exercise client timeouts."""
    connection: str | None = None
    """How the connection misbehaves: ``"drop"`` closes it before answering,
    ``"drop-mid-body"`` after half the body, ``"oversized"`` announces a 100 MB
    body and streams it until the client hangs up."""

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        """Return a reply whose body is ``data`` as JSON."""
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
        )

    @classmethod
    def error(
        cls,
        status: int,
        error_code: str,
        error_msg: str,
        *,
        retry_after: float | None = None,
    ) -> Reply:
        """Return an error in the service's documented body shape."""
        reply = cls.json({"error_code": error_code, "error_msg": error_msg}, status)
        if retry_after is None:
            return reply
        return attrs.evolve(reply, headers={**reply.headers, "Retry-After": f"{retry_after:g}"})
