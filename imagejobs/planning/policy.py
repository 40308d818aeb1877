"""How often a wait polls a job and for how long: :class:`PollPolicy`. Pure."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from imagejobs.core.errors import InvalidArgument
from imagejobs.core.validation import number_validator
from imagejobs.planning.backoff import schedule

__all__ = [
    "DEFAULT_INITIAL_DELAY",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MULTIPLIER",
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_WAIT_TIMEOUT",
    "PollPolicy",
]

DEFAULT_INITIAL_DELAY = 2.0
DEFAULT_MAX_DELAY = 27.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_JITTER = 0.2
DEFAULT_WAIT_TIMEOUT = 3600.0
DEFAULT_NOT_FOUND_GRACE = 10.0


@attrs.frozen(kw_only=True, cache_hash=True)  # hashed as each wait joins and leaves a job
class PollPolicy:
    """How often to poll and for how long (the schedule itself: :mod:`imagejobs.planning.cadence`).

    The gap between two polls depends on the job's age (since its
    ``begin_time``): ``initial_delay`` for a new job, growing by
    ``multiplier`` per poll (2 s, 4 s, 8 s, 16 s... with the defaults) up to
    ``max_delay``. A change seen in a poll does not shorten it. ``max_delay``
    is the longest gap between two polls; ``None`` (the default) means 27 s,
    except where a :class:`~imagejobs.DurationHistory` of the job's type places
    polls where its end is likely, sparser while it is improbable (up to 8 times
    that). ``jitter``
    is the most of a gap drawn away at random (0.2: each gap is 80 to 100% of
    the schedule's), to spread many waits. A ``Retry-After`` from the server is
    a floor. ``timeout`` is the overall deadline (``None`` for none); no poll
    starts at or after it. A job that answers 404 within ``not_found_grace``
    seconds of its first poll, and was never seen, is polled again: new jobs
    can take a moment to appear.
    """

    initial_delay: float = attrs.field(
        default=DEFAULT_INITIAL_DELAY, validator=number_validator(minimum=1e-9)
    )
    max_delay: float | None = attrs.field(
        default=None, validator=number_validator(minimum=1e-9, allow_none=True)
    )
    multiplier: float = attrs.field(
        default=DEFAULT_MULTIPLIER, validator=number_validator(minimum=1, unit="times")
    )
    timeout: float | None = attrs.field(
        default=DEFAULT_WAIT_TIMEOUT, validator=number_validator(minimum=1e-9, allow_none=True)
    )
    not_found_grace: float = attrs.field(
        default=DEFAULT_NOT_FOUND_GRACE, validator=number_validator(minimum=0)
    )
    jitter: float = attrs.field(
        default=DEFAULT_JITTER, validator=number_validator(minimum=0, unit="shares")
    )

    def __attrs_post_init__(self) -> None:
        if self.max_delay is not None and self.max_delay < self.initial_delay:
            raise InvalidArgument(
                f"max_delay ({self.max_delay:g}s) must not be below initial_delay "
                f"({self.initial_delay:g}s)"
            )
        if self.jitter > 1:
            raise InvalidArgument(f"jitter must be between 0 and 1, got {self.jitter!r}")

    @property
    def longest_gap(self) -> float:
        """The longest gap without a history: ``max_delay``, or 27 s (``initial_delay`` if more)."""
        if self.max_delay is None:
            return max(DEFAULT_MAX_DELAY, self.initial_delay)
        return self.max_delay

    def delays(self) -> Iterator[float]:
        """Return the gaps, before jitter, between polls of a job first polled when it began.

        The schedule without a history: each gap is ``initial_delay`` plus
        ``multiplier - 1`` times the job's age, which for a job polled from its
        start is ``initial_delay`` times ``multiplier`` per poll, up to the
        longest gap.
        """
        return schedule(self.initial_delay, self.longest_gap, self.multiplier)

    def jittered(self, delay: float, draw: float) -> float:
        """Return ``delay`` with jitter, for a random ``draw`` in [0, 1)."""
        return delay * (1.0 - self.jitter * draw)
