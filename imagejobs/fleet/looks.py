"""Shared looks: one GET of a job for the whole fleet, its snapshots kept in Redis.

A job's GET is claimed with a lease (:data:`~.shared.CLAIM_LEASE`); the answer
is kept in a short Redis stream of the job's distinct snapshots, so another
process due for a look takes those instead of asking the gateway again, and
replays every change it has not seen. The scripts are :data:`~.scripts.LOOK`
and :data:`~.scripts.PUBLISH`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import attrs

from .shared import CLAIM_LEASE, Fleet
from .undo import Taken

__all__ = [
    "KEPT_SNAPSHOTS",
    "NEWS_PERIOD",
    "SNAPSHOT_TTL",
    "SharedLook",
    "SharedLooks",
    "url_digest",
]

SNAPSHOT_TTL = 300.0
"""Seconds a job's shared snapshots are kept after the last one: longer than any poll gap."""

NEWS_PERIOD = 0.2
"""Seconds between two reads of the fleet's news of jobs ended."""

KEPT_SNAPSHOTS = 8
"""Distinct snapshots kept per job: a process that looks less often replays up to this many."""


def url_digest(url: str) -> str:
    """Return what names a URL's keys in Redis: a hash, short and of one length."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@attrs.frozen
class SharedLook:
    """What the fleet knows of a job when a process is due to look.

    ``state`` is ``"fresh"`` (another look was recent enough), ``"wait"``
    (another process is looking now), or ``"go"`` (this process holds the
    look, as ``claim``). ``entries`` are the snapshots after the caller's mark,
    oldest first, as ``(id, body, at)``; when fresh and there are none, the
    newest, its time being when it was last confirmed unchanged.
    """

    state: str
    entries: tuple[tuple[str, bytes, float], ...] = ()
    claim: str = ""


class SharedLooks:
    """The looks at jobs a process shares with its fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def __repr__(self) -> str:
        return f"SharedLooks({self._fleet!r})"

    def _keys(self, url: str) -> list[str]:
        digest, key_for = url_digest(url), self._fleet.key_for
        return [key_for(f"log:{digest}"), key_for(f"lease:{digest}"), key_for(f"seen:{digest}")]

    def follow_news(self, on_end: Callable[[str], None]) -> None:
        """Tell ``on_end`` of each job whose end another process kept for the fleet, as it is
        kept (read every :data:`NEWS_PERIOD`): a process waiting on it takes that snapshot
        at once, not at its next sweep or poll."""
        fleet, key = self._fleet, self._fleet.key_for("news")
        after = ""

        async def read() -> None:
            nonlocal after
            result = await fleet.call("news", [key], [after])
            if result is None:
                return
            after = bytes(result[0]).decode()
            for job_id in result[2]:
                on_end(bytes(job_id).decode())  # its own ends too: those it has taken already

        fleet.every(NEWS_PERIOD, read)

    async def look(self, url: str, fresh_after: float, mark: str) -> SharedLook | None:
        """Say whether another process looked at ``url`` since ``fresh_after`` (monotonic).

        Claims the look when nobody did and nobody is looking. None if Redis is
        not answering: then look without sharing.
        """
        fleet = self._fleet
        keys = [*self._keys(url), fleet.key_for("members")]
        await fleet.join()
        fresh_ms = fleet.to_redis(fresh_after) if math.isfinite(fresh_after) else None
        if fresh_ms is None:
            # Not known on Redis's clock (or asked for a look of its own): nothing is fresh
            # but a final snapshot.
            fresh_ms = 1e18 if fresh_after > 0 or fleet.to_redis(0.0) is None else -1e18
        claim = fleet.new_claim()
        args = [f"{fresh_ms:.3f}", mark, fleet.member, int(CLAIM_LEASE * 1000), claim]
        result = await fleet.call("look", keys, args, Taken("lease", keys[1], claim))
        if result is None:
            return None
        state = result[0].decode()
        taken = float(result[2])
        entries = []
        for entry_id, flat in result[3]:
            fields = dict(zip(flat[::2], flat[1::2], strict=False))
            entries.append((entry_id.decode(), bytes(fields[b"body"]), float(fields[b"at"])))
        if state == "fresh":
            # The newest snapshot holds until it was last confirmed unchanged.
            entries[-1] = (*entries[-1][:2], max(entries[-1][2], taken))
        local = tuple((entry_id, body, fleet.to_local(at)) for entry_id, body, at in entries)
        return SharedLook(state, local, claim if state == "go" else "")

    async def publish(
        self, url: str, claim: str, body: bytes, *, final: bool, answered: float, job_id: str
    ) -> str | None:
        """Keep a snapshot for the fleet and let go of the look; return the log's newest ID.

        A job's end is news for the fleet too (:meth:`follow_news`).
        """
        keys = [*self._keys(url), self._fleet.key_for("news")]
        ttl = int(SNAPSHOT_TTL * 1000)
        answered_ms = self._fleet.to_redis(answered)
        if answered_ms is None:
            self.let_go(url, claim)
            return None
        args = [body, claim, ttl, int(final), KEPT_SNAPSHOTS, f"{answered_ms:.3f}", job_id]
        gives = Taken("lease", keys[1], claim)
        result = await self._fleet.call_giving_back("publish", keys, args, gives)
        return None if result is None else bytes(result).decode()

    def let_go(self, url: str, claim: str) -> None:
        """Give up a claimed look that found nothing to share (its GET failed)."""
        self._fleet.unlease(self._keys(url)[1], claim)
