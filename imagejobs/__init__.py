"""Wait for Huawei Cloud Workspace image jobs, asynchronously.

The public API: :class:`Client` fetches a job as an :class:`ImageJob`; the
models, enums, codec functions and the exception tree are re-exported here.
"""

from ._version import __version__
from .auth import Credentials, TokenCredentials
from .client import DEFAULT_TIMEOUT, Client
from .codec import from_wire, to_wire
from .errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ImageJobsError,
    InvalidArgument,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    ServerError,
    Throttled,
    TransportError,
)
from .models import (
    ExecuteInfo,
    ImageJob,
    JobStatus,
    JobType,
    ResourceInfo,
    SubJob,
    SubJobStatus,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "Credentials",
    "ExecuteInfo",
    "ImageJob",
    "ImageJobsError",
    "InvalidArgument",
    "JobNotFound",
    "JobStatus",
    "JobType",
    "MalformedResponse",
    "PermissionDenied",
    "ResourceInfo",
    "ServerError",
    "SubJob",
    "SubJobStatus",
    "Throttled",
    "TokenCredentials",
    "TransportError",
    "__version__",
    "from_wire",
    "to_wire",
]
