"""The budget's allocation between sources: properties that hold for any rate, sweep and policy."""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import PollPolicy
from imagejobs.planning.allocation import (
    CHANGE_EVIDENCE,
    PAGES_PER_CHANGE,
    SAFETY_BURST,
    SAFETY_SHARE,
    SWEEP_SHARE,
    ChangeRate,
    OwnLooks,
    PageShare,
    SafetyAllowance,
    SweepDemand,
    allocate,
    safety_gap,
)
from imagejobs.planning.cadence import next_gap
from imagejobs.planning.history import LogNormal

rates = st.floats(min_value=0.05, max_value=1000)
gaps = st.floats(min_value=0.01, max_value=600)
multipliers = st.floats(min_value=1, max_value=4)


@st.composite
def demands(draw: st.DrawFn) -> SweepDemand:
    first = draw(gaps)
    return SweepDemand(
        pages=draw(st.integers(1, 2000)),
        jobs=draw(st.integers(1, 200_000)),
        first=first,
        longest=first + draw(gaps),
        multiplier=draw(multipliers),
        quiet=draw(st.integers(0, 50)),
        extra_gets=draw(st.integers(0, 500)),
        changes=draw(st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=1000))),
        own=draw(st.one_of(st.none(), st.builds(OwnLooks, st.floats(0.001, 1e5), gaps))),
    )


@given(rate=rates, demand=demands())
def test_sweeps_and_safety_gets_together_never_ask_more_than_their_shares(
    rate: float, demand: SweepDemand
) -> None:
    allocation = allocate(rate, demand)
    asked = demand.pages / allocation.sweep_gap + demand.jobs / allocation.safety_gap
    assert asked <= (SWEEP_SHARE + SAFETY_SHARE) * rate * (1 + 1e-9)
    # What is left, at least, for first looks, ends, polls and retries.
    assert rate - asked >= (1 - SWEEP_SHARE - SAFETY_SHARE) * rate * (1 - 1e-9)


@given(
    rate=rates,
    demand=demands(),
    tighter_by=st.floats(min_value=0.01, max_value=1),
    faster_by=st.floats(min_value=0, max_value=1),
)
def test_a_tighter_policy_never_makes_a_sweep_or_a_safety_get_later(
    rate: float, demand: SweepDemand, tighter_by: float, faster_by: float
) -> None:
    tight = SweepDemand(
        demand.pages,
        demand.jobs,
        first=demand.first * tighter_by,
        longest=max(demand.first * tighter_by, demand.longest * tighter_by),
        multiplier=1 + (demand.multiplier - 1) * faster_by,
        quiet=demand.quiet,
        extra_gets=demand.extra_gets,
        changes=demand.changes,
        own=None
        if demand.own is None
        else OwnLooks(demand.own.rate / tighter_by, demand.own.soonest * tighter_by),
    )
    loose, tightened = allocate(rate, demand), allocate(rate, tight)
    assert tightened.sweep_gap <= loose.sweep_gap * (1 + 1e-9)
    assert tightened.safety_gap == loose.safety_gap  # the budget's share, whatever the policy
    assert tightened.budget_gap == loose.budget_gap


@given(rate=rates, demand=demands())
def test_no_source_is_starved_every_gap_is_finite(rate: float, demand: SweepDemand) -> None:
    allocation = allocate(rate, demand)
    assert 0 < allocation.sweep_gap < math.inf
    assert 0 < allocation.safety_gap < math.inf
    assert allocation.budget_gap <= allocation.sweep_gap


@given(rate=rates, demand=demands())
def test_a_sweep_spends_a_page_a_job_it_finds_gone_unless_the_policy_asks_for_more(
    rate: float, demand: SweepDemand
) -> None:
    allocation = allocate(rate, demand)
    if demand.changes > 0:
        spend = demand.pages / (PAGES_PER_CHANGE * demand.changes)
        assert allocation.sweep_gap >= min(demand.longest, spend) * (1 - 1e-9)
    # Never later than the policy's longest gap would have it, the budget and backoff aside.
    without = allocate(rate, attrs.evolve(demand, changes=0.0))
    assert allocation.sweep_gap <= max(without.sweep_gap, demand.longest) * (1 + 1e-9)


def test_the_worked_example_of_the_docs() -> None:
    # 10,000 active jobs of three types at 20 requests a second: about a hundred pages.
    demand = SweepDemand(pages=100, jobs=10_000, first=2.0, longest=27.0, multiplier=2.0)
    allocation = allocate(20.0, demand)
    assert allocation.budget_gap == pytest.approx(15.0)  # 100 pages at a third of 20/s
    assert allocation.sweep_gap == pytest.approx(15.0)
    assert allocation.safety_gap == pytest.approx(5000.0)  # 10,000 jobs at 2/s
    assert safety_gap(math.inf, 10_000) == 0.0
    # Ends at 2.8 a second: a page each is a sweep every 36 s, more than the policy's 27 s.
    ending = allocate(20.0, attrs.evolve(demand, changes=2.8))
    assert ending.sweep_gap == pytest.approx(27.0)
    # Half of them still running: 50 pages, every 18 s.
    later = attrs.evolve(demand, pages=50, jobs=5000, changes=2.8)
    assert allocate(20.0, later).sweep_gap == pytest.approx(50 / 2.8)


def test_a_rate_of_changes_rests_on_enough_of_them_the_recent_sweeps_weighing_most() -> None:
    changes = ChangeRate()
    changes.seen(1, 2.0)
    assert changes.rate() == 0.0  # one job gone says little
    for _ in range(CHANGE_EVIDENCE):
        changes.seen(3, 1.0)
    assert changes.rate() == pytest.approx(3.0, rel=0.05)
    for _ in range(30):
        changes.seen(20, 10.0)
    assert changes.rate() == pytest.approx(2.0, rel=0.01)  # the earlier pace forgotten


@st.composite
def policies(draw: st.DrawFn) -> tuple[PollPolicy, PollPolicy]:
    """A policy, and one as tight or tighter in every way (same jitter)."""
    initial = draw(st.floats(min_value=0.1, max_value=60))
    longest = initial + draw(st.floats(min_value=0, max_value=600))
    multiplier = draw(multipliers)
    shrink = draw(st.floats(min_value=0.05, max_value=1))
    tight_initial = initial * shrink
    tight_longest = max(tight_initial, longest * draw(st.floats(min_value=0.05, max_value=1)))
    tight_multiplier = 1 + (multiplier - 1) * draw(st.floats(min_value=0, max_value=1))
    loose = PollPolicy(initial_delay=initial, max_delay=longest, multiplier=multiplier)
    tight = PollPolicy(
        initial_delay=tight_initial, max_delay=tight_longest, multiplier=tight_multiplier
    )
    return loose, tight


@given(
    pair=policies(),
    age=st.floats(min_value=0, max_value=20_000),
    draw=st.floats(min_value=0, max_value=0.999),
    median=st.one_of(st.none(), st.floats(min_value=5, max_value=5000)),
)
def test_a_tighter_policy_never_lowers_a_jobs_poll_priority(
    pair: tuple[PollPolicy, PollPolicy], age: float, draw: float, median: float | None
) -> None:
    loose, tight = pair
    fit = None if median is None else LogNormal(math.log(median), 0.4, 30)
    # A poll is queued by when it is due: sooner due, sooner sent.
    assert next_gap(tight, age, fit, draw) <= next_gap(loose, age, fit, draw) * (1 + 1e-9)


@given(
    rate=rates,
    times=st.lists(st.floats(min_value=0, max_value=3600), min_size=1, max_size=40),
    wanted=st.integers(0, 10_000),
)
def test_safety_gets_keep_to_their_share_at_any_pace_of_sweeps(
    rate: float, times: list[float], wanted: int
) -> None:
    allowance = SafetyAllowance()
    times = sorted(times)
    granted = sum(allowance.take(wanted, rate, now) for now in times)
    share = SAFETY_SHARE * rate
    assert granted <= share * (times[-1] - times[0]) + max(1.0, share * SAFETY_BURST)


def test_safety_gets_fall_due_together_and_go_a_few_at_a_time() -> None:
    allowance = SafetyAllowance()
    assert allowance.take(500, 20.0, 0.0) == 0  # nothing saved up yet
    assert allowance.take(500, 20.0, 3.0) == 6  # 2 a second, a tenth of 20
    assert allowance.take(500, 20.0, 100.0) == 20  # at most ten seconds' worth at once
    assert allowance.take(500, math.inf, 100.0) == 500


def test_a_process_pays_the_share_of_pages_it_has_been_sending() -> None:
    share = PageShare(lambda: 4)
    assert share.now() == 0.25  # at first, its part of a fleet of four's
    assert share.took(10, 0) == 0.25  # a sweep pays as estimated before it
    assert share.now() == pytest.approx(0.125)  # it sent none: each sweep weighs half
    share.took(10, 10)
    assert share.now() == pytest.approx(0.5625)
    share.took(0, 0)  # a sweep that walked no page tells nothing
    assert share.now() == pytest.approx(0.5625)
    alone = PageShare(lambda: 1)
    assert alone.took(5, 5) == 1.0
    assert alone.now() == 1.0  # alone, every page it walked, as before


@given(sweeps=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=20))
def test_the_share_paid_stays_between_none_and_every_page(sweeps: list[tuple[int, int]]) -> None:
    share = PageShare(lambda: 3)
    for walked, sent in sweeps:
        assert 0 <= share.took(walked, min(sent, walked)) <= 1
    assert 0 <= share.now() <= 1


def test_a_sweep_is_weighed_against_the_gets_it_replaces_by_what_it_will_page_next() -> None:
    # The last sweep paged six lists; the jobs left need two of them.
    stale = SweepDemand(pages=6, jobs=4, first=2.0, longest=27.0, multiplier=2.0)
    shrunk = SweepDemand(pages=6, jobs=4, first=2.0, longest=27.0, multiplier=2.0, upcoming=2)
    assert allocate(20.0, stale).sweep_gap == pytest.approx(6 * 27.0 / 4)
    assert allocate(20.0, shrunk).sweep_gap == pytest.approx(2 * 27.0 / 4)
    # The budget's pace still follows what the last sweep spent.
    assert allocate(0.5, shrunk).budget_gap == allocate(0.5, stale).budget_gap


@given(rate=rates, demand=demands())
def test_a_sweep_is_never_later_than_the_soonest_own_look_nor_dearer_than_the_gets(
    rate: float, demand: SweepDemand
) -> None:
    own = demand.own
    if own is None:
        return
    allocation = allocate(rate, demand)
    without = allocate(rate, attrs.evolve(demand, own=None))
    equal_cost = (demand.pages + demand.extra_gets) / own.rate
    # No dearer than the GETs it replaces, nor than one a job each longest gap.
    assert allocation.sweep_gap >= min(without.sweep_gap, equal_cost) * (1 - 1e-9)
    assert allocation.sweep_gap <= without.sweep_gap * (1 + 1e-9)
    if equal_cost <= own.soonest:
        # The soonest look a covered job's own schedule asks: only the budget, the sweeps'
        # backoff and the pace of ends put a sweep later than that.
        kept = attrs.evolve(demand, own=None, extra_gets=0, jobs=10**9)
        assert allocation.sweep_gap <= max(allocate(rate, kept).sweep_gap, own.soonest) * (1 + 1e-9)


def test_young_jobs_are_swept_as_often_as_their_own_looks_ask() -> None:
    # Five jobs a second old, each looked at every 0.65 s by its own schedule: a sweep of
    # two pages replacing them is worth it every 0.65 s, not only every 2 x 27 / 5 s.
    young = SweepDemand(pages=2, jobs=5, first=0.05, longest=27.0, multiplier=2.0)
    assert allocate(20.0, young).sweep_gap == pytest.approx(2 * 27.0 / 5)
    seen = attrs.evolve(young, own=OwnLooks(rate=5 / 0.65, soonest=0.65))
    assert allocate(20.0, seen).sweep_gap == pytest.approx(0.65)
    # Three old jobs and one young: sweeps that often would cost more than the GETs.
    mixed = attrs.evolve(young, jobs=4, own=OwnLooks(rate=3 / 27.0 + 1 / 2.0, soonest=2.0))
    assert allocate(20.0, mixed).sweep_gap == pytest.approx(2 / (3 / 27.0 + 1 / 2.0))
