"""Who gets which line: :class:`Reporter` sends the formatted text where it belongs.

Human lines go to stderr, results to stdout; on a terminal a live view is
redrawn in place (:mod:`._progress`); under GitHub Actions the step summary
and outputs are written at the end. It keeps the score for the exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from imagejobs import DurationHistory, Outcome, Transition

from ._format import (
    OVERALL,
    annotations_for,
    exit_code_for,
    format_duration,
    format_result,
    format_transition,
    json_text,
    most_severe,
    resource_ids,
    result_id,
    result_record,
    summary_table,
    transition_record,
    utc,
    visible,
)
from ._progress import LiveView
from ._reach import Reach

__all__ = ["Reporter"]


class Reporter:
    """Prints transitions and results where they belong and keeps the score.

    Human lines go to ``stderr``: each transition as it is seen (under GitHub
    Actions too: a log shows the build as it goes), each job's result as it
    ends. ``quiet`` keeps only why a job did not succeed. NDJSON goes to
    ``stdout`` with ``json_lines``; otherwise, once every job ended, ``stdout``
    gets the ID of what each successful job made (:func:`._format.result_id`),
    one a line in the order given, for ``$(imagejobs wait ...)``. ``live`` (a
    terminal) redraws one line per job in place (:mod:`._progress`); elsewhere
    a timestamped heartbeat every ``heartbeat`` seconds (0: none) says the step
    is alive, and, while no request has reached the service, why
    (``reach``). Under GitHub Actions ``::error`` annotations name what failed,
    and the step summary and outputs are written at the end.
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
        history: DurationHistory | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._stdout = stdout
        self._stderr = stderr
        self._json = json_lines
        self._quiet = quiet
        self._human = not quiet and not json_lines
        self._github = github
        self._step_summary = step_summary
        self._github_output = github_output
        self._clock = clock
        self._now = now
        self._view: LiveView | None = None
        if live and self._human:
            self._view = LiveView(self._stderr.write, history, deadline, now=now, clock=clock)
        self._heartbeat = 0.0 if self._view is not None or quiet else heartbeat
        self._started = clock()
        self._last_beat = self._started
        self._order: list[str] = []
        self._results: list[tuple[Outcome, float, str]] = []
        self._codes: list[int] = []
        self._finished = False
        self.reach: Reach | None = None
        """What the client's requests show of the service, for the heartbeat."""

    @property
    def heartbeat(self) -> float:
        """Seconds between heartbeat lines (0: none, as on a terminal)."""
        return self._heartbeat

    @property
    def shows_transitions(self) -> bool:
        """Whether transitions are printed or drawn, so worth polling for."""
        return self._human or self._json

    def start(self, job_ids: list[str]) -> None:
        """Note the jobs being waited on, in the order given."""
        self._order = list(job_ids)
        if self._view is not None:
            self._view.track(self._order)
        self._redraw()

    def _counts(self) -> str:
        kinds = [kind for _, _, kind in self._results]
        ok, failed = kinds.count("success"), kinds.count("failed")
        other = len(kinds) - ok - failed
        waiting = len(self._order) - len(kinds)
        return f"{ok} ok, {failed} failed, {other} other, {waiting} waiting"

    def _unreachable(self) -> str:
        """Say how long no request has reached the service, and why, if that is so."""
        reach = self.reach
        if reach is None or not reach.unreachable_for():
            return ""
        return (
            f"no answer from the service for {format_duration(reach.unreachable_for())}: "
            f"{reach.last_error}"
        )

    def _redraw(self) -> None:
        if self._view is not None and not self._finished:
            self._view.footer = self._unreachable()
            self._view.draw()
            self._stderr.flush()

    def tick(self) -> None:
        """Redraw the live view, or print a heartbeat when one is due (about once a second)."""
        self._redraw()
        now = self._clock()
        if self._heartbeat > 0 and now - self._last_beat >= self._heartbeat and not self._finished:
            self._last_beat = now
            line = f"{utc(self._now())} heartbeat: {self._counts()}, "
            line += f"elapsed {format_duration(now - self._started)}"
            unreachable = self._unreachable()
            self._say(line + (f"; {unreachable}" if unreachable else ""))

    def _say(self, line: str) -> None:
        if self._view is not None:
            self._view.clear()
        self._stderr.write(visible(line) + "\n")
        self._redraw()
        self._stderr.flush()

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
        """Report one transition as it is seen."""
        if self._view is not None:
            self._view.track([transition.job_id])
            self._view.jobs[transition.job_id].job = transition.job
        if self._json:
            self._emit(transition_record(transition))
        if self._human:
            self._say(format_transition(transition))

    def result(self, outcome: Outcome, *, interrupted: bool = False) -> None:
        """Report how one job ended, at once (``interrupted``: a signal stopped its wait)."""
        waited = self._clock() - self._started
        kind = "interrupted" if interrupted else outcome.kind
        self._results.append((outcome, waited, kind))
        if not interrupted:
            self._codes.append(exit_code_for(outcome))
        if self._view is not None and outcome.job_id in self._view.jobs:
            view = self._view.jobs[outcome.job_id]
            view.job = outcome.job or view.job
            view.ended = kind
        if self._json:
            self._emit(result_record(outcome, kind))
        # An error stands out on a line of its own, once: under GitHub as an annotation.
        if kind == "error" and not self._github and (self._json or self._human):
            self.error(f"job {outcome.job_id}: {outcome.error}")
        if self._human or (self._quiet and not outcome.ok):
            # Quiet hides progress, never why a job did not succeed.
            self._say(format_result(outcome, waited, kind))
        if self._github and not interrupted:
            for line in annotations_for(outcome):
                self._say(line)
        self._redraw()

    def finish(self, code: int | None = None) -> int:
        """Print what the jobs made, write the GitHub summary and outputs; return the exit code."""
        if self._view is not None:
            self._view.footer = ""
            self._view.draw()  # the last state of every job stays on the screen
        self._finished = True
        verdict = most_severe([*self._codes, *([] if code is None else [code])])
        if not self._json:
            made = self._made()
            self._stdout.write("".join(f"{visible(made_id)}\n" for made_id in made))
            self._stdout.flush()
        if self._github and self._step_summary is not None and self._results:
            self._append(self._step_summary, summary_table(self._results), "step summary")
        if self._github and self._github_output is not None:
            self._append(self._github_output, self._outputs(verdict), "step outputs")
        return verdict

    def _made(self) -> list[str]:
        """Return the IDs the successful jobs made, in the order the jobs were given."""
        by_job = {o.job_id: result_id(o.job) for o, _, kind in self._results if kind == "success"}
        return [made for job_id in self._order if (made := by_job.get(job_id))]

    def _outputs(self, verdict: int) -> str:
        produced = [rid for outcome, _, _ in self._results for rid in resource_ids(outcome.job)]
        results = [result_record(outcome, kind) for outcome, _, kind in self._results]
        lines = [
            f"outcome={OVERALL.get(verdict, 'error')}",
            f"result-ids={' '.join(self._made())}",
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
