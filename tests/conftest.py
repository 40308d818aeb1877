"""SharedLook fixtures: the fake server on 127.0.0.1, a client for it, test data."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from redis_server import RedisServer

from imagejobs import Client, RetryPolicy
from imagejobs.testing import FakeClock, FakeWorkspace

# Deadlines are timing assertions, which this suite does not make.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Run two workers a CPU (at least the CPUs, at most 8 more): most tests wait.

    They wait on a server over a socket, a child process or a real-time heartbeat,
    so one worker a CPU leaves about half the CPU time unused and the suite took
    111 s on two CPUs; four workers took it to 73 s. PYTEST_XDIST_AUTO_NUM_WORKERS
    still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    # The CPUs this process may use (never none), where the system says.
    has_affinity = hasattr(os, "sched_getaffinity")
    cpus = len(os.sched_getaffinity(0)) if has_affinity else os.cpu_count() or 1
    return cpus + min(cpus, 8)


DATA = Path(__file__).parent / "data"

# Every end-to-end test signs its requests and the fake verifies each signature.
TEST_AK = "AKTESTFIXTURE0000001"
TEST_SK = "SKtestfixture000000000000000000000000001"


@pytest.fixture
def reference_wire() -> dict[str, Any]:
    """The example response from the API reference, as decoded JSON."""
    data: dict[str, Any] = json.loads((DATA / "reference_job.json").read_text())
    return data


@pytest.fixture
def keys() -> dict[str, Any]:
    """The key pair the fake servers of the suite demand, as FakeWorkspace arguments."""
    return {"ak": TEST_AK, "sk": TEST_SK}


@pytest.fixture
async def fake(keys: dict[str, Any]) -> AsyncIterator[FakeWorkspace]:
    """A fake Workspace server listening on 127.0.0.1, verifying AK/SK signatures."""
    async with FakeWorkspace(**keys) as server:
        yield server


@pytest.fixture
async def client(fake: FakeWorkspace) -> AsyncIterator[Client]:
    """A client pointed at the ``fake`` server, sending one request per call (no retries)."""
    async with fake.client(retry=RetryPolicy(max_attempts=1)) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    """Virtual time for one test."""
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock, keys: dict[str, Any]) -> AsyncIterator[FakeWorkspace]:
    """A fake server on the ``clock``'s time, verifying AK/SK signatures."""
    async with FakeWorkspace(clock=clock.monotonic, **keys) as fake:
        yield fake


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home folder, for a command line run with nothing of the user's."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder
