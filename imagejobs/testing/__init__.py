"""Test support: a fake Workspace server that speaks the real HTTP API.

Use it in your own tests the way imagejobs' tests do::

    async with FakeWorkspace() as fake:
        job_id = fake.add_job([running_snapshot, done_snapshot])
        async with fake.client() as client:
            job = await client.get_job(job_id)
"""

from ._clock import FakeClock
from ._faults import FAULT_KINDS, Faults
from ._scenario import control_api, load_scenario
from ._server import CONTROL_PREFIX, FAKE_PROJECT_ID, FakeWorkspace, RecordedRequest, Reply, Step

__all__ = [
    "CONTROL_PREFIX",
    "FAKE_PROJECT_ID",
    "FAULT_KINDS",
    "FakeClock",
    "FakeWorkspace",
    "Faults",
    "RecordedRequest",
    "Reply",
    "Step",
    "control_api",
    "load_scenario",
]
