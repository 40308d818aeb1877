"""The command line's formatting and the reporter's bookkeeping. Pure, no server."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import DurationHistory, JobFailed, Outcome, WaitTimeout, from_wire, to_wire
from imagejobs.cli._format import (
    annotation,
    format_duration,
    format_result,
    format_transition,
    json_text,
    most_severe,
    summary_table,
)
from imagejobs.cli._report import Reporter
from imagejobs.core.transitions import diff

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


def test_the_live_view_redraws_a_line_per_job_around_every_printed_line() -> None:
    times = iter([0.0, *[float(n) for n in range(1, 200)]])
    err = io.StringIO()
    history = DurationHistory({"CREATE_SERVER_IMAGE": [600.0] * 10})
    reporter = Reporter(
        stdout=io.StringIO(),
        stderr=err,
        live=True,
        history=history,
        deadline=3600.0,
        clock=lambda: next(times),
        now=lambda: AT,
    )
    reporter.start(["1", "2"])
    begun = (AT - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = from_wire(
        {
            "id": "1",
            "status": "RUNNING",
            "job_type": "CREATE_SERVER_IMAGE",
            "begin_time": begun,
            "sub_jobs_total": 2,
            "sub_jobs": [
                {"id": "a", "status": "SUCCESS", "job_type": "BUILD_IMAGE"},
                {"id": "b", "status": "RUNNING", "job_type": "GENERATE_IMAGE"},
            ],
        }
    )
    (*_, change) = diff(None, job, observed_at=AT)
    reporter.transition(change)
    reporter.tick()
    text = err.getvalue()
    # One line per job, each redrawn in place: up to the first, clear, write.
    assert "1  CREATE_SERVER_IMAGE  RUNNING  1/2 sub-jobs  elapsed 4m00s  " in text
    assert "to the deadline  ends in ~" in text
    assert "2  waiting for a first look\x1b[K\n" in text
    assert "\x1b[2F\x1b[J" in text  # the view taken off before a line is printed
    assert "2026-11-26T12:00:01Z 1 job CREATE_SERVER_IMAGE - -> RUNNING\n" in text
    reporter.result(Outcome("1", from_wire({**to_wire(job), "status": "SUCCESS"})))
    reporter.result(Outcome("2", None, WaitTimeout("2", None, 5.0)))
    code = reporter.finish()
    last = err.getvalue().rsplit("\x1b[J", 1)[-1]
    assert "1  CREATE_SERVER_IMAGE  success  1/2 sub-jobs" in last  # the last state stays
    assert code == 3


def test_without_a_terminal_there_are_no_control_characters() -> None:
    err = io.StringIO()
    reporter = Reporter(stdout=io.StringIO(), stderr=err, live=False)
    reporter.start(["1"])
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


# What a hostile or broken server might put in any string it sends: line breaks of
# every kind, terminal escapes, workflow commands, lone surrogates, table markup.
FORGERIES = [
    "\n", "\r", "\r\n", "\x1b[2J", "\x1b]0;title\x07", "\x9b31m", "\x7f", "\x85", "\x0b",
    "\x0c", "\x1c", "\u2028", "\u2029", "\u202e", "\ud800", "\udfff", "::error::forged",
    "::warning title=x::forged", "##[error]forged", "#", "[", "result 1 success ", "%0A",
    "|", "`", "<b>", " ", '"', "=", ",", "\\", "",
]  # fmt: skip
hostile = st.lists(
    st.one_of(st.text(st.characters(exclude_categories=())), st.sampled_from(FORGERIES)),
    max_size=6,
).map("".join)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


def failed_job(text: dict[str, str]) -> dict[str, Any]:
    return {
        "id": "1",
        "status": "FAILED",
        "job_type": text["job_type"],
        "sub_jobs": [
            {
                "id": text["sub_id"],
                "status": "FAILED",
                "job_type": text["job_type"],
                "job_resource_info": {
                    "resource_id": text["resource_id"],
                    "resource_name": text["resource_name"],
                },
                "job_execute_info": {
                    "error_code": text["error_code"],
                    "error_message": text["error_message"],
                },
            }
        ],
    }


FIELDS = ["job_type", "sub_id", "resource_id", "resource_name", "error_code", "error_message"]
hostile_fields = st.fixed_dictionaries(dict.fromkeys(FIELDS, hostile))


def encoded() -> io.TextIOWrapper:
    # As strict as a real UTF-8 stream: a lone surrogate written raw would raise.
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="")


def written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    assert isinstance(stream.buffer, io.BytesIO)
    return stream.buffer.getvalue().decode("utf-8")


def report(wire: dict[str, Any], **options: Any) -> tuple[str, str, int]:
    out, err = encoded(), encoded()
    reporter = Reporter(stdout=out, stderr=err, **options)
    reporter.start(["1"])
    job = from_wire(wire)
    for change in diff(None, job, observed_at=AT):
        reporter.transition(change)
    reporter.result(Outcome("1", job, JobFailed(job)))
    code = reporter.finish()
    return written(out), written(err), code


@given(hostile_fields)
def test_server_text_cannot_add_lines_commands_or_controls(text: dict[str, str]) -> None:
    _, err, code = report(failed_job(text), github=True)
    assert code == 1
    lines = err.split("\n")
    assert lines.pop() == ""
    # Two transitions (the sub-job, the job) as they are seen, its result, one annotation.
    assert len(lines) == 4, lines
    assert err.splitlines() == lines  # no other line separator either
    assert all(line.isprintable() for line in lines)
    assert "##[" not in err
    assert [bool(TIME.match(line)) for line in lines] == [True, True, False, False]
    assert lines[2].startswith("result 1 failed status=FAILED duration=")
    assert lines[3].startswith("::error title=Image job 1 failed::sub-job ")
    assert not any(line.lstrip().startswith(("::", "result ")) for line in lines[:2])


_T = TypeVar("_T")


def as_json_reads_it(value: _T) -> _T:
    """Return ``value`` as any JSON round trip gives it back.

    Exact but for one thing no JSON can keep: two lone surrogates that happen to
    form a pair (``"\\ud800\\udc00"``) come back as the one character they encode.
    A server's JSON cannot even send them apart.
    """
    restored: _T = json.loads(json.dumps(value))
    return restored


@given(hostile_fields)
def test_ndjson_keeps_the_servers_text_exactly(text: dict[str, str]) -> None:
    out, err, _ = report(failed_job(text), json_lines=True)
    assert err == ""
    lines = out.split("\n")
    assert lines.pop() == ""
    assert out.splitlines() == lines
    assert all(line.isprintable() and "##[" not in line for line in lines)
    records = [json.loads(line) for line in lines]
    sub = next(r for r in records if r["sub_job_id"] is not None)
    sent = as_json_reads_it(text)
    assert sub["sub_job_id"] == sent["sub_id"]
    assert sub["job_type"] == sent["job_type"]
    assert sub["resource_id"] == sent["resource_id"]
    assert sub["error_code"] == (sent["error_code"] or None)
    assert sub["error_message"] == (sent["error_message"] or None)


@given(hostile_fields)
def test_json_text_is_exact_printable_json(text: dict[str, str]) -> None:
    wire = failed_job(text)
    for indent in (None, 2):
        dumped = json_text(wire, indent=indent)
        assert json.loads(dumped) == as_json_reads_it(wire)
        assert all(line.isprintable() for line in dumped.split("\n"))
        assert "##[" not in dumped


# A cell ends at a pipe not escaped by a backslash (itself not escaped).
CELL_END = re.compile(r"(?<!\\)(?:\\\\)*\|")


@given(hostile_fields, hostile)
def test_the_step_summary_keeps_one_row_of_six_cells_per_job(
    text: dict[str, str], job_id: str
) -> None:
    job = from_wire(failed_job(text))
    table = summary_table([(Outcome(job_id, job, JobFailed(job)), 1.0, "failed")])
    lines = table.split("\n")
    assert lines.pop() == ""
    assert len(lines) == 5
    assert table.splitlines() == lines
    assert all(line.isprintable() for line in lines)
    assert len(CELL_END.findall(lines[-1])) == 7
    assert "##[" not in table


def test_a_forged_result_line_shows_escaped_inside_its_own_line() -> None:
    wire = failed_job(
        {
            "job_type": "BUILD_IMAGE",
            "sub_id": "1-0",
            "resource_id": "res\x1b[2J",
            "resource_name": "img\nresult 1 success status=SUCCESS",
            "error_code": "WKS.9\u2028",
            "error_message": "bad\ud800\n::error::forged",
        }
    )
    job = from_wire(wire)
    sub_failed, _ = diff(None, job, observed_at=AT)
    assert format_transition(sub_failed) == (
        "2026-11-26T12:00:01Z 1 sub 1-0 BUILD_IMAGE - -> FAILED "
        'resource="res\\u001b[2J" name="img\\nresult 1 success status=SUCCESS" '
        'error="WKS.9\\u2028" message="bad\\ud800\\n::error::forged"'
    )
    lines = report(wire, github=True)[1].splitlines()
    (line,) = (a for a in lines if a.startswith("::error"))
    assert line == (
        "::error title=Image job 1 failed::sub-job 1-0 (BUILD_IMAGE) FAILED: "
        "WKS.9\\u2028: bad\\ud800\\n::error::forged"
    )


def test_annotations_show_other_controls_escaped() -> None:
    assert annotation("job\x1b", "a\x9bb\u2028##[warning]c") == (
        "::error title=job\\x1b::a\\x9bb\\u2028##\\[warning]c"
    )
