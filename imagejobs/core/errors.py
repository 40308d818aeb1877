"""The exceptions imagejobs raises: one tree, rooted at :class:`ImageJobsError`.

::

    ImageJobsError
    ├── ApiError                 the server answered with an error status
    │   ├── BadRequest           400, 405
    │   ├── AuthenticationError  401
    │   ├── PermissionDenied     403
    │   ├── JobNotFound          404; .job_id names the job asked for
    │   ├── Throttled            429
    │   └── ServerError          5xx
    ├── TransportError           no usable answer: connection failed, timed out
    ├── ClientClosed             the client was closed (or the aiohttp session lent to it)
    ├── MalformedResponse        an answer that is not a job in the documented shape
    │   └── ResponseTooLarge     a body over the size cap, left unread
    ├── InvalidArgument          (also a ValueError) bad input, caught before any request
    │   └── ConfigurationError   a setting missing from arguments, environment and file
    ├── JobFailed                a waited-on job ended FAILED
    ├── WaitTimeout              the deadline passed with the job still running
    └── WaitCancelled            never raised: the outcome hooks hear of a wait its caller left

No message ever contains a credential: errors are built from what the server
sent back and from IDs, never from request headers.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ImageJob, SubJob
    from .transitions import Transition

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "ClientClosed",
    "ConfigurationError",
    "ImageJobsError",
    "InvalidArgument",
    "JobFailed",
    "JobNotFound",
    "MalformedResponse",
    "PermissionDenied",
    "ResponseTooLarge",
    "ServerError",
    "Throttled",
    "TransportError",
    "WaitCancelled",
    "WaitTimeout",
]


class ImageJobsError(Exception):
    """Root of every exception imagejobs raises on purpose.

    ``attempts`` is how many tries of the request ended in this error, when the
    client retried it; ``failing_for`` is how many seconds a wait's polls had
    been failing when its deadline came. The message says both when set.
    """

    attempts: int = 1
    failing_for: float | None = None

    def __str__(self) -> str:
        text = self._text()
        if self.attempts > 1:
            text += f" (after {self.attempts} attempts)"
        if self.failing_for is not None:
            text += f" (polls failing for {self.failing_for:.1f}s, until the wait's deadline)"
        return text

    def _text(self) -> str:
        """The message before what :meth:`__str__` adds: the one it was made with."""
        return super().__str__()


class ApiError(ImageJobsError):
    """The server answered with an HTTP error status.

    ``error_code`` and ``error_msg`` come from the documented error body; when the
    body is not in that shape (an HTML gateway page, an empty body) ``error_code``
    is ``None`` and ``error_msg`` holds the trimmed raw text. ``request_id`` is the
    ``X-Request-Id`` header, which the provider's support asks for.
    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
    """

    def __init__(
        self,
        http_status: int,
        error_code: str | None,
        error_msg: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._message())

    def _text(self) -> str:
        return self._message()  # from the attributes now: a JobNotFound's job_id is set later

    def _message(self) -> str:
        if self.error_code:
            head = f"{self.http_status} {self.error_code}"
        else:
            try:
                head = f"{self.http_status} {HTTPStatus(self.http_status).phrase}"
            except ValueError:
                head = str(self.http_status)
        text = f"{head}: {self.error_msg}"
        notes = self._notes()
        if notes:
            text += f" ({', '.join(notes)})"
        return text

    def _notes(self) -> list[str]:
        """What the message adds in parentheses after the server's text."""
        return [f"request id {self.request_id}"] if self.request_id else []

    def __reduce__(self) -> tuple[object, ...]:
        args = (self.http_status, self.error_code, self.error_msg, self.request_id)
        return (type(self), (*args, self.retry_after), self.__dict__)


class BadRequest(ApiError):
    """400 or 405: the request was malformed or used the wrong method."""


class AuthenticationError(ApiError):
    """401: the credentials were missing, wrong or expired."""


class PermissionDenied(ApiError):
    """403: the credentials lack ``workspace:images:getImageJob``."""


class JobNotFound(ApiError):
    """404: no such job in this project (or not visible yet).

    ``job_id`` is the job asked for, which the message names: the request path
    sets it on a job's 404. ``None`` when the request was not about one job (a list).
    """

    def __init__(
        self,
        http_status: int,
        error_code: str | None,
        error_msg: str,
        request_id: str | None = None,
        retry_after: float | None = None,
        *,
        job_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        super().__init__(http_status, error_code, error_msg, request_id, retry_after)

    def _notes(self) -> list[str]:
        notes = super()._notes()
        return [f"job {self.job_id}", *notes] if self.job_id is not None else notes


class Throttled(ApiError):
    """429: the API gateway throttled the caller; see ``retry_after``."""


class ServerError(ApiError):
    """5xx: the service failed or is unavailable."""


class TransportError(ImageJobsError):
    """No usable answer came back: the connection failed, dropped or timed out."""


class ClientClosed(ImageJobsError):
    """The client was closed: no request is sent, and no wait goes on.

    Raised by every call made after :meth:`Client.close`, by the calls and
    waits ``close()`` cut short, and once the aiohttp session lent to the
    client (``session=``) is closed by its owner.
    """


class MalformedResponse(ImageJobsError):
    """A response that is not what was asked for (a job, a list page, a count) as documented.

    ``path`` is the JSON path of the first bad value in wire names
    (``$.sub_jobs[0].status``), or ``$`` when the body as a whole is wrong.
    """

    def __init__(
        self,
        detail: str,
        path: str = "$",
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.detail = detail
        self.path = path
        self.http_status = http_status
        self.request_id = request_id
        message = f"{detail} @ {path}"
        if request_id:
            message += f" (request id {request_id})"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.detail, self.path, self.http_status, self.request_id),
            self.__dict__,
        )


class ResponseTooLarge(MalformedResponse):
    """A response body over the size cap; it was not read into memory."""


class InvalidArgument(ImageJobsError, ValueError):
    """An argument was rejected before any request was sent."""


class ConfigurationError(InvalidArgument):
    """A setting is missing or unusable; the message names it and where it can come from."""


class JobFailed(ImageJobsError):
    """A waited-on job ended with status FAILED.

    ``job`` is the final snapshot, ``failed_sub_jobs`` its failed sub-jobs (with
    their ``job_execute_info``), ``transitions`` everything seen while waiting.
    """

    def __init__(self, job: ImageJob, transitions: Sequence[Transition] = ()) -> None:
        self.job = job
        self.transitions = tuple(transitions)
        super().__init__(f"job {job.id} FAILED: {_first_failure(job)}")

    @property
    def failed_sub_jobs(self) -> tuple[SubJob, ...]:
        """Return the sub-jobs that failed, in server order."""
        return self.job.failed_sub_jobs

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.job, self.transitions), self.__dict__)


def _first_failure(job: ImageJob) -> str:
    for sub in job.failed_sub_jobs:
        info = sub.job_execute_info
        code = (info.error_code if info else None) or "no error code"
        message = (info.error_message if info else None) or "no error message"
        kind = f" ({sub.job_type.value})" if sub.job_type is not None else ""
        return f"sub-job {sub.id}{kind} {sub.status.value}: {code}: {message}"
    return "no sub-job reported an error"


class WaitTimeout(ImageJobsError):
    """The wait's deadline passed before the job ended.

    ``job`` is the last snapshot (``None`` if none was ever received),
    ``waited`` the seconds waited, ``transitions`` everything seen.
    """

    def __init__(
        self,
        job_id: str,
        job: ImageJob | None,
        waited: float,
        transitions: Sequence[Transition] = (),
    ) -> None:
        self.job_id = job_id
        self.job = job
        self.waited = waited
        self.transitions = tuple(transitions)
        state = f"still {job.status.value}" if job is not None else "never seen"
        super().__init__(f"job {job_id} {state} after {waited:.1f}s")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.job_id, self.job, self.waited, self.transitions), self.__dict__)


class WaitCancelled(ImageJobsError):
    """A wait its caller left before it ended: cancelled, ``break``, ``aclose()``.

    Never raised (nobody is left to catch it): it is the ``error`` of the
    :class:`~imagejobs.Outcome` the ``on_outcome`` hooks are told of such a
    wait, whose ``kind`` is ``"cancelled"``. ``job_id`` is the job it waited on.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"the wait on job {job_id} was cancelled")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.job_id,), self.__dict__)
