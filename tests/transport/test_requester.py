"""The request path over the in-memory transport: signing, budget, retries, refresh, hooks.

No socket and no server: each test scripts the answers, and virtual time (FakeClock)
runs the retries' delays in no real time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import backoff
import pytest

from imagejobs import (
    AkSkCredentials,
    ClientClosed,
    ImageJob,
    ImageJobsError,
    InvalidArgument,
    JobNotFound,
    RefreshableTokenCredentials,
    RequestRecord,
    RetryPolicy,
    RetryRecord,
    ServerError,
    Throttled,
    TransportError,
    verify_signature,
)
from imagejobs.core.codec import read_job, read_job_page
from imagejobs.observability.hooks import Hooks
from imagejobs.planning.budget import RequestBudget
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate
from imagejobs.transport.admission import Admission
from imagejobs.transport.base import Response
from imagejobs.transport.credentials import Credentials, authorizer_for
from imagejobs.transport.memory import MemoryTransport, Sent, json_response
from imagejobs.transport.requester import Call, Requester

JOB = "702364883651395584"
URL = f"https://workspace.example/v1/p/image-server-jobs/{JOB}"
RUNNING = {"id": JOB, "status": "RUNNING", "sub_jobs": []}
BUSY = {"error_code": "WKS.0503", "error_msg": "busy"}


def _requester(
    transport: MemoryTransport,
    clock: FakeClock,
    *,
    credentials: Credentials | None = None,
    retry: RetryPolicy | None = None,
    rate: float = math.inf,
    hooks: list[object] | None = None,
) -> Requester:
    headers = {"User-Agent": "test"}
    authorize_now, _ = authorizer_for(credentials, headers, "p", None)
    gate = Gate(RequestBudget.create(4, rate, clock.monotonic()), clock)
    observers = Hooks(hooks or [])
    return Requester(
        transport,
        Admission(gate, None),
        credentials=credentials,
        authorize_now=authorize_now,
        headers=headers,
        project_id="p",
        retry=retry or RetryPolicy(),
        timeout=30.0,
        clock=clock,
        hooks=observers,
    )


def _answers(*responses: Response) -> Callable[[Sent], Response]:
    """Answer each request with the next response, the last one for ever after."""
    queue = list(responses)

    def answer(sent: Sent) -> Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def _job_call() -> Call[ImageJob]:
    return Call(URL, read_job(JOB), "job", JOB)


async def test_each_try_is_signed_afresh_and_verifies() -> None:
    clock = FakeClock()
    transport = MemoryTransport(_answers(json_response(503, BUSY), json_response(200, RUNNING)))
    keys = AkSkCredentials("AKEXAMPLE", "SKEXAMPLE0000000000", clock=clock.now)
    requester = _requester(transport, clock, credentials=keys)
    job = await requester.send(_job_call())
    assert job.status.value == "RUNNING"
    assert len(transport.sent) == 2
    for sent in transport.sent:
        assert sent.url == URL
        assert sent.headers["X-Project-Id"] == "p"
        problem = verify_signature(
            "GET",
            f"/v1/p/image-server-jobs/{JOB}",
            "",
            sent.headers,
            b"",
            secret_for={"AKEXAMPLE": "SKEXAMPLE0000000000"}.get,
            now=clock.now(),
        )
        assert problem is None


async def test_two_503s_wait_delays_drawn_from_the_backoff_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[float, float, float]] = []
    jittered: list[float] = []
    expo = backoff.expo

    def spy(base: float = 2, factor: float = 1, max_value: float | None = None) -> Iterator[Any]:
        made.append((base, factor, max_value or math.inf))
        return expo(base=base, factor=factor, max_value=max_value)

    def half(value: float) -> float:
        jittered.append(value)
        return value / 2

    monkeypatch.setattr(backoff, "expo", spy)
    monkeypatch.setattr(backoff, "full_jitter", half)
    clock = FakeClock()
    busy = json_response(503, BUSY)
    transport = MemoryTransport(_answers(busy, busy, json_response(200, RUNNING)))
    policy = RetryPolicy(initial_delay=0.4, max_delay=8)
    requester = _requester(transport, clock, retry=policy)
    job = await requester.send(_job_call())
    assert job.id == JOB
    assert len(transport.sent) == 3
    assert made == [(2.0, 0.4, 8), (2.0, 0.4, 8)]  # one schedule a delay, from backoff
    assert jittered == pytest.approx([0.4, 0.8])  # its steps, jittered by backoff
    assert [sleep for sleep in clock.sleeps if sleep] == pytest.approx([0.2, 0.4])


async def test_a_retry_after_is_a_floor_for_the_next_try() -> None:
    clock = FakeClock()
    slow_down = json_response(
        429, {"error_code": "APIGW.0308", "error_msg": "x"}, {"Retry-After": "3"}
    )
    transport = MemoryTransport(_answers(slow_down, json_response(200, RUNNING)))
    requester = _requester(transport, clock, retry=RetryPolicy(initial_delay=0.01))
    await requester.send(_job_call())
    assert max(clock.sleeps) >= 3


async def test_a_503s_retry_after_holds_every_request_of_the_client() -> None:
    clock = FakeClock()
    sent_at: list[float] = []
    answers = [json_response(503, BUSY, {"Retry-After": "20"}), json_response(200, RUNNING)]

    def answer(sent: Sent) -> Response:
        sent_at.append(clock.monotonic())
        return answers.pop(0) if len(answers) > 1 else answers[0]

    requester = _requester(
        MemoryTransport(answer), clock, rate=50.0, retry=RetryPolicy(max_attempts=1)
    )
    with pytest.raises(ServerError):
        await requester.send(_job_call())
    await requester.send(_job_call())  # another call, not a retry: held all the same
    assert sent_at[1] - sent_at[0] >= 20
    budget = requester.admission.gate.budget
    assert budget.adaptive.current(clock.monotonic()) == 50.0  # a 503 is no throttling


async def test_when_tries_run_out_the_last_error_says_how_many() -> None:
    clock = FakeClock()
    transport = MemoryTransport(_answers(json_response(502, BUSY)))
    requester = _requester(transport, clock, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ServerError, match=r"after 3 attempts") as info:
        await requester.send(_job_call())
    assert info.value.attempts == 3
    assert len(transport.sent) == 3


async def test_a_refused_token_is_refreshed_once_and_the_request_sent_again() -> None:
    clock = FakeClock()
    tokens = iter(["old-token", "new-token"])

    async def fetch() -> str:
        return next(tokens)

    def answer(sent: Sent) -> Response:
        if sent.headers["X-Auth-Token"] == "old-token":
            return json_response(401, {"error_code": "APIGW.0301", "error_msg": "expired token"})
        return json_response(200, RUNNING)

    transport = MemoryTransport(answer)
    requester = _requester(transport, clock, credentials=RefreshableTokenCredentials(fetch))
    assert (await requester.send(_job_call())).id == JOB
    assert [s.headers["X-Auth-Token"] for s in transport.sent] == ["old-token", "new-token"]


async def test_the_budget_holding_a_call_past_its_max_time_is_a_transport_error() -> None:
    clock = FakeClock()
    transport = MemoryTransport(_answers(json_response(200, RUNNING)))
    requester = _requester(transport, clock, rate=0.01, retry=RetryPolicy(max_time=5))
    await requester.send(_job_call())  # the one token the bucket holds
    with pytest.raises(TransportError, match="not sent, the client's request budget held it"):
        await requester.send(_job_call())
    assert len(transport.sent) == 1


async def test_what_the_transport_raises_outside_the_tree_is_named_by_its_type_only() -> None:
    clock = FakeClock()

    def answer(sent: Sent) -> Response:
        raise KeyError("X-Auth-Token: s3cret")

    requester = _requester(MemoryTransport(answer), clock)
    with pytest.raises(ImageJobsError, match="failed unexpectedly: KeyError") as info:
        await requester.send(_job_call())
    assert "s3cret" not in str(info.value)


async def test_a_transport_error_is_retried_and_a_bad_argument_is_not() -> None:
    clock = FakeClock()
    failures: list[BaseException] = [TransportError("GET: connection refused")]

    def answer(sent: Sent) -> Response:
        if failures:
            raise failures.pop()
        return json_response(200, RUNNING)

    transport = MemoryTransport(answer)
    requester = _requester(transport, clock)
    await requester.send(_job_call())
    assert len(transport.sent) == 2
    failures.append(InvalidArgument("not a URL"))
    with pytest.raises(InvalidArgument):
        await requester.send(_job_call())
    assert len(transport.sent) == 3


async def test_the_hooks_hear_each_request_and_each_retry() -> None:
    clock = FakeClock()

    class Recorder:
        def __init__(self) -> None:
            self.seen: list[object] = []

        def on_request(self, record: RequestRecord) -> None:
            self.seen.append(record)

        def on_retry(self, record: RetryRecord) -> None:
            self.seen.append(record)

    hook = Recorder()
    throttled = json_response(429, {"error_code": "APIGW.0308", "error_msg": "x"})
    ok = json_response(200, RUNNING, {"x-request-id": "r2"})
    transport = MemoryTransport(_answers(throttled, ok))
    requester = _requester(transport, clock, hooks=[hook])
    await requester.send(_job_call())
    first, retry, second = hook.seen
    assert isinstance(first, RequestRecord)
    assert (first.status, first.attempt, first.what, first.job_id) == (429, 1, "job", JOB)
    assert isinstance(retry, RetryRecord)
    assert retry.error.startswith(Throttled.__name__)
    assert isinstance(second, RequestRecord)
    assert (second.status, second.attempt, second.request_id) == (200, 2, "r2")


async def test_a_closed_transport_is_refused_before_the_budget_is_touched() -> None:
    clock = FakeClock()
    transport = MemoryTransport(_answers(json_response(200, RUNNING)))
    requester = _requester(transport, clock, rate=0.01)
    budget = requester.admission.gate.budget
    tokens = budget.tokens
    await transport.close()
    for _ in range(3):
        with pytest.raises(ClientClosed, match="the client is closed"):
            await requester.send(_job_call())
    assert transport.sent == []
    assert (budget.tokens, budget.in_flight) == (tokens, 0)
    assert clock.sleep_count == 0


async def test_a_404_names_the_job_of_a_job_call_and_none_of_a_list() -> None:
    missing = {"error_code": "WKS.00081104", "error_msg": "The job does not exist."}
    transport = MemoryTransport(_answers(json_response(404, missing, {"X-Request-Id": "r1"})))
    requester = _requester(transport, FakeClock())
    with pytest.raises(JobNotFound) as info:
        await requester.send(_job_call())
    assert info.value.job_id == JOB
    assert str(info.value) == (
        f"404 WKS.00081104: The job does not exist. (job {JOB}, request id r1)"
    )
    listing = Call("https://workspace.example/v1/p/image-server-jobs", read_job_page, "job list")
    with pytest.raises(JobNotFound) as listed:
        await requester.send(listing)
    assert listed.value.job_id is None
    assert str(listed.value) == "404 WKS.00081104: The job does not exist. (request id r1)"


async def test_answers_dates_tell_the_clock_offset_once_a_second_and_a_skew_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()

    def answer(sent: Sent) -> Response:
        if len(transport.sent) == 1:
            return json_response(200, RUNNING)
        service_now = clock.now() + timedelta(seconds=300)  # this machine's clock behind
        return json_response(200, RUNNING, {"Date": format_datetime(service_now, usegmt=True)})

    transport = MemoryTransport(answer)
    requester = _requester(transport, clock)
    offset = requester.clock_offset
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        await requester.send(_job_call())
        assert offset.seconds == 0, "an answer without a Date says nothing"
        for _ in range(3):
            await requester.send(_job_call())
        # Three answers within the second: one reading (a Date says no more within it).
        assert repr(offset) == "ClockOffset(seconds=300.5, readings=1)"
        clock.advance(5)
        await requester.send(_job_call())
    assert repr(offset) == "ClockOffset(seconds=300.5, readings=2)"
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("this machine's clock is 300s behind the service's")
