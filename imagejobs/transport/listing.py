"""The list calls: jobs, sub-jobs and the sub-job count, and durations learned from a list.

Each page is one request through the request path (signing, budget, retries,
size cap), walked by the one paging loop (:mod:`imagejobs.transport.paging`).
Filters and page sizes are checked before any request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from imagejobs.core.codec import MAX_PAGE_SIZE, Page, read_count, read_job_page, read_sub_job_page
from imagejobs.core.errors import InvalidArgument
from imagejobs.core.models import ImageJobInfo, JobStatus, JobType, SubJob
from imagejobs.core.urls import (
    ProjectUrls,
    check_filter,
    check_page_size,
    list_filters,
    with_query,
)
from imagejobs.planning.history import MAX_SAMPLES, DurationHistory, duration_of
from imagejobs.transport.paging import ListWalk
from imagejobs.transport.requester import Call, Requester

__all__ = ["Lists"]

_T = TypeVar("_T")


class Lists:
    """The list calls of one project, over one request path."""

    def __init__(self, requester: Requester, urls: ProjectUrls) -> None:
        self._requester = requester
        self._urls = urls

    def __repr__(self) -> str:
        return f"Lists({self._urls.job_list!r})"

    def jobs(
        self, status: object, job_type: object, page_size: object
    ) -> AsyncGenerator[ImageJobInfo]:
        """Yield the project's jobs, filtered, each once (see :meth:`Client.list_jobs`)."""
        query = list_filters(None, status, job_type)
        size = check_page_size(page_size)
        return self._walk(self._urls.job_list, query, size, read_job_page, _job_key).items()

    def sub_jobs(
        self, job_id: object, status: object, job_type: object, page_size: object
    ) -> AsyncGenerator[SubJob]:
        """Yield sub-jobs, filtered, each once (see :meth:`Client.list_sub_jobs`)."""
        query = list_filters(job_id, status, job_type)
        size = check_page_size(page_size)
        url = self._urls.sub_job_list
        return self._walk(url, query, size, read_sub_job_page, _sub_job_key).items()

    async def count_sub_jobs(self, job_id: object, status: object, job_type: object) -> int:
        """Return how many sub-jobs match: one request (see :meth:`Client.count_sub_jobs`)."""
        query = list_filters(job_id, status, job_type, several=True)
        url = with_query(self._urls.sub_job_count, query)
        return await self._requester.send(Call(url, read_count, "sub-job count"))

    def _walk(
        self,
        url: str,
        query: Mapping[str, str | None],
        size: int,
        read: Callable[[bytes], Page[_T]],
        key: Callable[[_T], Hashable],
        *,
        max_pages: int | None = None,
        source: str = "call",
    ) -> ListWalk[_T]:
        """Return a walk through a list, a page a request (each retried as a GET is)."""
        what = "sub-job list" if read is read_sub_job_page else "job list"

        def fetch(offset: int) -> Awaitable[Page[_T]]:
            page_url = with_query(url, {**query, "offset": offset, "limit": size})
            return self._requester.send(Call(page_url, read, what, source=source))

        return ListWalk(fetch, key, max_pages=max_pages)

    async def learn(
        self, history: DurationHistory, job_types: Iterable[str] | None, pages: object
    ) -> dict[str, int]:
        """Fill ``history`` from each type's finished jobs (see :meth:`Client.learn_history`)."""
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise InvalidArgument(f"pages must be a whole number of at least 1, got {pages!r}")
        if job_types is None:
            types = sorted(t.value for t in JobType)
        elif isinstance(job_types, str):
            raise InvalidArgument("job_types must be an iterable of types, not a single string")
        else:
            types = [check_filter("job_type", t) or "" for t in job_types]
        learned: dict[str, int] = {}
        for job_type in types:
            kept = await self._durations(job_type, pages)
            if kept:
                history.replace(job_type, kept)
                learned[job_type] = len(kept)
        return learned

    async def _durations(self, job_type: str, pages: int) -> list[float]:
        """Return the most recent durations (by ``end_time``) of a type's SUCCESS jobs."""
        finished: list[tuple[datetime, float]] = []
        query: dict[str, str | None] = {"status": "SUCCESS", "job_type": job_type}
        url = self._urls.job_list
        walk = self._walk(
            url, query, MAX_PAGE_SIZE, read_job_page, _job_key, max_pages=pages, source="history"
        )
        async with contextlib.aclosing(walk.items()) as infos:
            async for info in infos:
                seconds = duration_of(info)
                if (
                    info.status is JobStatus.SUCCESS
                    and info.job_type == job_type
                    and info.end_time is not None
                    and seconds is not None
                ):
                    finished.append((info.end_time, seconds))
        finished.sort()
        return [seconds for _, seconds in finished[-MAX_SAMPLES:]]


def _job_key(info: ImageJobInfo) -> Any:
    return info.id


def _sub_job_key(sub: SubJob) -> Any:
    # Sub-job IDs are only known unique within their job.
    return sub.job_id, sub.id
