"""Hand the C allocator's free memory back to the system, after a client let go of many jobs.

A hub waiting on thousands of jobs keeps tables of them all, each a
block of the C library's ``malloc`` of a few hundred kilobytes to megabytes;
``close()`` frees them. glibc's ``malloc`` keeps freed memory below the top of
its heap mapped, for its next allocations, so the process's resident memory
stays where the waits took it (10,000 jobs: 2 to 3 MB of it; 30,000: 8 MB).
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

TRIM_AFTER = 4096
"""Jobs a client held at once before its ``close()`` hands the freed memory back.

A table of that many is past 128 KB, where glibc stops mapping a block apart (which
it gives back as soon as it is freed) and takes it from its heap."""


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
