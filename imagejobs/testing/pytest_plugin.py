"""The pytest plugin: a running fake Workspace server, a client bound to it, virtual time.

Installing imagejobs registers it (the ``pytest11`` entry point), so a test needs
no conftest::

    async def test_the_build_waits(imagejobs_fake, imagejobs_client):
        job_id = imagejobs_fake.add_job([running, done])
        job = await imagejobs_client.wait(job_id)

- ``imagejobs_fake``: a started :class:`FakeWorkspace` on 127.0.0.1, closed after the test.
- ``imagejobs_client``: a :class:`~imagejobs.Client` bound to it, with its credentials.
- ``imagejobs_clock``: a :class:`FakeClock`; asking for it puts the fake and the
  client on virtual time, so an hour of polling takes milliseconds.

The async fixtures are pytest-asyncio fixtures: they work in its strict and auto
modes alike. Configure the fake per test with the marker
``@pytest.mark.imagejobs_fake(ak="...", sk="...", faults=Faults(rate=0.2))``
(any :class:`FakeWorkspace` argument), or for a module or a whole suite by
overriding the ``imagejobs_fake_options`` fixture (a dict; the marker wins);
``imagejobs_client_options`` does the same for the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from imagejobs import Client

from ._clock import FakeClock
from ._server import FakeWorkspace

try:
    import pytest_asyncio
except ImportError:  # the plain fixtures below say what to install
    _asyncio_fixture: Any = None
else:
    _asyncio_fixture = pytest_asyncio.fixture

__all__ = [
    "imagejobs_client",
    "imagejobs_client_options",
    "imagejobs_clock",
    "imagejobs_fake",
    "imagejobs_fake_options",
]

_MARKER = "imagejobs_fake"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): FakeWorkspace arguments for the imagejobs_fake fixture "
        "(credentials, faults, rate_limit...)",
    )


def _async_fixture(function: Callable[..., AsyncIterator[Any]]) -> Any:
    if _asyncio_fixture is not None:
        return _asyncio_fixture(function)

    def missing() -> None:
        pytest.fail(f"{function.__name__} needs pytest-asyncio: pip install pytest-asyncio")

    missing.__name__ = function.__name__
    missing.__doc__ = function.__doc__
    return pytest.fixture(name=function.__name__)(missing)


@pytest.fixture
def imagejobs_fake_options() -> dict[str, Any]:
    """:class:`FakeWorkspace` arguments for ``imagejobs_fake``; override it to set your own."""
    return {}


@pytest.fixture
def imagejobs_client_options() -> dict[str, Any]:
    """:class:`~imagejobs.Client` arguments for ``imagejobs_client``; override it with yours."""
    return {}


@pytest.fixture
def imagejobs_clock() -> FakeClock:
    """Virtual time for this test, wired into ``imagejobs_fake`` and ``imagejobs_client``."""
    return FakeClock()


@pytest.fixture
def _imagejobs_virtual_time(request: pytest.FixtureRequest) -> FakeClock | None:
    """The test's FakeClock if it asked for one, else None (real time)."""
    if "imagejobs_clock" not in request.fixturenames:
        return None
    clock: FakeClock = request.getfixturevalue("imagejobs_clock")
    return clock


@_async_fixture
async def imagejobs_fake(
    request: pytest.FixtureRequest,
    imagejobs_fake_options: dict[str, Any],
    _imagejobs_virtual_time: FakeClock | None,
) -> AsyncIterator[FakeWorkspace]:
    """A fake Workspace server listening on 127.0.0.1 for this test."""
    options = dict(imagejobs_fake_options)
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None:
        if marker.args:
            pytest.fail(f"@pytest.mark.{_MARKER} takes keyword arguments only, got {marker.args!r}")
        options.update(marker.kwargs)
    clock = _imagejobs_virtual_time
    if clock is not None:
        # Its timelines and request log on virtual time; signatures stay dated on the wall
        # clock, as the client signs them.
        options.setdefault("clock", clock.monotonic)
    async with FakeWorkspace(**options) as fake:
        yield fake


@_async_fixture
async def imagejobs_client(
    imagejobs_fake: FakeWorkspace,
    imagejobs_client_options: dict[str, Any],
    _imagejobs_virtual_time: FakeClock | None,
) -> AsyncIterator[Client]:
    """A client bound to ``imagejobs_fake``, with its credentials; closed after the test."""
    options = dict(imagejobs_client_options)
    if _imagejobs_virtual_time is not None:
        options.setdefault("clock", _imagejobs_virtual_time)
    async with imagejobs_fake.client(**options) as client:
        yield client
