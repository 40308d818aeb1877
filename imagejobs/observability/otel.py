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
"""

from __future__ import annotations

import time
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

__all__ = ["OpenTelemetryHook"]

_SCOPE = "imagejobs"


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
        self._waits = meter.create_histogram(
            "imagejobs.wait.duration", unit="s", description="How long waits took, by outcome."
        )
        self._active = meter.create_up_down_counter(
            "imagejobs.waits.active", unit="{wait}", description="Waits in progress."
        )

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
        if record.job_id:
            attributes["imagejobs.job_id"] = record.job_id
        span = self._tracer.start_span(
            record.method,
            kind=trace.SpanKind.CLIENT,
            start_time=end - int(record.duration * 1e9),
            attributes=attributes,
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
        """A wait begins."""
        self._active.add(1)

    def on_outcome(self, outcome: Outcome) -> None:
        """A wait ends: its duration, by outcome."""
        self._active.add(-1)
        self._waits.record(outcome.duration, {"imagejobs.outcome": outcome.kind})
