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
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import Literal, TypeVar

import attrs

from imagejobs.core.codec import MAX_PAGE_SIZE
from imagejobs.core.memo import memo
from imagejobs.core.models import ImageJob, ImageJobInfo, JobStatus, JobType, SubJob, SubJobStatus
from imagejobs.planning.allocation import SWEEP_SHARE

__all__ = [
    "ACTIVE_STATUSES",
    "ACTIVE_SUB_STATUSES",
    "PAGE_SIZE",
    "SWEEP_SHARE",
    "Choice",
    "Cover",
    "JobSummary",
    "Listing",
    "Plan",
    "Seen",
    "Sighting",
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

_Key = TypeVar("_Key", bound=Hashable)

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
        return _summary(job_type, job.status, job.sub_jobs_total)

    @property
    def listing(self) -> Listing | None:
        """Return the list this job should be on, or None if it is on none a sweep pages."""
        if self.job_type is None or self.status not in ACTIVE_STATUSES:
            return None
        return _listing(self.job_type, self.status.value)


@memo(maxsize=1024)
def _summary(job_type: str | None, status: JobStatus, sub_jobs_total: int | None) -> JobSummary:
    """One summary for all the jobs alike: a hub keeps one of each of its jobs."""
    return JobSummary(job_type, status, sub_jobs_total)


@memo(maxsize=256)
def _listing(job_type: str, status: str) -> Listing:
    """One list object for all the jobs on it: a sweep asks a hundred thousand jobs theirs."""
    return Listing(job_type, status)


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


class Choice:
    """The lists a sweep pages, and whether among them are the lists that look for jobs
    nobody has seen yet (see :meth:`Cover.choose`)."""

    __slots__ = ("discovery", "listings", "paged")

    def __init__(self, listings: Sequence[Listing] = (), *, discovery: bool = False) -> None:
        self.listings = tuple(listings)
        self.paged = frozenset(self.listings)
        self.discovery = discovery

    def __repr__(self) -> str:
        return f"Choice({list(self.listings)}, discovery={self.discovery})"

    @property
    def pages(self) -> int:
        """The least number of requests a sweep of it takes (one page per list)."""
        return len(self.listings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Choice):
            return NotImplemented
        return (self.listings, self.discovery) == (other.listings, other.discovery)

    def __hash__(self) -> int:
        return hash((self.listings, self.discovery))


class Cover:
    """The jobs sweeps may cover, counted as they come, change and go: which lists to page.

    :func:`plan_round` decides from a whole population at once; a cover is told of
    each job as it changes (:meth:`put`, :meth:`drop`), and keeps the counts that
    decision needs, per job type and per list, so that choosing the lists
    (:meth:`choose`) costs as much as there are lists, however many jobs there
    are. It keeps each job's summary and, per list, the jobs that need it, so
    that when a list is chosen or dropped the jobs whose cover that changes can be
    found (:meth:`needing`) without looking at the others.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, JobSummary | None] = {}
        self._subs: dict[str, frozenset[tuple[str, Listing]]] = {}
        """The active sub-jobs of the jobs whose transitions are wanted (only theirs)."""
        self._by_type: Counter[str] = Counter()
        self._waiting: Counter[str] = Counter()
        self._unseen: dict[str, None] = {}
        self._on: dict[Listing, dict[str, None]] = {}
        """The jobs (and, for a sub-job list, the watched jobs) each list would show."""
        self._sub_jobs_on: Counter[Listing] = Counter()

    def __repr__(self) -> str:
        return f"Cover(jobs={len(self._jobs)}, unseen={len(self._unseen)}, lists={len(self._on)})"

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def put(self, job_id: str, known: JobSummary | None, subs: SubJobs | None = None) -> None:
        """Count a job in, as ``known`` says (None: not seen yet), in place of what it was.

        ``subs``: its active sub-jobs if its transitions are wanted, else None.
        """
        active = None if subs is None else frozenset(subs)
        if job_id in self._jobs:
            if self._jobs[job_id] == known and self._subs.get(job_id) == active:
                return
            self.drop(job_id)
        self._jobs[job_id] = known
        if active is not None:
            self._subs[job_id] = active
        self._count(job_id, known, active, 1)

    def drop(self, job_id: str) -> None:
        """Count a job out (no longer a candidate, or gone)."""
        if job_id in self._jobs:
            self._count(job_id, self._jobs.pop(job_id), self._subs.pop(job_id, None), -1)

    def _count(
        self, job_id: str, known: JobSummary | None, subs: SubJobs | None, sign: int
    ) -> None:
        if known is None:
            if sign > 0:
                self._unseen[job_id] = None
            else:
                del self._unseen[job_id]
        elif (listing := known.listing) is not None:
            _add(self._by_type, listing.job_type, sign)
            if listing.status == JobStatus.WAITING:
                _add(self._waiting, listing.job_type, sign)
            self._mark(listing, job_id, sign)
        for listing in {listing for _, listing in subs or ()}:
            self._mark(listing, job_id, sign)
        for _, listing in subs or ():
            _add(self._sub_jobs_on, listing, sign)

    def _mark(self, listing: Listing, job_id: str, sign: int) -> None:
        if sign > 0:
            self._on.setdefault(listing, {})[job_id] = None
            return
        jobs = self._on[listing]
        del jobs[job_id]
        if not jobs:
            del self._on[listing]

    def choose(
        self,
        counts: Mapping[Listing, int],
        discoverable: Iterable[str] = DISCOVERABLE_TYPES,
        refused: Collection[Listing] = (),
        *,
        page_share: float = 1.0,
    ) -> Choice:
        """Choose the lists whose pages cost fewer requests than a GET of each job they cover.

        As :func:`plan_round` does, from the counts kept (see there).
        """
        chosen = _job_lists(self._by_type, self._waiting, counts, page_share)
        types = sorted({*discoverable, *self._by_type})
        discovery = _discovery_lists(len(self._unseen), types, chosen, counts, page_share)
        needed = [
            (listing, len(self._on[listing]), on_list)
            for listing, on_list in sorted(self._sub_jobs_on.items())
        ]
        chosen += discovery + _sub_job_lists(needed, counts, page_share)
        return Choice(
            [listing for listing in chosen if listing not in refused], discovery=bool(discovery)
        )

    def covers(self, job_id: str, choice: Choice) -> bool:
        """Whether the lists chosen decide about a job counted in: its own and its sub-jobs'."""
        if job_id not in self._jobs:
            return False
        known, subs = self._jobs[job_id], self._subs.get(job_id)
        if known is None:
            return choice.discovery and subs is None
        paged = choice.paged
        if known.listing not in paged:
            return False
        return subs is None or all(listing in paged for _, listing in subs)

    def needing(self, listing: Listing) -> Collection[str]:
        """Return the jobs counted in whose cover depends on ``listing`` being paged."""
        return self._on.get(listing, {}).keys()

    def unseen(self) -> Collection[str]:
        """Return the jobs counted in that nobody has seen yet (the discovery lists' to find)."""
        return self._unseen.keys()


def _add(counter: Counter[_Key], key: _Key, sign: int) -> None:
    left = counter[key] + sign
    if left:
        counter[key] = left
    else:
        del counter[key]


def plan_round(
    jobs: Mapping[str, JobSummary | None],
    counts: Mapping[Listing, int],
    discoverable: Iterable[str] = DISCOVERABLE_TYPES,
    subs: Mapping[str, SubJobs] | None = None,
    refused: Collection[Listing] = (),
    *,
    page_share: float = 1.0,
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
    page it) is never chosen, nor are the jobs that would need it covered. A page
    costs ``page_share`` of a request: less than one in a fleet whose processes
    take each other's pages.

    The whole population at once: a :class:`Cover` decides the same, kept up to date.
    """
    subs = subs or {}
    cover = Cover()
    for job_id, known in jobs.items():
        cover.put(job_id, known, subs.get(job_id))
    choice = cover.choose(counts, discoverable, refused, page_share=page_share)
    covered = frozenset(job_id for job_id in jobs if cover.covers(job_id, choice))
    return Plan(choice.listings, covered)


def _job_lists(
    by_type: Mapping[str, int],
    waiting: Mapping[str, int],
    counts: Mapping[Listing, int],
    page_share: float,
) -> list[Listing]:
    """Per job type, its RUNNING (and WAITING) list, if it covers more jobs than it has pages."""
    chosen: list[Listing] = []
    for job_type, count in sorted(by_type.items()):
        lists = [Listing(job_type, JobStatus.RUNNING.value)]
        if job_type in waiting:
            lists.append(Listing(job_type, JobStatus.WAITING.value))
        if count > page_share * sum(pages_for(counts.get(listing, count)) for listing in lists):
            chosen.extend(lists)
    return chosen


def _discovery_lists(
    unknown: int,
    types: list[str],
    chosen: list[Listing],
    counts: Mapping[Listing, int],
    page_share: float,
) -> list[Listing]:
    """Every active list of every type not chosen yet, if the unseen jobs outnumber their pages."""
    extra = [
        Listing(job_type, status.value)
        for job_type in types
        for status in ACTIVE_STATUSES
        if Listing(job_type, status.value) not in chosen
    ]
    if unknown > page_share * sum(pages_for(counts.get(listing, 0)) for listing in extra):
        return extra
    return []


def _sub_job_lists(
    needed: Iterable[tuple[Listing, int, int]], counts: Mapping[Listing, int], page_share: float
) -> list[Listing]:
    """The sub-job lists needed by more watched jobs than they have pages.

    ``needed``: each sub-job list, the watched jobs needing it, and their sub-jobs on it.
    """
    return [
        listing
        for listing, needers, on_list in needed
        if needers > page_share * pages_for(counts.get(listing, on_list))
    ]


Seen = JobSummary | Literal["get"] | None
"""What a sweep decides of a job: still listed (as shown), to be fetched by GET, or
nothing (a list not paged to the end may hold it)."""


class Sighting:
    """What one sweep's pages showed, taken page by page: the work of a page stays a page's.

    ``wanted(job_id)``: whether a job's items matter (one of the jobs waited on);
    ``watched(job_id)``: whether its sub-jobs do (its transitions are wanted).
    """

    def __init__(self, wanted: Callable[[str], bool], watched: Callable[[str], bool]) -> None:
        self._wanted = wanted
        self._watched = watched
        self._shown: dict[str, JobSummary] = {}
        self._doubtful: set[str] = set()
        self._listed_subs: dict[str, set[tuple[str, Listing]]] = {}
        # One summary object for every job the lists show alike: a hundred thousand
        # jobs share a handful.
        self._summaries: dict[tuple[str | None, JobStatus, int | None], JobSummary] = {}

    def __repr__(self) -> str:
        return f"Sighting(shown={len(self._shown)}, doubtful={len(self._doubtful)})"

    def add(self, listing: Listing, items: Iterable[ImageJobInfo | SubJob]) -> None:
        """Take one page of ``listing``."""
        if listing.sub:
            for sub in items:
                parent = sub.job_id if isinstance(sub, SubJob) else None
                if parent is not None and self._watched(parent):
                    place = Listing(listing.job_type, sub.status.value, sub=True)
                    self._listed_subs.setdefault(parent, set()).add((sub.id, place))
            return
        for info in items:
            if not isinstance(info, ImageJobInfo) or not self._wanted(info.id):
                continue
            job_type = None if info.job_type is None else info.job_type.value
            key = (job_type, info.status, info.sub_jobs_total)
            summary = self._summaries.get(key)
            if summary is None:
                summary = self._summaries[key] = JobSummary(*key)
            if self._shown.setdefault(info.id, summary) != summary:
                self._doubtful.add(info.id)

    def judge(
        self,
        job_id: str,
        before: JobSummary | None,
        subs: SubJobs | None = None,
        unsure: Collection[Listing] = (),
    ) -> Seen:
        """Decide about one covered job: what it was (``before``), and if it is watched its
        active sub-jobs (``subs``); ``unsure``: the lists not paged to the end.

        See :func:`read_round`.
        """
        if unsure and _may_be_on(unsure, before, subs or ()):
            return None
        now = self._shown.get(job_id)
        if (
            now is None
            or job_id in self._doubtful
            or now.listing is None
            or _grew(before, now)
            or (
                subs is not None
                and (now != before or self._listed_subs.get(job_id, set()) != set(subs))
            )
        ):
            return "get"
        return now


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

    The whole sweep at once: a :class:`Sighting` takes it page by page, and job by job.
    """
    subs = subs or {}
    sighting = Sighting(plan.covered.__contains__, subs.__contains__)
    for listing, items in found.items():
        sighting.add(listing, items)
    unsure = frozenset(incomplete)
    listed: dict[str, JobSummary] = {}
    to_get: set[str] = set()
    for job_id in plan.covered:
        seen = sighting.judge(job_id, jobs.get(job_id), subs.get(job_id), unsure)
        if seen == "get":
            to_get.add(job_id)
        elif seen is not None:
            listed[job_id] = seen
    return Verdict(listed, frozenset(to_get))


def _may_be_on(unsure: Collection[Listing], before: JobSummary | None, active: SubJobs) -> bool:
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
