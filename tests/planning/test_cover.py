"""The sweeps' cover kept one change at a time: the same lists and jobs as deciding afresh.

:class:`~imagejobs.planning.sweeps.Cover` is told of each job as it comes,
changes and goes; whatever the order, it chooses the lists, and covers the
jobs, that the whole population decided at once would (the reference below is
the planner as it was before it was made incremental), and the work of a choice
does not grow with the jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping
from types import FrameType

from hypothesis import given
from hypothesis import strategies as st

from imagejobs.core.models import JobStatus
from imagejobs.planning.sweeps import (
    ACTIVE_STATUSES,
    DISCOVERABLE_TYPES,
    Cover,
    JobSummary,
    Listing,
    SubJobs,
    pages_for,
    plan_round,
)


def reference(
    jobs: Mapping[str, JobSummary | None],
    counts: Mapping[Listing, int],
    discoverable: Iterable[str] = DISCOVERABLE_TYPES,
    subs: Mapping[str, SubJobs] | None = None,
    refused: Collection[Listing] = (),
) -> tuple[tuple[Listing, ...], frozenset[str]]:
    """The lists and covered jobs, decided from the whole population in one pass."""
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
    chosen: list[Listing] = []
    for job_type, count in sorted(by_type.items()):
        lists = [Listing(job_type, "RUNNING")]
        if job_type in waiting:
            lists.append(Listing(job_type, "WAITING"))
        if count > sum(pages_for(counts.get(listing, count)) for listing in lists):
            chosen.extend(lists)
    extra = [
        Listing(job_type, status.value)
        for job_type in sorted({*discoverable, *by_type})
        for status in ACTIVE_STATUSES
        if Listing(job_type, status.value) not in chosen
    ]
    extra_pages = sum(pages_for(counts.get(listing, 0)) for listing in extra)
    discovery = extra if len(unknown) > extra_pages else []
    needing: dict[Listing, set[str]] = {}
    on_list: dict[Listing, int] = {}
    for job_id, active in subs.items():
        for _, listing in active:
            needing.setdefault(listing, set()).add(job_id)
            on_list[listing] = on_list.get(listing, 0) + 1
    sub_lists = [
        listing
        for listing, needers in sorted(needing.items())
        if len(needers) > pages_for(counts.get(listing, on_list[listing]))
    ]
    chosen = [listing for listing in chosen + discovery + sub_lists if listing not in refused]
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
    return tuple(chosen), frozenset(covered)


TYPES = ["CREATE_SERVER", "DELETE_SERVER", "BUILD_IMAGE"]
summaries = st.one_of(
    st.none(),
    st.builds(
        JobSummary,
        st.sampled_from([*TYPES, None]),
        st.sampled_from([JobStatus.WAITING, JobStatus.RUNNING, JobStatus.SUCCESS]),
        st.sampled_from([1, 2, None]),
    ),
)
sub_lists = st.builds(
    Listing, st.sampled_from(TYPES), st.sampled_from(["RUNNING", "ROLLBACK"]), st.just(True)
)
sub_jobs = st.one_of(
    st.none(),
    st.frozensets(st.tuples(st.sampled_from(["s1", "s2", "s3"]), sub_lists), max_size=3),
)
job_ids = st.sampled_from([f"j{n}" for n in range(40)])
changes = st.lists(
    st.one_of(
        st.tuples(st.just("put"), job_ids, summaries, sub_jobs),
        st.tuples(st.just("drop"), job_ids, st.none(), st.none()),
    ),
    max_size=120,
)
lists = st.builds(
    Listing,
    st.sampled_from(TYPES),
    st.sampled_from(["WAITING", "RUNNING", "ROLLBACK"]),
    st.booleans(),
)
counts = st.dictionaries(lists, st.integers(0, 700), max_size=6)


@given(changes=changes, counts=counts, refused=st.frozensets(lists, max_size=2))
def test_a_cover_kept_up_to_date_decides_as_the_whole_population_would(
    changes: list[tuple[str, str, JobSummary | None, SubJobs | None]],
    counts: dict[Listing, int],
    refused: frozenset[Listing],
) -> None:
    cover = Cover()
    jobs: dict[str, JobSummary | None] = {}
    subs: dict[str, SubJobs] = {}
    covered = frozenset[str]()
    for what, job_id, known, active in changes:
        jobs.pop(job_id, None)
        subs.pop(job_id, None)
        if what == "put":
            cover.put(job_id, known, active)
            jobs[job_id] = known
            if active is not None:
                subs[job_id] = active
        else:
            cover.drop(job_id)
        choice = cover.choose(counts, refused=refused)
        listings, covered = reference(jobs, counts, subs=subs, refused=refused)
        assert choice.listings == listings
        assert {job_id for job_id in jobs if cover.covers(job_id, choice)} == covered
    assert len(cover) == len(jobs)
    assert plan_round(jobs, counts, subs=subs, refused=refused).covered == covered


@given(changes=changes, before=counts, after=counts)
def test_a_new_choice_changes_the_cover_only_of_the_jobs_its_changed_lists_concern(
    changes: list[tuple[str, str, JobSummary | None, SubJobs | None]],
    before: dict[Listing, int],
    after: dict[Listing, int],
) -> None:
    cover = Cover()
    for what, job_id, known, active in changes:
        if what == "put":
            cover.put(job_id, known, active)
        else:
            cover.drop(job_id)
    old, new = cover.choose(before), cover.choose(after)
    concerned = {job_id for listing in old.paged ^ new.paged for job_id in cover.needing(listing)}
    if old.discovery != new.discovery:
        concerned |= set(cover.unseen())
    for job_id in {job_id for _, job_id, _, _ in changes}:
        if cover.covers(job_id, old) != cover.covers(job_id, new):
            assert job_id in concerned


def _calls_to_choose(cover: Cover) -> int:
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        cover.choose({})
    finally:
        sys.setprofile(None)
    return calls


def test_choosing_the_lists_costs_the_same_for_a_hundred_jobs_as_for_ten_thousand() -> None:
    def cover_of(jobs: int) -> Cover:
        cover = Cover()
        for n in range(jobs):
            status = JobStatus.WAITING if n % 3 == 0 else JobStatus.RUNNING
            cover.put(f"j{n}", JobSummary(TYPES[n % 3], status, 1) if n >= 5 else None)
        return cover

    few, many = cover_of(100), cover_of(10_000)
    assert few.choose({}) == many.choose({})
    assert _calls_to_choose(few) == _calls_to_choose(many)
    # Whose cover a list decides is found without looking at the others.
    on_list = {f"j{n}" for n in range(5, 10_000) if n % 3 == 1}
    assert set(many.needing(Listing("DELETE_SERVER", "RUNNING"))) == on_list
