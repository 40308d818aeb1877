"""Fault injection for the fake server: what a flaky gateway does to a request.

A :class:`Faults` plan picks, for each request, whether it fails and how: by a
seeded probability, or at given request numbers. A faulted request does not
advance the job's timeline, so the job's story is told the same with or without
faults; only the way it reaches the client changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from aiohttp import web

from ._reply import Reply

__all__ = ["FAULT_KINDS", "Faults"]

FAULT_KINDS = (
    "500",
    "502",
    "503",
    "504",
    "429",
    "slow",
    "drop",
    "drop-mid-body",
    "truncated",
    "html",
    "empty",
    "content-type",
)
"""Every fault a plan may pick: error statuses, a 429 with ``Retry-After``, added
latency, a connection dropped before or during the body, a JSON body cut short,
a gateway's HTML page, an empty 200, and a 200 that is HTML rather than JSON."""

OVERSIZED = "oversized"
"""A fault only given explicitly: a 200 announcing a 100 MB body."""

_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr></body></html>"
)


def _as_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    return tuple(kinds)


def _check_kinds(_: object, __: object, kinds: tuple[str, ...]) -> None:
    unknown = [kind for kind in kinds if kind not in (*FAULT_KINDS, OVERSIZED)]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")


def _check_at(_: object, __: object, at: Mapping[int, str]) -> None:
    _check_kinds(None, None, tuple(at.values()) or FAULT_KINDS)
    if any(not isinstance(n, int) or n < 1 for n in at):
        raise ValueError("fault request numbers count from 1")


def _check_rate(_: object, __: object, rate: float) -> None:
    if not 0 <= rate <= 1:
        raise ValueError(f"fault rate must be between 0 and 1, got {rate!r}")


@attrs.frozen(kw_only=True)
class Faults:
    """When and how requests fail.

    ``rate`` is the chance that a request fails, with a kind drawn from
    ``kinds``; ``at`` maps request numbers (1 for the first request the plan
    sees) to the kind they get. ``seed`` makes the draws repeatable,
    ``latency`` is the delay of a ``slow`` fault and ``retry_after`` the
    ``Retry-After`` of a ``429``, both in seconds.
    """

    rate: float = attrs.field(default=0.0, validator=_check_rate)
    kinds: tuple[str, ...] = attrs.field(
        default=FAULT_KINDS, converter=_as_kinds, validator=_check_kinds
    )
    at: Mapping[int, str] = attrs.field(factory=dict, validator=_check_at)
    seed: int = 0
    latency: float = 0.05
    retry_after: float = 0.01

    @classmethod
    def from_scenario(cls, spec: Mapping[str, Any]) -> Faults:
        """Return a plan from its scenario form (``at`` keys may be strings)."""
        options = dict(spec)
        if "at" in options:
            options["at"] = {int(n): kind for n, kind in dict(options["at"]).items()}
        return cls(**options)


class FaultState:
    """A plan in use: counts requests and draws from its own random sequence."""

    def __init__(self, plan: Faults) -> None:
        self.plan = plan
        self.requests = 0
        self._random = random.Random(plan.seed)  # noqa: S311 - repeatable, not secret

    def pick(self) -> str | None:
        """Return the fault for the next request, or None."""
        self.requests += 1
        if self.requests in self.plan.at:
            return self.plan.at[self.requests]
        if self.plan.rate and self._random.random() < self.plan.rate:
            return self._random.choice(self.plan.kinds)
        return None


def fault_reply(kind: str, job_id: str, plan: Faults) -> Reply:
    """Return the reply a fault sends instead of the job's next snapshot."""
    if kind in ("500", "502", "503", "504"):
        return Reply.error(int(kind), f"WKS.0{kind}", "injected fault: the service failed")
    if kind == "429":
        return Reply.error(
            429,
            "APIGW.0308",
            "The throttling threshold has been reached",
            retry_after=plan.retry_after,
        )
    sample = json.dumps({"id": job_id, "status": "RUNNING", "sub_jobs": []}).encode()
    if kind == "truncated":
        return Reply(body=sample[: len(sample) // 2], headers={"Content-Type": "application/json"})
    if kind == "html":
        return Reply(status=502, body=_GATEWAY_PAGE, headers={"Content-Type": "text/html"})
    if kind == "empty":
        return Reply(body=b"", headers={"Content-Type": "application/json"})
    if kind == "content-type":
        return Reply(body=_GATEWAY_PAGE, headers={"Content-Type": "text/html"})
    if kind in ("drop", "drop-mid-body", OVERSIZED):
        return Reply(body=sample, connection=kind)
    raise ValueError(f"unknown fault kind {kind!r}")


_MiB = 1024 * 1024


async def misbehave(
    request: web.Request, reply: Reply, headers: dict[str, str]
) -> web.StreamResponse:
    """Send a reply whose connection fails: dropped, cut mid-body, or far too long."""
    transport = request.transport
    if reply.connection == "drop":
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError
    response = web.StreamResponse(status=reply.status, headers=headers)
    if reply.connection == OVERSIZED:
        response.content_length = 100 * _MiB
        await response.prepare(request)
        chunk = b"0" * _MiB
        with contextlib.suppress(ConnectionError, RuntimeError):
            for _ in range(100):
                await response.write(chunk)
        return response
    response.content_length = len(reply.body)
    await response.prepare(request)
    await response.write(reply.body[: len(reply.body) // 2])
    if transport is not None:
        transport.abort()
    raise asyncio.CancelledError
