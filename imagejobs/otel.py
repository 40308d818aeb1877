"""OpenTelemetry for imagejobs: ``from imagejobs.otel import OpenTelemetryHook``.

Needs the ``otel`` extra (``pip install 'imagejobs[otel]'``); see
:mod:`imagejobs.observability.otel` for what it records.
"""

from .observability.otel import OpenTelemetryHook

__all__ = ["OpenTelemetryHook"]
