"""The service's URLs: an endpoint checked, one project's paths, a list's query. Pure.

Every value that ends up in a URL is checked here before any request: the
endpoint, the IDs (:func:`~imagejobs.core.validation.check_id`), the list
filters and the page size. A query is written in the order and encoding the
signature's canonical query uses, so what is signed is what is sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from imagejobs.core.codec import MAX_PAGE_SIZE
from imagejobs.core.errors import InvalidArgument
from imagejobs.core.validation import check_id, is_host

__all__ = [
    "ProjectUrls",
    "check_endpoint",
    "check_filter",
    "check_page_size",
    "is_loopback",
    "list_filters",
    "with_query",
]

# Status and job-type filters: the open sets' spelling.
_FILTER = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)
# The count takes a comma-separated list of job types.
_FILTERS = re.compile(r"[A-Za-z0-9_]{1,64}(?:,[A-Za-z0-9_]{1,64}){0,15}", re.ASCII)

# host, [IPv6] or user@host (refused below with its own message), then an optional :port
_NETLOC = re.compile(r"(?:[^@/\s]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^\[\]:@/\s]+)(?::\d+)?")


def check_filter(name: str, value: object, *, several: bool = False) -> str | None:
    """Return a status or job-type filter if it is one (``several``: a comma-separated list)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not (_FILTERS if several else _FILTER).fullmatch(value):
        listed = " or a comma-separated list of them" if several else ""
        raise InvalidArgument(
            f"{name} {value[:80]!r} is not a status or job type{listed} "
            "(letters, digits and underscores, like RUNNING or CREATE_SERVER)"
        )
    return str(value)


def list_filters(
    job_id: object, status: object, job_type: object, *, several: bool = False
) -> dict[str, str | None]:
    """Return a list call's checked filters; ``several`` job types (comma-separated) or one."""
    return {
        "job_id": None if job_id is None else check_id("job_id", job_id),
        "status": check_filter("status", status),
        "job_type": check_filter("job_type", job_type, several=several),
    }


def check_page_size(page_size: object) -> int:
    """Return a page size the service takes (1 to :data:`MAX_PAGE_SIZE`)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise InvalidArgument(f"page_size must be a whole number, got {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


def with_query(url: str, query: Mapping[str, str | int | None]) -> str:
    """Return ``url`` with the query's set values, sorted and encoded as the signature's."""
    pairs = sorted((key, str(value)) for key, value in query.items() if value is not None)
    if not pairs:
        return url
    return url + "?" + "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def check_endpoint(endpoint: object) -> str:
    """Return an http(s) endpoint URL without its trailing slash, or raise naming the problem."""
    if not isinstance(endpoint, str):
        raise InvalidArgument(f"endpoint must be a string, got {type(endpoint).__name__}")
    problem = f"endpoint {endpoint!r} is not an http(s) URL like https://host[:port]"
    try:
        parts = urlsplit(endpoint.strip())
        _ = parts.port  # out of range, or not a number: urllib raises only when asked
        usable = (
            parts.scheme in ("http", "https")
            and _NETLOC.fullmatch(parts.netloc) is not None
            and is_host(parts.hostname or "")
        )
    except (ValueError, UnicodeError):
        raise InvalidArgument(problem) from None
    if not usable:
        raise InvalidArgument(problem)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidArgument("endpoint must not contain a query, a fragment or user information")
    return endpoint.strip().rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProjectUrls:
    """The URLs of one project's image-job API, at a checked endpoint."""

    __slots__ = ("job_list", "jobs", "sub_job_count", "sub_job_list")

    def __init__(self, endpoint: str, project_id: str) -> None:
        project = f"{endpoint}/v1/{quote(project_id, safe='')}"
        self.jobs = f"{project}/image-server-jobs/"
        """Where a job's details are, its quoted ID appended."""
        self.job_list = f"{project}/image-server-jobs"
        self.sub_job_list = f"{project}/image-server-sub-jobs"
        self.sub_job_count = f"{project}/image-server-sub-jobs/actions/count"

    def job(self, job_id: str) -> str:
        """Return the URL of a job's details; raises :class:`InvalidArgument` for a bad ID."""
        return self.jobs + quote(check_id("job_id", job_id), safe="")

    def __repr__(self) -> str:
        return f"ProjectUrls({self.job_list!r})"
