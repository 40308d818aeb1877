"""Hand the C allocator's free memory back to the system, after a client let go of many jobs.

A hub waiting on thousands of jobs keeps tables of them all, each a
block of the C library's ``malloc`` of a few hundred kilobytes to megabytes;
``close()`` frees them. glibc's ``malloc`` keeps freed memory below the top of
its heap mapped, for its next allocations, so the process's resident memory
stays where the waits took it (3,000 jobs: 1.2 MB of it; 10,000: 2 to 3 MB; 30,000: 8 MB).
``malloc_trim(0)`` asks it to give those pages back. It takes a few
milliseconds on a heap of hundreds of megabytes, so a client calls it only as
it closes, and only if it held that many jobs at once (:data:`TRIM_AFTER`).

Elsewhere (macOS, musl, Windows, other Pythons' allocators) this does nothing.
Memory of CPython's own small objects is not the C library's to give back: an
arena of them goes back to the system once the last object in it is freed.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["TRIM_AFTER", "trim_heap"]

TRIM_AFTER = 1000
"""Jobs a client held at once before its ``close()`` hands the freed memory back.

From about that many the freed tables and records are worth a trim (1,000 jobs:
0.5 MB; 3,000: 1.2 MB); a client of a few jobs closes without walking the heap."""


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The process's own symbols, libc's among them: no search for the library
        # (ctypes.util.find_library runs ldconfig).
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    call: Callable[[int], int] = trim
    return call


_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Give the C library's free memory back to the system; return whether it could."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
