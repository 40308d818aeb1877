"""A stream's own bookkeeping: failures in a row, what an answer resets, what a sweep does not."""

from __future__ import annotations

from imagejobs import ServerError
from imagejobs.scheduling.streams import Stream

BUSY = ServerError(503, "WKS.0503", "busy")


def test_failures_count_in_a_row_until_an_answer() -> None:
    stream = Stream("j")
    assert [stream.failed(BUSY, since=float(n)) for n in range(3)] == [1, 2, 3]
    assert stream.failure is not None
    assert stream.failure.since == 0.0  # since the first of the row
    stream.answered(draw=0.3)
    assert stream.failure is None
    assert (stream.failures, stream.draw) == (0, 0.3)
    assert stream.failed(BUSY, since=9.0) == 1


def test_a_sweep_that_clears_the_failure_keeps_the_backoff_going() -> None:
    stream = Stream("j")
    stream.failed(BUSY, since=0.0)
    stream.failed(BUSY, since=1.0)
    stream.failure = None  # what a sweep that lists the job does: it is not failing now
    assert stream.failed(BUSY, since=5.0) == 3  # the next GET's failure backs off further
    assert stream.failure is not None
    assert stream.failure.since == 5.0
