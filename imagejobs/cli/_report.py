"""What the command line prints: human lines, NDJSON records, GitHub annotations.

The formatting functions are pure; :class:`Reporter` decides which stream gets
what, keeps the live status line on a terminal, and computes the exit code.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

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
    "Reporter",
    "annotation",
    "exit_code_for",
    "format_duration",
    "format_result",
    "format_transition",
    "json_text",
    "most_severe",
    "result_record",
    "summary_table",
    "transition_record",
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


def _utc(moment: datetime | None) -> str:
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
        f"{_utc(transition.observed_at)} {_word(transition.job_id)} {subject} "
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
        "at": _utc(transition.observed_at),
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


def result_record(outcome: Outcome) -> dict[str, Any]:
    """Return the NDJSON object for a job's outcome."""
    return {
        "event": "result",
        "job_id": outcome.job_id,
        "outcome": outcome.kind,
        "status": None if outcome.job is None else str(outcome.job.status),
        "error": None if outcome.error is None else str(outcome.error),
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


def format_result(outcome: Outcome, waited: float) -> str:
    """Return the summary line of one job."""
    status = "-" if outcome.job is None else str(outcome.job.status)
    line = (
        f"result {_word(outcome.job_id)} {outcome.kind} status={_word(status)} "
        f"duration={format_duration(job_duration(outcome, waited))}"
    )
    produced = resource_ids(outcome.job)
    if produced:
        line += f" resources={','.join(map(_word, produced))}"
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


def summary_table(rows: list[tuple[Outcome, float]]) -> str:
    """Return the Markdown summary of every job, for ``$GITHUB_STEP_SUMMARY``."""
    lines = [
        "### Image jobs",
        "",
        "| Job | Outcome | Status | Duration | Resources | Detail |",
        "|---|---|---|---|---|---|",
    ]
    for outcome, waited in rows:
        status = "-" if outcome.job is None else str(outcome.job.status)
        detail = "" if outcome.error is None else str(outcome.error)
        cells = [
            _code(outcome.job_id),
            outcome.kind,
            _md(status),
            format_duration(job_duration(outcome, waited)),
            ", ".join(map(_md, resource_ids(outcome.job))),
            _md(detail),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class Reporter:
    """Prints transitions and results where they belong and keeps the score.

    Human lines go to ``stderr`` (none with ``quiet``), NDJSON to ``stdout``
    (with ``json_lines``), ``::error`` annotations to ``stderr`` under GitHub
    Actions. ``live`` keeps a status line redrawn in place (terminals only);
    elsewhere a heartbeat line every ``heartbeat`` seconds (0: none) says the
    step is alive. Each job's result line comes as soon as it ends. Under
    GitHub Actions a job's transitions are folded into one ``::group::``,
    printed when it ends, and ``github_output`` gets the step's outputs.
    """

    def __init__(
        self,
        *,
        stdout: TextIO,
        stderr: TextIO,
        json_lines: bool = False,
        quiet: bool = False,
        github: bool = False,
        step_summary: Path | None = None,
        github_output: Path | None = None,
        live: bool = False,
        heartbeat: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self._json = json_lines
        self._human = not quiet and not json_lines
        self._github = github
        self._step_summary = step_summary
        self._github_output = github_output
        self._live = live and self._human
        self._heartbeat = 0.0 if live or quiet else heartbeat
        self._clock = clock
        self._started = clock()
        self._last_beat = self._started
        self._results: list[tuple[Outcome, float]] = []
        self._codes: list[int] = []
        self._total = 0
        self._status_shown = False
        self._folded: dict[str, list[str]] = {}
        self._finished = False

    @property
    def heartbeat(self) -> float:
        """Seconds between heartbeat lines (0: none, as on a terminal)."""
        return self._heartbeat

    @property
    def shows_transitions(self) -> bool:
        """Whether transitions are printed (human lines or NDJSON), so worth polling for."""
        return self._human or self._json

    def start(self, total: int) -> None:
        """Note how many jobs are being waited on, for the live line."""
        self._total = total
        self._draw_status()

    def _counts(self) -> str:
        kinds = [outcome.kind for outcome, _ in self._results]
        ok, failed = kinds.count("success"), kinds.count("failed")
        other = len(kinds) - ok - failed
        waiting = self._total - len(kinds)
        text = f"{ok} ended ok, {failed} failed"
        if other:
            text += f", {other} timed out or errors"
        return f"{text}, {waiting} waiting"

    def _clear_status(self) -> None:
        if self._status_shown:
            self._stderr.write("\r\x1b[K")
            self._status_shown = False

    def _draw_status(self) -> None:
        if not self._live:
            return
        done = len(self._results)
        elapsed = format_duration(self._clock() - self._started)
        text = f"[{elapsed}] {self._total} jobs: {done} ended, {self._total - done} waiting"
        self._stderr.write("\r\x1b[K" + text)
        self._stderr.flush()
        self._status_shown = True

    def tick(self) -> None:
        """Redraw the live status line, or print a heartbeat when one is due (about 1/s)."""
        if self._status_shown or self._live:
            self._draw_status()
        now = self._clock()
        if self._heartbeat > 0 and now - self._last_beat >= self._heartbeat and not self._finished:
            self._last_beat = now
            elapsed = format_duration(now - self._started)
            self._say(f"heartbeat {self._counts()}, elapsed {elapsed}")

    def _say(self, line: str) -> None:
        self._clear_status()
        self._stderr.write(visible(line) + "\n")
        self._stderr.flush()
        self._draw_status()

    def _emit(self, record: dict[str, Any]) -> None:
        self._stdout.write(json_text(record) + "\n")
        self._stdout.flush()

    def note(self, line: str) -> None:
        """Print an informational human line."""
        if self._human:
            self._say(line)

    def error(self, message: str) -> None:
        """Print a one-line error, always."""
        self._say(f"imagejobs: error: {message}")

    def transition(self, transition: Transition) -> None:
        """Report one transition (under GitHub Actions, kept for its job's group)."""
        if self._json:
            self._emit(transition_record(transition))
        if self._human:
            line = format_transition(transition)
            if self._github:
                self._folded.setdefault(transition.job_id, []).append(line)
            else:
                self._say(line)

    def result(self, outcome: Outcome) -> None:
        """Report how one job ended, at once."""
        waited = self._clock() - self._started
        self._results.append((outcome, waited))
        self._codes.append(exit_code_for(outcome))
        if self._json:
            self._emit(result_record(outcome))
        folded = self._folded.pop(outcome.job_id, [])
        if folded:
            count = f"{len(folded)} transition{'s' if len(folded) > 1 else ''}"
            self._say(f"::group::job {visible(outcome.job_id)}: {count}, {outcome.kind}")
            for line in folded:
                self._say(line)
            self._say("::endgroup::")
        if outcome.kind == "error" and outcome.error is not None:
            self.error(f"job {outcome.job_id}: {outcome.error}")
        if self._human:
            self._say(format_result(outcome, waited))
        if self._github:
            for line in annotations_for(outcome):
                self._say(line)
        self._draw_status()

    def finish(self, code: int | None = None) -> int:
        """Write the GitHub step summary and outputs; return the exit code."""
        self._clear_status()
        self._live = False
        self._finished = True
        for job_id, folded in list(self._folded.items()):
            # Jobs that never ended (an interruption): their transitions still show.
            self._say(f"::group::job {visible(job_id)}: {len(folded)} transitions, not ended")
            for line in folded:
                self._say(line)
            self._say("::endgroup::")
        self._folded.clear()
        verdict = most_severe([*self._codes, *([] if code is None else [code])])
        if self._github and self._step_summary is not None and self._results:
            self._append(self._step_summary, summary_table(self._results), "step summary")
        if self._github and self._github_output is not None:
            self._append(self._github_output, self._outputs(verdict), "step outputs")
        return verdict

    def _outputs(self, verdict: int) -> str:
        produced = [rid for outcome, _ in self._results for rid in resource_ids(outcome.job)]
        results = [result_record(outcome) for outcome, _ in self._results]
        lines = [
            f"outcome={OVERALL.get(verdict, 'error')}",
            f"resource-ids={' '.join(produced)}",
            f"results={json_text(results)}",
        ]
        # A value is one line: json_text escapes line breaks, and IDs hold none.
        return "".join(line.replace("\n", " ").replace("\r", " ") + "\n" for line in lines)

    def _append(self, path: Path, text: str, what: str) -> None:
        try:
            with path.open("a", encoding="utf-8") as target:
                target.write(text)
        except OSError as exc:
            # A nicety: failing to write it must not change the verdict.
            self._say(f"imagejobs: warning: cannot write the {what}: {exc.strerror}")
