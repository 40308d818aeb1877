"""The command line's formatting and the reporter's bookkeeping. Pure, no server."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import JobFailed, Outcome, WaitTimeout, from_wire
from imagejobs.cli._report import (
    Reporter,
    annotation,
    format_duration,
    format_result,
    most_severe,
)
from imagejobs.events import diff

AT = datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)


def test_durations_read_like_a_clock() -> None:
    assert [format_duration(s) for s in (0.04, 59.94, 61, 3599.6, 3723)] == [
        "0.0s",
        "59.9s",
        "1m01s",
        "1h00m00s",
        "1h02m03s",
    ]


def test_annotations_escape_what_would_end_them() -> None:
    assert annotation("a: b, c", "50% done\nnext") == "::error title=a%3A b%2C c::50%25 done%0Anext"


@given(st.lists(st.sampled_from([0, 1, 2, 3, 4])))
def test_the_most_severe_code_wins_whatever_the_order(codes: list[int]) -> None:
    expected = next((code for code in (2, 4, 1, 3) if code in codes), 0)
    assert most_severe(codes) == expected
    assert most_severe(list(reversed(codes))) == expected


def test_the_live_line_is_redrawn_around_every_printed_line() -> None:
    times = iter([0.0, 1.0, 65.0, 65.0, 66.0, 66.0, 67.0])
    err = io.StringIO()
    reporter = Reporter(stdout=io.StringIO(), stderr=err, live=True, clock=lambda: next(times))
    reporter.start(2)
    job = from_wire({"id": "1", "status": "RUNNING"})
    (change,) = diff(None, job, observed_at=AT)
    reporter.transition(change)
    reporter.result(Outcome("1", from_wire({"id": "1", "status": "SUCCESS"})))
    code = reporter.finish()
    text = err.getvalue()
    assert "\r\x1b[K[1.0s] 2 jobs: 0 ended, 2 waiting" in text
    assert "\r\x1b[K2026-11-26T12:00:01Z 1 job - - -> RUNNING\n" in text
    assert "[1m06s] 2 jobs: 1 ended, 1 waiting" in text
    assert text.endswith("result 1 success status=SUCCESS duration=1m05s\n")
    assert code == 0


def test_without_a_terminal_there_are_no_control_characters() -> None:
    err = io.StringIO()
    reporter = Reporter(stdout=io.StringIO(), stderr=err, live=False)
    reporter.start(1)
    job = from_wire({"id": "1", "status": "FAILED"})
    reporter.result(Outcome("1", job, JobFailed(job)))
    assert reporter.finish() == 1
    assert "\x1b" not in err.getvalue()
    assert "\r" not in err.getvalue()


def test_a_result_prefers_the_jobs_own_run_time() -> None:
    job = from_wire(
        {
            "id": "1",
            "status": "RUNNING",
            "begin_time": "2026-11-26T12:00:00Z",
            "end_time": "2026-11-26T12:12:03Z",
        }
    )
    timeout = WaitTimeout("1", job, 5.0)
    line = format_result(Outcome("1", job, timeout), waited=5.0)
    assert line.startswith("result 1 timeout status=RUNNING duration=12m03s error=")
