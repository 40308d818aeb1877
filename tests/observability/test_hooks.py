"""Hooks: a record for every request, retry, 429, wait, transition and outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from wire_data import snap, sub

from imagejobs import Client, InvalidArgument, PollPolicy, RetryPolicy, WaitCancelled
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import Transition
from imagejobs.observability import hooks as hooks_module
from imagejobs.observability.records import RequestRecord, RetryRecord, ThrottleRecord, WaitRecord
from imagejobs.testing import FakeClock, FakeWorkspace, Faults

FAST = PollPolicy(initial_delay=0.01, max_delay=0.05, timeout=30)


class Recorder:
    """A hook that keeps everything it is told."""

    def __init__(self) -> None:
        self.requests: list[RequestRecord] = []
        self.retries: list[RetryRecord] = []
        self.throttles: list[ThrottleRecord] = []
        self.waits: list[WaitRecord] = []
        self.transitions: list[Transition] = []
        self.outcomes: list[Outcome] = []

    def on_request(self, record: RequestRecord) -> None:
        self.requests.append(record)

    def on_retry(self, record: RetryRecord) -> None:
        self.retries.append(record)

    def on_throttle(self, record: ThrottleRecord) -> None:
        self.throttles.append(record)

    def on_wait(self, record: WaitRecord) -> None:
        self.waits.append(record)

    def on_transition(self, transition: Transition) -> None:
        self.transitions.append(transition)

    def on_outcome(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def _staged(fake: FakeWorkspace, job_id: str = "700000000000000001") -> str:
    sub_id = "900000000000000001"
    return fake.add_job(
        [
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "WAITING")]),
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "RUNNING")]),
            snap(job_id, "SUCCESS", sub_jobs=[sub(sub_id, "SUCCESS")]),
        ]
    )


async def test_each_request_and_retry_is_told_with_status_attempt_and_request_id(
    keys: dict[str, Any],
) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys, faults=Faults(at={1: "503"})) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        retry = RetryPolicy(initial_delay=0.01, max_delay=0.02)
        async with fake.client(hooks=[hook], retry=retry) as client:
            await client.get_job(job_id)
        served = [r.request_id for r in fake.requests]
    assert [r.status for r in hook.requests] == [503, 200]
    assert [r.attempt for r in hook.requests] == [1, 2]
    assert [r.request_id for r in hook.requests] == served
    assert all(r.what == "job" and r.job_id == job_id and r.method == "GET" for r in hook.requests)
    assert hook.requests[0].error == "ServerError"
    assert hook.requests[1].error is None
    assert all(r.duration >= 0 for r in hook.requests)
    (retried,) = hook.retries
    assert retried.attempt == 1
    assert retried.delay > 0
    assert "503" in retried.error
    for record in [*hook.requests, *hook.retries]:
        assert keys["sk"] not in repr(record)
        assert keys["ak"] not in repr(record)


async def test_a_429_is_told_with_the_rate_it_left(keys: dict[str, Any]) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys, faults=Faults(at={1: "429"}, retry_after=0.01)) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        async with fake.client(hooks=[hook], rate=50) as client:
            await client.get_job(job_id)
    (throttle,) = hook.throttles
    assert throttle.job_id == job_id
    assert throttle.retry_after == pytest.approx(0.01)
    assert throttle.rate < 50
    assert throttle.request_id == hook.requests[0].request_id


async def test_transitions_are_told_once_per_change_and_outcomes_once_per_wait(
    keys: dict[str, Any], clock: FakeClock
) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys, clock=clock.monotonic) as fake:
        job_id = _staged(fake)
        async with fake.client(hooks=[hook], clock=clock) as client:
            jobs = await asyncio.gather(client.wait(job_id, FAST), client.wait(job_id, FAST))
        gets = len(fake.requests_for(job_id))
    assert all(job.status.value == "SUCCESS" for job in jobs)
    changes = [(t.sub_job_id, t.current) for t in hook.transitions]
    assert len(changes) == len(set(changes)) == 5  # two waiters, each change told once
    assert [w.job_id for w in hook.waits] == [job_id, job_id]
    assert [o.kind for o in hook.outcomes] == ["success", "success"]
    for outcome in hook.outcomes:
        assert outcome.polls == gets
        assert outcome.duration == pytest.approx(clock.monotonic(), abs=0.06)


async def test_outcomes_of_wait_many_carry_duration_and_polls(
    keys: dict[str, Any], clock: FakeClock
) -> None:
    async with FakeWorkspace(**keys, clock=clock.monotonic) as fake:
        job_id = _staged(fake)
        async with fake.client(clock=clock) as client:
            (outcome,) = [o async for o in client.wait_many([job_id], FAST)]
    assert outcome.ok
    assert outcome.polls == 3  # one GET a step
    assert 0 < outcome.duration <= clock.monotonic()


class Broken:
    def on_request(self, record: RequestRecord) -> None:
        raise RuntimeError("a bug in the hook")

    async def on_outcome(self, outcome: Outcome) -> None:
        raise RuntimeError("a bug in the async hook")


async def test_a_hook_that_raises_is_logged_and_breaks_no_wait(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys) as fake:
        job_id = _staged(fake)
        with caplog.at_level(logging.WARNING, logger="imagejobs"):
            async with fake.client(hooks=[Broken(), hook]) as client:
                job = await client.wait(job_id, FAST)
    assert job.status.value == "SUCCESS"
    assert len(hook.requests) == 3  # the hook after the broken one is told everything
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Broken.on_request raised" in m for m in messages) == 3
    assert sum("Broken.on_outcome raised" in m for m in messages) == 1


async def test_an_async_hook_method_is_awaited(keys: dict[str, Any]) -> None:
    seen: list[str] = []

    class Async:
        async def on_outcome(self, outcome: Outcome) -> None:
            await asyncio.sleep(0)
            seen.append(outcome.kind)

    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        async with fake.client(hooks=[Async()]) as client:
            await client.wait(job_id, FAST)
    assert seen == ["success"]  # closing the client let it finish


@pytest.mark.parametrize("hooks", [[object()], "on_request", 3])
def test_hooks_that_are_not_hooks_are_refused(hooks: Any) -> None:
    with pytest.raises(InvalidArgument, match="hook"):
        Client(project_id="p", endpoint="http://127.0.0.1:1", hooks=hooks)


async def test_log_records_carry_job_status_and_request_id(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = _staged(fake)
        with caplog.at_level(logging.DEBUG, logger="imagejobs"):
            async with fake.client() as client:
                await client.wait(job_id, FAST)
        served = {r.request_id for r in fake.requests}
    requests = [r for r in caplog.records if r.getMessage().startswith("GET ")]
    assert {getattr(r, "request_id", None) for r in requests} == served
    assert all(getattr(r, "job_id", None) == job_id for r in requests)
    assert all(getattr(r, "status", None) == 200 for r in requests)
    transitions = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(transitions) == 5
    assert transitions[-1].getMessage() == f"job {job_id}: RUNNING -> SUCCESS"
    assert getattr(transitions[-1], "status", None) == "SUCCESS"
    assert all(getattr(r, "job_id", None) == job_id for r in transitions)


# --- what a review found ------------------------------------------------------------------


async def test_every_wait_that_began_is_told_to_have_ended_cancelled_ones_too(
    keys: dict[str, Any],
) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "RUNNING")])
        async with fake.client(hooks=[hook]) as client:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.wait(job_id, FAST), 0.2)
            async with contextlib.aclosing(client.watch(job_id, FAST)) as transitions:
                async for _ in transitions:
                    break  # a caller that stops reading
    assert len(hook.waits) == len(hook.outcomes) == 2, hook.outcomes
    for outcome in hook.outcomes:
        assert outcome.kind == "cancelled"
        assert isinstance(outcome.error, WaitCancelled)
        assert outcome.error.job_id == job_id
        assert str(outcome.error) == f"the wait on job {job_id} was cancelled"


async def test_a_wait_on_a_job_already_ended_counts_no_polls(
    keys: dict[str, Any], clock: FakeClock
) -> None:
    hook = Recorder()
    async with FakeWorkspace(**keys, clock=clock.monotonic) as fake:
        job_id = _staged(fake)
        async with fake.client(hooks=[hook], clock=clock) as client:
            done = await client.wait(job_id, FAST)
            slow = asyncio.create_task(client.wait(_staged(fake, "700000000000000002"), FAST))
            await client.wait(job_id, FAST, since=done)  # ends at once
            await slow
    assert [o.polls for o in hook.outcomes if o.job_id == job_id] == [3, 0]


async def test_an_async_hook_that_never_returns_does_not_hold_close(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    class Stuck:
        async def on_outcome(self, outcome: Outcome) -> None:
            await asyncio.Event().wait()

    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        client = fake.client(hooks=[Stuck()])
        await client.wait(job_id, FAST)
        with caplog.at_level(logging.WARNING, logger="imagejobs"):
            await asyncio.wait_for(client.close(), 10)  # a second of grace, then cancelled
    assert any("was cancelled" in r.getMessage() for r in caplog.records)


async def test_a_stuck_async_hook_holds_at_most_its_bound_of_tasks(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks_module, "MAX_HOOK_TASKS", 5)
    release = asyncio.Event()

    class Stuck:
        def __init__(self) -> None:
            self.started = 0

        async def on_request(self, record: RequestRecord) -> None:
            self.started += 1
            await release.wait()

    stuck, recorder = Stuck(), Recorder()
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        async with fake.client(hooks=[stuck, recorder]) as client:
            with caplog.at_level(logging.WARNING, logger="imagejobs"):
                for _ in range(12):
                    await client.get_job(job_id)
                await asyncio.sleep(0)
                assert stuck.started == 5  # the other seven records were dropped
                assert len(recorder.requests) == 12  # and no other hook's
                release.set()
                for _ in range(10):
                    await asyncio.sleep(0)
                await client.get_job(job_id)
                await asyncio.sleep(0)
                assert stuck.started == 6  # taking records again once its calls finished
    messages = [r.getMessage() for r in caplog.records]
    assert sum("records are dropped" in m for m in messages) == 1  # once, not once a record
    assert any("7 dropped while it was behind" in m for m in messages)
