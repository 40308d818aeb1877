"""The live view on a terminal: one line per job, redrawn in place, with an estimate.

Each line says where a job stands: its status, sub-jobs done of all, how long
it has run, how long is left to the deadline, and, when the duration history
knows the job's type, when it is likely to end: the median and the 90th
percentile of the type's durations, given how long the job has already run.
The lines are text; :class:`LiveView` draws them with two escape sequences
(cursor up, clear the line), only ever on a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import attrs

from imagejobs import DurationHistory, ImageJob, LogNormal, SubJobStatus

from ._format import format_duration, visible

__all__ = ["MAX_LINES", "JobView", "LiveView", "remaining"]

MAX_LINES = 20
"""Jobs shown one a line at most; the others are counted on one more line."""

_DONE = (SubJobStatus.SUCCESS, SubJobStatus.FAILED)


def remaining(fit: LogNormal, age: float) -> tuple[float, float] | None:
    """Return the median and 90th percentile of the time left for a job ``age`` seconds old.

    Conditioned on the job still running: of the durations the fit expects, those
    longer than ``age``. None where the fit no longer says anything (past its tail).
    """
    reached = fit.cdf(max(age, 0.0))
    left = 1.0 - reached
    if left < 1e-6:
        return None
    median = fit.quantile(reached + 0.5 * left) - age
    p90 = fit.quantile(reached + 0.9 * left) - age
    if not (math.isfinite(median) and math.isfinite(p90)):
        return None
    return max(0.0, median), max(0.0, p90)


@attrs.define
class JobView:
    """What the live view knows of one job: its last snapshot, and how it ended."""

    job_id: str
    job: ImageJob | None = None
    ended: str | None = None

    def line(
        self, *, now: datetime, waited: float, left: float | None, history: DurationHistory | None
    ) -> str:
        """Return the job's line: status, sub-jobs, elapsed, time left, estimate."""
        job = self.job
        parts = [visible(self.job_id)]
        if job is None:
            parts.append("waiting for a first look")
            return "  ".join(parts)
        job_type = "-" if job.job_type is None else str(job.job_type)
        parts += [visible(job_type), visible(self.ended or str(job.status))]
        total = job.sub_jobs_total if job.sub_jobs_total is not None else len(job.sub_jobs)
        if total:
            done = sum(1 for sub in job.sub_jobs if sub.status in _DONE)
            parts.append(f"{done}/{total} sub-jobs")
        age = waited if job.begin_time is None else (now - job.begin_time).total_seconds()
        parts.append(f"elapsed {format_duration(max(age, 0.0))}")
        if self.ended is not None:
            return "  ".join(parts)
        if left is not None:
            parts.append(f"{format_duration(max(left, 0.0))} to the deadline")
        parts.append(_estimate(history, job, age))
        return "  ".join(parts)


def _estimate(history: DurationHistory | None, job: ImageJob, age: float) -> str:
    fit = None
    if history is not None and job.job_type is not None:
        fit = history.fit(str(job.job_type))
    if fit is None:
        return "no estimate (no history of its type)"
    left = remaining(fit, age)
    if left is None:
        return "past every duration its type has taken"
    median, p90 = left
    return f"ends in ~{format_duration(median)} (90%: {format_duration(p90)})"


class LiveView:
    """Keeps one line per job on a terminal, redrawn in place."""

    def __init__(
        self,
        write: Callable[[str], object],
        history: DurationHistory | None,
        deadline: float | None,
        *,
        now: Callable[[], datetime],
        clock: Callable[[], float],
    ) -> None:
        self._write = write
        self._history = history
        self._deadline = deadline
        self._now = now
        self._clock = clock
        self._started = clock()
        self.jobs: dict[str, JobView] = {}
        self._drawn = 0
        self.footer = ""
        """A last line under the jobs: the service unreachable, say."""

    def track(self, job_ids: list[str]) -> None:
        """Start showing these jobs."""
        for job_id in job_ids:
            self.jobs.setdefault(job_id, JobView(job_id))

    def lines(self) -> list[str]:
        """Return the lines the view shows now."""
        waited = self._clock() - self._started
        left = None if self._deadline is None else self._deadline - waited
        now = self._now()
        views = list(self.jobs.values())
        shown = [
            view.line(now=now, waited=waited, left=left, history=self._history)
            for view in views[:MAX_LINES]
        ]
        if len(views) > MAX_LINES:
            rest = views[MAX_LINES:]
            ended = sum(1 for view in rest if view.ended is not None)
            shown.append(f"... and {len(rest)} more jobs, {ended} of them ended")
        if self.footer:
            shown.append(visible(self.footer))
        return shown

    def clear(self) -> None:
        """Take the view off the screen, so that a line can be printed in its place."""
        if self._drawn:
            # Up to the view's first line, and clear from there to the end of the screen.
            self._write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def draw(self) -> None:
        """Draw the view anew where it was."""
        self.clear()
        lines = self.lines()
        self._write("".join(line + "\x1b[K\n" for line in lines))
        self._drawn = len(lines)
