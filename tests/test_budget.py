"""RequestBudget: the in-flight cap and token bucket, on a caller's clock. Pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import InvalidArgument
from imagejobs.budget import RequestBudget


def test_in_flight_cap() -> None:
    budget = RequestBudget.create(max_in_flight=2, rate=math.inf, now=0)
    assert budget.try_start(0)
    assert budget.try_start(0)
    assert not budget.try_start(0)
    assert not budget.has_room
    budget.finish()
    assert budget.try_start(0)


def test_rate_with_small_burst() -> None:
    budget = RequestBudget.create(max_in_flight=100, rate=20, now=0)
    assert budget.burst(0) == 5
    started = sum(budget.try_start(0) for _ in range(100))
    assert started == 5
    assert budget.next_start(0) == pytest.approx(0.05)
    assert not budget.try_start(0.04)
    assert budget.try_start(0.05)


def test_unlimited_rate_never_stalls() -> None:
    budget = RequestBudget.create(max_in_flight=1000, rate=math.inf, now=5)
    assert all(budget.try_start(5) for _ in range(1000))
    assert budget.next_start(5) == 5


def test_pause_holds_every_start_and_only_extends() -> None:
    budget = RequestBudget.create(max_in_flight=10, rate=100, now=0)
    budget.pause_until(7)
    budget.pause_until(3)
    assert not budget.try_start(6.9)
    assert budget.next_start(1) == 7
    assert budget.try_start(7)


@pytest.mark.parametrize(
    ("max_in_flight", "rate"), [(0, 1), (1.5, 1), (True, 1), (1, 0), (1, -2), (1, "fast")]
)
def test_bad_limits_are_rejected(max_in_flight: object, rate: object) -> None:
    with pytest.raises(InvalidArgument):
        RequestBudget.create(max_in_flight, rate, 0)  # type: ignore[arg-type]


@given(
    rate=st.floats(min_value=0.5, max_value=200),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300),
)
def test_no_window_of_a_second_exceeds_rate_plus_burst(rate: float, gaps: list[float]) -> None:
    budget = RequestBudget.create(max_in_flight=10**6, rate=rate, now=0)
    now, starts = 0.0, []
    for gap in gaps:
        now += gap
        while budget.try_start(now):
            starts.append(now)
    for i, start in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t < start + 1)
        assert in_window <= rate + budget.burst(now) + 1e-9


def test_a_token_due_by_float_sums_is_usable_at_once() -> None:
    # 0.06 - 0.04 is 0.019999999999999997: the refill falls short of a whole token
    # by less than 0.06 can tell apart, which once made a fake clock sleep(0) forever.
    budget = RequestBudget.create(max_in_flight=100, rate=50, now=0)
    while budget.try_start(0.04):
        pass
    assert budget.next_start(0.06) == 0.06
    assert budget.try_start(0.06)


@given(
    rate=st.floats(min_value=0.1, max_value=1e6),
    start=st.floats(min_value=0, max_value=1e7),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=50),
)
def test_waiting_until_next_start_always_ends_in_a_start(
    rate: float, start: float, gaps: list[float]
) -> None:
    budget = RequestBudget.create(max_in_flight=10**6, rate=rate, now=start)
    now = start
    for gap in gaps:
        now += gap
        while budget.try_start(now):
            pass
        # A caller sleeps until next_start and tries again; that must not loop for ever.
        for _ in range(1000):
            later = budget.next_start(now)
            assert later > now, "next_start named a time at which nothing can start"
            now = later
            if budget.try_start(now):
                break
        else:
            raise AssertionError("no start after 1000 waits")
