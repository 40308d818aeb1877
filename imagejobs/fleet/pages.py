"""Shared pages: one process pages a list for the whole fleet, the others take its pages.

The sweeps of every process of a fleet page the same lists (a job type in an
active status, the project's): a page one process fetched is kept in Redis for
:data:`PAGE_TTL`, and another process paging the same list (the same URL:
listing, offset and limit) takes it instead of sending a request. A page is
claimed with a lease before it is fetched, as a look is (:mod:`.looks`), so
two processes never fetch one page at once: the second waits for the first's.

A process takes only a page newer than the last it had of that URL, and
answered no more than :data:`PAGE_AGE` before its sweep became due: a sweep
sees the lists as of about one moment, as a lone process's does. So that
there is such a page to take, the processes' sweeps fall due together: on
the instants of a grid on Redis's clock (:meth:`SharedPages.tick`), the
period their policies' first gap; all due at once, the claims make one
request of each page for them all. A process's first page of a URL may be
as old as Redis keeps it (it has no last one, and its sweep is not yet on
the grid). The scripts are :data:`~.scripts.PAGE` and
:data:`~.scripts.PUBLISH_PAGE`.
"""

from __future__ import annotations

import math
import time

import attrs

from .looks import url_digest
from .shared import CLAIM_LEASE, Fleet
from .undo import Taken

__all__ = ["PAGE_AGE", "PAGE_TTL", "TICK_SLACK", "SharedPage", "SharedPages"]

PAGE_AGE = 0.5
"""Seconds before a sweep became due that a page it takes may have been answered.

The pages of one sweep must show the lists as of about one moment, as one process's
own do (paged side by side, a fraction of a second apart): a job that moved from one
list to another between two pages far apart would be on neither, and cost a GET, and
items shift between the pages of a list that changed meanwhile."""

TICK_SLACK = 0.25
"""The part of a period a time may be past an instant of the fleet's grid and fall on it."""

PAGE_TTL = 10.0
"""Seconds a page is kept for the fleet: longer than a sweep may take."""

_SEEN_KEPT = 1024
"""URLs whose last page is remembered before those past :data:`PAGE_TTL` are forgotten."""


@attrs.frozen
class SharedPage:
    """What the fleet has of a page when a process is about to fetch it.

    ``state`` is ``"fresh"`` (a page newer than this process's last: its
    ``body``, answered at ``at`` on this process's monotonic clock),
    ``"wait"`` (another process is fetching it now) or ``"go"`` (this process
    holds the page, as ``claim``).
    """

    state: str
    body: bytes = b""
    at: float = 0.0
    claim: str = ""


class SharedPages:
    """The pages of lists a process shares with its fleet."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        # Each URL's last page this process had: when it was answered, as Redis wrote it
        # (compared as Redis wrote it, so an offset measured anew never makes an old page
        # look new), and when this process had it, to forget it once no page is that old.
        self._seen: dict[str, tuple[str, float]] = {}

    def __repr__(self) -> str:
        return f"SharedPages({self._fleet!r}, urls={len(self._seen)})"

    def _keys(self, url: str) -> list[str]:
        digest, key_for = url_digest(url), self._fleet.key_for
        return [key_for(f"page:{digest}"), key_for(f"page-lease:{digest}")]

    async def take(self, url: str, wanted_at: float) -> SharedPage | None:
        """Take a page of ``url`` newer than this process's last and answered at most
        :data:`PAGE_AGE` before ``wanted_at`` (monotonic: when the sweep that wants it
        became due), or claim its fetch. The first page of a URL a process pages may be
        as old as Redis keeps them: it has no last one to compare.

        None if Redis is not answering: then fetch without sharing.
        """
        fleet = self._fleet
        keys = [*self._keys(url), fleet.key_for("members")]
        seen = self._seen.get(url)
        newer_than, fresh_ms = "0", 0.0
        if seen is not None:
            await fleet.join()  # Redis's clock known: when it became due can be put on it
            newer_than, fresh_ms = seen[0], fleet.to_redis(wanted_at - PAGE_AGE) or 1e18
        claim = fleet.new_claim()
        args = [newer_than, fleet.member, int(CLAIM_LEASE * 1000), claim, f"{fresh_ms:.3f}"]
        result = await fleet.call("page", keys, args, Taken("lease", keys[1], claim))
        if result is None:
            return None
        state = result[0].decode()
        if state == "go":
            return SharedPage(state, claim=claim)
        if state == "wait":
            return SharedPage(state)
        at = result[2].decode()
        self._saw(url, at)
        return SharedPage(state, bytes(result[3]), fleet.to_local(float(at)))

    async def publish(self, url: str, claim: str, body: bytes, answered: float) -> None:
        """Keep a page for the fleet and let go of its claim."""
        keys = self._keys(url)
        answered_ms = self._fleet.to_redis(answered)
        if answered_ms is None:
            self.let_go(url, claim)
            return
        args = [body, claim, int(PAGE_TTL * 1000), f"{answered_ms:.3f}"]
        gives = Taken("lease", keys[1], claim)
        result = await self._fleet.call_giving_back("publish_page", keys, args, gives)
        if result is not None:
            self._saw(url, result[0].decode())

    def tick(self, when: float, period: float) -> float:
        """Return the instant of a grid of ``period`` seconds on Redis's clock (the same
        instants for every process of the fleet) that ``when`` (monotonic) falls on.

        The next one, unless ``when`` is a little past one (:data:`TICK_SLACK` of the
        period): a sweep planned from the last, which started a moment after its instant,
        stays on the grid instead of slipping to the next.
        """
        fleet = self._fleet
        at = fleet.to_redis(when)
        if at is None or not fleet.sharing or period <= 0:
            return when
        step = period * 1000
        return fleet.to_local(math.ceil(at / step - TICK_SLACK) * step)

    def let_go(self, url: str, claim: str) -> None:
        """Give up a claimed page that found nothing to share (its request failed)."""
        self._fleet.unlease(self._keys(url)[1], claim)

    def _saw(self, url: str, at: str) -> None:
        now = time.monotonic()
        self._seen.pop(url, None)
        self._seen[url] = (at, now)
        if len(self._seen) > _SEEN_KEPT:
            # Oldest first: every page taken since is newer than these, kept or not.
            for old, (_, had) in list(self._seen.items()):
                if now - had < PAGE_TTL:
                    break
                del self._seen[old]
