"""The exception tree: shape, messages, pickling."""

from __future__ import annotations

import pickle

import pytest

import imagejobs
import imagejobs.core.errors
from imagejobs import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ClientClosed,
    ImageJobsError,
    InvalidArgument,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    ServerError,
    Throttled,
    TransportError,
)

API_ERRORS = [
    BadRequest,
    AuthenticationError,
    PermissionDenied,
    JobNotFound,
    Throttled,
    ServerError,
]


def test_every_exported_exception_is_in_one_tree() -> None:
    exported = [
        obj
        for obj in vars(imagejobs).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]
    assert len(exported) >= 11
    assert all(issubclass(cls, ImageJobsError) for cls in exported)
    assert all(issubclass(cls, ApiError) for cls in API_ERRORS)
    assert not issubclass(TransportError, ApiError)
    assert not issubclass(MalformedResponse, ApiError)
    assert issubclass(InvalidArgument, ValueError)


def test_the_tree_in_the_docstring_names_every_error() -> None:
    tree = imagejobs.core.errors.__doc__ or ""
    assert "\n    ImageJobsError\n" in tree
    for name in set(imagejobs.core.errors.__all__) - {"ImageJobsError"}:
        assert f"── {name} " in tree, name


def test_client_closed_is_its_own_error_and_pickles() -> None:
    error = ClientClosed("the client is closed")
    assert type(error).__mro__[1] is ImageJobsError  # not transient, not a TransportError
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy)) == (ClientClosed, "the client is closed")


def test_message_without_request_id_or_code() -> None:
    assert str(ServerError(503, None, "empty response body")) == (
        "503 Service Unavailable: empty response body"
    )
    assert str(ApiError(599, None, "odd")) == "599: odd"
    assert str(JobNotFound(404, "WKS.1", "gone")) == "404 WKS.1: gone"
    assert str(JobNotFound(404, "WKS.1", "gone", job_id="7")) == "404 WKS.1: gone (job 7)"


def test_job_not_found_pickles_with_its_job() -> None:
    error = JobNotFound(404, "WKS.00081104", "The job does not exist.", "rid", job_id="7")
    error.attempts = 2
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.job_id, copy.request_id, copy.attempts) == (JobNotFound, "7", "rid", 2)
    assert (
        str(copy)
        == str(error)
        == ("404 WKS.00081104: The job does not exist. (job 7, request id rid) (after 2 attempts)")
    )


@pytest.mark.parametrize("cls", API_ERRORS)
def test_api_errors_pickle_with_their_attributes(cls: type[ApiError]) -> None:
    error = cls(429, "APIGW.0308", "slow down", "rid", 2.5)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert (copy.http_status, copy.error_code, copy.error_msg, copy.request_id) == (
        429,
        "APIGW.0308",
        "slow down",
        "rid",
    )
    assert copy.retry_after == 2.5
    assert str(copy) == str(error)


def test_malformed_response_message_and_pickling() -> None:
    error = MalformedResponse("required field missing", "$.sub_jobs[0].status", 200, "rid")
    assert str(error) == "required field missing @ $.sub_jobs[0].status (request id rid)"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.http_status, copy.request_id, str(copy)) == (
        error.path,
        200,
        "rid",
        str(error),
    )
