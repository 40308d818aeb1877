"""When to poll a job next: the schedule every wait follows. Pure.

A wait wants to see a job's end soon while asking rarely. Each poll costs a
request; each second between the end and the poll that sees it is a second
late. Where polls should go depends on where ends are likely, so the
schedule is a function of the job's **age** (seconds since its
``begin_time``), not of when the wait began: a wait that starts on a job
running for twenty minutes polls it as a twenty-minute-old job.

**Without a history** of the job type's durations, nothing says when the end
is likely, so the gap between polls grows with the age:
``initial_delay + (multiplier - 1) * age``, at most ``max_delay`` (27 s by
default). With the defaults that is 2 s, 4 s, 8 s, 16 s, then 27 s less up to
a fifth of jitter: a job that ends within seconds is seen within seconds, and
a long one costs under 2.5 requests a minute. (Why 27 s: a ten-minute job
then costs 26 requests, its end seen within 23 s at p95; fixed 15 s polls cost
40, terraform's 10-then-30 s 21 with 28 s, so no simple loop beats it on both.)
A sub-job's change does not shorten the gap: progress says little about when
the whole job ends.

**With a history** (:class:`~imagejobs.DurationHistory`, at least
:data:`~imagejobs.planning.history.MIN_SAMPLES` durations of the type), the durations
are a log-normal distribution (its spread widened by :data:`SPREAD_MARGIN`:
thirty samples understate how far the next job may stray), and polls go
where ends are likely, following
Keller's optimal checking schedule (J. B. Keller, "Optimum checking
schedules for systems subject to random failure", Management Science, 1974).
The *hazard* ``h(t)`` is the chance per second that a job still running at
age ``t`` ends now. A poll costs one request, and one request is worth ``c``
seconds of lateness. Keller shows the expected cost (requests plus
lateness) is least when polls have the density ``n(t) = sqrt(h(t) / (2c))``
polls a second: so the next poll comes once ``n`` summed over the gap
reaches one. Where ends are improbable (a young job) ``h`` is tiny and polls
are minutes apart; around the usual duration ``h`` rises and polls come every
few seconds. Past the durations the (widened) fit expects, its 99.5th
percentile, it says little any more, and the schedule without a history
takes over.

Which ``c``? With one fixed value, polls grow as the square root of the
duration and so does lateness: short jobs would be polled too often and long
ones seen too late. So ``c = LATENESS**2 / median`` (:func:`check_cost`):
then lateness stays about :data:`LATENESS` seconds whatever the duration,
and polls grow with it, as a fixed loop's do, but placed where ends are.

Either way ``jitter`` shortens each gap by a random share of at most
``jitter`` (bounded, so ``max_delay`` stays the longest gap), spreading many
waits apart.
"""

from __future__ import annotations

import math

from .history import LogNormal
from .policy import PollPolicy

__all__ = [
    "LATENESS",
    "PLACED_GAP_FACTOR",
    "SPREAD_MARGIN",
    "check_cost",
    "hazard",
    "next_gap",
    "plain_gap",
]

LATENESS = 15.0
"""Seconds late a poll placed by a history aims to see a job's end, whatever its duration.

Measured (benchmarks, scenario 9): polls placed so spend about half the requests
of a fixed 15 s loop, and see ends no later at p95.
"""

PLACED_GAP_FACTOR = 8.0
"""A gap placed by a history is at most this many times the plain longest gap (27 s:
216 s), unless ``max_delay`` says otherwise: a job that fails early (failures are not
in the fit), or a fit that is wrong, is still seen within four minutes."""

SPREAD_MARGIN = 1.25
"""How much wider than the history's own spread polls are placed: a safety margin."""

# Past this share of the learned durations, the fit no longer says where the end is.
_TRUSTED_SHARE = 0.995
# Numerical integration of the poll density: steps per median, and the smallest step.
_STEPS_PER_MEDIAN = 400
_SMALLEST_STEP = 0.25


def check_cost(fit: LogNormal) -> float:
    """Return the seconds of lateness one poll is worth for jobs of this fit (Keller's ``c``)."""
    return LATENESS * LATENESS / fit.median


def plain_gap(policy: PollPolicy, age: float) -> float:
    """Return the gap, before jitter, for a job of ``age`` seconds with no history to go by."""
    growth = policy.initial_delay + (policy.multiplier - 1) * max(age, 0.0)
    return min(policy.longest_gap, growth)


def hazard(fit: LogNormal, age: float) -> float:
    """Return the chance per second that a job of ``age`` seconds, still running, ends now."""
    if age <= 0:
        return 0.0
    z = (math.log(age) - fit.mu) / fit.sigma
    if z < -38:
        return 0.0  # no end this early has any chance worth a float
    if z > 8:
        # Far in the tail the survival function underflows; the ratio tends to this.
        return z / (fit.sigma * age)
    density = math.exp(-0.5 * z * z) / (age * fit.sigma * math.sqrt(2 * math.pi))
    survival = 0.5 * math.erfc(z / math.sqrt(2))
    return density / survival


def next_gap(
    policy: PollPolicy, age: float, fit: LogNormal | None = None, draw: float = 0.0
) -> float:
    """Return the seconds until the next poll of a job ``age`` seconds old, jitter included.

    ``fit`` is what the history knows of the job's type (None: nothing);
    ``draw`` is a random number in [0, 1) for the jitter.
    """
    age = max(age, 0.0)
    if fit is not None:
        # Widened, and never so narrow that the density cannot be worked out.
        fit = LogNormal(fit.mu, max(fit.sigma, 0.05) * SPREAD_MARGIN, fit.count)
    trusted_until = math.inf if fit is None else fit.quantile(_TRUSTED_SHARE)
    if fit is None or age >= trusted_until:
        gap = plain_gap(policy, age)
    else:
        gap = _placed_gap(policy, age, fit, trusted_until)
    return policy.jittered(gap, draw)


def _placed_gap(policy: PollPolicy, age: float, fit: LogNormal, trusted_until: float) -> float:
    """Return the gap after which Keller's poll density, summed from ``age``, reaches one."""
    longest = PLACED_GAP_FACTOR * policy.longest_gap
    if policy.max_delay is not None:
        longest = policy.max_delay
    base_step = max(_SMALLEST_STEP, fit.median / _STEPS_PER_MEDIAN)
    step = base_step
    scale = 1.0 / math.sqrt(2 * check_cost(fit))
    polls = 0.0
    gap = 0.0
    density = scale * math.sqrt(hazard(fit, age))
    while gap < longest:
        if age + gap >= trusted_until:
            break  # a poll where the fit stops being trusted; the plain schedule goes on
        after = scale * math.sqrt(hazard(fit, age + gap + step))
        added = (density + after) / 2 * step  # the trapezoid rule
        if polls + added >= 1:
            gap += step * (1 - polls) / added
            break
        polls += added
        gap += step
        density = after
        step = max(base_step, gap / 50)  # coarser as the gap grows: a bounded number of steps
    return max(policy.initial_delay, min(gap, longest))
