"""The OpenTelemetry hook, read back through the SDK's in-memory metric reader and span exporter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from wire_data import snap

from imagejobs import Outcome, PollPolicy, RequestRecord, RetryPolicy, WaitCancelled, WaitRecord
from imagejobs.otel import OpenTelemetryHook
from imagejobs.testing import FakeWorkspace, Faults


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "imagejobs"
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


async def test_requests_retries_throttles_and_waits_become_metrics_and_spans(
    keys: dict[str, Any],
) -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryHook(MeterProvider(metric_readers=[reader]), tracer_provider)
    faults = Faults(at={1: "503", 2: "429"}, retry_after=0.01)
    async with FakeWorkspace(**keys, faults=faults) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        retry = RetryPolicy(initial_delay=0.01, max_delay=0.02)
        async with fake.client(hooks=[hook], retry=retry, rate=100) as client:
            await client.get_job(job_id)  # 503, 429, then 200
            await client.wait(job_id, PollPolicy(initial_delay=0.01, max_delay=0.05))
        served = [r.request_id for r in fake.requests]
        port = int(fake.url.rsplit(":", 1)[1])

    points = _points(reader)
    by_status = {
        p.attributes.get("http.response.status_code"): p.value for p in points["imagejobs.requests"]
    }
    assert by_status == {503: 1, 429: 1, 200: 2}
    assert sum(p.value for p in points["imagejobs.retries"]) == 2
    assert sum(p.value for p in points["imagejobs.throttles"]) == 1
    (waited,) = points["imagejobs.wait.duration"]
    assert waited.count == 1
    assert waited.attributes == {"imagejobs.outcome": "success"}
    assert sum(p.value for p in points["imagejobs.waits.active"]) == 0  # one began, one ended
    durations = {
        p.attributes["http.response.status_code"]: p for p in points["http.client.request.duration"]
    }
    assert durations[200].count == 2
    assert durations[503].attributes["error.type"] == "503"

    spans = exporter.get_finished_spans()
    attributes = [dict(span.attributes or {}) for span in spans]
    assert [a["imagejobs.request_id"] for a in attributes] == served
    for span, attrs in zip(spans, attributes, strict=True):
        assert span.name == "GET"
        assert span.kind is SpanKind.CLIENT
        assert attrs["http.request.method"] == "GET"
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["server.port"] == port
        assert str(attrs["url.full"]).endswith(f"/image-server-jobs/{job_id}")
        assert (span.end_time or 0) >= (span.start_time or 0) > 0
        assert keys["sk"] not in str(attrs)
    assert [s.status.status_code for s in spans[:3]] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert attributes[1]["http.request.resend_count"] == 1


async def test_polls_are_no_callers_children_and_a_callers_own_request_is(
    keys: dict[str, Any],
) -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    hook = OpenTelemetryHook(
        MeterProvider(metric_readers=[InMemoryMetricReader()]), tracer_provider
    )
    tracer = tracer_provider.get_tracer("test")
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job(
            [snap("700000000000000001", "RUNNING"), snap("700000000000000001", "SUCCESS")]
        )
        async with fake.client(hooks=[hook]) as client:
            with tracer.start_as_current_span("deploy-a") as a:
                waiting = asyncio.ensure_future(
                    client.wait(job_id, PollPolicy(initial_delay=0.01, max_delay=0.05))
                )
                await asyncio.sleep(0)
            with tracer.start_as_current_span("deploy-b"):
                await client.wait(job_id, PollPolicy(initial_delay=0.01, max_delay=0.05))
            await waiting
            with tracer.start_as_current_span("inspect") as inspect:
                await client.get_job(job_id)
    requests = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    polls, (direct,) = requests[:-1], requests[-1:]
    assert polls
    assert all(s.parent is None for s in polls)  # shared by both callers: a child of neither
    assert direct.parent is not None
    assert direct.parent.span_id == inspect.get_span_context().span_id
    assert a.get_span_context().trace_id != direct.context.trace_id


async def test_a_wait_its_caller_left_is_recorded_as_cancelled(keys: dict[str, Any]) -> None:
    reader = InMemoryMetricReader()
    hook = OpenTelemetryHook(MeterProvider(metric_readers=[reader]), TracerProvider())
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "RUNNING")])
        async with fake.client(hooks=[hook]) as client:
            policy = PollPolicy(initial_delay=0.01, max_delay=0.05)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.wait(job_id, policy), 0.1)
    points = _points(reader)
    (waited,) = points["imagejobs.wait.duration"]
    assert waited.attributes == {"imagejobs.outcome": "cancelled"}
    assert waited.count == 1
    assert sum(p.value for p in points["imagejobs.waits.active"]) == 0  # one began, one ended


def _traced() -> tuple[InMemorySpanExporter, TracerProvider, OpenTelemetryHook]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return exporter, tracer_provider, OpenTelemetryHook(meter_provider, tracer_provider)


async def test_the_polls_of_a_wait_begun_in_a_span_link_to_it(keys: dict[str, Any]) -> None:
    exporter, tracer_provider, hook = _traced()
    tracer = tracer_provider.get_tracer("test")
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job(
            [snap("700000000000000001", "RUNNING")] * 3 + [snap("700000000000000001", "SUCCESS")]
        )
        async with fake.client(hooks=[hook]) as client:
            with tracer.start_as_current_span("deploy") as deploy:
                await client.wait(job_id, PollPolicy(initial_delay=0.01, max_delay=0.02))
    polls = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    assert len(polls) == 4
    for poll in polls:
        assert poll.parent is None  # a root span: the scheduler polls in no caller's context
        assert [link.context for link in poll.links] == [deploy.get_span_context()]
        assert poll.context.trace_id != deploy.get_span_context().trace_id
    assert hook._waits == {}  # the wait ended: its span is forgotten


async def test_a_poll_shared_by_two_callers_links_to_both_and_a_callers_own_request_to_none(
    keys: dict[str, Any],
) -> None:
    exporter, tracer_provider, hook = _traced()
    tracer = tracer_provider.get_tracer("test")
    policy = PollPolicy(initial_delay=0.01, max_delay=0.02)
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job(
            [snap("700000000000000001", "RUNNING")] * 4 + [snap("700000000000000001", "SUCCESS")]
        )
        async with fake.client(hooks=[hook]) as client:
            with tracer.start_as_current_span("deploy-a") as a:
                first = asyncio.ensure_future(client.wait(job_id, policy))
            with tracer.start_as_current_span("deploy-b") as b:
                second = asyncio.ensure_future(client.wait(job_id, policy))
            await asyncio.sleep(0)  # both waits begin before the first poll
            with tracer.start_as_current_span("inspect") as inspect:
                await client.get_job(job_id)  # the caller's own request, in its span
            await asyncio.gather(first, second)
    requests = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    (direct,) = [s for s in requests if s.parent is not None]
    assert direct.parent is not None
    assert direct.parent.span_id == inspect.get_span_context().span_id
    assert not direct.links
    polls = [s for s in requests if s is not direct]
    assert polls
    both = [a.get_span_context(), b.get_span_context()]
    for poll in polls:
        assert [link.context for link in poll.links] == both


def test_the_spans_a_poll_links_to_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagejobs.observability import otel  # noqa: PLC0415

    monkeypatch.setattr(otel, "MAX_LINKS_PER_JOB", 3)
    monkeypatch.setattr(otel, "MAX_WAITED_JOBS", 2)
    exporter, tracer_provider, hook = _traced()
    tracer = tracer_provider.get_tracer("test")
    spans = []
    for n in range(5):
        with tracer.start_as_current_span(f"caller-{n}") as span:
            hook.on_wait(WaitRecord("job-1", None))
        spans.append(span.get_span_context())
    hook.on_request(
        RequestRecord("GET", "https://h/v1/p/jobs/job-1", "job", "job-1", 200, 0.1, 1, "r")
    )
    (poll,) = [s for s in exporter.get_finished_spans() if s.name == "GET"]
    assert [link.context for link in poll.links] == spans[-3:]  # the latest waits'
    for job_id in ("job-2", "job-3"):
        hook.on_wait(WaitRecord(job_id, None))
    assert list(hook._waits) == ["job-2", "job-3"]  # the jobs waited on latest
    for _ in range(5):
        hook.on_outcome(Outcome("job-1", None, WaitCancelled("job-1")))  # forgotten: no error
    hook.on_outcome(Outcome("job-2", None))
    assert list(hook._waits) == ["job-3"]
