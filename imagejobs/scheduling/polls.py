"""The hub's poll and list functions over the request path, shared in a fleet.

A poll is one try, no retries: the hub polls again with backoff. In a fleet
(:mod:`imagejobs.fleet.shared`), a poll first asks Redis whether another
process looked at the job recently enough: then its snapshots serve instead of
a GET. Otherwise this process claims the look, GETs the job and publishes the
answer for the others. Only once the service has accepted this client's own
credentials, and not since a 401 or 403: a snapshot in Redis is never an
answer to credentials the service refuses, whoever shares the keys.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from imagejobs.core.codec import Page, read_job_page, read_sub_job_page, to_wire
from imagejobs.core.errors import ImageJobsError
from imagejobs.core.models import ImageJob, ImageJobInfo, SubJob
from imagejobs.core.urls import ProjectUrls, with_query
from imagejobs.fleet.shared import Fleet
from imagejobs.planning.sweeps import PAGE_SIZE, Listing
from imagejobs.scheduling.looks import Look, LookResult
from imagejobs.timing.clock import Clock
from imagejobs.timing.gate import Gate
from imagejobs.transport.answers import KnownJobs
from imagejobs.transport.requester import Call, Requester

__all__ = ["SHARED_WAIT", "Poller"]

logger = logging.getLogger("imagejobs")

SHARED_WAIT = 0.25
"""Seconds before looking again at a job another process of the fleet is fetching."""


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

    def __repr__(self) -> str:
        return f"Poller(fleet={self._fleet is not None})"

    async def poll(
        self, job_id: str, priority: float, call_gate: Gate | None, look: Look
    ) -> LookResult:
        """Look at a job once: a GET, or in a fleet another process's recent look."""
        self._requester.check()
        known = self._jobs[job_id]
        call = Call(known.url, known.read, "job", job_id, look.source)
        if self._fleet is not None:
            return await self._shared_poll(self._fleet, call, priority, call_gate, look)
        job = await self._requester.attempt(call, priority, call_gate)
        return LookResult(((job, self._clock.monotonic()),), look.mark)

    async def _shared_poll(
        self, fleet: Fleet, call: Call[ImageJob], priority: float, gate: Gate | None, look: Look
    ) -> LookResult:
        claim = ""
        try:
            shared = await fleet.look(call.url, look.fresh_after, look.mark)
            claim = "" if shared is None else shared.claim
            if shared is not None and not claim and not self._requester.accepted:
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
            job = await self._requester.attempt(call, priority, gate)
            answered = self._clock.monotonic()
            if claim:
                body = json.dumps(to_wire(job), separators=(",", ":"), sort_keys=True).encode()
                published = await fleet.publish(
                    call.url, claim, body, final=job.is_terminal, answered=answered
                )
                claim = ""  # published or not, the fleet gives it back
                mark = published or mark
            return LookResult((*replayed, (job, answered)), mark)
        finally:
            if claim:
                fleet.let_go(call.url, claim)  # no answer to share: another process may look

    async def list_page(
        self, listing: Listing, offset: int, priority: float, call_gate: Gate | None
    ) -> Page[ImageJobInfo | SubJob]:
        """Fetch one page of the job or sub-job list a sweep pages, once."""
        self._requester.check()
        query: dict[str, str | int | None] = {
            "job_type": listing.job_type,
            "status": listing.status,
            "offset": offset,
            "limit": PAGE_SIZE,
        }
        call: Call[Page[Any]]
        if listing.sub:
            url = with_query(self._urls.sub_job_list, query)
            call = Call(url, read_sub_job_page, "sub-job list", source="sweep")
        else:
            url = with_query(self._urls.job_list, query)
            call = Call(url, read_job_page, "job list", source="sweep")
        page: Page[ImageJobInfo | SubJob] = await self._requester.attempt(call, priority, call_gate)
        return page
