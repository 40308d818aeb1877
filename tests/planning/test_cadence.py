"""The poll schedule (imagejobs.planning.cadence): pure properties, and a simulation.

End to end, through the client and the fake server: tests/system/test_cadence_system.py.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import InvalidArgument, PollPolicy
from imagejobs.planning.cadence import hazard, next_gap, plain_gap
from imagejobs.planning.history import MAX_SAMPLES, MIN_SAMPLES, DurationHistory, LogNormal
from imagejobs.planning.policy import DEFAULT_MAX_DELAY

NO_JITTER = PollPolicy(jitter=0)
LONGEST = DEFAULT_MAX_DELAY  # max_delay=None: the longest gap without a history
EPS = 1e-9


def fit_of(median: float, sigma: float, count: int = 50) -> LogNormal:
    return LogNormal(math.log(median), sigma, count)


# --- strategies ------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn, *, explicit_max: bool | None = None) -> PollPolicy:
    initial = draw(st.floats(0.1, 20))
    if explicit_max is None:
        explicit_max = draw(st.booleans())
    max_delay = draw(st.floats(initial, 300)) if explicit_max else None
    return PollPolicy(
        initial_delay=initial,
        max_delay=max_delay,
        multiplier=draw(st.floats(1, 4)),
        jitter=draw(st.floats(0, 1)),
    )


fits = st.builds(
    LogNormal,
    mu=st.floats(math.log(1), math.log(1e5)),
    sigma=st.floats(0.05, 1.5),
    count=st.integers(MIN_SAMPLES, MAX_SAMPLES),
)
ages = st.floats(0, 1e6)
draws = st.floats(0, 1, exclude_max=True)


# --- without a history -----------------------------------------------------------------


def test_plain_gap_grows_with_age_up_to_the_longest_gap() -> None:
    policy = PollPolicy(initial_delay=2, max_delay=30, multiplier=2)
    assert [plain_gap(policy, age) for age in (0, 2, 6, 14, 20, 28, 100, 1e6)] == [
        2,
        4,
        8,
        16,
        22,
        30,
        30,
        30,
    ]
    assert plain_gap(policy, -5) == 2, "a job that seems to begin in the future is new"
    slow = PollPolicy(initial_delay=5, max_delay=60, multiplier=1.5)
    assert plain_gap(slow, 40) == pytest.approx(5 + 0.5 * 40)
    assert plain_gap(slow, 500) == 60
    assert plain_gap(PollPolicy(), 1e6) == LONGEST, "max_delay None: the default longest gap"


@given(policy=policies(), age=ages)
def test_plain_gap_is_the_documented_formula(policy: PollPolicy, age: float) -> None:
    expected = min(policy.longest_gap, policy.initial_delay + (policy.multiplier - 1) * age)
    assert plain_gap(policy, age) == pytest.approx(expected)


def plain_schedule(policy: PollPolicy, polls: int) -> list[float]:
    """Return the first gaps, before jitter, of a job polled from age 0 without a history."""
    age, plain = 0.0, []
    for _ in range(polls):
        plain.append(plain_gap(policy, age))
        age += plain[-1]
    return plain


def test_default_delays_are_the_plain_gaps_of_a_job_polled_from_age_0() -> None:
    policy = PollPolicy()
    assert policy.longest_gap == LONGEST
    assert 16 < LONGEST <= 30, "two requests a minute at most, once past the doubling"
    plain = plain_schedule(policy, 10)
    assert plain == [2, 4, 8, 16] + [LONGEST] * 6
    assert list(itertools.islice(policy.delays(), 10)) == plain
    explicit = PollPolicy(max_delay=30)
    assert plain_schedule(explicit, 7) == [2, 4, 8, 16, 30, 30, 30]
    assert list(itertools.islice(explicit.delays(), 7)) == [2, 4, 8, 16, 30, 30, 30]


@given(policy=policies())
def test_delays_are_the_plain_gaps_for_any_policy(policy: PollPolicy) -> None:
    plain = plain_schedule(policy, 12)
    assert list(itertools.islice(policy.delays(), 12)) == pytest.approx(plain, rel=1e-9)


@given(policy=policies(), age=ages, draw=draws)
def test_without_history_jitter_only_shortens_within_its_share(
    policy: PollPolicy, age: float, draw: float
) -> None:
    plain = plain_gap(policy, age)
    gap = next_gap(policy, age, None, draw)
    assert plain * (1 - policy.jitter) - EPS <= gap <= plain + EPS
    assert gap == pytest.approx(plain * (1 - policy.jitter * draw))


@given(policy=policies(), extra=st.floats(0, 1e6), draw=draws)
def test_without_history_an_old_job_is_polled_at_about_the_longest_gap(
    policy: PollPolicy, extra: float, draw: float
) -> None:
    if policy.multiplier == 1:
        old = 0.0 if policy.initial_delay >= policy.longest_gap else math.inf
    else:
        old = (policy.longest_gap - policy.initial_delay) / (policy.multiplier - 1)
    if math.isinf(old):
        return  # never grows: covered by the jitter-bounds property
    gap = next_gap(policy, old + extra, None, draw)
    longest = policy.longest_gap
    assert longest * (1 - policy.jitter) - EPS <= gap <= longest + EPS


# --- hazard ----------------------------------------------------------------------------


def test_hazard_is_zero_at_and_before_age_zero() -> None:
    fit = fit_of(600, 0.2)
    assert hazard(fit, 0) == 0.0
    assert hazard(fit, -10) == 0.0


@given(fit=fits, z=st.floats(-25, 25))
def test_hazard_is_positive_for_positive_ages(fit: LogNormal, z: float) -> None:
    age = math.exp(fit.mu + fit.sigma * z)
    h = hazard(fit, age)
    assert 0 < h < math.inf


@given(fit=fits, z=st.floats(8, 1e6))
def test_hazard_is_finite_far_in_the_tail(fit: LogNormal, z: float) -> None:
    age = math.exp(min(700.0, fit.mu + fit.sigma * z))
    h = hazard(fit, age)
    assert 0 < h < math.inf
    assert not math.isnan(h)


@given(fit=fits)
def test_hazard_is_continuous_where_the_tail_formula_takes_over(fit: LogNormal) -> None:
    below = hazard(fit, math.exp(fit.mu + fit.sigma * (8 - 1e-9)))
    above = hazard(fit, math.exp(fit.mu + fit.sigma * (8 + 1e-9)))
    assert above == pytest.approx(below, rel=0.03)


# --- with a history --------------------------------------------------------------------


def test_with_a_fit_polls_are_sparse_while_young_and_dense_at_the_median() -> None:
    fit = fit_of(600, 0.2)
    young = next_gap(NO_JITTER, 60, fit)
    at_median = next_gap(NO_JITTER, 600, fit)
    assert young > 120, "an end at 60 s is improbable: polls minutes apart"
    assert at_median < LONGEST, "around the median, closer than the plain schedule"
    assert young > 5 * at_median
    # A young job's first poll does not overshoot the usual end by much.
    assert 60 + young < fit.median


@pytest.mark.parametrize("past", [0.0, 1.0, 60.0, 3600.0, 1e6])
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.99])
def test_past_the_995th_percentile_the_plain_schedule_takes_over(past: float, draw: float) -> None:
    fit = fit_of(600, 0.2)
    policy = PollPolicy()
    # Past the 99.5th percentile of the fit as the schedule sees it: cadence widens
    # the history's spread by a safety margin, so well past the raw fit's.
    age = fit.quantile(0.9999) + past
    assert next_gap(policy, age, fit, draw) == next_gap(policy, age, None, draw)
    # Before the tail, the history places the polls: not the plain schedule.
    at = fit.quantile(0.9)
    assert next_gap(policy, at, fit, draw) < next_gap(policy, at, None, draw)


@given(policy=policies(explicit_max=True), age=ages, draw=draws, fit=st.none() | fits)
def test_an_explicit_max_delay_is_never_exceeded(
    policy: PollPolicy, age: float, draw: float, fit: LogNormal | None
) -> None:
    assert policy.max_delay is not None
    gap = next_gap(policy, age, fit, draw)
    assert 0 < gap <= policy.max_delay + EPS


@given(policy=policies(), age=ages, draw=draws, fit=fits)
def test_with_a_fit_a_gap_is_positive_and_jittered_within_its_share(
    policy: PollPolicy, age: float, draw: float, fit: LogNormal
) -> None:
    unjittered = next_gap(policy, age, fit, 0.0)
    gap = next_gap(policy, age, fit, draw)
    assert math.isfinite(unjittered)
    assert unjittered >= policy.initial_delay - EPS
    assert unjittered * (1 - policy.jitter) - EPS <= gap <= unjittered + EPS


# --- a simulation: a history against a fixed 15 s loop ---------------------------------


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def simulate(median: float, sigma: float = 0.2, jobs: int = 300, seed: int = 9) -> dict[str, Any]:
    """Poll jobs drawn from the fit from age 0: by the fit (default policy), and every 15 s.

    Both poll at age 0 and then until a poll sees the end; lateness is the time
    from the end to that poll.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
    fit = fit_of(median, sigma, count=100)
    polls, late, fixed_polls, fixed_late = [], [], [], []
    for _ in range(jobs):
        duration = rng.lognormvariate(fit.mu, fit.sigma)
        age, count = 0.0, 1
        while age < duration:
            age += next_gap(PollPolicy(), age, fit, rng.random())  # the default jitter
            count += 1
        polls.append(count)
        late.append(age - duration)
        after = math.ceil(duration / 15)
        fixed_polls.append(after + 1)
        fixed_late.append(15 * after - duration)
    return {
        "ratio": sum(polls) / sum(fixed_polls),
        "p95": _p95(late),
        "fixed_p95": _p95(fixed_late),
    }


@pytest.mark.parametrize("median", [150.0, 720.0])
def test_a_history_spends_at_most_0_6x_the_polls_of_a_fixed_15s_loop(median: float) -> None:
    result = simulate(median)
    assert result["ratio"] <= 0.6, result


@pytest.mark.parametrize("median", [150.0, 720.0])
def test_a_history_is_no_later_at_p95_than_a_fixed_15s_loop(median: float) -> None:
    result = simulate(median)
    assert result["p95"] <= result["fixed_p95"], result


@pytest.mark.parametrize("median", [150.0, 720.0])
def test_a_history_spends_fewer_polls_than_a_fixed_15s_loop(median: float) -> None:
    result = simulate(median)
    assert result["ratio"] < 0.9, result
    assert result["p95"] < 1.5 * result["fixed_p95"], result


# --- end to end: the real client against the fake, on virtual time ---------------------


def gaps(requests: list[Any]) -> list[float]:
    return [round(b.at - a.at, 6) for a, b in itertools.pairwise(requests)]


# --- what a history may not do -------------------------------------------------------


def test_a_placed_gap_is_never_longer_than_eight_plain_ones() -> None:
    far = LogNormal(math.log(3000), 0.2, 30)  # fifty minutes: nothing likely for a long while
    assert next_gap(NO_JITTER, 0.0, far) <= 8 * DEFAULT_MAX_DELAY
    assert next_gap(PollPolicy(max_delay=60, jitter=0), 0.0, far) <= 60


@given(
    mu=st.floats(min_value=0.0, max_value=math.log(30 * 24 * 3600)),
    sigma=st.floats(min_value=0.0, max_value=1.5),
    age=st.floats(min_value=0.0, max_value=1e7),
)
def test_a_placed_gap_is_positive_and_bounded_for_any_fit(
    mu: float, sigma: float, age: float
) -> None:
    gap = next_gap(NO_JITTER, age, LogNormal(mu, sigma, 30))
    assert 0 < gap <= 8 * DEFAULT_MAX_DELAY


def test_durations_no_job_takes_are_refused_and_a_fit_stays_narrow_enough() -> None:
    history = DurationHistory()
    for nonsense in (0.5, 31 * 24 * 3600.0, 10**400):
        with pytest.raises(InvalidArgument):
            history.record("CREATE_SERVER", nonsense)
    wide = DurationHistory({"CREATE_SERVER": [1.0] * 4 + [29 * 24 * 3600.0] * 4})
    fit = wide.fit("CREATE_SERVER")
    assert fit is not None
    assert fit.sigma <= 1.5
