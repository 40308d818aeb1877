"""How a wait ended: :class:`Outcome`. Pure."""

from __future__ import annotations

from typing import Literal

import attrs

from .errors import ImageJobsError, JobFailed, WaitCancelled, WaitTimeout
from .models import ImageJob

__all__ = ["Outcome", "OutcomeKind"]

OutcomeKind = Literal["success", "failed", "timeout", "cancelled", "error"]


@attrs.frozen
class Outcome:
    """How the wait for one job ended.

    ``job`` is the last snapshot (``None`` if the job was never seen); ``error``
    is ``None`` on success, :class:`JobFailed`, :class:`WaitTimeout`,
    :class:`WaitCancelled` (only in what the hooks are told: its caller left), or
    the error that made the outcome unknowable (``JobNotFound``,
    ``AuthenticationError``, ``ClientClosed``, or the error the polls kept
    failing with until the deadline...).
    ``duration`` is how long the wait took, in seconds, and ``polls`` how many
    times the job was looked at meanwhile (GETs, and snapshots shared by other
    processes of a fleet; a wait that joined a job just seen may take none).
    """

    job_id: str
    job: ImageJob | None
    error: ImageJobsError | None = None
    duration: float = 0.0
    polls: int = 0

    @property
    def kind(self) -> OutcomeKind:
        """Return ``"success"``, ``"failed"``, ``"timeout"``, ``"cancelled"`` or ``"error"``.

        ``"cancelled"`` is a wait its caller left (:class:`WaitCancelled`); a
        wait ended by :meth:`Client.close` is an ``"error"`` (``ClientClosed``):
        its caller was still waiting, and must learn that the job's end is unknown.
        """
        if self.error is None:
            return "success"
        if isinstance(self.error, JobFailed):
            return "failed"
        if isinstance(self.error, WaitTimeout):
            return "timeout"
        if isinstance(self.error, WaitCancelled):
            return "cancelled"
        return "error"

    @property
    def ok(self) -> bool:
        """Whether the job ended with status SUCCESS."""
        return self.error is None
