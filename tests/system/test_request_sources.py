"""Every request counted once, under why it was sent: the budget's spending by source."""

from __future__ import annotations

from collections import Counter
from typing import Any

from test_sweeps import script_tenant
from wire_data import snap

from imagejobs import PollPolicy, RequestCounter, RequestRecord, RetryPolicy
from imagejobs.observability.records import SOURCES
from imagejobs.testing import FakeClock, FakeWorkspace, Faults


class Sources:
    """A hook keeping each request's source, by job."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def on_request(self, record: RequestRecord) -> None:
        self.records.append(record)


async def test_every_request_of_a_swept_tenant_is_counted_once_under_its_source(
    keys: dict[str, Any],
) -> None:
    clock = FakeClock()
    counter, sources = RequestCounter(), Sources()
    async with FakeWorkspace(clock=clock.monotonic, rate_limit=10, **keys) as fake:
        ends = script_tenant(fake, count=200, old=50, seconds=60)
        async with fake.client(clock=clock, rate=10, hooks=[counter, sources]) as client:
            outcomes = [o async for o in client.wait_many(list(ends))]
        requests = fake.requests
    assert len(outcomes) == len(ends)
    assert counter.total == len(requests)  # every request, once
    assert set(counter.by_source) <= set(SOURCES)
    assert counter.by_source["sweep"] == sum(1 for r in requests if r.job_id is None) > 0
    finals = Counter(r.job_id for r in sources.records if r.source == "final")
    # One final GET a job at least; a second only if the first answer was lost.
    assert set(finals) == set(ends)
    assert counter.by_source["final"] <= len(ends) + counter.by_source["retry"]
    gets = [r for r in sources.records if r.job_id is not None]
    assert all(r.source not in ("sweep", "history", "call") for r in gets)
    assert f"final={counter.by_source['final']}" in repr(counter)


async def test_a_call_its_retries_and_a_job_first_look_are_told_apart(
    keys: dict[str, Any],
) -> None:
    counter, sources = RequestCounter(), Sources()
    faults = Faults(at={1: "503"})
    async with FakeWorkspace(faults=faults, **keys) as fake:
        done = fake.add_job([snap("700000000000000001", "SUCCESS")])
        running = fake.add_job(
            [snap("700000000000000002", "RUNNING"), snap("700000000000000002", "SUCCESS")]
        )
        retry = RetryPolicy(initial_delay=0.01)
        async with fake.client(hooks=[counter, sources], retry=retry) as client:
            await client.get_job(done)  # a 503, then the job
            await client.wait(running, PollPolicy(initial_delay=0.01, max_delay=0.02))
    told = [(r.job_id, r.source) for r in sources.records]
    assert told == [
        (done, "call"),
        (done, "retry"),
        (running, "first"),
        (running, "final"),
    ]
    assert counter.by_source == Counter({"call": 1, "retry": 1, "first": 1, "final": 1})
