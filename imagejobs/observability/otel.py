"""OpenTelemetry for imagejobs: a hook that records metrics and a span per request.

``pip install 'imagejobs[otel]'``, then::

    from imagejobs.otel import OpenTelemetryHook

    client = Client.from_env(hooks=[OpenTelemetryHook()])

It uses the global meter and tracer providers unless given its own. Each request
is a client span following the HTTP semantic conventions (``GET``, kind CLIENT,
``http.request.method``, ``url.full``, ``server.address``, ``server.port``,
``http.response.status_code``, ``error.type``, ``http.request.resend_count``),
timed from when it was sent, and is recorded in ``http.client.request.duration``.
Besides those: ``imagejobs.requests`` (by ``imagejobs.request`` and status),
``imagejobs.retries``, ``imagejobs.throttles``, ``imagejobs.wait.duration`` (by
``imagejobs.outcome``, the :attr:`~imagejobs.Outcome.kind`: ``"cancelled"`` for a
wait its caller left) and ``imagejobs.waits.active``. Prometheus users export
them with OpenTelemetry's Prometheus exporter.

A poll serves every caller waiting on its job, so its span is the child of
none of theirs (the client's scheduler runs in a context of its own): it is a
root span **linked** to the span each caller was in when its wait on that job
began. The hook remembers those spans per job ID from ``on_wait`` (called in
the caller's context) until the job's last wait ends (``on_outcome``): while
waits on one job overlap, its polls link to all of their spans. It keeps
:data:`MAX_LINKS_PER_JOB` spans a job (the latest) and the waits of
:data:`MAX_WAITED_JOBS` jobs (those waited on latest). A request made in a
caller's own span (``get_job`` in a span, say) is that span's child, and links
to none.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

from imagejobs._version import __version__
from imagejobs.core.errors import ConfigurationError
from imagejobs.core.outcome import Outcome

from .records import RequestRecord, RetryRecord, ThrottleRecord, WaitRecord

try:
    from opentelemetry import metrics, trace
except ImportError:  # pragma: no cover - checked when the hook is made
    metrics = trace = None  # type: ignore[assignment]

__all__ = ["MAX_LINKS_PER_JOB", "MAX_WAITED_JOBS", "OpenTelemetryHook"]

_SCOPE = "imagejobs"

MAX_LINKS_PER_JOB = 32
"""The most waits' spans a poll of one job links to: those of the latest waits."""

MAX_WAITED_JOBS = 10_000
"""The most jobs whose waits' spans the hook remembers: those waited on latest."""


class _Waits:
    """The waits in progress on one job: how many, and the spans they began in."""

    __slots__ = ("count", "spans")

    def __init__(self) -> None:
        self.count = 0
        self.spans: dict[tuple[int, int], Any] = {}  # span contexts, oldest first, each once


class OpenTelemetryHook:
    """A client hook that records imagejobs' requests and waits with OpenTelemetry."""

    def __init__(self, meter_provider: Any = None, tracer_provider: Any = None) -> None:
        if metrics is None or trace is None:
            raise ConfigurationError(
                "OpenTelemetryHook needs the otel extra: pip install 'imagejobs[otel]'"
            )
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(_SCOPE, __version__)
        tracer_source = tracer_provider or trace.get_tracer_provider()
        self._tracer = tracer_source.get_tracer(_SCOPE, __version__)
        self._duration = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP requests."
        )
        self._requests = meter.create_counter(
            "imagejobs.requests", unit="{request}", description="Requests sent, by kind and status."
        )
        self._retries = meter.create_counter(
            "imagejobs.retries", unit="{retry}", description="Calls tried again after a failure."
        )
        self._throttles = meter.create_counter(
            "imagejobs.throttles", unit="{response}", description="429s from the gateway."
        )
        self._duration_of_waits = meter.create_histogram(
            "imagejobs.wait.duration", unit="s", description="How long waits took, by outcome."
        )
        self._active = meter.create_up_down_counter(
            "imagejobs.waits.active", unit="{wait}", description="Waits in progress."
        )
        self._waits: OrderedDict[str, _Waits] = OrderedDict()

    def __repr__(self) -> str:
        return "OpenTelemetryHook()"

    def on_request(self, record: RequestRecord) -> None:
        """Record one request: a client span, its duration and its count."""
        parts = urlsplit(record.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        common: dict[str, Any] = {
            "http.request.method": record.method,
            "server.address": parts.hostname or "",
            "server.port": port,
        }
        if record.status is not None:
            common["http.response.status_code"] = record.status
        failed = record.status is None or record.status >= 400
        if failed:
            common["error.type"] = str(record.status) if record.status else record.error or "_OTHER"
        self._duration.record(record.duration, common)
        kind: dict[str, Any] = {"imagejobs.request": record.what}
        if record.status is not None:
            kind["http.response.status_code"] = record.status
        self._requests.add(1, kind)
        end = time.time_ns()
        attributes = {**common, "url.full": record.url}
        if record.attempt > 1:
            attributes["http.request.resend_count"] = record.attempt - 1
        if record.request_id:
            attributes["imagejobs.request_id"] = record.request_id
        links = None
        if record.job_id:
            attributes["imagejobs.job_id"] = record.job_id
            links = self._links(record.job_id)
        span = self._tracer.start_span(
            record.method,
            kind=trace.SpanKind.CLIENT,
            start_time=end - int(record.duration * 1e9),
            attributes=attributes,
            links=links,
        )
        if failed:
            span.set_status(trace.Status(trace.StatusCode.ERROR))
        span.end(end_time=end)

    def on_retry(self, record: RetryRecord) -> None:
        """Count a call tried again."""
        self._retries.add(1, {"error.type": record.error.split(":", 1)[0]})

    def on_throttle(self, record: ThrottleRecord) -> None:
        """Count a 429."""
        self._throttles.add(1)

    def on_wait(self, record: WaitRecord) -> None:
        """A wait begins: remember the caller's span, for the polls of its job to link to."""
        self._active.add(1)
        waits = self._waits.get(record.job_id)
        if waits is None:
            waits = self._waits[record.job_id] = _Waits()
            if len(self._waits) > MAX_WAITED_JOBS:
                self._waits.popitem(last=False)
        else:
            self._waits.move_to_end(record.job_id)
        waits.count += 1
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            key = (context.trace_id, context.span_id)  # a SpanContext is no dict key
            waits.spans.pop(key, None)  # now the latest
            waits.spans[key] = context
            if len(waits.spans) > MAX_LINKS_PER_JOB:
                del waits.spans[next(iter(waits.spans))]

    def on_outcome(self, outcome: Outcome) -> None:
        """A wait ends: its duration, by outcome; its job's spans forgotten if it was the last."""
        self._active.add(-1)
        self._duration_of_waits.record(outcome.duration, {"imagejobs.outcome": outcome.kind})
        waits = self._waits.get(outcome.job_id)
        if waits is not None:
            waits.count -= 1
            if waits.count <= 0:
                del self._waits[outcome.job_id]

    def _links(self, job_id: str) -> list[Any] | None:
        """Links to the spans of the waits a request of ``job_id`` serves, if it is a poll.

        A poll runs in no caller's span; a request inside one is that caller's own.
        """
        waits = self._waits.get(job_id)
        if waits is None or not waits.spans or trace.get_current_span().get_span_context().is_valid:
            return None
        return [trace.Link(context) for context in waits.spans.values()]
