"""Coverage: which of a sweeper's streams its sweeps cover, kept one change at a time.

The hub tells a sweeper of each stream that changed (:meth:`Coverage.put`,
:meth:`Coverage.drop`); its :class:`~imagejobs.planning.sweeps.Cover` keeps the
counts that choosing the lists needs, so a choice costs as much as there are
lists. Whose cover a change decides again is queued, and decided a slice at a
time (:meth:`Coverage.decide`): the jobs that changed, and when a list is chosen
or dropped, the jobs that list decides about. No step looks at every job.

Kept per job: its place in the cover (a summary and, if watched, its active
sub-jobs), in the lists it is counted on, among the members, and, while it is
covered, the policies it is counted with.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Collection, Hashable, Iterator
from typing import TypeVar

from imagejobs.core.memo import memo
from imagejobs.core.untracked import untrack
from imagejobs.planning.policy import PollPolicy
from imagejobs.planning.sweeps import Choice, Cover, Listing
from imagejobs.scheduling.streams import Stream

__all__ = ["SLICE", "Coverage", "Overdue", "slices"]

SLICE = 500
"""Streams a sweeper decides about in one turn of the loop (a sweep's findings go by
:data:`~imagejobs.scheduling.sweeper.READ_SLICE`).

A turn's work stays a few milliseconds however many jobs are in play."""

NO_CHOICE = Choice()

_Key = TypeVar("_Key", bound=Hashable)
_Item = TypeVar("_Item")


class Coverage:
    """One sweeper's streams, and which of them its sweeps cover.

    ``cover_changed(stream, now)`` is told when a stream comes under the cover or
    leaves it.
    """

    def __init__(self, cover_changed: Callable[[Stream, float], None]) -> None:
        self._cover_changed = cover_changed
        self.flips = 0
        """How many times a stream came under the cover or left it."""
        self.clear()

    def __repr__(self) -> str:
        return (
            f"Coverage(members={len(self.members)}, covered={len(self._covered)}, "
            f"undecided={len(self._undecided)})"
        )

    # --- members ------------------------------------------------------------------

    def put(self, stream: Stream) -> None:
        """Count a stream in as it is now: a candidate for the cover, or not yet."""
        job_id = stream.job_id
        before = self.members.get(job_id)
        if self._came is not None and before is not stream:
            self._came.add(job_id)
        if before is not None:
            _add(self._demands, before.sweep.demand, -1)
        self.members[job_id] = stream
        untrack(self.members)  # a table of every job, tracked again by what was put in it
        stream.sweep.demand = max(_pace(policy.initial_delay) for policy in stream.policies())
        _add(self._demands, stream.sweep.demand, 1)
        subs = None
        # Not while a look is out or wanted: its answer decides again.
        candidate = stream.poll is None and not stream.sweep.get_wanted
        if candidate and stream.watched():
            subs = stream.active_sub_jobs()
            candidate = subs is not None  # a GET shows its sub-jobs first
        if candidate:
            self.cover.put(job_id, stream.summary, subs)
        else:
            self.cover.drop(job_id)
        self._undecided.append(job_id)

    def drop(self, stream: Stream, now: float, *, live: bool) -> None:
        """Count a stream out: gone (not ``live``), or moved to another sweeper."""
        job_id = stream.job_id
        if self.members.get(job_id) is not stream:
            return
        del self.members[job_id]
        _add(self._demands, stream.sweep.demand, -1)
        self.cover.drop(job_id)
        self._uncount(stream)
        if live and stream.sweep.covered:
            stream.sweep.covered = False
            self.flips += 1
            self._cover_changed(stream, now)

    def clear(self) -> None:
        """Count every stream out at once: the hub holds none any more."""
        self.cover = Cover()
        self.choice = NO_CHOICE  # no list to page for nobody
        """The lists the sweeps page now."""
        self.members: dict[str, Stream] = {}
        self._demands: Counter[float] = Counter()
        self._covered: dict[Stream, PollPolicy | tuple[PollPolicy, ...]] = {}
        """The streams covered, each with the policies it is counted under."""
        self._policies: Counter[PollPolicy] = Counter()
        self._undecided: deque[str] = deque()
        self._came: set[str] | None = None
        """While a copy of the covered IDs is read, those of the streams put since that were
        not members then: under a copied ID, another stream than the one copied."""

    # --- the cover ------------------------------------------------------------------

    def choose(self, choice: Choice) -> None:
        """Page these lists from now on: queue the jobs whose cover that changes."""
        if choice == self.choice:
            return
        for listing in choice.paged ^ self.choice.paged:
            self._undecided.extend(self.cover.needing(listing))
        if choice.discovery != self.choice.discovery:
            self._undecided.extend(self.cover.unseen())
        self.choice = choice

    def decide(self, now: float, most: int = SLICE) -> None:
        """Decide whether each queued stream is covered, ``most`` of them at most."""
        undecided, members = self._undecided, self.members
        for _ in range(min(most, len(undecided))):
            stream = members.get(undecided.popleft())
            if stream is not None:
                self._decide(stream, now)

    def _decide(self, stream: Stream, now: float) -> None:
        covered = self.cover.covers(stream.job_id, self.choice)
        self._uncount(stream)
        if covered:
            policies = stream.policies()
            for policy in policies:
                self._policies[policy] += 1
            # Most jobs wait with one policy: it is kept alone, not in a tuple of its own.
            self._covered[stream] = next(iter(policies)) if len(policies) == 1 else tuple(policies)
            untrack(self._covered)  # a table of every job, tracked again by what was put in it
        swept = stream.sweep
        if covered != swept.covered:
            swept.covered = covered
            if covered:
                swept.covered_at = now
            self.flips += 1
            self._cover_changed(stream, now)

    def _uncount(self, stream: Stream) -> None:
        counted = self._covered.pop(stream, ())
        for policy in counted if isinstance(counted, tuple) else (counted,):
            _add(self._policies, policy, -1)

    @property
    def undecided(self) -> bool:
        """Whether streams wait to be decided about."""
        return bool(self._undecided)

    # --- what the sweeper asks ------------------------------------------------------

    def demand(self) -> float:
        """Requests a second if every member were polled by GET at its policies' first pace."""
        return sum(rate * count for rate, count in self._demands.items())

    def covered(self) -> int:
        """The streams covered now."""
        return len(self._covered)

    def covered_ids(self) -> list[str]:
        """The IDs of the jobs covered now, a copy (the cover moves on while they are read).

        IDs, not streams: a job whose wait ends while they are read is let go at once.
        Until :meth:`copy_read`, :meth:`covered_as_copied` tells a stream that came since
        under a copied ID (the job waited on again) from the one copied.
        """
        self._came = set()
        ids = [stream.job_id for stream in self._covered]
        untrack(ids)  # a table of every job, read over many turns
        return ids

    def copy_read(self) -> None:
        """The copy :meth:`covered_ids` gave is read, or dropped: stop noting what comes."""
        self._came = None

    def covered_as_copied(self, stream: Stream) -> bool:
        """Whether a stream is covered, and is the one the last copy of IDs holds."""
        return stream.sweep.covered and (self._came is None or stream.job_id not in self._came)

    def policies(self) -> Collection[PollPolicy]:
        """The policies the covered streams wait with, each once."""
        return self._policies.keys()

    def deciding(self, listing: Listing, choice: Choice) -> int:
        """Return how many jobs a sweep of ``choice`` decides about by paging ``listing``."""
        on_it = len(self.cover.needing(listing))
        if choice.discovery and not listing.sub:
            on_it += len(self.cover.unseen())
        return on_it

    def decided_by(self, stream: Stream, choice: Choice, started: float) -> bool:
        """Whether a sweep paging ``choice``, started at ``started``, decides about a stream:
        covered since before the sweep (the one copied, while the copy is read), and on the
        lists it paged, as it is now."""
        if stream.sweep.covered_at > started or not self.covered_as_copied(stream):
            return False
        return self.cover.covers(stream.job_id, choice)


class Overdue:
    """The covered streams a sweep found overdue for a safety GET: counted, and the longest
    overdue kept, as many as the safety share may grant at once (``most``), not all of them."""

    def __init__(self, most: float) -> None:
        self.count = 0
        self._most = most
        # The least overdue of those kept on top, to give way to one more overdue.
        self._kept: list[tuple[float, int, Stream]] = []

    def __repr__(self) -> str:
        return f"Overdue(count={self.count}, kept={len(self._kept)})"

    def add(self, stream: Stream) -> None:
        """Count a stream overdue."""
        self.count += 1
        entry = (-stream.sweep.fetched_at, -self.count, stream)
        if len(self._kept) < self._most:
            heapq.heappush(self._kept, entry)
        elif entry > self._kept[0]:
            heapq.heapreplace(self._kept, entry)

    def longest(self, most: int) -> list[Stream]:
        """Return the ``most`` longest overdue (the longest without a GET first)."""
        return [stream for _, _, stream in sorted(self._kept, reverse=True)[:most]]


@memo(maxsize=64)
def _pace(initial_delay: float) -> float:
    """Return the requests a second a first delay asks: one number for every job it is asked of."""
    return 1.0 / initial_delay


def _add(counter: Counter[_Key], key: _Key, sign: int) -> None:
    left = counter[key] + sign
    if left:
        counter[key] = left
    else:
        del counter[key]  # what is left are the keys in use


def slices(items: list[_Item], size: int = SLICE) -> Iterator[list[_Item]]:
    """Yield ``items`` a slice at a time."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
