"""The clock offset: the service's clock minus this machine's, from answers' ``Date``."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest

from imagejobs.planning.skew import (
    IGNORED_OFFSET,
    LARGEST_OFFSET,
    READ_EVERY,
    WARNED_OFFSET,
    ClockOffset,
)

LOCAL = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)


def _date(seconds_ahead: float, local: datetime = LOCAL) -> datetime:
    """The service's ``Date`` when this machine reads ``local``: its time cut to the second."""
    return (local + timedelta(seconds=seconds_ahead)).replace(microsecond=0)


def _fed(*offsets: float) -> tuple[ClockOffset, list[str]]:
    """An offset that read one answer a second, each ``offset`` seconds ahead; its warnings."""
    offset = ClockOffset()
    warnings = []
    for n, seconds in enumerate(offsets):
        local = LOCAL + timedelta(seconds=n)
        warning = offset.read(float(n), _date(seconds, local), local)
        if warning is not None:
            warnings.append(warning)
    return offset, warnings


def test_before_any_answer_the_service_time_is_this_machines() -> None:
    offset = ClockOffset()
    assert offset.seconds == 0
    assert offset.service_time(LOCAL) == LOCAL


@pytest.mark.parametrize("seconds", [300.0, -300.0, 840.0, -840.0, 5.0, -5.0])
def test_a_skew_either_way_is_read_to_the_second(seconds: float) -> None:
    offset, _ = _fed(seconds, seconds, seconds)
    assert offset.seconds == pytest.approx(seconds, abs=1)
    assert abs(offset.service_time(LOCAL) - (LOCAL + timedelta(seconds=seconds))) <= timedelta(
        seconds=1
    )


@pytest.mark.parametrize("seconds", [0.0, 0.9, -0.9, 1.4, -1.4])
def test_an_offset_within_the_dates_resolution_is_none(seconds: float) -> None:
    offset, warnings = _fed(seconds, seconds, seconds)
    assert abs(seconds) < IGNORED_OFFSET
    assert offset.seconds == 0
    assert offset.service_time(LOCAL) == LOCAL
    assert warnings == []


def test_one_odd_date_moves_nothing_and_a_lasting_change_is_followed() -> None:
    offset, _ = _fed(300, 300, 300, 300, 3600 * 5, 300, 300)
    assert offset.seconds == pytest.approx(300, abs=1)
    offset, _ = _fed(*[300] * 9, *[0] * 5)
    assert offset.seconds == 0


def test_a_date_a_day_away_is_another_clock_and_not_read() -> None:
    offset, warnings = _fed(LARGEST_OFFSET + 10, -LARGEST_OFFSET - 10, 3)
    assert offset.seconds == pytest.approx(3, abs=1)
    assert warnings == []


def test_one_date_a_second_is_worth_reading() -> None:
    offset = ClockOffset()
    assert offset.read_after < 0
    offset.read(10.0, _date(60), LOCAL)
    assert offset.read_after == 10.0 + READ_EVERY


def test_a_skew_past_the_threshold_is_one_warning_naming_its_size_and_side() -> None:
    _, warnings = _fed(10, 10, 10)
    assert warnings == [], "under the threshold: no warning"
    _, warnings = _fed(*[300] * 5)
    assert len(warnings) == 1
    assert "this machine's clock is 300s behind the service's" in warnings[0]
    assert "15 minutes" in warnings[0]
    _, warnings = _fed(*[-300] * 5)
    assert len(warnings) == 1
    assert "this machine's clock is 300s ahead of the service's" in warnings[0]


def test_a_warning_again_only_once_the_skew_has_moved_as_much_as_the_threshold() -> None:
    assert WARNED_OFFSET == 30
    _, warnings = _fed(*[300] * 5, *[320] * 9, *[400] * 9)
    sizes = [re.findall(r"is (\d+)s behind", warning) for warning in warnings]
    assert sizes == [["300"], ["400"]]


def test_forgetting_lets_go_of_every_reading() -> None:
    offset, warnings = _fed(300.0, 300.0, 300.0)
    assert offset.seconds != 0
    assert warnings
    offset.forget()
    assert (offset.seconds, offset.read_after) == (0.0, -math.inf)
    assert offset.service_time(LOCAL) == LOCAL
    assert repr(offset) == "ClockOffset(seconds=0, readings=0)"
    # As when new: the next skew is read afresh, and warned about again.
    again = offset.read(10.0, _date(300.0, LOCAL), LOCAL)
    assert again is not None
    assert offset.seconds == pytest.approx(300.0, abs=1)
