"""RequestBudget: the in-flight cap and token bucket, on a caller's clock. Pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import InvalidArgument
from imagejobs.planning.budget import MAX_RETRY_AFTER, RequestBudget
from imagejobs.planning.ratelaw import AdaptiveRate


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
    assert budget.burst(0) == 2
    started = sum(budget.try_start(0) for _ in range(100))
    assert started == 2
    # A hair under the rate: a gateway counting the same rate never sees one too many.
    assert budget.next_start(0) == pytest.approx(1 / (20 * 0.99))
    assert not budget.try_start(0.05)
    assert budget.try_start(0.051)


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
    due = budget.next_start(0.06)
    assert 0.06 <= due < 0.061
    assert budget.try_start(due), "the token due then was not usable then"


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


# --- the adaptive rate --------------------------------------------------------------


def accept(rate: AdaptiveRate, count: int, start: float, end: float) -> None:
    """Record ``count`` accepted answers spread evenly over [start, end)."""
    for n in range(count):
        rate.on_accepted(start + (end - start) * n / count)


def test_a_429_drops_the_rate_to_a_share_of_what_the_gateway_accepted() -> None:
    rate = AdaptiveRate.create(50.0)
    accept(rate, 10, 0.5, 1.0)
    hold = rate.on_throttled(1.0, sent_at=1.0)
    assert hold == 1.0
    assert rate.ceiling == 10
    assert rate.current(1.0) == pytest.approx(7.0)


def test_a_429_to_a_request_sent_before_the_drop_is_not_counted_again() -> None:
    rate = AdaptiveRate.create(50.0)
    accept(rate, 10, 0.5, 1.0)
    rate.on_throttled(1.0, sent_at=1.0)
    assert rate.on_throttled(1.01, sent_at=0.99) is None
    assert 7.0 <= rate.current(1.01) < 7.1, "no second drop"


def test_the_rate_climbs_back_to_the_ceiling_then_past_it_but_never_past_the_max() -> None:
    rate = AdaptiveRate.create(12.0)
    accept(rate, 10, 0.5, 1.0)
    rate.on_throttled(1.0, sent_at=1.0)
    seen = []
    for tenth in range(11, 300):
        now = tenth / 10
        accept(rate, 1, now - 0.05, now)  # demand keeps up: enough answers to climb on
        seen.append(rate.current(now))
    assert seen == sorted(seen), "the climb never goes back down while no 429 comes"
    assert max(seen) == 12.0
    at_knee = seen[int((10 * 0.3 / 0.1) ** (1 / 3) * 10) - 1]
    assert 9.0 <= at_knee <= 10.5, "back near the ceiling after the knee"


def test_without_demand_the_rate_does_not_climb() -> None:
    rate = AdaptiveRate.create(50.0)
    accept(rate, 10, 0.5, 1.0)
    rate.on_throttled(1.0, sent_at=1.0)
    assert rate.current(100.0) == pytest.approx(7.0)


def test_drops_at_the_same_ceiling_stretch_the_climb_and_close_drops_hold_longer() -> None:
    rate = AdaptiveRate.create(50.0)
    holds, stretches = [], []
    for drop in range(4):
        start = drop * 1.5
        accept(rate, 10, start, start + 1.0)
        holds.append(rate.on_throttled(start + 1.0, sent_at=start + 1.0))
        stretches.append(rate.stretch)
    assert stretches == [0, 1, 2, 3]
    assert holds == [1.0, 2.0, 4.0, 8.0]
    accept(rate, 30, 100.0, 101.0)
    assert rate.on_throttled(101.0, sent_at=101.0) == 1.0, "a drop long after starts over"
    assert rate.stretch == 0, "a very different ceiling starts over"


def test_nothing_accepted_drops_hard_but_never_below_the_floor() -> None:
    rate = AdaptiveRate.create(5.0)
    for n in range(30):
        rate.on_throttled(n * 10.0, sent_at=n * 10.0)
    assert rate.current(300.0) == rate.floor


@given(
    max_rate=st.floats(min_value=0.05, max_value=1000),
    events=st.lists(
        st.tuples(st.floats(min_value=0, max_value=5), st.booleans()), min_size=1, max_size=200
    ),
)
def test_the_rate_stays_between_the_floor_and_the_max(
    max_rate: float, events: list[tuple[float, bool]]
) -> None:
    rate = AdaptiveRate.create(max_rate)
    now = 0.0
    for gap, throttled in events:
        now += gap
        if throttled:
            hold = rate.on_throttled(now, sent_at=now)
            assert hold is None or 0 < hold <= 8.0
        else:
            rate.on_accepted(now)
        assert rate.floor <= rate.current(now) <= max_rate


def test_a_budget_holds_every_start_after_a_429() -> None:
    budget = RequestBudget.create(max_in_flight=10, rate=50, now=0)
    assert budget.try_start(0)
    budget.finish(0.5, sent_at=0, throttled=True)
    assert budget.next_start(0.5) == 1.5
    assert not budget.try_start(1.4)
    assert budget.try_start(2.0)
    budget.finish(2.1, sent_at=2.0, throttled=True, retry_after=30)
    assert budget.next_start(2.1) == pytest.approx(32.1), "a Retry-After beats the hold"


def test_a_retry_after_of_an_answer_holds_every_start_capped_and_keeps_the_rate() -> None:
    budget = RequestBudget.create(max_in_flight=10, rate=50, now=0)
    assert budget.try_start(0)
    budget.finish(0.5, sent_at=0, answered=True, retry_after=20)  # a 503's
    assert budget.next_start(0.5) == pytest.approx(20.5)
    assert budget.adaptive.current(0.5) == 50
    assert budget.try_start(20.5)
    budget.finish(21, sent_at=20.5, answered=True, retry_after=86400)
    assert budget.next_start(21) == pytest.approx(21 + MAX_RETRY_AFTER)


def test_the_log_of_accepted_answers_keeps_to_the_last_two_seconds_at_any_rate() -> None:
    for rate in (math.inf, 5.0):
        budget = RequestBudget.create(8, rate, 0.0)
        for n in range(10_000):
            now = n * 0.001  # a thousand answers a second, for ten seconds
            budget.finish(now, sent_at=now, answered=True)
            assert len(budget.adaptive.accepted) <= 2_001
        assert budget.adaptive.measured(10.0) == pytest.approx(1000, abs=2)


def test_forgetting_starts_the_rate_over_from_values_made_before() -> None:
    # A closed client's budget lets go of what its requests taught it: nothing it keeps
    # was made as the waits ended (imagejobs.core.memo says why).
    budget = RequestBudget.create(max_in_flight=4, rate=20.0, now=0.0)
    for at in (0.1, 0.2, 0.3):
        assert budget.try_start(at)
        budget.finish(at, answered=True)
    assert budget.try_start(0.4)
    budget.finish(0.4, sent_at=0.4, throttled=True, retry_after=3.0)
    adaptive = budget.adaptive
    assert adaptive.rate < 20.0
    assert adaptive.ceiling is not None
    assert len(adaptive.accepted) > 0
    budget.forget()
    fresh = AdaptiveRate.create(20.0)
    assert (adaptive.rate, adaptive.stretch) == (20.0, 0)
    assert adaptive.ceiling == fresh.ceiling
    assert adaptive.rate is adaptive.max_rate
    assert (adaptive.dropped_at, adaptive.hold) == (fresh.dropped_at, fresh.hold)
    assert len(adaptive.accepted) == 0
    assert budget.paused_until == -math.inf
    assert (budget.tokens, budget.refilled_at) == (0.0, -math.inf)
