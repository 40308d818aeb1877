"""Tricky IDs reach the fake server as they are, each in its own path segment."""

from __future__ import annotations

import pytest

from imagejobs.testing import FakeWorkspace

TRICKY_IDS = ["a?b", "a#b", "%2F", "..a", "a;b=c", "ü漢", "a&b", "+", "~x", "a%20b"]


@pytest.mark.parametrize("job_id", TRICKY_IDS)
async def test_tricky_ids_reach_the_server_as_they_are(fake: FakeWorkspace, job_id: str) -> None:
    fake.add_job([{"id": job_id, "status": "RUNNING"}])
    async with fake.client() as client:
        assert (await client.get_job(job_id)).id == job_id
    assert fake.requests[-1].job_id == job_id
    assert fake.requests[-1].status == 200
