"""One sweep's paging: the pages it walked, those it sent, and when they were answered."""

from __future__ import annotations

from imagejobs import BadRequest, ImageJobInfo, JobStatus, JobType, SubJob
from imagejobs.core.codec import Page
from imagejobs.planning.sweeps import Choice, Listing, Sighting
from imagejobs.scheduling.looks import PageResult
from imagejobs.scheduling.sweeper import page_lists
from imagejobs.timing.gate import Gate

TYPE = JobType.CREATE_SERVER
RUNNING = Listing(TYPE.value, "RUNNING")
WAITING = Listing(TYPE.value, "WAITING")
JOBS = [ImageJobInfo(id=f"{n:03d}", status=JobStatus.RUNNING, job_type=TYPE) for n in range(150)]


async def test_a_sweep_counts_the_pages_it_sent_and_when_the_others_were_answered() -> None:
    asked: list[int] = []

    async def list_page(
        listing: Listing, offset: int, priority: float, gate: Gate | None
    ) -> PageResult:
        if listing == WAITING:
            raise BadRequest(400, "WKS.0001", "no such list")
        asked.append(offset)
        page: Page[ImageJobInfo | SubJob] = Page(len(JOBS), tuple(JOBS[offset : offset + 100]))
        if offset == 0:  # another process of the fleet sent it, before the sweep was due
            return PageResult(page, priority - 1.0, own=False)
        return PageResult(page, priority + 0.5)

    refused: set[Listing] = set()
    sighting = Sighting(lambda job_id: True, lambda job_id: False)
    found = await page_lists(
        list_page,
        Choice([RUNNING, WAITING]),
        sighting,
        counts={},
        worth={},
        refused=refused,
        priority=100.0,
        gate=None,
    )
    assert len(asked) == 2  # the RUNNING list in two pages (they overlap a little)
    assert found.counts == {RUNNING: 150, WAITING: 0}
    assert refused == {WAITING}
    assert found.incomplete == {WAITING}
    # Walked: both pages and the request refused; sent: all but the page taken.
    assert (found.walked, found.sent) == (3, 2)
    assert (found.oldest, found.newest) == (99.0, 100.5)
    assert all(sighting.judge(job.id, None) is not None for job in JOBS)


async def test_a_sweep_of_its_own_pages_saw_the_lists_when_it_started() -> None:
    async def list_page(
        listing: Listing, offset: int, priority: float, gate: Gate | None
    ) -> PageResult:
        return PageResult(Page(0, ()), priority + 0.2)

    found = await page_lists(
        list_page,
        Choice([RUNNING]),
        Sighting(lambda job_id: True, lambda job_id: False),
        counts={},
        worth={},
        refused=set(),
        priority=10.0,
        gate=None,
    )
    assert (found.walked, found.sent) == (1, 1)
    # The oldest is never later than the sweep's start; the newest is its own page's answer.
    assert (found.oldest, found.newest) == (10.0, 10.2)
