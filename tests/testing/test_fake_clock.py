"""The test clock itself: virtual time, and a record of sleeps that does not grow with the run."""

from __future__ import annotations

import asyncio

from imagejobs.testing import FakeClock
from imagejobs.testing._clock import KEPT_SLEEPS


async def test_a_long_run_keeps_a_count_and_only_the_last_sleeps() -> None:
    clock = FakeClock()
    total = 20 * KEPT_SLEEPS
    for n in range(total):
        await clock.sleep(n * 0.001)
    assert clock.sleep_count == total
    assert len(clock.sleeps) == KEPT_SLEEPS
    assert isinstance(clock.sleeps, tuple)  # a copy: changing it fails, not silently
    assert list(clock.sleeps) == [n * 0.001 for n in range(total - KEPT_SLEEPS, total)]
    assert clock.monotonic() == sum(n * 0.001 for n in range(total))


async def test_concurrent_sleeps_wake_in_virtual_time_order() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.monotonic())

    await asyncio.gather(*(sleeper(s) for s in (30.0, 10.0, 20.0)))
    assert woke == [10.0, 20.0, 30.0]
    assert sorted(clock.sleeps) == [10.0, 20.0, 30.0]
    assert clock.sleep_count == 3
