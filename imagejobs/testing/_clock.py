"""A clock for tests: virtual time that jumps ahead whenever the event loop is idle."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from array import array
from datetime import UTC, datetime, timedelta

__all__ = ["KEPT_SLEEPS", "FakeClock"]

KEPT_SLEEPS = 100
"""Sleeps a :class:`FakeClock` remembers, the most recent: a long virtual-time run asks
for hundreds of thousands, and the test clock must not grow with the run."""

# Real timers due this soon hold virtual time back: a fake server's latency is a
# real sleep, and jumping ahead while a reply is on its way would end waits early.
_REAL_TIMER_HORIZON = 1.0


def _is_clock_check(handle: asyncio.Handle) -> bool:
    """Whether a loop callback is a FakeClock's own look: another clock's is no work."""
    callback = getattr(handle, "_callback", None)
    return getattr(callback, "__func__", None) is FakeClock._jump_if_idle


def _busy_for(loop: asyncio.AbstractEventLoop) -> float | None:
    """Return None if the loop has nothing to do but sleep, else how long to look again in.

    Reads the standard event loop's own queues: ready callbacks, sockets with
    something to read or write, and real timers due soon. On another loop it
    only knows about ready callbacks, which is enough for in-process tests.
    Work in threads (``run_in_executor``, name resolution) is not seen.
    """
    ready = getattr(loop, "_ready", ())
    if any(not _is_clock_check(handle) for handle in ready):
        return 0.0
    selector = getattr(loop, "_selector", None)
    # Level-triggered: looking does not consume the events the loop will handle next.
    if selector is not None and selector.select(0):
        return 0.0
    scheduled = getattr(loop, "_scheduled", ())
    soonest = min(
        (h.when() for h in scheduled if not h.cancelled() and not _is_clock_check(h)),
        default=None,
    )
    if soonest is not None and soonest - loop.time() <= _REAL_TIMER_HORIZON:
        return max(0.0, float(soonest - loop.time()))
    return None


class FakeClock:
    """A :class:`~imagejobs.Clock` on virtual time, for tests of any number of waits.

    Pass it as ``Client(clock=...)`` and as ``FakeWorkspace(clock=fake.monotonic)``
    so the server's timelines, request log and answers' ``Date`` share the same time. A sleep
    waits until virtual time reaches its end; whenever every task is waiting
    (no callback ready, no socket with data, no real timer due within a
    second), time jumps to the earliest pending sleep. So an hour-long wait
    takes milliseconds, concurrent waits interleave as they would in real
    time, and a request in flight to an in-process server finishes before
    time moves on. ``sleeps`` holds the last :data:`KEPT_SLEEPS` sleeps
    requested, oldest first, and ``sleep_count`` counts them all.

    What it cannot see: work in threads, such as resolving a host name (serve
    the fake on ``127.0.0.1``, as it does by default, not ``localhost``), real
    timers more than a second away (a fake server's ``latency`` above that lets
    virtual time move on while it waits), and the kernel's own waits, such as
    a connection beyond the server's listening backlog (about a hundred at
    once) retried a second later: keep ``max_in_flight`` below that.
    """

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self._start = start
        self._elapsed = 0.0
        # Raw doubles, not the float objects given: made as the waits end, those
        # would outlive them among the memory of ended jobs, each holding an arena of
        # CPython's mapped after a client in this process closed.
        self._sleeps = array("d")
        self.sleep_count = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._check: asyncio.Handle | None = None

    def __repr__(self) -> str:
        return f"FakeClock(elapsed={self._elapsed:g}, sleeping={len(self._sleepers)})"

    @property
    def sleeps(self) -> tuple[float, ...]:
        """The last :data:`KEPT_SLEEPS` sleeps requested, in seconds, oldest first."""
        return tuple(self._sleeps[-KEPT_SLEEPS:])

    def monotonic(self) -> float:
        """Return the seconds elapsed since the clock was made."""
        return self._elapsed

    def now(self) -> datetime:
        """Return the start time plus the elapsed seconds."""
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` and wake the sleeps that are then over."""
        self._elapsed += max(0.0, seconds)
        self._wake_due()

    async def sleep(self, seconds: float) -> None:
        """Wait until virtual time has moved on by ``seconds``."""
        self._sleeps.append(seconds)
        if len(self._sleeps) >= 2 * KEPT_SLEEPS:
            del self._sleeps[:-KEPT_SLEEPS]
        self.sleep_count += 1
        if not seconds > 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._order), done))
        self._look_again(loop, 0.0)
        await done

    def _look_again(self, loop: asyncio.AbstractEventLoop, after: float) -> None:
        if self._check is not None:
            if after > 0:
                return  # a look is already planned, and sooner
            self._check.cancel()
        if after > 0:
            self._check = loop.call_later(after, self._jump_if_idle, loop)
        else:
            self._check = loop.call_soon(self._jump_if_idle, loop)

    def _jump_if_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._check = None
        self._drop_abandoned()
        if not self._sleepers:
            return
        busy = _busy_for(loop)
        if busy is not None:
            self._look_again(loop, busy)
            return
        self._elapsed = max(self._elapsed, self._sleepers[0][0])
        self._wake_due()
        if self._sleepers:
            # Look again once the woken tasks have had their turn.
            self._look_again(loop, 0.0)

    def _drop_abandoned(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, done = heapq.heappop(self._sleepers)
            if not done.done():
                done.set_result(None)
