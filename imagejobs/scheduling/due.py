"""The due queue: streams by when their next look is due, launched as gates have room.

A heap holds each stream's next look, by time; a stream rescheduled leaves its
older entry behind, recognised as stale by its number. Looks go through a
gate: the client's (room for ``max_polls`` at once), or a call's own when
every subscriber of the job narrowed its share. A look due while its gate is
full is parked with that gate, so a slow call's cap never holds back anyone
else's looks, and put back, earliest first, as the gate's looks come back.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Mapping

from imagejobs.scheduling.looks import Look, LookResult, PollFunction
from imagejobs.scheduling.streams import Stream
from imagejobs.timing.gate import Gate

__all__ = ["DueQueue"]

_Entry = tuple[float, int, Stream]


class DueQueue:
    """When each job is looked at next, and the looks in flight, for one hub.

    ``poll`` is the hub's poll function; ``order`` the hub's counter of events
    (a look's number orders it against subscriptions); ``streams`` the hub's
    live streams; ``returned`` is called when a look comes back.
    """

    def __init__(
        self,
        poll: PollFunction,
        streams: Mapping[str, Stream],
        order: itertools.count[int],
        *,
        max_polls: int,
        returned: Callable[[], None],
    ) -> None:
        self._poll = poll
        self._streams = streams
        self._order = order
        self._max_polls = max_polls
        self._on_return = returned
        self._due: list[_Entry] = []
        self._parked: dict[Gate | None, list[_Entry]] = {}
        self._out: Counter[Gate | None] = Counter()
        self.in_flight: set[asyncio.Task[LookResult]] = set()
        self.returned: deque[tuple[Stream, asyncio.Task[LookResult]]] = deque()
        """Looks that came back, for the hub to read, oldest first."""

    def __repr__(self) -> str:
        return f"DueQueue(due={len(self._due)}, in_flight={len(self.in_flight)})"

    def schedule(self, stream: Stream) -> None:
        """Put a stream's next look in the queue, at when it is due (none if a sweep has it)."""
        if stream.poll is not None or not stream.subscribers:
            return
        if stream.sweep.covered and not stream.sweep.get_wanted:
            stream.due_entry = None  # the sweeps look at it
            return
        when = stream.due_at()
        if when == math.inf:
            stream.due_entry = None
            return
        stream.due_entry = next(self._order)
        heapq.heappush(self._due, (when, stream.due_entry, stream))
        if len(self._due) > 64 + 4 * len(self._streams):
            # Each reschedule leaves the stream's older entry behind: drop those now.
            self._due = [entry for entry in self._due if entry[1] == entry[2].due_entry]
            heapq.heapify(self._due)

    def entries(self) -> int:
        """Return the heap's entries, stale ones included: its size, bounded by the streams."""
        return len(self._due)

    def next_due(self) -> float:
        """Return when the earliest look is due (``inf`` if none is)."""
        entry = self._peek()
        return math.inf if entry is None else entry[0]

    def _peek(self) -> _Entry | None:
        while self._due and self._due[0][1] != self._due[0][2].due_entry:
            heapq.heappop(self._due)
        return self._due[0] if self._due else None

    def launch(self, now: float) -> None:
        """Start the looks that are due, earliest first, as far as each one's gate has room."""
        while (entry := self._peek()) is not None and entry[0] <= now:
            heapq.heappop(self._due)
            when, _, stream = entry
            stream.due_entry = None
            gate = stream.call_gate()
            if self._out[gate] >= self._room(gate):
                heapq.heappush(self._parked.setdefault(gate, []), (when, next(self._order), stream))
                continue
            self._out[gate] += 1
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
        self.returned.append((stream, task))
        self._on_return()

    def _unpark(self, gate: Gate | None) -> None:
        """Put back as many parked streams, earliest first, as the gate has room for."""
        parked = self._parked.get(gate)
        room = self._room(gate) - self._out[gate]
        while parked and room > 0:
            _, _, stream = heapq.heappop(parked)
            if self._streams.get(stream.job_id) is stream and stream.poll is None:
                self.schedule(stream)
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
