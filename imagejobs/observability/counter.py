"""A hook that counts a client's requests by why each was sent: where the budget goes."""

from __future__ import annotations

from collections import Counter

from imagejobs.observability.records import SOURCES, RequestRecord

__all__ = ["RequestCounter"]


class RequestCounter:
    """Counts every request a client sends, by its source (see :data:`SOURCES`).

    Give it as ``Client(hooks=[counter])`` and read ``counter.by_source``: for
    instance ``{"sweep": 120, "final": 400, "first": 12}``. Each request counts
    once, under one source, whatever it ended in.
    """

    def __init__(self) -> None:
        self.by_source: Counter[str] = Counter()

    def __repr__(self) -> str:
        shown = ", ".join(f"{source}={self.by_source[source]}" for source in self._seen())
        return f"RequestCounter({shown})"

    def on_request(self, record: RequestRecord) -> None:
        """Count one request under its source."""
        self.by_source[record.source] += 1

    @property
    def total(self) -> int:
        """Every request counted."""
        return sum(self.by_source.values())

    def _seen(self) -> list[str]:
        return [source for source in SOURCES if self.by_source[source]]
