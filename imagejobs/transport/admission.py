"""Admission: the passes a request takes before it goes out, and gives back after.

Three, in this order: the call's own gate (when a caller narrowed its share of
the budget with ``wait_many(..., rate=...)``), the client's gate (its
in-flight cap, its adaptive rate, a 429's pause), and the fleet's slot (when
the client shares an account's budget through Redis). Given back, each is
told how the request ended: an answer shows what the gateway accepts, a 429
slows the client (and the fleet) down. A call's own gate learns nothing: its
cap stays as the caller gave it.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from imagejobs.timing.gate import Gate, Pass

__all__ = ["Admission", "Passes", "SharedBudget"]


class SharedBudget(Protocol):
    """A budget shared with other processes (a fleet on Redis), as a request sees it."""

    async def acquire(self, deadline: float = math.inf) -> Any | None:
        """Wait for a shared slot; None if the share cannot be reached (go on without it).

        Raises :class:`TimeoutError` if no slot came by ``deadline`` (monotonic).
        """
        ...

    def release(
        self,
        slot: Any | None,
        *,
        answered: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Give a slot back, telling how its request ended."""
        ...


class Passes:
    """One try's passes, and how its request ended: only an answer that is not a 429
    shows what the gateway accepts, and only a 429 slows the client down."""

    __slots__ = ("answered", "call", "call_gate", "client", "retry_after", "shared", "throttled")

    def __init__(self, call_gate: Gate | None, client: Pass | None) -> None:
        self.call_gate = call_gate
        self.call: Pass | None = None
        self.client = client
        self.shared: Any | None = None
        self.answered = False
        self.throttled = False
        self.retry_after: float | None = None


class Admission:
    """Grants and takes back the passes of one client's requests."""

    def __init__(self, gate: Gate, shared: SharedBudget | None) -> None:
        self.gate = gate
        self.shared = shared

    def __repr__(self) -> str:
        return f"Admission({self.gate!r}, shared={self.shared is not None})"

    async def wait(self, passes: Passes, priority: float | None, deadline: float) -> None:
        """Wait for the call's own gate, if it has one, then the client's.

        Raises :class:`TimeoutError` if the passes did not come by ``deadline``.
        """
        if passes.call_gate is not None:
            passes.call = await passes.call_gate.acquire(priority, deadline)
        passes.client = await self.gate.acquire(priority, deadline)

    async def wait_shared(self, passes: Passes, deadline: float) -> None:
        """Wait for the fleet's slot (none if Redis is not answering).

        Raises :class:`TimeoutError` if it did not come by ``deadline``.
        """
        if self.shared is not None:
            passes.shared = await self.shared.acquire(deadline)

    def settle(self, passes: Passes) -> None:
        """Give every pass back, telling the client's gate and the fleet how the try ended."""
        if passes.call is not None and passes.call_gate is not None:
            passes.call_gate.release(passes.call)  # a call's cap stays as given: it learns nothing
        if passes.client is not None:
            self.gate.release(
                passes.client,
                answered=passes.answered,
                throttled=passes.throttled,
                retry_after=passes.retry_after,
            )
        if self.shared is not None:
            self.shared.release(
                passes.shared,
                answered=passes.answered,
                throttled=passes.throttled,
                retry_after=passes.retry_after,
            )
