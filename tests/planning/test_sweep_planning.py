"""Sweep planning and reading: which lists to page, and which jobs still need a GET. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import ImageJobInfo, JobStatus, JobType, SubJob, SubJobStatus
from imagejobs.planning.sweeps import (
    ACTIVE_STATUSES,
    DISCOVERABLE_TYPES,
    JobSummary,
    Listing,
    Plan,
    active_sub_jobs,
    pages_for,
    plan_round,
    read_round,
)

RUNNING, WAITING = JobStatus.RUNNING, JobStatus.WAITING


def known(
    job_type: str = "CREATE_SERVER", status: JobStatus = RUNNING, total: int = 1
) -> JobSummary:
    return JobSummary(job_type, status, total)


def info(
    job_id: str, job_type: str = "CREATE_SERVER", status: str = "RUNNING", total: int = 1
) -> ImageJobInfo:
    return ImageJobInfo(
        id=job_id, job_type=JobType(job_type), status=JobStatus(status), sub_jobs_total=total
    )


def test_pages_for_counts_whole_pages_and_at_least_one() -> None:
    assert [pages_for(n) for n in (0, 1, 100, 101, 250)] == [1, 1, 1, 2, 3]


def test_one_job_of_a_type_is_left_to_gets() -> None:
    plan = plan_round({"a": known()}, {})
    assert plan == Plan((), frozenset())


def test_in_a_fleet_sharing_pages_one_job_of_a_type_is_swept() -> None:
    # The other processes page the list too: this one pays a sixth of each page.
    plan = plan_round({"a": known()}, {}, page_share=1 / 6)
    assert plan == Plan((Listing("CREATE_SERVER", "RUNNING"),), frozenset({"a"}))
    # A list of 250 jobs is three pages: half of them are still worth two jobs' GETs.
    two = {"a": known(), "b": known()}
    counts = {Listing("CREATE_SERVER", "RUNNING"): 250}
    assert plan_round(two, counts, page_share=1.0).covered == frozenset()
    assert plan_round(two, counts, page_share=0.5).covered == {"a", "b"}


def test_two_jobs_of_a_type_are_swept_with_their_running_list() -> None:
    plan = plan_round({"a": known(), "b": known()}, {})
    assert plan.listings == (Listing("CREATE_SERVER", "RUNNING"),)
    assert plan.covered == {"a", "b"}


def test_a_waiting_job_adds_its_types_waiting_list() -> None:
    jobs = {"a": known(), "b": known(status=WAITING), "c": known()}
    plan = plan_round(jobs, {})
    assert set(plan.listings) == {
        Listing("CREATE_SERVER", "RUNNING"),
        Listing("CREATE_SERVER", "WAITING"),
    }
    assert plan.covered == {"a", "b", "c"}


def test_a_list_crowded_by_other_jobs_is_not_worth_its_pages() -> None:
    jobs = {f"j{n}": known() for n in range(3)}
    # 950 running jobs of that type in the tenant: 10 pages to find 3 jobs.
    plan = plan_round(jobs, {Listing("CREATE_SERVER", "RUNNING"): 950})
    assert plan.covered == frozenset()
    crowded = plan_round(
        {f"j{n}": known() for n in range(11)}, {Listing("CREATE_SERVER", "RUNNING"): 950}
    )
    assert crowded.covered == {f"j{n}" for n in range(11)}


def test_ended_and_unknown_statuses_are_never_swept() -> None:
    jobs = {
        "a": known(status=JobStatus.SUCCESS),
        "b": known(status=JobStatus.FAILED),
        "c": known(status=JobStatus("PAUSED")),
        "d": JobSummary(None, RUNNING, 1),
    }
    assert plan_round(jobs, {}).covered == frozenset()


def test_many_unseen_jobs_are_looked_for_under_every_known_type() -> None:
    jobs: dict[str, JobSummary | None] = {f"u{n}": None for n in range(40)}
    plan = plan_round(jobs, {})
    assert plan.covered == set(jobs)
    assert {listing.job_type for listing in plan.listings} == set(DISCOVERABLE_TYPES)
    assert {listing.status for listing in plan.listings} == {"WAITING", "RUNNING"}


def test_a_few_unseen_jobs_are_left_to_gets() -> None:
    jobs: dict[str, JobSummary | None] = {"u1": None, "u2": None, "a": known(), "b": known()}
    plan = plan_round(jobs, {})
    assert plan.covered == {"a", "b"}


def test_a_job_still_on_its_list_is_seen_and_needs_no_get() -> None:
    jobs = {"a": known(), "b": known(status=WAITING)}
    plan = Plan(
        (Listing("CREATE_SERVER", "RUNNING"), Listing("CREATE_SERVER", "WAITING")),
        frozenset({"a", "b"}),
    )
    found = {Listing("CREATE_SERVER", "RUNNING"): [info("a"), info("b")]}
    verdict = read_round(plan, found, jobs)
    assert verdict.to_get == frozenset()
    assert verdict.listed["b"].status is RUNNING


def test_a_job_that_left_its_list_or_grew_or_shows_ended_is_fetched() -> None:
    jobs = {"gone": known(), "grew": known(total=1), "ended": known(), "same": known()}
    plan = Plan((Listing("CREATE_SERVER", "RUNNING"),), frozenset(jobs))
    found = {
        Listing("CREATE_SERVER", "RUNNING"): [
            info("grew", total=2),
            info("ended", status="SUCCESS"),
            info("same"),
        ]
    }
    verdict = read_round(plan, found, jobs)
    assert verdict.to_get == {"gone", "grew", "ended"}
    assert set(verdict.listed) == {"same"}


def test_two_lists_disagreeing_about_a_job_send_it_to_a_get() -> None:
    jobs = {"a": known()}
    plan = Plan(
        (Listing("CREATE_SERVER", "RUNNING"), Listing("CREATE_SERVER", "WAITING")),
        frozenset({"a"}),
    )
    found = {
        Listing("CREATE_SERVER", "RUNNING"): [info("a")],
        Listing("CREATE_SERVER", "WAITING"): [info("a", status="WAITING")],
    }
    assert read_round(plan, found, jobs).to_get == {"a"}


statuses = st.sampled_from(["WAITING", "RUNNING", "SUCCESS", "FAILED", "PAUSED"])
types = st.sampled_from(["CREATE_SERVER", "DELETE_SERVER", "BUILD_IMAGE"])
job_ids = st.lists(st.from_regex(r"[0-9]{6}", fullmatch=True), unique=True, max_size=60)


@given(
    ids=job_ids,
    data=st.data(),
)
def test_a_sweep_never_ends_a_job_and_decides_every_job_it_covers(
    ids: list[str], data: st.DataObject
) -> None:
    jobs: dict[str, JobSummary | None] = {}
    truth: dict[str, ImageJobInfo] = {}
    for job_id in ids:
        job_type = data.draw(types)
        if data.draw(st.booleans()):
            jobs[job_id] = JobSummary(job_type, data.draw(st.sampled_from(ACTIVE_STATUSES)), 1)
        else:
            jobs[job_id] = None
        truth[job_id] = info(
            job_id, job_type, data.draw(statuses), data.draw(st.sampled_from([1, 2]))
        )
    plan = plan_round(jobs, {})
    assert all(listing.status in ("WAITING", "RUNNING") for listing in plan.listings)
    # The lists as a paging client may see them: each item maybe skipped or repeated.
    found: dict[Listing, list[ImageJobInfo]] = {}
    for listing in plan.listings:
        shown = [
            item
            for item in truth.values()
            if item.job_type == listing.job_type and item.status == listing.status
        ]
        kept = [item for item in shown for _ in range(data.draw(st.integers(0, 2)))]
        found[listing] = kept
    verdict = read_round(plan, found, jobs)
    assert set(verdict.listed) | verdict.to_get == plan.covered
    assert not set(verdict.listed) & verdict.to_get
    for job_id, seen in verdict.listed.items():
        assert seen.status in ACTIVE_STATUSES, "a list alone ended a job"
        assert truth[job_id].status == seen.status
    for job_id in plan.covered:
        if truth[job_id].status not in ACTIVE_STATUSES:
            assert job_id in verdict.to_get, "an ended job was taken as still running"


def sub_item(sub_id: str, parent: str, status: str = "RUNNING") -> SubJob:
    return SubJob(
        id=sub_id, job_id=parent, job_type=JobType("CREATE_SERVER"), status=SubJobStatus(status)
    )


def on_sub_list(status: str = "RUNNING") -> Listing:
    return Listing("CREATE_SERVER", status, sub=True)


def test_watched_jobs_are_covered_only_with_the_lists_of_their_active_sub_jobs() -> None:
    jobs = {f"w{n}": known() for n in range(4)}
    subs = {f"w{n}": {(f"s{n}", on_sub_list())} for n in range(4)}
    plan = plan_round(jobs, {}, subs=subs)
    assert on_sub_list() in plan.listings
    assert plan.covered == set(jobs)
    # A sub-job list crowded by other jobs' sub-jobs is not worth it: no watched job is swept.
    crowded = plan_round(jobs, {on_sub_list(): 5000}, subs=subs)
    assert crowded.covered == frozenset()
    assert Listing("CREATE_SERVER", "RUNNING") in crowded.listings  # the lists alone: no job


def test_a_watched_job_is_fetched_when_a_sub_job_or_its_status_moves() -> None:
    jobs = {"still": known(), "moved": known(), "left": known(), "woke": known(status=WAITING)}
    subs = {job_id: {(f"{job_id}-s", on_sub_list())} for job_id in jobs}
    plan = Plan(
        (Listing("CREATE_SERVER", "RUNNING"), Listing("CREATE_SERVER", "WAITING"), on_sub_list()),
        frozenset(jobs),
    )
    found: dict[Listing, list[ImageJobInfo | SubJob]] = {
        Listing("CREATE_SERVER", "RUNNING"): [info(j) for j in jobs],
        on_sub_list(): [
            sub_item("still-s", "still"),
            sub_item("moved-s", "moved", "ROLLBACK"),  # on a list it was not expected on
            sub_item("woke-s", "woke"),
        ],
    }
    verdict = read_round(plan, found, jobs, subs)
    assert set(verdict.listed) == {"still"}
    assert verdict.to_get == {"moved", "left", "woke"}


def test_active_sub_jobs_are_the_ones_on_the_way_somewhere() -> None:
    from imagejobs import ImageJob  # noqa: PLC0415

    job = ImageJob(
        id="j",
        status=RUNNING,
        sub_jobs=(
            sub_item("a", "j"),
            sub_item("b", "j", "SUCCESS"),
            sub_item("c", "j", "ABORTING"),
        ),
    )
    assert active_sub_jobs(job) == frozenset({("a", on_sub_list()), ("c", on_sub_list("ABORTING"))})
    untyped = ImageJob(
        id="j", status=RUNNING, sub_jobs=(SubJob(id="x", status=SubJobStatus.RUNNING),)
    )
    assert active_sub_jobs(untyped) is None  # cannot be looked for on a list


def test_a_sub_job_in_a_status_no_list_follows_keeps_its_job_out_of_sweeps() -> None:
    from imagejobs import ImageJob  # noqa: PLC0415

    for status in ("ABNORMAL", "PAUSED"):
        job = ImageJob(id="j", status=RUNNING, sub_jobs=(sub_item("a", "j", status),))
        assert active_sub_jobs(job) is None, status


def test_a_job_a_list_not_paged_to_the_end_may_hold_is_left_undecided() -> None:
    jobs = {"a": known(), "b": known(job_type="DELETE_SERVER")}
    running = Listing("CREATE_SERVER", "RUNNING")
    other = Listing("DELETE_SERVER", "RUNNING")
    plan = Plan((running, other), frozenset(jobs))
    verdict = read_round(
        plan, {running: [], other: [info("b", "DELETE_SERVER")]}, jobs, {}, {running}
    )
    assert "a" not in verdict.listed
    assert "a" not in verdict.to_get
    assert set(verdict.listed) == {"b"}
