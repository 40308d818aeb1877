"""The due queue: streams by when their next look is due, launched as gates have room.

A heap holds each stream's next look, by time, once: a stream rescheduled moves
where it stands, and one the sweeps take over leaves it. Looks go through a
gate: the client's (room for ``max_polls`` at once), or a call's own when
every subscriber of the job narrowed its share. A look due while its gate is
full is parked with that gate, so a slow call's cap never holds back anyone
else's looks, and put back, earliest first, as the gate's looks come back.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Mapping

from imagejobs.scheduling.keyed_heap import KeyedHeap
from imagejobs.scheduling.looks import Look, LookResult, PollFunction
from imagejobs.scheduling.streams import Stream
from imagejobs.timing.gate import Gate

__all__ = ["DueQueue"]


class DueQueue:
    """When each job is looked at next, and the looks in flight, for one hub.

    ``poll`` is the hub's poll function; ``order`` the hub's counter of events
    (a look's number orders it against subscriptions); ``streams`` the hub's
    live streams; ``launched(stream)`` is called when a look is sent, ``returned()``
    when one comes back.
    """

    def __init__(
        self,
        poll: PollFunction,
        streams: Mapping[str, Stream],
        order: itertools.count[int],
        *,
        max_polls: int,
        launched: Callable[[Stream], None],
        returned: Callable[[], None],
    ) -> None:
        self._poll = poll
        self._streams = streams
        self._order = order
        self._max_polls = max_polls
        self._launched = launched
        self._on_return = returned
        self._due: KeyedHeap[Stream] = KeyedHeap()
        self._parked: dict[Gate | None, KeyedHeap[Stream]] = {}
        self._out: Counter[Gate | None] = Counter()
        self.in_flight: set[asyncio.Task[LookResult]] = set()
        self.returned: deque[tuple[Stream, asyncio.Task[LookResult]]] = deque()
        """Looks that came back, for the hub to read, oldest first."""

    def clear(self) -> None:
        """Let go of the queues, grown to the most jobs ever due at once (the hub is closed).

        In place: a table made now would sit among the freed jobs' memory and keep it
        mapped (:mod:`imagejobs.core.memo`)."""
        self._due.clear()
        self._parked.clear()
        self._out.clear()
        self.in_flight.clear()  # empty by now (the hub awaited them), but for its table
        self.returned.clear()

    def __repr__(self) -> str:
        return f"DueQueue(due={len(self._due)}, in_flight={len(self.in_flight)})"

    def schedule(self, stream: Stream) -> None:
        """Put a stream's next look in the queue, at when it is due (none if a sweep has it)."""
        if stream.poll is not None or not stream.subscribers:
            return
        self._unpark_one(stream)  # due again, now: launched, or parked again, as it comes
        if stream.sweep.covered and not stream.sweep.get_wanted:
            self._due.discard(stream)  # the sweeps look at it
            return
        when = stream.due_at()
        if when == math.inf:
            self._due.discard(stream)
            return
        self._due.set(stream, when, next(self._order))

    def forget(self, stream: Stream) -> None:
        """Drop a stream nobody waits on any more."""
        self._due.discard(stream)
        self._unpark_one(stream)

    def _unpark_one(self, stream: Stream) -> None:
        for gate, parked in list(self._parked.items()):
            parked.discard(stream)
            if not parked:
                del self._parked[gate]  # a finished call's gate is not kept alive here

    def entries(self) -> int:
        """Return the streams in the queue, parked ones included: at most one entry each."""
        return len(self._due) + sum(len(parked) for parked in self._parked.values())

    def next_due(self) -> float:
        """Return when the earliest look is due (``inf`` if none is)."""
        first = self._due.first()
        return math.inf if first is None else first[0]

    def launch(self, now: float) -> None:
        """Start the looks that are due, earliest first, as far as each one's gate has room."""
        while (first := self._due.first()) is not None and first[0] <= now:
            when, _, stream = self._due.pop()
            gate = stream.call_gate()
            # A look at news is answered from Redis: it waits for no look that waits for budget
            # (up to as many again as there is room for, should Redis not answer it after all).
            room = self._room(gate) * (2 if stream.fleet.news else 1)
            if self._out[gate] >= room:
                self._parked.setdefault(gate, KeyedHeap()).set(stream, when, next(self._order))
                continue
            self._out[gate] += 1
            if stream.fleet.news:
                stream.set_fleet(news=False)
            source = _source(stream)
            stream.polls_sent += 1
            stream.poll_started = now
            stream.poll_order = next(self._order)
            look = Look(stream.fresh_after(when), stream.fleet.mark, source)
            task = asyncio.get_running_loop().create_task(
                self._poll(stream.job_id, when, gate, look)
            )
            stream.poll = task
            self.in_flight.add(task)
            task.add_done_callback(functools.partial(self._came_back, stream, gate))
            self._launched(stream)

    def _room(self, gate: Gate | None) -> int:
        return self._max_polls if gate is None else gate.budget.max_in_flight

    def _came_back(self, stream: Stream, gate: Gate | None, task: asyncio.Task[LookResult]) -> None:
        self.in_flight.discard(task)
        self._out[gate] -= 1
        self._unpark(gate)
        if not self._out[gate]:
            del self._out[gate]  # a finished call's gate is not kept alive here
        if not task.cancelled():
            task.exception()  # seen here, so an abandoned poll's error is never reported as lost
        if stream.poll is task:  # not a look at a job let go meanwhile: nobody is left to tell
            self.returned.append((stream, task))
        self._on_return()

    def _unpark(self, gate: Gate | None) -> None:
        """Put back as many parked streams, earliest first, as the gate has room for."""
        parked = self._parked.get(gate)
        room = self._room(gate) - self._out[gate]
        # Each one parked is waited on and due: one a sweep took over, or nobody waits on
        # any more, was taken out when it happened.
        while parked and room > 0:
            _, _, stream = parked.pop()
            self._due.set(stream, stream.due_at(), next(self._order))
            room -= 1
        if not parked:
            self._parked.pop(gate, None)


def _source(stream: Stream) -> str:
    """Why a stream's next look is made, for the hooks' count of requests by source."""
    if stream.failures:
        return "retry"
    if stream.sweep.get_wanted:
        return stream.sweep.get_reason
    if stream.snapshot is None:
        return "first" if stream.polls_sent == 0 else "grace"
    return "poll"
