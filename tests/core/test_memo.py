"""Memos: answers remembered process-wide, until a closing client empties them."""

from __future__ import annotations

from imagejobs.core import memo as memo_module
from imagejobs.core.memo import forget_memos, memo
from imagejobs.core.models import JobStatus
from imagejobs.core.signing import host_header
from imagejobs.planning import sweeps


def test_a_memo_answers_from_memory_until_forgotten() -> None:
    calls: list[int] = []

    @memo(maxsize=4)
    def square(n: int) -> list[int]:
        calls.append(n)
        return [n * n]

    try:
        first = square(3)
        assert square(3) is first
        assert calls == [3]
        forget_memos()
        again = square(3)
        assert again == first
        assert again is not first
        assert calls == [3, 3]
    finally:
        memo_module._MEMOS.remove(square)


def test_the_package_memos_are_forgotten_together() -> None:
    host_header("https://example.com:8443/v1")
    summary = sweeps._summary("CREATE_SERVER_IMAGE", JobStatus.RUNNING, 2)
    assert sweeps._summary("CREATE_SERVER_IMAGE", JobStatus.RUNNING, 2) is summary
    assert host_header.cache_info().currsize > 0
    forget_memos()
    assert host_header.cache_info().currsize == 0
    assert all(cached.cache_info().currsize == 0 for cached in memo_module._MEMOS)
    assert sweeps._summary("CREATE_SERVER_IMAGE", JobStatus.RUNNING, 2) is not summary
