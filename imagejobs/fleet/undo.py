"""What a fleet may hold in Redis without knowing it, kept until it is given back.

A script call that timed out or was cancelled after it was sent may still have
run (a slot taken, a look claimed), and one that gives something back may not
have run at all. Either way the process records it here, and gives it back once
Redis answers again. A record lasts no longer than its lease: past that, Redis
has freed it anyway. Calls that were never sent record nothing, so the queue
holds at most what was in flight when Redis stopped answering, however long it
stays away.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import attrs

__all__ = ["Taken", "Undo"]


@attrs.frozen
class Taken:
    """One thing to give back: a ``"slot"`` (its token) or a ``"lease"`` (its key and claim)."""

    kind: str
    key: str
    token: str


class Undo:
    """Things to give back, each until its lease ends.

    ``lasts`` maps a kind to the seconds Redis holds a thing of that kind at most.
    """

    def __init__(
        self, lasts: Mapping[str, float], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lasts = dict(lasts)
        self._clock = clock
        # One queue a kind, in the order recorded: every record of a kind lasts as long,
        # so the first to end is always at the front.
        self._ends: dict[str, dict[Taken, float]] = {kind: {} for kind in lasts}

    def __repr__(self) -> str:
        return f"Undo({len(self)} to give back)"

    def __len__(self) -> int:
        return sum(len(ends) for ends in self._ends.values())

    def add(self, taken: Taken) -> None:
        """Record ``taken`` to be given back, for as long as its lease may last."""
        now = self._clock()
        self._drop_ended(now)
        ends = self._ends[taken.kind]
        ends.pop(taken, None)
        ends[taken] = now + self._lasts[taken.kind]

    def batch(self, size: int) -> list[Taken]:
        """Return up to ``size`` things still to give back, those whose lease ended dropped."""
        self._drop_ended(self._clock())
        return [taken for ends in self._ends.values() for taken in ends][:size]

    def given_back(self, batch: list[Taken]) -> None:
        """Forget what Redis has confirmed given back."""
        for taken in batch:
            self._ends[taken.kind].pop(taken, None)

    def _drop_ended(self, now: float) -> None:
        for ends in self._ends.values():
            while ends:
                first, end = next(iter(ends.items()))
                if end > now:
                    break
                del ends[first]
