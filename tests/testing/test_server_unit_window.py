"""The fake's window of accepted requests drops the oldest from the front, as they came."""

from __future__ import annotations

from array import array

from imagejobs.testing._server import _drop_through


def test_the_window_drops_from_the_front_in_the_order_times_came() -> None:
    times = array("d", [0.2, 0.4, 0.9, 1.5])
    _drop_through(times, 0.5)
    assert list(times) == [0.9, 1.5]
    # A clock that stepped back: a newer time first, nothing behind it goes before it.
    stepped = array("d", [1.0, 0.0, 1.0])
    _drop_through(stepped, 0.5)
    assert list(stepped) == [1.0, 0.0, 1.0]
    _drop_through(stepped, 1.0)
    assert list(stepped) == []
