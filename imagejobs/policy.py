"""How often a wait polls a job and for how long: :class:`PollPolicy`. Pure."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import backoff

from .errors import InvalidArgument
from .validation import number_validator

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
DEFAULT_MAX_DELAY = 30.0
DEFAULT_MULTIPLIER = 2.0
DEFAULT_JITTER = 1.0
DEFAULT_WAIT_TIMEOUT = 3600.0
DEFAULT_NOT_FOUND_GRACE = 10.0


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How often to poll and for how long.

    While nothing changes, the delay between polls grows from ``initial_delay``
    by ``multiplier`` up to ``max_delay``; a poll that shows a change drops it
    back to ``initial_delay``. ``jitter`` is the share of each delay drawn at
    random: ``1`` (full jitter) draws a uniform fraction of it, ``0`` none.
    A ``Retry-After`` from the server is a floor. ``timeout`` is the overall
    deadline (``None`` for none); no poll starts at or after it. A job that
    answers 404 within ``not_found_grace`` seconds of its first poll, and was
    never seen, is polled again: new jobs can take a moment to appear.
    """

    initial_delay: float = attrs.field(
        default=DEFAULT_INITIAL_DELAY, validator=number_validator(minimum=1e-9)
    )
    max_delay: float = attrs.field(
        default=DEFAULT_MAX_DELAY, validator=number_validator(minimum=1e-9)
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
        if self.max_delay < self.initial_delay:
            raise InvalidArgument(
                f"max_delay ({self.max_delay:g}s) must not be below initial_delay "
                f"({self.initial_delay:g}s)"
            )
        if self.jitter > 1:
            raise InvalidArgument(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def delays(self) -> Iterator[float]:
        """Return the delays, before jitter, between polls while nothing changes."""
        schedule = backoff.expo(
            base=self.multiplier, factor=self.initial_delay, max_value=self.max_delay
        )
        next(schedule)  # backoff's generators start with a priming yield
        return schedule

    def jittered(self, delay: float, draw: float) -> float:
        """Return ``delay`` with jitter, for a random ``draw`` in [0, 1)."""
        return delay * (1.0 - self.jitter * draw)
