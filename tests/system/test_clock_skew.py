"""This machine's clock skewed against the service's: the real client against the fake server.

The fake's answers carry its ``Date`` on the FakeClock; the client's wall clock is
that clock skewed (:class:`SkewedClock`), its monotonic time and sleeps the same.
Signatures are dated on the real wall clock, as ever, so they stay valid.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import timedelta
from typing import Any

import pytest
from skewed_clock import SkewedClock

from imagejobs import DurationHistory, PollPolicy
from imagejobs.testing import FakeClock, FakeWorkspace

AGE = 280.0  # the job's age when the wait joins it
LEFT = 20.0  # seconds until it ends: it takes 300 s, as jobs of its type usually do


def _durations_around(median: float) -> list[float]:
    rng = random.Random(3)  # noqa: S311 - reproducible samples
    return [rng.lognormvariate(math.log(median), 0.15) for _ in range(30)]


async def _seen_late(keys: dict[str, Any], skew: float) -> float:
    """Wait from a client whose clock is ``skew`` s off; return how late it saw the job end."""
    clock = FakeClock()
    began = clock.now() - timedelta(seconds=AGE)
    job = {"id": "1", "job_type": "CREATE_SERVER", "begin_time": began.isoformat()}
    ended = began + timedelta(seconds=AGE + LEFT)
    steps = [
        {**job, "status": "RUNNING"},
        {**job, "status": "SUCCESS", "end_time": ended.isoformat()},
    ]
    history = DurationHistory({"CREATE_SERVER": _durations_around(300)})
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        fake.add_job(steps, every=LEFT, start=clock.monotonic())
        async with fake.client(clock=SkewedClock(clock, skew), history=history) as client:
            done = await client.wait("1", PollPolicy(jitter=0))
        assert done.status.value == "SUCCESS"
        return fake.requests[-1].at - LEFT


@pytest.mark.parametrize("skew", [-300.0, 300.0, -840.0, 840.0])
async def test_a_skewed_clock_sees_an_end_as_soon_as_a_correct_one_and_warns(
    keys: dict[str, Any], skew: float, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        correct = await _seen_late(keys, 0.0)
    assert caplog.records == [], "correct clocks: no warning"
    assert 0 <= correct <= 5
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        skewed = await _seen_late(keys, skew)
    assert abs(skewed - correct) <= 2, (skewed, correct)
    side = "behind" if skew < 0 else "ahead of"
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert f"this machine's clock is {abs(skew):.0f}s {side} the service's" in warnings[0]
    assert "15 minutes" in warnings[0]


async def test_a_skew_under_the_threshold_is_corrected_without_a_warning(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        correct = await _seen_late(keys, 0.0)
        skewed = await _seen_late(keys, -20.0)
    assert abs(skewed - correct) <= 2, (skewed, correct)
    assert caplog.records == []
