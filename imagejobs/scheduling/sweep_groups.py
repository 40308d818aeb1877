"""Sweep groups: the client's sweeps, and apart those of each call with a share of its own.

A call that narrowed its share of the budget (``wait_many(..., rate=...)``)
has its jobs swept through its own gate, by a :class:`Sweeper` of its own, so
that its cap holds for every request its jobs cost and no other call's jobs
wait at that cap. Every other job is swept through the client's gate. The hub
sees one object with a sweeper's few methods.

The hub tells it which streams changed; each is placed in its group (again) at
the next turn of the loop, :data:`~imagejobs.scheduling.coverage.SLICE` of them
a turn at most, so no turn looks at every job.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from imagejobs.core.untracked import untrack
from imagejobs.scheduling.coverage import SLICE
from imagejobs.scheduling.streams import Stream
from imagejobs.scheduling.sweeper import Sweeper
from imagejobs.timing.gate import Gate

__all__ = ["SweeperGroups"]


class SweeperGroups:
    """One :class:`Sweeper` per gate the hub's jobs are looked at through (None: the client's).

    ``make(gate)`` makes a sweeper for a gate. A group whose jobs all left is let
    go, its sweep in flight cancelled.
    """

    def __init__(self, streams: Mapping[str, Stream], make: Callable[[Gate | None], Sweeper]):
        self._streams = streams
        self._make = make
        self._groups: dict[Gate | None, Sweeper] = {None: make(None)}
        self._gone: list[Sweeper] = []
        self._group_of: dict[Stream, Gate | None] = {}
        self._changed: dict[Stream, None] = {}
        self._more = False  # streams changed beyond the last turn's slice

    def __repr__(self) -> str:
        return f"SweeperGroups({len(self._groups)} groups, covered={self.covered})"

    @property
    def covered(self) -> int:
        """Jobs the sweeps cover now, all groups together."""
        return sum(sweeper.coverage.covered() for sweeper in self._groups.values())

    def clear(self) -> None:
        """Let go of every group and what it counted (the hub is closed).

        In place, and no group made anew: what is made now would sit among the freed
        jobs' memory and keep it mapped (:mod:`imagejobs.core.memo`)."""
        self._groups.clear()
        self._gone.clear()
        self._forget_streams()

    def _forget_streams(self) -> None:
        # Emptied in place, which gives their tables back as well as new ones would: tables
        # made as the last waits end would sit among their memory and keep it mapped.
        self._group_of.clear()
        self._changed.clear()
        self._more = False

    def changed(self, stream: Stream) -> None:
        """Note that a stream came, went, or changed in a way the sweeps may care about."""
        self._changed[stream] = None
        untrack(self._changed)  # a table of every job, tracked again by what was put in it

    def collect(self, now: float) -> None:
        """Read what each group's finished sweep found."""
        for sweeper in self._groups.values():
            sweeper.collect(now)

    def regroup(self, now: float) -> None:
        """Place the streams that changed in their groups, then let each decide its cover."""
        changed = self._changed
        for stream in list(itertools.islice(changed, SLICE)):
            del changed[stream]
            self._place(stream, now)
        self._more = bool(changed)
        for gate, sweeper in list(self._groups.items()):
            sweeper.regroup(now)
            if gate is not None and not sweeper.coverage.members:
                del self._groups[gate]  # its call is done: no request for nothing
                sweeper.abandon()
                self._gone.append(sweeper)

    def _place(self, stream: Stream, now: float) -> None:
        live = self._streams.get(stream.job_id) is stream
        gate = stream.call_gate() if live else None
        if stream in self._group_of:
            before = self._group_of[stream]
            if live and before is gate:
                self._groups[gate].put(stream)
                return
            del self._group_of[stream]
            if before in self._groups:
                self._groups[before].drop(stream, now, live=live)
        if live:
            sweeper = self._groups.get(gate)
            if sweeper is None:
                sweeper = self._groups[gate] = self._make(gate)
            sweeper.put(stream)
            self._group_of[stream] = gate
            untrack(self._group_of)  # a table of every job, tracked again by what was put in it

    def launch(self, now: float) -> None:
        """Start each group's sweep once its pace, backoff and share allow."""
        for sweeper in self._groups.values():
            sweeper.launch(now)

    def wake_at(self) -> float:
        """Return when the loop must look again for any group's sake."""
        if self._more:
            return -math.inf  # at once: the next slice (a later change waits for the next turn)
        return min((sweeper.wake_at() for sweeper in self._groups.values()), default=math.inf)

    def abandon(self) -> None:
        """Cancel every sweep, and forget every stream: the hub holds none any more.

        Streams that left in the hub's last turns are not all placed yet: forgotten here,
        not kept until the next wait comes.
        """
        for sweeper in self._groups.values():
            sweeper.abandon()
            sweeper.coverage.clear()
        self._forget_streams()

    def tasks(self) -> list[asyncio.Task[Any]]:
        """Return every sweep still running, let-go groups' included, for closing."""
        self._gone[:] = [sweeper for sweeper in self._gone if sweeper.tasks()]
        return [
            task for sweeper in (*self._groups.values(), *self._gone) for task in sweeper.tasks()
        ]
