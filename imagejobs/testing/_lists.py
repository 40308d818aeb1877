"""The fake server's list endpoints as pure functions: query checks, filters, order, pages.

Each answer is computed from the query and the jobs' current snapshots in wire
form, given as ``(job ID, snapshot)`` pairs; the server decides which snapshot a
job shows and does the HTTP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._reply import Reply

__all__ = [
    "COUNT_JOB_TYPES",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Page",
    "count_sub_jobs",
    "job_list_page",
    "list_jobs",
    "list_sub_jobs",
    "parent_filter",
    "sub_job_list_page",
]

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
COUNT_JOB_TYPES = ("CREATE_SERVER", "CREATE_SERVER_IMAGE", "DELETE_SERVER")
"""The sub-job types CountImageSubJobs counts when the query names none."""

INVALID_PARAMETER = "WKS.00211102"
_JOB_INFO_FIELDS = ("id", "job_type", "begin_time", "end_time", "status", "sub_jobs_total")
# The service's integers are 32-bit: a larger offset is as invalid as a negative one.
_MAX_OFFSET = 2**31 - 1
_OFFSET_DIGITS = len(str(_MAX_OFFSET))

Snapshot = Mapping[str, Any]


@attrs.frozen
class Page:
    """Where a page starts and how many items it holds at most."""

    offset: int = 0
    limit: int = DEFAULT_LIMIT


def _invalid(problem: str) -> Reply:
    return Reply.error(400, INVALID_PARAMETER, f"Invalid parameter: {problem}")


def _wanted(query: Mapping[str, str], name: str) -> str | None:
    """Return a filter's value; an empty one filters nothing, as if not sent."""
    return query.get(name) or None


def _integer(text: str, lowest: int, highest: int) -> int | None:
    # ASCII digits only: int() would also take "+5", " 5", "1_0" and other scripts' digits.
    if not text or len(text) > _OFFSET_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if lowest <= value <= highest else None


def _page(query: Mapping[str, str]) -> Page | Reply:
    offset = limit = None
    if "offset" in query:
        offset = _integer(query["offset"], 0, _MAX_OFFSET)
        if offset is None:
            return _invalid(f"offset must be an integer of 0 or more, got {query['offset']!r}")
    if "limit" in query:
        limit = _integer(query["limit"], 1, MAX_LIMIT)
        if limit is None:
            return _invalid(
                f"limit must be an integer from 1 to {MAX_LIMIT}, got {query['limit']!r}"
            )
    return Page(
        offset=0 if offset is None else offset,
        limit=DEFAULT_LIMIT if limit is None else limit,
    )


def job_list_page(query: Mapping[str, str], *, require_job_type: bool) -> Page | Reply:
    """Return the page a job list asks for, or the 400 its query deserves."""
    if require_job_type and _wanted(query, "job_type") is None:
        return _invalid("job_type is required")
    return _page(query)


def sub_job_list_page(query: Mapping[str, str]) -> Page | Reply:
    """Return the page a sub-job list asks for, or the 400 its query deserves."""
    return _page(query)


def parent_filter(query: Mapping[str, str]) -> str | None:
    """Return the parent job a sub-job list or count is limited to, if any."""
    return _wanted(query, "job_id")


def _order_key(seed: int, *parts: str) -> bytes:
    text = "\x00".join((str(seed), *parts))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def _answer(items: Sequence[tuple[bytes, dict[str, Any]]], page: Page) -> Reply:
    ordered = [item for _, item in sorted(items, key=lambda pair: pair[0])]
    shown = ordered[page.offset : page.offset + page.limit]
    return Reply.json({"count": len(ordered), "items": shown})


def _matches(item: Snapshot, field: str, wanted: str | Iterable[str] | None) -> bool:
    if wanted is None:
        return True
    value = item.get(field)
    if not isinstance(value, str):
        return False
    return value == wanted if isinstance(wanted, str) else value in wanted


def list_jobs(
    jobs: Iterable[tuple[str, Snapshot]], query: Mapping[str, str], page: Page, *, seed: int
) -> Reply:
    """Answer ListImageJobs: the jobs matching ``status`` and ``job_type``, one page of them."""
    status, job_type = _wanted(query, "status"), _wanted(query, "job_type")
    items = [
        (_order_key(seed, job_id), {k: snapshot[k] for k in _JOB_INFO_FIELDS if k in snapshot})
        for job_id, snapshot in jobs
        if _matches(snapshot, "status", status) and _matches(snapshot, "job_type", job_type)
    ]
    return _answer(items, page)


def _sub_jobs(
    jobs: Iterable[tuple[str, Snapshot]], project_id: str, seed: int
) -> list[tuple[bytes, dict[str, Any]]]:
    """Return every sub-job with its order key, carrying its parent's ID and the project."""
    found = []
    for job_id, snapshot in jobs:
        sub_jobs = snapshot.get("sub_jobs")
        if not isinstance(sub_jobs, Sequence) or isinstance(sub_jobs, str):
            continue
        for position, sub_job in enumerate(sub_jobs):
            if not isinstance(sub_job, Mapping):
                continue
            item = dict(sub_job)
            if item.get("job_id") is None:
                item["job_id"] = job_id
            if item.get("project_id") is None:
                item["project_id"] = project_id
            # The position breaks ties between sub-jobs without an ID or sharing one.
            key = _order_key(seed, job_id, str(item.get("id")), str(position))
            found.append((key, item))
    return found


def list_sub_jobs(
    jobs: Iterable[tuple[str, Snapshot]],
    query: Mapping[str, str],
    page: Page,
    *,
    seed: int,
    project_id: str,
) -> Reply:
    """Answer ListImageSubJobs: the sub-jobs matching ``status``, ``job_type`` and ``job_id``."""
    status, job_type = _wanted(query, "status"), _wanted(query, "job_type")
    parent = parent_filter(query)
    items = [
        (key, item)
        for key, item in _sub_jobs(jobs, project_id, seed)
        if _matches(item, "status", status)
        and _matches(item, "job_type", job_type)
        and _matches(item, "job_id", parent)
    ]
    return _answer(items, page)


def count_sub_jobs(
    jobs: Iterable[tuple[str, Snapshot]], query: Mapping[str, str], *, project_id: str
) -> Reply:
    """Answer CountImageSubJobs: how many sub-jobs match; ``job_type`` may list several."""
    status, parent = _wanted(query, "status"), parent_filter(query)
    listed = [t.strip() for t in (_wanted(query, "job_type") or "").split(",")]
    job_types = frozenset(filter(None, listed)) or frozenset(COUNT_JOB_TYPES)
    count = sum(
        1
        for _, item in _sub_jobs(jobs, project_id, seed=0)
        if _matches(item, "status", status)
        and _matches(item, "job_type", job_types)
        and _matches(item, "job_id", parent)
    )
    return Reply.json({"count": count})
