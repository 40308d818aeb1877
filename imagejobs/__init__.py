"""Wait for Huawei Cloud Workspace image jobs, asynchronously.

The public API: :class:`Client` fetches a job as an :class:`ImageJob` and waits
on jobs through its one scheduler; the models, enums, policies, codec functions
and the exception tree are re-exported here.
"""

import typing

from ._version import __version__
from .core.codec import MAX_PAGE_SIZE, from_wire, to_wire
from .core.errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ClientClosed,
    ConfigurationError,
    ImageJobsError,
    InvalidArgument,
    JobFailed,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    ResponseTooLarge,
    ServerError,
    Throttled,
    TransportError,
    WaitCancelled,
    WaitTimeout,
)
from .core.models import (
    ExecuteInfo,
    ImageJob,
    ImageJobInfo,
    JobStatus,
    JobType,
    ResourceInfo,
    SubJob,
    SubJobStatus,
)
from .core.outcome import Outcome
from .core.regions import REGIONS
from .core.signing import sign_request, verify_signature
from .core.transitions import Transition
from .observability.counter import RequestCounter
from .observability.records import RequestRecord, RetryRecord, ThrottleRecord, WaitRecord
from .planning.budget import DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE
from .planning.history import DurationHistory, LogNormal
from .planning.policy import PollPolicy
from .planning.retry import RetryPolicy
from .timing.clock import Clock
from .transport.credentials import (
    AkSkCredentials,
    Credentials,
    RefreshableTokenCredentials,
    TokenCredentials,
)

if typing.TYPE_CHECKING:
    from .client import DEFAULT_REQUEST_TIMEOUT, Client

# The client pulls in aiohttp, which takes a while to import; the command
# line's --help and the pure modules should not pay for it.
_LAZY = ("Client", "DEFAULT_REQUEST_TIMEOUT")


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        from . import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module 'imagejobs' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RATE",
    "DEFAULT_REQUEST_TIMEOUT",
    "MAX_PAGE_SIZE",
    "REGIONS",
    "AkSkCredentials",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "ClientClosed",
    "Clock",
    "ConfigurationError",
    "Credentials",
    "DurationHistory",
    "ExecuteInfo",
    "ImageJob",
    "ImageJobInfo",
    "ImageJobsError",
    "InvalidArgument",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "JobType",
    "LogNormal",
    "MalformedResponse",
    "Outcome",
    "PermissionDenied",
    "PollPolicy",
    "RefreshableTokenCredentials",
    "RequestCounter",
    "RequestRecord",
    "ResourceInfo",
    "ResponseTooLarge",
    "RetryPolicy",
    "RetryRecord",
    "ServerError",
    "SubJob",
    "SubJobStatus",
    "ThrottleRecord",
    "Throttled",
    "TokenCredentials",
    "Transition",
    "TransportError",
    "WaitCancelled",
    "WaitRecord",
    "WaitTimeout",
    "__version__",
    "from_wire",
    "sign_request",
    "to_wire",
    "verify_signature",
]
