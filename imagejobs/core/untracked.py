"""Keep a job's records out of the cycle collector's sight.

A hub waiting on a hundred thousand jobs holds half a million small records of
them (a stream, its subscribers, their places in the heaps) and a dozen tables
of them all. Each full collection of CPython's cycle collector walks every
tracked object, and every object a tracked table holds: with those records it
held the event loop a fifth of a second at a time, and with the tables alone,
a fiftieth.

The collector exists to find reference cycles no one holds any more, and
there are none to find among them: a path from a job's records back to its
hub (a poll in flight, a caller's mailbox) lasts only while the hub holds the
records, and the hub lets go of them as the job ends, as its wait is
cancelled and as the client closes; reference counting then frees them
(``tests/scheduling/test_scale.py`` checks it with the collector off). So on
CPython they are untracked (the C API's ``PyObject_GC_UnTrack``, what
``gc.freeze()`` does for a whole process, here for these records only).
Elsewhere this does nothing.

Anything else they point to stays tracked and is collected as before, but
for the snapshots and transitions a hub keeps of each job (:func:`untrack_job`):
frozen models of strings, times and enums, which no cycle can pass through. A
dict tracks itself again when an object is put in it, so one is untracked
again after each change that can do that.

The price: a client never closed, whose event loop is closed under waits
still pending (``loop.close()`` without cancelling its tasks, which
``asyncio.run`` does), is never freed. One whose waits are cancelled, or whose
``asyncio.run`` ends, is (``tests/system/test_hub.py``).
"""

from __future__ import annotations

import ctypes
import gc
import sys
from collections.abc import Callable, Iterable

from .models import ImageJob
from .transitions import Transition

__all__ = ["untrack", "untrack_job", "untrack_transitions"]


def _untracker() -> Callable[[object], None] | None:
    if sys.implementation.name != "cpython":
        return None
    # A prototype of our own (not ctypes.pythonapi's shared one, which others may set up
    # their way); PYFUNCTYPE keeps the GIL held through the call, as this must.
    prototype = ctypes.PYFUNCTYPE(None, ctypes.py_object)
    return prototype(("PyObject_GC_UnTrack", ctypes.pythonapi))


_UNTRACK = _untracker()


def untrack(obj: object) -> None:
    """Stop the cycle collector looking at ``obj``; reference counting still frees it."""
    # Only an object the collector tracks has the header PyObject_GC_UnTrack reads.
    if _UNTRACK is not None and gc.is_tracked(obj):
        _UNTRACK(obj)


def untrack_job(job: ImageJob) -> None:
    """Untrack a snapshot and what it holds: frozen models, which no cycle can pass through."""
    if _UNTRACK is None or not gc.is_tracked(job):
        return  # untracked already: the same snapshot, read again from the same answer
    untrack(job)
    untrack(job.sub_jobs)
    for sub in job.sub_jobs:
        untrack(sub)
        untrack(sub.job_resource_info)
        untrack(sub.job_execute_info)


def untrack_transitions(changes: Iterable[Transition]) -> None:
    """Untrack transitions (frozen, as the snapshots they point to)."""
    for change in changes:
        untrack(change)
