"""Sweep groups: the client's sweeps, and apart those of each call with a share of its own.

A call that narrowed its share of the budget (``wait_many(..., rate=...)``)
has its jobs swept through its own gate, by a :class:`Sweeper` of its own, so
that its cap holds for every request its jobs cost and no other call's jobs
wait at that cap. Every other job is swept through the client's gate. The hub
sees one object with a sweeper's few methods.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from typing import Any

from imagejobs.scheduling.streams import Stream
from imagejobs.scheduling.sweeper import FEW_JOBS, REGROUP_EVERY, Sweeper
from imagejobs.timing.gate import Gate

__all__ = ["SweeperGroups"]


class SweeperGroups:
    """One :class:`Sweeper` per gate the hub's jobs are looked at through (None: the client's).

    ``make(gate)`` makes a sweeper for a gate. Groups are found again when jobs
    changed, at most every :data:`REGROUP_EVERY` seconds with many jobs; a group
    whose jobs all left is let go, its sweep in flight cancelled.
    """

    def __init__(self, streams: Mapping[str, Stream], make: Callable[[Gate | None], Sweeper]):
        self._streams = streams
        self._make = make
        self._groups: dict[Gate | None, Sweeper] = {None: make(None)}
        self._gone: list[Sweeper] = []
        self._found_after = -math.inf

    def __repr__(self) -> str:
        return f"SweeperGroups({len(self._groups)} groups, covered={self.covered})"

    @property
    def covered(self) -> int:
        """Jobs the sweeps cover now, all groups together."""
        return sum(len(sweeper.cover.covered) for sweeper in self._groups.values())

    @property
    def stale(self) -> bool:
        """Whether jobs came, went or changed since the last regroup."""
        return any(sweeper.stale for sweeper in self._groups.values())

    @stale.setter
    def stale(self, value: bool) -> None:
        for sweeper in self._groups.values():
            sweeper.stale = value

    def collect(self, now: float) -> None:
        """Read what each group's finished sweep found."""
        for sweeper in self._groups.values():
            sweeper.collect(now)

    def regroup_if_due(self, now: float) -> None:
        """Find the groups again if jobs changed, then let each decide its cover."""
        few = len(self._streams) <= FEW_JOBS
        if self.stale and (now >= self._found_after or few):
            self._found_after = now + REGROUP_EVERY
            self._find_groups()
        for sweeper in self._groups.values():
            sweeper.regroup_if_due(now)

    def launch(self, now: float) -> None:
        """Start each group's sweep once its pace, backoff and share allow."""
        for sweeper in self._groups.values():
            sweeper.launch(now)

    def wake_at(self) -> float:
        """Return when the loop must look again for any group's sake."""
        wake = min(sweeper.wake_at() for sweeper in self._groups.values())
        if self.stale:
            wake = min(wake, self._found_after)
        return wake

    def abandon(self) -> None:
        """Cancel every sweep nobody is left to hear of."""
        for sweeper in self._groups.values():
            sweeper.abandon()

    def tasks(self) -> list[asyncio.Task[Any]]:
        """Return every sweep still running, let-go groups' included, for closing."""
        self._gone = [sweeper for sweeper in self._gone if sweeper.tasks()]
        return [
            task for sweeper in (*self._groups.values(), *self._gone) for task in sweeper.tasks()
        ]

    def _find_groups(self) -> None:
        gates = {stream.call_gate() for stream in self._streams.values()}
        for gate in gates - self._groups.keys():
            sweeper = self._groups[gate] = self._make(gate)
            sweeper.stale = True
        for gate in [gate for gate in self._groups if gate is not None and gate not in gates]:
            sweeper = self._groups.pop(gate)
            sweeper.abandon()
            self._gone.append(sweeper)
