"""Wait for Huawei Cloud Workspace image jobs, asynchronously.

The public API: :class:`Client` fetches a job as an :class:`ImageJob`; the
models, enums, codec functions and the exception tree are re-exported here.
"""

from ._version import __version__
from .auth import Credentials, TokenCredentials
from .client import DEFAULT_REQUEST_TIMEOUT, Client
from .codec import from_wire, to_wire
from .errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ImageJobsError,
    InvalidArgument,
    JobFailed,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    ServerError,
    Throttled,
    TransportError,
    WaitTimeout,
)
from .events import Transition
from .models import (
    ExecuteInfo,
    ImageJob,
    JobStatus,
    JobType,
    ResourceInfo,
    SubJob,
    SubJobStatus,
)
from .waiter import Clock, Outcome, PollPolicy

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "Clock",
    "Credentials",
    "ExecuteInfo",
    "ImageJob",
    "ImageJobsError",
    "InvalidArgument",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "JobType",
    "MalformedResponse",
    "Outcome",
    "PermissionDenied",
    "PollPolicy",
    "ResourceInfo",
    "ServerError",
    "SubJob",
    "SubJobStatus",
    "Throttled",
    "TokenCredentials",
    "Transition",
    "TransportError",
    "WaitTimeout",
    "__version__",
    "from_wire",
    "to_wire",
]
