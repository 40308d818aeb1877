"""Transient failures: the fake's injected faults, and the client's retries through them."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import backoff
import pytest

from imagejobs import (
    AkSkCredentials,
    ApiError,
    AuthenticationError,
    BadRequest,
    Client,
    ImageJobsError,
    InvalidArgument,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    PollPolicy,
    ResponseTooLarge,
    RetryPolicy,
    ServerError,
    Throttled,
    TransportError,
)
from imagejobs.planning.retry import is_transient
from imagejobs.testing import FAULT_KINDS, FakeClock, FakeWorkspace, Faults, Reply, load_scenario

JOB = "702364883651395584"
RUNNING = {"id": JOB, "status": "RUNNING"}
ONCE = RetryPolicy(max_attempts=1)
QUICK = RetryPolicy(max_attempts=5, initial_delay=0.001, max_delay=0.004)

EXPECTED: dict[str, type[ImageJobsError] | None] = {
    "500": ServerError,
    "502": ServerError,
    "503": ServerError,
    "504": ServerError,
    "429": Throttled,
    "slow": None,
    "drop": TransportError,
    "drop-mid-body": TransportError,
    "truncated": MalformedResponse,
    "html": ServerError,
    "empty": MalformedResponse,
    "content-type": MalformedResponse,
    "oversized": ResponseTooLarge,
}


def test_every_fault_kind_has_an_expectation() -> None:
    assert set(EXPECTED) == {*FAULT_KINDS, "oversized"}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_each_fault_reaches_the_client_as_its_typed_error(
    fake: FakeWorkspace, kind: str
) -> None:
    # aiohttp itself resends a GET once when the server hangs up before answering,
    # so a dropped connection reaches the client only when it happens twice.
    times = 2 if kind == "drop" else 1
    fake.add_job([RUNNING], faults=Faults(at=dict.fromkeys(range(1, times + 1), kind)))
    async with fake.client(retry=ONCE) as client:
        expected = EXPECTED[kind]
        if expected is None:
            assert (await client.get_job(JOB)).id == JOB
        else:
            with pytest.raises(expected) as info:
                await client.get_job(JOB)
            assert is_transient(info.value) is (kind != "oversized")
        assert (await client.get_job(JOB)).id == JOB  # the second request is clean
    assert [r.fault for r in fake.requests] == [kind] * times + [None]
    assert [r.step for r in fake.requests] == [0 if kind == "slow" else None] * times + [0]


@pytest.mark.parametrize("kind", sorted(set(EXPECTED) - {"slow", "oversized"}))
async def test_retries_see_the_job_through_any_transient_fault(
    fake: FakeWorkspace, kind: str
) -> None:
    fake.add_job([RUNNING], faults=Faults(at={1: kind, 2: kind}))
    async with fake.client(retry=QUICK) as client:
        assert (await client.get_job(JOB)).id == JOB
    assert len(fake.requests) == 3


async def test_when_retries_run_out_the_last_error_says_how_many(fake: FakeWorkspace) -> None:
    fake.add_job([Reply.error(503, "WKS.0503", "busy")], job_id=JOB)
    policy = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002)
    async with fake.client(retry=policy) as client:
        with pytest.raises(ServerError) as info:
            await client.get_job(JOB)
    assert str(info.value).endswith("(after 3 attempts)")
    assert info.value.attempts == 3
    assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, JobNotFound),
        (405, BadRequest),
        (501, ServerError),
    ],
)
async def test_final_errors_are_never_retried(
    fake: FakeWorkspace, status: int, error: type[ApiError]
) -> None:
    fake.add_job([Reply.error(status, "WKS.X", "no")], job_id=JOB)
    async with fake.client(retry=QUICK) as client:
        with pytest.raises(error) as info:
            await client.get_job(JOB)
    assert "attempts" not in str(info.value)
    assert len(fake.requests) == 1


async def test_max_time_caps_the_retries(server: FakeWorkspace, clock: FakeClock) -> None:
    # Virtual time, and waits of 4 s (Retry-After, a floor to the jitter): the last
    # try, at 8 s, still has 2 s of max_time to be answered in, however busy the
    # machine (on real time a 50 ms cap could cut the last try short).
    server.add_job([Reply.error(503, "WKS.0503", "busy", retry_after=4)], job_id=JOB)
    policy = RetryPolicy(max_attempts=1000, max_time=10, initial_delay=4, max_delay=4)
    async with server.client(clock=clock, retry=policy) as client:
        with pytest.raises(ServerError, match="attempts"):
            await client.get_job(JOB)
    assert 2 <= len(server.requests) < 1000


async def test_every_attempt_is_signed_afresh(keys: dict[str, Any]) -> None:
    ticks = iter(range(100))
    start = datetime.now(UTC)

    def clock() -> datetime:
        return start + timedelta(seconds=next(ticks))

    async with FakeWorkspace(**keys, faults=Faults(at={1: "503", 2: "truncated"})) as fake:
        fake.add_job([RUNNING])
        credentials = AkSkCredentials(keys["ak"], keys["sk"], clock=clock)
        async with fake.client(credentials=credentials, retry=QUICK) as client:
            await client.get_job(JOB)
        dates = [r.headers["X-Sdk-Date"] for r in fake.requests]
        signatures = {r.headers["Authorization"] for r in fake.requests}
    assert len(dates) == len(set(dates)) == len(signatures) == 3


async def test_a_deadline_ends_a_wait_whose_polls_keep_failing(fake: FakeWorkspace) -> None:
    fake.add_job([Reply.error(503, "WKS.0503", "busy")], job_id=JOB)
    policy = RetryPolicy(max_attempts=1000, max_time=1000, initial_delay=0.05, max_delay=0.05)
    async with fake.client(retry=policy) as client:
        with pytest.raises(ServerError, match=r"503 WKS\.0503: busy .*polls failing for") as info:
            await client.wait(JOB, PollPolicy(timeout=0.3))
    assert info.value.failing_for is not None
    assert 0 < info.value.failing_for <= 0.3
    assert 1 < len(fake.requests) < 1000


async def test_a_huge_body_is_refused_unread(fake: FakeWorkspace) -> None:
    fake.add_job([RUNNING], faults=Faults(at={1: "oversized"}))
    async with fake.client(retry=QUICK) as client:
        with pytest.raises(ResponseTooLarge, match="104857600 bytes is over the 16777216-byte cap"):
            await client.get_job(JOB)
    assert len(fake.requests) == 1


async def test_a_long_body_without_a_length_is_cut_at_the_cap(fake: FakeWorkspace) -> None:
    fake.add_job([{**RUNNING, "padding": "x" * 5000}])
    async with fake.client(retry=QUICK, max_body_size=1000) as client:
        with pytest.raises(ResponseTooLarge, match="1000-byte cap"):
            await client.get_job(JOB)


async def test_redirects_are_not_followed(fake: FakeWorkspace, keys: dict[str, Any]) -> None:
    async with FakeWorkspace(**keys) as elsewhere:
        elsewhere.add_job([RUNNING])
        moved = Reply(status=302, headers={"Location": elsewhere.url + "/v1/p/image-server-jobs/1"})
        fake.add_job([moved], job_id=JOB)
        async with fake.client(retry=QUICK) as client:
            with pytest.raises(ApiError) as info:
                await client.get_job(JOB)
        assert info.value.http_status == 302
        assert elsewhere.requests == []


async def test_an_expired_signature_hints_at_the_clock(keys: dict[str, Any]) -> None:
    later = datetime.now(UTC) + timedelta(minutes=20)
    async with FakeWorkspace(**keys, now=lambda: later) as fake:
        fake.add_job([RUNNING])
        async with fake.client(retry=QUICK) as client:
            with pytest.raises(AuthenticationError) as info:
                await client.get_job(JOB)
    assert "signature expired" in str(info.value)
    assert "check this machine's clock" in str(info.value)
    assert len(fake.requests) == 1


async def test_faults_come_from_a_scenario_too() -> None:
    scenario = {
        "faults": {"rate": 1.0, "kinds": ["503"], "seed": 3},
        "jobs": [
            {"id": "1", "timeline": [{"id": "1", "status": "SUCCESS"}]},
            {
                "id": "2",
                "faults": {"at": {"1": "empty"}},
                "timeline": [{"id": "2", "status": "SUCCESS"}],
            },
        ],
    }
    async with load_scenario(scenario) as fake, fake.client(retry=ONCE) as client:
        with pytest.raises(ServerError):
            await client.get_job("1")
        with pytest.raises(MalformedResponse):
            await client.get_job("2")
        assert (await client.get_job("2")).status == "SUCCESS"


def test_fault_plans_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults(kinds=("teapot",))
    with pytest.raises(ValueError, match="between 0 and 1"):
        Faults(rate=2)
    with pytest.raises(ValueError, match="count from 1"):
        Faults(at={0: "503"})


async def test_seeded_faults_repeat(keys: dict[str, Any]) -> None:
    async def faults_seen() -> list[str | None]:
        async with FakeWorkspace(**keys, faults=Faults(rate=0.5, seed=7)) as fake:
            fake.add_job([RUNNING])
            async with fake.client(retry=ONCE) as client:
                for _ in range(30):
                    with contextlib.suppress(ImageJobsError):
                        await client.get_job(JOB)
            return [r.fault for r in fake.requests]

    first, second = await asyncio.gather(faults_seen(), faults_seen())
    assert first == second
    assert 5 < sum(f is not None for f in first) < 25


def test_a_client_checks_its_size_cap() -> None:
    with pytest.raises(InvalidArgument, match="max_body_size"):
        Client(project_id="p", endpoint="https://x", max_body_size=0)


async def test_get_job_through_two_503s_waits_what_the_backoff_package_draws(
    fake: FakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[float] = []
    real_jitter = backoff.full_jitter

    def jitter(value: float) -> float:
        steps.append(value)
        return float(real_jitter(value))

    monkeypatch.setattr(backoff, "full_jitter", jitter)
    fake.add_job([RUNNING], faults=Faults(at={1: "503", 2: "503"}))
    async with fake.client(retry=QUICK) as client:
        job = await client.get_job(JOB)
    assert job.status.value == "RUNNING"
    assert [r.status for r in fake.requests] == [503, 503, 200]
    # backoff.expo's doubling steps, each jittered by backoff.full_jitter.
    assert steps == pytest.approx([0.001, 0.002])
