"""Sweeps: which of many jobs changed, read from the job lists a hundred jobs a request. Pure.

A sweep pages the list of active jobs (``WAITING`` or ``RUNNING``) of each job
type in play. A job that is still on its list, with the same number of
sub-jobs, has not ended and needs no request of its own; a job that left its
list, or that the list shows otherwise changed, is fetched with a GET. A list
is a hint, never proof: only a GET ends a job, so a list that skips a job
while it is paged costs a GET, never a wrong outcome.

Which lists to page is a matter of cost: a list is worth paging when the jobs
it covers outnumber its pages. Old finished jobs are never paged: the lists
are always filtered by an active status.

A job whose subscribers want every sub-job transition is swept only if the
sub-job lists cover its active sub-jobs too: one that left its list (or
moved) gets a GET, and its transitions come from that GET's snapshot.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from imagejobs.core.codec import MAX_PAGE_SIZE
from imagejobs.core.models import ImageJob, ImageJobInfo, JobStatus, JobType, SubJob, SubJobStatus
from imagejobs.planning.allocation import SWEEP_SHARE

__all__ = [
    "ACTIVE_STATUSES",
    "ACTIVE_SUB_STATUSES",
    "PAGE_SIZE",
    "SWEEP_SHARE",
    "JobSummary",
    "Listing",
    "Plan",
    "Verdict",
    "active_sub_jobs",
    "pages_for",
    "plan_round",
    "read_round",
]

ACTIVE_STATUSES = (JobStatus.WAITING, JobStatus.RUNNING)
ACTIVE_SUB_STATUSES = (
    SubJobStatus.WAITING,
    SubJobStatus.RUNNING,
    SubJobStatus.ROLLBACK,
    SubJobStatus.ABORTING,
)
"""Sub-job statuses on the way somewhere: a sub-job in one is looked for on its list."""

PAGE_SIZE = MAX_PAGE_SIZE
"""Items a sweep asks for per page: the most the service gives."""

# Job types a first sweep looks under for jobs nobody has seen yet: the open set's
# known members (the API page's three and the SDK's four).
DISCOVERABLE_TYPES = tuple(member.value for member in JobType)


@attrs.frozen(order=True)
class Listing:
    """One list a sweep pages: the jobs (or ``sub`` jobs) of one type in one active status."""

    job_type: str
    status: str
    sub: bool = False


SubJobs = Collection[tuple[str, Listing]]
"""A watched job's active sub-jobs: each one's ID and the sub-job list it should be on."""


_SETTLED_SUB_STATUSES = (SubJobStatus.SUCCESS, SubJobStatus.FAILED)


def active_sub_jobs(job: ImageJob) -> frozenset[tuple[str, Listing]] | None:
    """Return the job's active sub-jobs and their lists, or None if one cannot be followed.

    None when a sub-job has no type, or is in a status that is neither settled
    nor active (``ABNORMAL``, a value the enum does not know): where it goes
    next, no list a sweep pages may show.
    """
    active = []
    for sub in job.sub_jobs:
        if sub.status in _SETTLED_SUB_STATUSES:
            continue
        if sub.job_type is None or sub.status not in ACTIVE_SUB_STATUSES:
            return None
        active.append((sub.id, Listing(sub.job_type.value, sub.status.value, sub=True)))
    return frozenset(active)


@attrs.frozen
class JobSummary:
    """What a list item (or a snapshot) says of a job: its type, status and sub-job count.

    All a sweep can compare: a job whose summary a list shows unchanged has not ended.
    """

    job_type: str | None
    status: JobStatus
    sub_jobs_total: int | None

    @classmethod
    def of(cls, job: ImageJob | ImageJobInfo) -> JobSummary:
        """Return what a snapshot or a list item says of its job."""
        job_type = None if job.job_type is None else job.job_type.value
        return cls(job_type, job.status, job.sub_jobs_total)

    @property
    def listing(self) -> Listing | None:
        """Return the list this job should be on, or None if it is on none a sweep pages."""
        if self.job_type is None or self.status not in ACTIVE_STATUSES:
            return None
        return Listing(self.job_type, self.status.value)


@attrs.frozen
class Plan:
    """One sweep: the lists to page, and the jobs it decides about."""

    listings: tuple[Listing, ...]
    covered: frozenset[str]

    @property
    def pages(self) -> int:
        """The least number of requests it takes (one page per list)."""
        return len(self.listings)


@attrs.frozen
class Verdict:
    """What a sweep found: jobs the lists show still active (as they show them), and jobs to GET."""

    listed: Mapping[str, JobSummary]
    to_get: frozenset[str]


def pages_for(count: int) -> int:
    """Return the requests it takes to page a list of ``count`` items (at least one)."""
    return max(1, math.ceil(count / PAGE_SIZE))


def plan_round(
    jobs: Mapping[str, JobSummary | None],
    counts: Mapping[Listing, int],
    discoverable: Iterable[str] = DISCOVERABLE_TYPES,
    subs: Mapping[str, SubJobs] | None = None,
    refused: Collection[Listing] = (),
) -> Plan:
    """Choose the lists whose pages cost fewer requests than a GET of each job they cover.

    ``jobs`` are the candidates: what is known of each (``None`` for a job not
    seen yet); ``counts`` the totals the lists last reported. Per job type in
    play, its ``RUNNING`` list (and its ``WAITING`` list while one of its jobs
    waits) is paged when it covers more jobs than it has pages. Jobs not seen
    yet are looked for under every ``discoverable`` type too, when they
    outnumber those lists' pages; otherwise they are left to GETs. A job in
    ``subs`` (one whose transitions are wanted) is covered only if the sub-job
    lists of all its active sub-jobs are paged too, each chosen when the jobs
    needing it outnumber its pages. A list in ``refused`` (the service would not
    page it) is never chosen, nor are the jobs that would need it covered.
    """
    subs = subs or {}
    by_type: dict[str, int] = {}
    waiting: set[str] = set()
    unknown: list[str] = []
    for job_id, known in jobs.items():
        listing = None if known is None else known.listing
        if listing is None:
            if known is None:
                unknown.append(job_id)
            continue
        by_type[listing.job_type] = by_type.get(listing.job_type, 0) + 1
        if listing.status == JobStatus.WAITING:
            waiting.add(listing.job_type)
    chosen = _job_lists(by_type, waiting, counts)
    discovery = _discovery_lists(len(unknown), sorted({*discoverable, *by_type}), chosen, counts)
    chosen += discovery + _sub_job_lists(subs, counts)
    chosen = [listing for listing in chosen if listing not in refused]
    paged = set(chosen)
    covered = {
        job_id
        for job_id, known in jobs.items()
        if (known is None and discovery and job_id not in subs)
        or (
            known is not None
            and known.listing in paged
            and all(listing in paged for _, listing in subs.get(job_id, ()))
        )
    }
    return Plan(tuple(chosen), frozenset(covered))


def _job_lists(
    by_type: Mapping[str, int], waiting: set[str], counts: Mapping[Listing, int]
) -> list[Listing]:
    """Per job type, its RUNNING (and WAITING) list, if it covers more jobs than it has pages."""
    chosen: list[Listing] = []
    for job_type, count in sorted(by_type.items()):
        lists = [Listing(job_type, JobStatus.RUNNING.value)]
        if job_type in waiting:
            lists.append(Listing(job_type, JobStatus.WAITING.value))
        if count > sum(pages_for(counts.get(listing, count)) for listing in lists):
            chosen.extend(lists)
    return chosen


def _discovery_lists(
    unknown: int, types: list[str], chosen: list[Listing], counts: Mapping[Listing, int]
) -> list[Listing]:
    """Every active list of every type not chosen yet, if the unseen jobs outnumber their pages."""
    extra = [
        Listing(job_type, status.value)
        for job_type in types
        for status in ACTIVE_STATUSES
        if Listing(job_type, status.value) not in chosen
    ]
    if unknown > sum(pages_for(counts.get(listing, 0)) for listing in extra):
        return extra
    return []


def _sub_job_lists(subs: Mapping[str, SubJobs], counts: Mapping[Listing, int]) -> list[Listing]:
    """The sub-job lists needed by more watched jobs than they have pages."""
    needing: dict[Listing, set[str]] = {}
    on_list: dict[Listing, int] = {}
    for job_id, active in subs.items():
        for _, listing in active:
            needing.setdefault(listing, set()).add(job_id)
            on_list[listing] = on_list.get(listing, 0) + 1
    return [
        listing
        for listing, needers in sorted(needing.items())
        if len(needers) > pages_for(counts.get(listing, on_list[listing]))
    ]


def read_round(
    plan: Plan,
    found: Mapping[Listing, Sequence[ImageJobInfo | SubJob]],
    jobs: Mapping[str, JobSummary | None],
    subs: Mapping[str, SubJobs] | None = None,
    incomplete: Collection[Listing] = (),
) -> Verdict:
    """Decide, for each job the plan covers, whether the lists show it unchanged.

    A covered job must be GET when it is on none of the lists, when a list
    shows it ended or in a status no sweep pages, when two lists disagree
    about it, or when its number of sub-jobs changed; a job in ``subs`` (its
    transitions are wanted, and only a GET tells them) also when its status
    changed, when one of its active sub-jobs is not on its list, or when a
    sub-job list shows it one it does not have there. A job that one of the
    ``incomplete`` lists (not paged to the end) may hold is neither: this
    sweep cannot tell. Every other covered job was seen, as the list shows it.
    """
    subs = subs or {}
    unsure = set(incomplete)
    shown: dict[str, ImageJobInfo] = {}
    doubtful: set[str] = set()
    listed_subs: dict[str, set[tuple[str, Listing]]] = {}
    for listing, items in found.items():
        if listing.sub:
            for sub in items:
                parent = sub.job_id if isinstance(sub, SubJob) else None
                if parent is not None and parent in subs:
                    place = Listing(listing.job_type, sub.status.value, sub=True)
                    listed_subs.setdefault(parent, set()).add((sub.id, place))
            continue
        for info in items:
            if not isinstance(info, ImageJobInfo) or info.id not in plan.covered:
                continue
            earlier = shown.setdefault(info.id, info)
            if earlier is not info and JobSummary.of(earlier) != JobSummary.of(info):
                doubtful.add(info.id)
    listed: dict[str, JobSummary] = {}
    to_get: set[str] = set()
    for job_id in plan.covered:
        shown_as = shown.get(job_id)
        before = jobs.get(job_id)
        now = None if shown_as is None else JobSummary.of(shown_as)
        if unsure and _may_be_on(unsure, before, subs.get(job_id, ())):
            continue
        if (
            now is None
            or job_id in doubtful
            or now.listing is None
            or _grew(before, now)
            or (
                job_id in subs
                and (now != before or listed_subs.get(job_id, set()) != set(subs[job_id]))
            )
        ):
            to_get.add(job_id)
        else:
            listed[job_id] = now
    return Verdict(listed, frozenset(to_get))


def _may_be_on(unsure: set[Listing], before: JobSummary | None, active: SubJobs) -> bool:
    """Whether a job (or one of its sub-jobs) may be on one of the lists not paged to the end."""
    if any(listing in unsure for _, listing in active):
        return True
    if before is None or before.job_type is None:
        return any(not listing.sub for listing in unsure)
    return any(not listing.sub and listing.job_type == before.job_type for listing in unsure)


def _grew(before: JobSummary | None, now: JobSummary) -> bool:
    """Whether the number of sub-jobs changed (a count one side lacks is no news)."""
    if before is None or before.sub_jobs_total is None or now.sub_jobs_total is None:
        return False
    return before.sub_jobs_total != now.sub_jobs_total
