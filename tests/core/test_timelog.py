"""The log of times a window of answers is counted from: raw doubles, oldest first."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs.core.timelog import TimeLog


@given(
    st.integers(1, 40) | st.none(),
    st.lists(
        st.tuples(st.sampled_from(["append", "drop"]), st.floats(0, 50, allow_nan=False)),
        max_size=400,
    ),
)
def test_time_log_keeps_what_a_list_model_keeps(
    cap: int | None, steps: list[tuple[str, float]]
) -> None:
    log = TimeLog(cap)
    model: list[float] = []
    now = 0.0
    for action, amount in steps:
        if action == "append":
            now += amount / 10  # in order, ties among them
            log.append(now)
            model.append(now)
            if cap is not None and len(model) > cap:
                del model[0]
        else:
            cut = now - amount
            log.drop_through(cut)
            model = [time for time in model if time > cut]
        assert len(log) == len(model)
        if model:
            assert log.oldest == model[0]
        else:
            with pytest.raises(IndexError, match="empty"):
                _ = log.oldest


def test_a_long_run_keeps_only_the_window() -> None:
    log = TimeLog()
    for tick in range(10_000):
        log.append(tick / 100)
        log.drop_through(tick / 100 - 1.0)
    assert len(log) == 100
    assert log.oldest == pytest.approx(99.0)  # 98.99 and before dropped
    # What was dropped is squeezed out, not kept at the front.
    assert len(log._times) < 300


def test_a_cap_keeps_the_newest() -> None:
    log = TimeLog(3)
    for time in (1.0, 2.0, 3.0, 4.0, 5.0):
        log.append(time)
    assert (len(log), log.oldest) == (3, 3.0)


def test_a_cap_under_one_is_refused() -> None:
    with pytest.raises(ValueError, match="cap must be at least 1, not 0"):
        TimeLog(0)


def test_clearing_drops_every_time() -> None:
    log = TimeLog(cap=3)
    for time in (1.0, 2.0, 3.0):
        log.append(time)
    log.clear()
    assert len(log) == 0
    with pytest.raises(IndexError):
        _ = log.oldest
    log.append(4.0)
    assert (len(log), log.oldest) == (1, 4.0)
