"""How long jobs of each type took: :class:`DurationHistory`, and the fit a schedule uses.

A client records the duration of every job it sees end (from the job's own
``begin_time`` and ``end_time``), per job type. With enough samples of a
type, the durations are summed up as a log-normal distribution (job
durations are positive and skewed to the right: a few take much longer than
most), which :mod:`imagejobs.planning.cadence` uses to place polls where ends are
likely. The history is a small JSON file, so a command line or a CI job can
keep it between runs.

Pure but for :meth:`DurationHistory.save` and :meth:`DurationHistory.load`,
which write and read that file (small, and blocking: call them at start and end).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

import attrs

from imagejobs.core.errors import ConfigurationError, InvalidArgument
from imagejobs.core.models import ImageJob, ImageJobInfo

__all__ = [
    "LONGEST",
    "MAX_SAMPLES",
    "MAX_SIGMA",
    "MIN_SAMPLES",
    "SHORTEST",
    "DurationHistory",
    "LogNormal",
    "duration_of",
]

MAX_SAMPLES = 200
"""Durations kept per job type, the most recent: jobs change as the service does."""

MIN_SAMPLES = 8
"""Durations of a type needed before they shape a schedule."""

SHORTEST = 1.0
LONGEST = 30 * 24 * 3600.0
"""Durations outside one second to thirty days are refused: no image job takes them,
and a fit stretched over such values would place polls nowhere useful."""

MAX_SIGMA = 1.5
"""The widest spread a fit reports: beyond it, durations say little about where ends are."""

_FORMAT = 1


@attrs.frozen
class LogNormal:
    """Durations whose logarithm is normal: median ``exp(mu)``, spread ``sigma``, ``count`` seen."""

    mu: float
    sigma: float
    count: int

    @property
    def median(self) -> float:
        """The duration half the jobs take less than, in seconds."""
        return math.exp(self.mu)

    def cdf(self, seconds: float) -> float:
        """Return the share of jobs that end within ``seconds``."""
        if seconds <= 0:
            return 0.0
        return 0.5 * math.erfc(-(math.log(seconds) - self.mu) / (self.sigma * math.sqrt(2)))

    def quantile(self, share: float) -> float:
        """Return the duration a ``share`` (0 < share < 1) of jobs end within."""
        return math.exp(self.mu + self.sigma * math.sqrt(2) * _erfinv(2 * share - 1))


def _erfinv(y: float) -> float:
    """Return x with erf(x) = y, for -1 < y < 1 (Newton's method from a close start)."""
    a = 0.147
    ln = math.log(1 - y * y)
    first = 2 / (math.pi * a) + ln / 2
    x = math.copysign(math.sqrt(math.sqrt(first * first - ln / a) - first), y)
    for _ in range(3):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def duration_of(job: ImageJob | ImageJobInfo) -> float | None:
    """Return how long a finished job took, from its own times, or None if they do not say."""
    if job.begin_time is None or job.end_time is None:
        return None
    seconds = (job.end_time - job.begin_time).total_seconds()
    return seconds if SHORTEST <= seconds <= LONGEST else None


def _checked_type(job_type: object) -> str:
    if not isinstance(job_type, str) or not job_type:
        raise InvalidArgument(f"job_type must be a non-empty string, got {job_type!r}")
    return job_type


def _checked_duration(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgument(f"a duration must be a number of seconds, got {seconds!r}")
    try:
        usable = SHORTEST <= seconds <= LONGEST
    except OverflowError:  # an integer too large for a float
        usable = False
    if not usable:
        raise InvalidArgument(
            f"a duration must be between {SHORTEST:g} s and {LONGEST:g} s, got {seconds!r}"
        )
    return float(seconds)


class DurationHistory:
    """Durations of finished jobs, per job type, the :data:`MAX_SAMPLES` most recent of each.

    ``record`` adds one; ``fit`` sums a type up once it has :data:`MIN_SAMPLES`
    (:attr:`MIN_SAMPLES` here too);
    ``save`` and ``load`` keep it in a JSON file between runs.
    """

    MIN_SAMPLES: ClassVar[int] = MIN_SAMPLES
    """Durations of a type needed before they place polls."""

    def __init__(self, durations: Mapping[str, Iterable[float]] | None = None) -> None:
        self._durations: dict[str, deque[float]] = {}
        # Every poll of a job of a known type asks for its fit: worked out once per change.
        self._fits: dict[str, LogNormal | None] = {}
        for job_type, seconds in (durations or {}).items():
            for value in seconds:
                self.record(job_type, value)

    def __repr__(self) -> str:
        counts = ", ".join(f"{t}={len(d)}" for t, d in sorted(self._durations.items()))
        return f"DurationHistory({counts})"

    def record(self, job_type: str, seconds: float) -> None:
        """Add one duration of a ``job_type`` job; raises :class:`InvalidArgument` if unusable."""
        kept = self._durations.setdefault(_checked_type(job_type), deque(maxlen=MAX_SAMPLES))
        kept.append(_checked_duration(seconds))
        self._fits.pop(job_type, None)

    def replace(self, job_type: str, durations: Iterable[float]) -> None:
        """Replace a type's durations with these (the most recent last); all or nothing."""
        fresh = deque((_checked_duration(s) for s in durations), maxlen=MAX_SAMPLES)
        self._durations.pop(_checked_type(job_type), None)
        self._fits.pop(job_type, None)
        if fresh:
            self._durations[job_type] = fresh

    def durations(self, job_type: str) -> tuple[float, ...]:
        """Return the recorded durations of a type, oldest first."""
        return tuple(self._durations.get(job_type, ()))

    @property
    def job_types(self) -> tuple[str, ...]:
        """The job types with any recorded duration, sorted."""
        return tuple(sorted(self._durations))

    def fit(self, job_type: str) -> LogNormal | None:
        """Return the log-normal fit of a type's durations, or None below :data:`MIN_SAMPLES`."""
        if job_type not in self._durations:
            return None  # not cached: the server's job types are an open set
        if job_type not in self._fits:
            self._fits[job_type] = self._fit(job_type)
        return self._fits[job_type]

    def _fit(self, job_type: str) -> LogNormal | None:
        kept = self._durations.get(job_type)
        if kept is None or len(kept) < MIN_SAMPLES:
            return None
        logs = [math.log(value) for value in kept]
        mu = sum(logs) / len(logs)
        variance = sum((value - mu) ** 2 for value in logs) / (len(logs) - 1)
        # A floor: identical samples say little about the next job's spread.
        return LogNormal(mu, min(MAX_SIGMA, max(math.sqrt(variance), 0.05)), len(logs))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the history to ``path`` as JSON, atomically (a reader never sees half a file)."""
        target = Path(path)
        data = {
            "format": _FORMAT,
            "durations": {t: list(d) for t, d in sorted(self._durations.items())},
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file)
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DurationHistory:
        """Read a history saved by :meth:`save`; a missing file is an empty history.

        Raises :class:`ConfigurationError` naming the file for one that cannot be
        read or is not a history.
        """
        target = Path(path)
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigurationError(f"cannot read history {target}: {exc.strerror}") from None
        except (UnicodeDecodeError, ValueError):
            text = ""  # not text: not a history either
        problem = f"history {target} is not a duration history saved by imagejobs"
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise ConfigurationError(problem) from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigurationError(problem)
        durations = data.get("durations")
        if not isinstance(durations, dict) or not all(
            isinstance(values, list) for values in durations.values()
        ):
            raise ConfigurationError(problem)
        try:
            return cls(durations)
        except (InvalidArgument, OverflowError, TypeError) as exc:
            raise ConfigurationError(f"{problem}: {exc}") from None
