"""The hub's poll and list functions over the request path, shared in a fleet.

A poll is one try, no retries: the hub polls again with backoff. In a fleet
(:mod:`imagejobs.fleet.looks`), a poll first asks Redis whether another
process looked at the job recently enough: then its snapshots serve instead of
a GET. Otherwise this process claims the look, GETs the job and publishes the
answer for the others. A page of a list is shared the same way
(:mod:`imagejobs.fleet.pages`): a page newer than this process's last of it
serves instead of a request; one another process is fetching is waited for.
Only once the service has accepted this client's own credentials, and not
since a 401 or 403: a snapshot or a page in Redis is never an answer to
credentials the service refuses, whoever shares the keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from imagejobs.core.codec import Page, read_job_page, read_sub_job_page, to_wire
from imagejobs.core.errors import ImageJobsError
from imagejobs.core.models import ImageJob, ImageJobInfo, SubJob
from imagejobs.core.urls import ProjectUrls, with_query
from imagejobs.fleet.looks import SharedLooks
from imagejobs.fleet.pages import SharedPages
from imagejobs.fleet.shared import Fleet
from imagejobs.planning.sweeps import PAGE_SIZE, Listing
from imagejobs.scheduling.looks import Look, LookResult, PageResult
from imagejobs.timing.clock import Clock
from imagejobs.timing.gate import Gate
from imagejobs.transport.answers import KnownJobs
from imagejobs.transport.requester import Call, Requester

__all__ = ["SHARED_PAGE_WAIT", "SHARED_WAIT", "Poller"]

logger = logging.getLogger("imagejobs")

_T = TypeVar("_T")

SHARED_WAIT = 0.25
"""Seconds before looking again at a job another process of the fleet is fetching."""

SHARED_PAGE_WAIT = 0.1
"""Seconds between two looks in Redis at a page another process of the fleet is fetching."""


class Poller:
    """Looks at jobs and pages lists for a client's hub (see :mod:`imagejobs.scheduling.looks`)."""

    def __init__(
        self,
        requester: Requester,
        jobs: KnownJobs,
        urls: ProjectUrls,
        clock: Clock,
        fleet: Fleet | None = None,
    ) -> None:
        self._requester = requester
        self._jobs = jobs
        self._urls = urls
        self._clock = clock
        self._fleet = fleet
        self._looks = None if fleet is None else SharedLooks(fleet)
        self._pages = None if fleet is None else SharedPages(fleet)
        self._asking: asyncio.Future[None] | None = None
        self.on_end: Callable[[str], None] | None = None
        """Told of each job whose end another process of the fleet kept (see :meth:`poll`)."""
        self._following = False

    def __repr__(self) -> str:
        return f"Poller(fleet={self._looks is not None})"

    async def poll(
        self, job_id: str, priority: float, call_gate: Gate | None, look: Look
    ) -> LookResult:
        """Look at a job once: a GET, or in a fleet another process's recent look."""
        self._requester.check()
        known = self._jobs[job_id]
        call = Call(known.url, known.read, "job", job_id, look.source)
        if self._looks is not None:
            if not self._following and self.on_end is not None:
                self._following = True  # from the first look on, in the loop that runs them
                self._looks.follow_news(self.on_end)
            result = await self._shared_poll(self._looks, call, priority, call_gate, look)
        else:
            job = await self._requester.attempt(call, priority, call_gate)
            result = LookResult(((job, self._clock.monotonic()),), look.mark)
        if result.jobs and result.jobs[-1][0].is_terminal:
            # Its end is seen: the hub asks no more, so memory follows the jobs still waited on.
            self._jobs.let_go(job_id)
        return result

    async def _shared_poll(
        self,
        fleet: SharedLooks,
        call: Call[ImageJob],
        priority: float,
        gate: Gate | None,
        look: Look,
    ) -> LookResult:
        claim = ""
        try:
            shared = await fleet.look(call.url, look.fresh_after, look.mark)
            claim = "" if shared is None else shared.claim
            if shared is not None and not claim and not await self._vouched():
                shared = None  # its credentials not vouched for by the service: see for itself
            replayed: tuple[tuple[ImageJob, float], ...] = ()
            mark = look.mark
            if shared is not None and shared.entries:
                try:
                    replayed = tuple((call.read(body), at) for _, body, at in shared.entries)
                    mark = shared.entries[-1][0]
                except ImageJobsError:
                    logger.warning("a snapshot in Redis is not a job: fetching %s", call.url)
                    shared = None
            if shared is not None and shared.state == "wait":
                return LookResult(replayed, mark, own=False, retry_in=SHARED_WAIT)
            if shared is not None and shared.state == "fresh":
                return LookResult(replayed, mark, own=False)
            job = await self._attempt(call, priority, gate)
            answered = self._clock.monotonic()
            if claim:
                body = json.dumps(to_wire(job), separators=(",", ":"), sort_keys=True).encode()
                published = await fleet.publish(
                    call.url,
                    claim,
                    body,
                    final=job.is_terminal,
                    answered=answered,
                    job_id=call.job_id or job.id,
                )
                claim = ""  # published or not, the fleet gives it back
                mark = published or mark
            return LookResult((*replayed, (job, answered)), mark)
        finally:
            if claim:
                fleet.let_go(call.url, claim)  # no answer to share: another process may look

    async def list_page(
        self, listing: Listing, offset: int, priority: float, call_gate: Gate | None
    ) -> PageResult:
        """Fetch one page of the job or sub-job list a sweep pages, once (in a fleet, maybe
        take the page another process fetched)."""
        self._requester.check()
        query: dict[str, str | int | None] = {
            "job_type": listing.job_type,
            "status": listing.status,
            "offset": offset,
            "limit": PAGE_SIZE,
        }
        what, url = "job list", with_query(self._urls.job_list, query)
        if listing.sub:
            what, url = "sub-job list", with_query(self._urls.sub_job_list, query)
        body = b""

        def read(answer: bytes) -> Page[ImageJobInfo | SubJob]:
            nonlocal body
            body = answer  # kept as it came, for the fleet
            page: Page[Any] = (read_sub_job_page if listing.sub else read_job_page)(answer)
            return page

        call = Call(url, read, what, source="sweep")
        claim = ""
        try:
            if self._pages is not None:
                shared = await self._shared_page(self._pages, call, priority)
                if isinstance(shared, PageResult):
                    return shared
                claim = shared
            page = await self._attempt(call, priority, call_gate)
            answered = self._clock.monotonic()
            if claim and self._pages is not None:
                await self._pages.publish(url, claim, body, answered)
                claim = ""  # published or not, the fleet gives it back
            return PageResult(page, answered)
        finally:
            if claim and self._pages is not None:
                self._pages.let_go(url, claim)  # no page to share: another process may fetch it

    async def _shared_page(
        self, pages: SharedPages, call: Call[Page[ImageJobInfo | SubJob]], wanted_at: float
    ) -> PageResult | str:
        """Return the page another process fetched, or the claim to fetch it under ("": none).

        ``wanted_at`` is when the sweep became due. A page another process is fetching
        is waited for, as long as a request may take.
        """
        give_up = self._clock.monotonic() + self._requester.timeout
        while True:
            shared = await pages.take(call.url, wanted_at)
            if shared is None or shared.claim:
                return "" if shared is None else shared.claim
            if not await self._vouched():
                return ""  # its credentials not vouched for by the service: see for itself
            if shared.state == "fresh":
                try:
                    return PageResult(call.read(shared.body), shared.at, own=False)
                except ImageJobsError:
                    logger.warning("a page in Redis is not a list page: fetching %s", call.url)
                    return ""
            if self._clock.monotonic() >= give_up:
                return ""
            await self._clock.sleep(SHARED_PAGE_WAIT)

    def sharers(self) -> int:
        """Return how many processes page the same lists: a fleet's members, or one."""
        return 1 if self._fleet is None else self._fleet.members

    def align(self, when: float, period: float) -> float:
        """Return when a sweep due at ``when`` goes: in a fleet, at the fleet's next instant
        on a grid of ``period``, so that the processes' sweeps take each other's pages."""
        return when if self._pages is None else self._pages.tick(when, period)

    async def _vouched(self) -> bool:
        """Whether the service accepted this client's credentials on its last word on them.

        Until it has said, the one request of this client that asks it is waited for:
        the others take what the fleet has once it says yes, instead of each asking.
        """
        while not self._requester.accepted and self._asking is not None:
            await asyncio.shield(self._asking)
        return self._requester.accepted

    async def _attempt(self, call: Call[_T], priority: float, gate: Gate | None) -> _T:
        """Send a request; while the service has not vouched for these credentials, it asks."""
        if self._requester.accepted or self._asking is not None:
            return await self._requester.attempt(call, priority, gate)
        asking = self._asking = asyncio.get_running_loop().create_future()
        try:
            return await self._requester.attempt(call, priority, gate)
        finally:
            self._asking = None
            asking.set_result(None)
