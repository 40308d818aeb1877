"""One backoff: the doubling schedule is backoff.expo's, the jitter stays within its bounds."""

from __future__ import annotations

import itertools

import backoff
from hypothesis import given
from hypothesis import strategies as st

from imagejobs.planning.backoff import equal_jitter, full_jitter, schedule, step

firsts = st.floats(min_value=1e-3, max_value=10)
factors = st.floats(min_value=1, max_value=4)


@given(first=firsts, grow=st.floats(1, 1e4), factor=factors)
def test_the_schedule_is_backoffs_exponential(first: float, grow: float, factor: float) -> None:
    cap = first * grow
    expo = backoff.expo(base=factor, factor=first, max_value=cap)
    next(expo)
    assert list(itertools.islice(schedule(first, cap, factor), 20)) == list(
        itertools.islice(expo, 20)
    )


@given(first=firsts, grow=st.floats(1, 1e4), factor=factors, attempt=st.integers(1, 10_000))
def test_step_is_the_nth_delay_and_never_past_the_cap(
    first: float, grow: float, factor: float, attempt: int
) -> None:
    cap = first * grow
    delay = step(attempt, first, cap, factor)
    assert first <= delay <= cap or delay == cap
    if attempt <= 20:
        assert delay == list(itertools.islice(schedule(first, cap, factor), attempt))[-1]


def test_step_doubles_then_holds() -> None:
    assert [step(n, 0.5, 8) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]


@given(delay=st.floats(0, 1e6), draw=st.floats(0, 1, exclude_max=True))
def test_jitter_stays_within_its_share(delay: float, draw: float) -> None:
    assert 0 <= full_jitter(delay, draw) <= delay
    assert delay / 2 <= equal_jitter(delay, draw) <= delay
