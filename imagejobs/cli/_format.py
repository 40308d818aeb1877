"""What the command line prints, as text: human lines, NDJSON records, annotations. Pure.

Every text from the server goes through :func:`visible` or :func:`json_text`:
nothing it sends can end a line, move the cursor or issue a workflow command.
The exit codes and how outcomes map to them live here too.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from imagejobs import (
    ImageJob,
    InvalidArgument,
    JobFailed,
    Outcome,
    SubJob,
    SubJobStatus,
    Transition,
)

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_ERROR",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_SUCCESS",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "OVERALL",
    "annotation",
    "annotations_for",
    "exit_code_for",
    "format_duration",
    "format_result",
    "format_transition",
    "job_duration",
    "json_text",
    "most_severe",
    "resource_ids",
    "resources",
    "result_id",
    "result_record",
    "summary_table",
    "transition_record",
    "utc",
    "visible",
]

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143

OVERALL = {
    EXIT_SUCCESS: "success",
    EXIT_FAILED: "failed",
    EXIT_USAGE: "error",
    EXIT_TIMEOUT: "timeout",
    EXIT_ERROR: "error",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_TERMINATED: "interrupted",
}
"""The overall outcome an exit code stands for, as ``GITHUB_OUTPUT`` tells it."""

# With several jobs the most severe exit code wins: 2 > 4 > 1 > 3 > 0.
_SEVERITY = {EXIT_SUCCESS: 0, EXIT_TIMEOUT: 1, EXIT_FAILED: 2, EXIT_ERROR: 3, EXIT_USAGE: 4}
_KIND_EXIT = {"success": EXIT_SUCCESS, "failed": EXIT_FAILED, "timeout": EXIT_TIMEOUT}


def most_severe(codes: list[int]) -> int:
    """Return the exit code that wins among ``codes`` (0 for none)."""
    return max(codes, key=lambda code: _SEVERITY.get(code, 5), default=EXIT_SUCCESS)


def exit_code_for(outcome: Outcome) -> int:
    """Return the exit code one job's outcome calls for."""
    if outcome.kind == "error" and isinstance(outcome.error, InvalidArgument):
        return EXIT_USAGE
    return _KIND_EXIT.get(outcome.kind, EXIT_ERROR)


def utc(moment: datetime | None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# GitHub's runner takes `##[command]` anywhere in a line of the step's output, and
# `::command::` at its start; server text must not be able to issue either.
_OLD_COMMAND = re.compile(r"##\[")


def visible(text: str) -> str:
    """Return ``text`` with what is not printable written as Python escapes.

    Control characters (C0, DEL, C1), line and paragraph separators, format
    characters and lone surrogates become ``\\n``, ``\\x1b``, ``\\u2028``, ``\\ud800``...,
    and ``##[`` becomes ``##\\[``: nothing from the server can end a line, move the
    cursor, issue a workflow command or fail to encode.
    """
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return _OLD_COMMAND.sub(r"##\\[", text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_safe(dumped: str) -> str:
    # ensure_ascii=False leaves DEL, C1, U+2028... and lone surrogates raw inside
    # strings; as \u escapes they decode to the same value and print as one line.
    # A raw newline can only be indentation: json.dumps escapes those in strings.
    if not dumped.isprintable():
        dumped = "".join(c if c.isprintable() or c == "\n" else _json_escape(c) for c in dumped)
    return _OLD_COMMAND.sub(r"##\\u005b", dumped)


def json_text(value: object, *, indent: int | None = None) -> str:
    """Return ``value`` as JSON that decodes to it exactly, printable and safe to log.

    Only the spelling of strings changes: what :func:`visible` would escape is
    written as ``\\uXXXX``, so no value can break a line or issue a command.
    """
    return _json_safe(json.dumps(value, indent=indent, ensure_ascii=False))


def _quoted(text: str) -> str:
    return _json_safe(json.dumps(text, ensure_ascii=False))


def _status(value: object) -> str:
    return "-" if value is None else str(value)


def _short(resource_id: str) -> str:
    return resource_id if len(resource_id) <= 9 else resource_id[:8] + "…"


def _failure_of(sub_job: SubJob | None) -> tuple[str | None, str | None]:
    info = sub_job.job_execute_info if sub_job is not None else None
    if info is None:
        return None, None
    return info.error_code or None, info.error_message or None


_NOT_BARE = re.compile(r'[\s"=,\\]|##\[')


def _word(text: str) -> str:
    """Return ``text`` as one field: bare if it is one plain word, else JSON-quoted.

    Server text goes through here, so a field can neither split into two nor
    carry anything unprintable.
    """
    if text and text.isprintable() and not _NOT_BARE.search(text):
        return text
    return _quoted(text)


def format_transition(transition: Transition) -> str:
    """Return one grep-able line: time, job, ``job`` or ``sub ID``, type, ``OLD -> NEW``."""
    job, sub_job = transition.job, transition.sub_job
    if transition.sub_job_id is None:
        subject, job_type = "job", job.job_type
    else:
        subject = f"sub {_word(transition.sub_job_id)}"
        job_type = sub_job.job_type if sub_job is not None else None
    line = (
        f"{utc(transition.observed_at)} {_word(transition.job_id)} {subject} "
        f"{_word(_status(job_type))} "
        f"{_word(_status(transition.previous))} -> {_word(_status(transition.current))}"
    )
    resource = sub_job.job_resource_info if sub_job is not None else None
    if resource is not None and resource.resource_id:
        line += f" resource={_word(_short(resource.resource_id))}"
    if resource is not None and resource.resource_name:
        line += f" name={_word(resource.resource_name)}"
    if transition.current in (SubJobStatus.FAILED, SubJobStatus.ABNORMAL):
        code, message = _failure_of(sub_job)
        if code or message:
            line += f" error={_word(code or '-')} message={_quoted(message or '')}"
    return line


def transition_record(transition: Transition) -> dict[str, Any]:
    """Return the NDJSON object for a transition."""
    sub_job = transition.sub_job
    subject: ImageJob | SubJob | None = transition.job if transition.sub_job_id is None else sub_job
    resource = sub_job.job_resource_info if sub_job is not None else None
    code, message = _failure_of(sub_job)
    return {
        "event": "transition",
        "job_id": transition.job_id,
        "sub_job_id": transition.sub_job_id,
        "job_type": None if subject is None or subject.job_type is None else str(subject.job_type),
        "previous": None if transition.previous is None else str(transition.previous),
        "current": None if transition.current is None else str(transition.current),
        "at": utc(transition.observed_at),
        "resource_id": resource.resource_id if resource is not None else None,
        "error_code": code,
        "error_message": message,
    }


def resource_ids(job: ImageJob | None) -> list[str]:
    """Return the distinct resource IDs a job's sub-jobs worked on, in order."""
    if job is None:
        return []
    found = (s.job_resource_info.resource_id for s in job.sub_jobs if s.job_resource_info)
    return list(dict.fromkeys(r for r in found if r))


def resources(job: ImageJob | None) -> list[dict[str, str | None]]:
    """Return each sub-job's resource with the sub-job's type: which one is the image."""
    if job is None:
        return []
    return [
        {
            "sub_job_id": sub.id,
            "job_type": None if sub.job_type is None else str(sub.job_type),
            "resource_id": sub.job_resource_info.resource_id,
            "resource_name": sub.job_resource_info.resource_name or None,
        }
        for sub in job.sub_jobs
        if sub.job_resource_info is not None and sub.job_resource_info.resource_id
    ]


# The sub-job whose resource is what a job makes: the image of an image job.
_PRODUCT = {"CREATE_SERVER_IMAGE": ("GENERATE_IMAGE", "CREATE_SERVER_IMAGE")}


def result_id(job: ImageJob | None) -> str | None:
    """Return the ID of what a job made, the one a later step needs.

    The image of a ``CREATE_SERVER_IMAGE`` job (its ``GENERATE_IMAGE`` sub-job's
    resource, or its ``CREATE_SERVER_IMAGE`` sub-job's), the server of a
    ``CREATE_SERVER`` job, the server a ``DELETE_SERVER`` job deleted: the
    resource of the last sub-job of that type, else of the last sub-job with one.
    """
    found = resources(job)
    if job is None or not found:
        return None
    job_type = "" if job.job_type is None else str(job.job_type)
    for wanted in _PRODUCT.get(job_type, (job_type,)):
        typed = [r["resource_id"] for r in found if r["job_type"] == wanted]
        if typed:
            return typed[-1]
    return found[-1]["resource_id"]


def result_record(outcome: Outcome, kind: str | None = None) -> dict[str, Any]:
    """Return the NDJSON object for a job's outcome (``kind`` for one stopped early)."""
    return {
        "event": "result",
        "job_id": outcome.job_id,
        "outcome": kind or outcome.kind,
        "status": None if outcome.job is None else str(outcome.job.status),
        "error": None if outcome.error is None else str(outcome.error),
        "result_id": result_id(outcome.job) if outcome.ok else None,
        "resources": resources(outcome.job),
        "resource_ids": resource_ids(outcome.job),
    }


def format_duration(seconds: float) -> str:
    """Return ``1h02m03s``, ``4m05s`` or ``6.0s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def job_duration(outcome: Outcome, waited: float) -> float:
    """Return the job's own run time when the service gave both ends, else the wait."""
    job = outcome.job
    if job is not None and job.begin_time is not None and job.end_time is not None:
        return max(0.0, (job.end_time - job.begin_time).total_seconds())
    return waited


def format_result(outcome: Outcome, waited: float, kind: str | None = None) -> str:
    """Return the summary line of one job: outcome, status, duration, what it made, why not."""
    status = "-" if outcome.job is None else str(outcome.job.status)
    line = (
        f"result {_word(outcome.job_id)} {kind or outcome.kind} status={_word(status)} "
        f"duration={format_duration(job_duration(outcome, waited))}"
    )
    made = result_id(outcome.job) if outcome.ok else None
    if made:
        line += f" result={_word(made)}"
    typed = resources(outcome.job)
    if typed:
        pairs = (f"{r['job_type'] or '-'}:{r['resource_id']}" for r in typed)
        line += f" resources={','.join(map(_word, dict.fromkeys(pairs)))}"
    if outcome.error is not None:
        line += f" error={_quoted(str(outcome.error))}"
    return line


def _escape_data(text: str) -> str:
    return visible(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(title: str, message: str) -> str:
    """Return a GitHub Actions ``::error`` workflow command, escaped to stay one command."""
    return f"::error title={_escape_property(title)}::{_escape_data(message)}"


def annotations_for(outcome: Outcome) -> list[str]:
    """Return the ``::error`` lines for a job that did not succeed."""
    title = f"Image job {visible(outcome.job_id)} {outcome.kind}"
    if isinstance(outcome.error, JobFailed):
        lines = []
        for sub_job in outcome.error.failed_sub_jobs:
            code, message = _failure_of(sub_job)
            # Escaped before the template, so a newline from the server shows as
            # \n instead of becoming a second line of the annotation.
            text = (
                f"sub-job {visible(sub_job.id)} ({visible(_status(sub_job.job_type))}) "
                f"{visible(str(sub_job.status))}: {visible(code or '-')}: "
                f"{visible(message or '')}"
            )
            lines.append(annotation(title, text))
        return lines or [annotation(title, visible(str(outcome.error)))]
    if outcome.error is not None:
        return [annotation(title, visible(str(outcome.error)))]
    return []


# Backslash escapes make any ASCII punctuation literal in GitHub's Markdown; these are
# the ones that end a table cell or start markup (code, emphasis, links, HTML, math).
_MARKUP = re.compile(r"([\\`*_{}\[\]<>|~&!#$])")


def _md(text: str) -> str:
    return _MARKUP.sub(r"\\\1", visible(text))


def _code(text: str) -> str:
    shown = visible(text)
    if shown and not any(c in shown for c in "`|"):
        return f"`{shown}`"
    return _md(text)


def summary_table(rows: list[tuple[Outcome, float, str]]) -> str:
    """Return the Markdown summary of every job, for ``$GITHUB_STEP_SUMMARY``."""
    lines = [
        "### Image jobs",
        "",
        "| Job | Outcome | Status | Duration | Resources | Detail |",
        "|---|---|---|---|---|---|",
    ]
    for outcome, waited, kind in rows:
        status = "-" if outcome.job is None else str(outcome.job.status)
        detail = "" if outcome.error is None else str(outcome.error)
        typed = (f"{r['job_type'] or '-'} {r['resource_id']}" for r in resources(outcome.job))
        cells = [
            _code(outcome.job_id),
            kind,
            _md(status),
            format_duration(job_duration(outcome, waited)),
            ", ".join(map(_md, dict.fromkeys(typed))),
            _md(detail),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
