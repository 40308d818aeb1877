"""Process-wide memos of what the waits compute, emptied as a client closes.

A few pure functions remember their answers: the one summary of every job of a
type, status and sub-job count, the one object of every list a sweep pages, a
path's canonical form for signing. What they remember is made while the waits
run, among the memory of jobs that ended, and CPython keeps an arena of 1 MB
mapped while one object in it lives: after 10,000 jobs, the memos' few hundred
entries held 8 of the 10 arenas the waits had added. A client empties them as
it closes (:func:`forget_memos`); a memo then only computes its next answers
again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from functools import _lru_cache_wrapper

__all__ = ["forget_memos", "memo"]

_T = TypeVar("_T")

_MEMOS: list[_lru_cache_wrapper[object]] = []


def memo(maxsize: int) -> Callable[[Callable[..., _T]], _lru_cache_wrapper[_T]]:
    """Remember a function's last ``maxsize`` answers, until :func:`forget_memos`."""

    def remember(function: Callable[..., _T]) -> _lru_cache_wrapper[_T]:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _MEMOS.append(cached)
        return cached

    return remember


def forget_memos() -> None:
    """Empty every memo: what a closing client's waits left in them is let go."""
    for cached in _MEMOS:
        cached.cache_clear()
