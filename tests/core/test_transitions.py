"""events.diff: pure transition diffing, with a Hypothesis property."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import ImageJob, JobStatus, SubJob, SubJobStatus, Transition
from imagejobs.core.transitions import diff


def job(status: str, **subs: str) -> ImageJob:
    return ImageJob(
        id="j",
        status=JobStatus(status),
        sub_jobs=tuple(SubJob(id=k, status=SubJobStatus(v)) for k, v in subs.items()),
    )


def moves(transitions: list[Transition]) -> list[tuple[str | None, str | None, str | None]]:
    return [(t.sub_job_id, t.previous, t.current) for t in transitions]


def test_first_snapshot_reports_everything_as_new() -> None:
    assert moves(diff(None, job("RUNNING", a="SUCCESS", b="RUNNING"))) == [
        ("a", None, "SUCCESS"),
        ("b", None, "RUNNING"),
        (None, None, "RUNNING"),
    ]


def test_unchanged_snapshot_reports_nothing() -> None:
    snapshot = job("RUNNING", a="RUNNING")
    assert diff(snapshot, job("RUNNING", a="RUNNING")) == []


def test_order_is_sub_jobs_in_server_order_then_gone_then_job() -> None:
    before = job("RUNNING", a="RUNNING", gone="RUNNING", b="WAITING")
    after = job("SUCCESS", b="SUCCESS", new="SUCCESS", a="SUCCESS")
    assert moves(diff(before, after)) == [
        ("b", "WAITING", "SUCCESS"),
        ("new", None, "SUCCESS"),
        ("a", "RUNNING", "SUCCESS"),
        ("gone", "RUNNING", None),
        (None, "RUNNING", "SUCCESS"),
    ]


def test_unknown_statuses_flow_through() -> None:
    (change,) = diff(job("RUNNING", a="RUNNING"), job("RUNNING", a="HIBERNATING"))
    assert change.current == "HIBERNATING"
    assert isinstance(change.current, SubJobStatus)
    assert not change.is_terminal


def test_transition_carries_context() -> None:
    at = datetime(2026, 11, 26, 12, tzinfo=UTC)
    after = job("FAILED", a="FAILED")
    sub_change, job_change = diff(job("RUNNING", a="RUNNING"), after, observed_at=at, poll=7)
    assert sub_change.sub_job == after.sub_jobs[0]
    assert sub_change.job is after
    assert (sub_change.observed_at, sub_change.poll, sub_change.job_id) == (at, 7, "j")
    assert job_change.sub_job is None
    assert job_change.is_terminal
    assert not sub_change.is_terminal


def test_repeated_sub_job_id_counts_once() -> None:
    repeated = ImageJob(
        id="j",
        status=JobStatus.RUNNING,
        sub_jobs=(
            SubJob(id="a", status=SubJobStatus.RUNNING),
            SubJob(id="a", status=SubJobStatus.FAILED),
        ),
    )
    assert moves(diff(None, repeated)) == [("a", None, "RUNNING"), (None, None, "RUNNING")]


STATUSES = ["WAITING", "RUNNING", "SUCCESS", "FAILED", "ABNORMAL", "ROLLBACK", "PAUSED"]
snapshots = st.builds(
    lambda status, subs: ImageJob(
        id="j",
        status=JobStatus(status),
        sub_jobs=tuple(SubJob(id=k, status=SubJobStatus(v)) for k, v in subs),
    ),
    st.sampled_from(STATUSES),
    st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(STATUSES)), max_size=6),
)


def statuses(snapshot: ImageJob) -> dict[str | None, str]:
    result: dict[str | None, str] = {}
    for sub in snapshot.sub_jobs:
        result.setdefault(sub.id, sub.status)
    result[None] = snapshot.status
    return result


@given(st.lists(snapshots, min_size=1, max_size=8))
def test_replaying_transitions_reproduces_the_last_snapshot(sequence: list[ImageJob]) -> None:
    state = statuses(sequence[0])
    previous = sequence[0]
    seen: list[tuple[int, str | None]] = []
    for poll, current in enumerate(sequence[1:], start=1):
        for t in diff(previous, current, poll=poll):
            assert t.previous != t.current
            assert t.previous == state.get(t.sub_job_id)
            assert (poll, t.sub_job_id) not in seen
            seen.append((poll, t.sub_job_id))
            if t.current is None:
                del state[t.sub_job_id]
            else:
                state[t.sub_job_id] = t.current
        previous = current
    assert state == statuses(sequence[-1])


@given(snapshots)
def test_diff_from_nothing_lists_every_status_once(snapshot: ImageJob) -> None:
    changes = diff(None, snapshot)
    assert {t.sub_job_id: t.current for t in changes} == statuses(snapshot)
    assert len(changes) == len(statuses(snapshot))
    assert changes[-1].sub_job_id is None
