"""What the hub asks of the request path, and what it gets back: its one contract with I/O.

The hub is given two coroutine functions. A :data:`PollFunction` looks at one
job: it gets the job's ID, the time its look became due (its priority in the
budget's queue), the call's gate if a caller narrowed its share, and a
:class:`Look`; it returns a :class:`LookResult`, what the look found. A :data:`ListFunction` fetches
one page of a job or sub-job list for a sweep, a :class:`PageResult`. The client gives the hub
functions over HTTP (:class:`~imagejobs.scheduling.polls.Poller`); tests give it
scripted ones on a :class:`~imagejobs.testing.FakeClock`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from imagejobs.core.codec import Page
from imagejobs.core.models import ImageJob, ImageJobInfo, SubJob
from imagejobs.planning.sweeps import Listing
from imagejobs.timing.gate import Gate

__all__ = ["ListFunction", "Look", "LookResult", "PageResult", "PollFunction"]


@attrs.frozen
class Look:
    """What the hub asks of one look at a job: any snapshot taken since ``fresh_after`` will do.

    ``mark`` is where the job's shared snapshots were last read (see
    :mod:`imagejobs.fleet.shared`): a look in a fleet replays what came after it.
    """

    fresh_after: float
    mark: str = ""
    source: str = "poll"
    """Why the look is made (see :data:`~imagejobs.observability.records.SOURCES`)."""


@attrs.frozen
class LookResult:
    """What one look found: snapshots, oldest first, each with when it was taken.

    ``own`` says this process fetched the last one; otherwise they came from
    another process's looks. A ``retry_in`` means another process is looking
    right now (what it replays is older): look again in about that long.
    """

    jobs: tuple[tuple[ImageJob, float], ...]
    mark: str = ""
    own: bool = True
    retry_in: float = 0.0


@attrs.frozen
class PageResult:
    """One page of a list, and when it was answered: ``at``, on the client's clock.

    ``own`` says this process sent its request; otherwise another process of
    the fleet did, at ``at``, and it cost this one nothing.
    """

    page: Page[ImageJobInfo | SubJob]
    at: float
    own: bool = True


PollFunction = Callable[[str, float, Gate | None, Look], Coroutine[Any, Any, LookResult]]
"""``poll(job_id, priority, call_gate, look)``: look at a job once, no retries."""

ListFunction = Callable[[Listing, int, float, Gate | None], Coroutine[Any, Any, PageResult]]
"""``list_page(listing, offset, priority, call_gate)``: one page of a list, no retries.

``priority`` is when the sweep became due: its place in the budget's queue, and in a
fleet how old a page another process fetched may be (:mod:`imagejobs.fleet.pages`)."""
