"""The retry policy: its delays, and the policies it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import (
    InvalidArgument,
    RetryPolicy,
    Throttled,
)

JOB = "702364883651395584"

RUNNING = {"id": JOB, "status": "RUNNING"}


@given(
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    draws=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=20),
)
def test_each_wait_is_jittered_under_the_cap_and_never_below_retry_after(
    retry_after: float | None, draws: list[float]
) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8)
    error = Throttled(429, "APIGW.0308", "slow down", retry_after=retry_after)
    for attempt, draw in enumerate(draws, start=1):
        wait = policy.delay(attempt, error, draw)
        assert (retry_after or 0) <= wait <= max(retry_after or 0, 8)
        doubled = min(0.5 * 2 ** (attempt - 1), 8)
        assert wait == max(retry_after or 0, doubled * draw)  # full jitter on the doubling step


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"max_attempts": 1.5}, {"max_time": -1}, {"initial_delay": 0}],
)
def test_bad_retry_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        RetryPolicy(**kwargs)


@given(
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=100)),
    draws=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=1, max_size=20),
)
def test_the_wait_generator_gives_the_same_delays(
    retry_after: float | None, draws: list[float]
) -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8)
    numbers = iter(draws)
    waits = policy.waits(lambda: next(numbers))
    next(waits)
    error = Throttled(429, "APIGW.0308", "slow down", retry_after=retry_after)
    for attempt, draw in enumerate(draws, start=1):
        assert waits.send(error) == policy.delay(attempt, error, draw)
