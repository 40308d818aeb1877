"""The gate every request of a client passes: it waits for the budget, earliest need first.

A thin async layer over the pure :class:`RequestBudget`. Waiters queue here, in
the order of their priority (the time their request became due), never in
aiohttp's connection pool, so a request's timeout starts when it is sent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

from imagejobs.core.errors import ImageJobsError
from imagejobs.planning.budget import RequestBudget

from .clock import Alarm, Clock

__all__ = ["Gate", "Pass"]


class Pass:
    """Leave to send one request; give it back with :meth:`Gate.release`."""

    __slots__ = ("released", "sent_at")

    def __init__(self, sent_at: float) -> None:
        self.sent_at = sent_at
        self.released = False


class Gate:
    """Grants requests as the budget allows, in order of priority (lowest first)."""

    def __init__(self, budget: RequestBudget, clock: Clock) -> None:
        self.budget = budget
        self._clock = clock
        self._waiting: list[tuple[float, int, asyncio.Future[Pass]]] = []
        self._order = itertools.count()
        self._alarm = Alarm(clock, self._grant)
        self._closed: ImageJobsError | None = None

    async def acquire(self, priority: float | None = None, deadline: float = math.inf) -> Pass:
        """Wait until a request may go, then return its pass.

        Raises :class:`TimeoutError` if no pass came by ``deadline`` (on the
        gate's clock), and the gate's closing error if it is closed before or
        while waiting.
        """
        if self._closed is not None:
            raise self._closed
        now = self._clock.monotonic()
        if not self._waiting and self.budget.try_start(now):
            return Pass(now)
        if deadline <= now:
            raise TimeoutError
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[Pass] = loop.create_future()
        order = now if priority is None else priority
        heapq.heappush(self._waiting, (order, next(self._order), granted))
        self._grant()
        expiry = None
        if deadline < math.inf and not granted.done():
            expiry = loop.create_task(self._expire(granted, deadline - now))
        try:
            return await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled() and granted.exception() is None:
                # Granted, then cancelled before it could be used: hand it back.
                self.release(granted.result())
            raise
        finally:
            if expiry is not None:
                expiry.cancel()

    def try_pass(self) -> Pass | None:
        """Return a pass at once if one is free and nobody waits; else None, for :meth:`acquire`.

        The common case of a request under budget, without a coroutine.
        """
        if self._closed is None and not self._waiting:
            now = self._clock.monotonic()
            if self.budget.try_start(now):
                return Pass(now)
        return None

    async def _expire(self, granted: asyncio.Future[Pass], delay: float) -> None:
        await self._clock.sleep(delay)
        if not granted.done():
            granted.set_exception(TimeoutError())

    def release(
        self,
        granted: Pass,
        *,
        answered: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Give back a pass, saying how its request ended (see :meth:`RequestBudget.finish`)."""
        if granted.released:
            return
        granted.released = True
        self.budget.finish(
            self._clock.monotonic(),
            sent_at=granted.sent_at,
            answered=answered,
            throttled=throttled,
            retry_after=retry_after,
        )
        if self._waiting:  # else nothing to grant, and no alarm set (_arm saw none waiting)
            self._grant()

    def _grant(self) -> None:
        now = self._clock.monotonic()
        while self._waiting:
            granted = self._waiting[0][2]
            if granted.done():
                heapq.heappop(self._waiting)
                continue
            if not self.budget.try_start(now):
                break
            heapq.heappop(self._waiting)
            granted.set_result(Pass(now))
        self._arm(now)

    def _arm(self, now: float) -> None:
        """Wake when the rate or a pause next allows a start, if that is the wait."""
        if not self._waiting or not self.budget.has_room:
            self._alarm.cancel()  # only a release can help, and it looks again itself
        else:
            self._alarm.set(self.budget.next_start(now))

    async def close(self, error: ImageJobsError) -> None:
        """Refuse every waiting and future request with ``error``."""
        self._closed = error
        for _, _, granted in self._waiting:
            if not granted.done():
                granted.set_exception(error)
        self._waiting.clear()
        self.budget.forget()
        await self._alarm.close()

    def __repr__(self) -> str:
        in_flight, cap = self.budget.in_flight, self.budget.max_in_flight
        return f"Gate(in_flight={in_flight}/{cap}, waiting={len(self._waiting)})"
