"""The codec: wire JSON to models and back, error bodies, Retry-After. Pure."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import (
    ApiError,
    AuthenticationError,
    BadRequest,
    ExecuteInfo,
    ImageJob,
    ImageJobInfo,
    JobNotFound,
    JobStatus,
    JobType,
    MalformedResponse,
    PermissionDenied,
    ResourceInfo,
    ServerError,
    SubJob,
    SubJobStatus,
    Throttled,
    from_wire,
    to_wire,
)
from imagejobs.core.codec import (
    Page,
    decode_answer,
    decode_error,
    decode_response,
    format_time,
    parse_retry_after,
    parse_time,
    read_count,
    read_job_page,
    read_sub_job_page,
)

MINIMAL = {"id": "702364883651395584", "status": "RUNNING"}


def test_reference_example_parses(reference_wire: dict[str, Any]) -> None:
    job = from_wire(reference_wire)
    assert job.id == "702364883651395584"
    assert job.job_type is JobType.CREATE_SERVER_IMAGE
    assert job.begin_time == datetime(2024, 5, 20, 10, 39, 49, 610000, tzinfo=UTC)
    assert job.end_time == datetime(2024, 5, 20, 11, 3, 24, 206000, tzinfo=UTC)
    assert job.status is JobStatus.SUCCESS
    assert job.sub_jobs_total == 1
    (sub,) = job.sub_jobs
    assert sub == SubJob(
        id="702364884037271552",
        job_type=JobType.CREATE_SERVER_IMAGE,
        job_resource_info=ResourceInfo(
            resource_id="f5d443de-a623-4950-a74d-569fe63c1f7a", resource_name="123"
        ),
        begin_time=datetime(2024, 5, 20, 10, 39, 50, 723000, tzinfo=UTC),
        end_time=datetime(2024, 5, 20, 11, 3, 24, 194000, tzinfo=UTC),
        status=SubJobStatus.SUCCESS,
        job_execute_info=ExecuteInfo(error_code="", error_message=""),
        project_id="a4da8115c9d8464ead3a38309130523f",
        job_id="702364883651395584",
    )


def test_reference_example_round_trips_exactly(reference_wire: dict[str, Any]) -> None:
    assert to_wire(from_wire(reference_wire)) == reference_wire


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-20T10:39:49.61Z", datetime(2024, 5, 20, 10, 39, 49, 610000, tzinfo=UTC)),
        ("2024-05-20T10:39:49.6Z", datetime(2024, 5, 20, 10, 39, 49, 600000, tzinfo=UTC)),
        ("2024-05-20T10:39:49Z", datetime(2024, 5, 20, 10, 39, 49, tzinfo=UTC)),
        ("2024-05-20T10:39:49.123456789Z", datetime(2024, 5, 20, 10, 39, 49, 123456, tzinfo=UTC)),
        ("2024-05-20T18:39:49.5+08:00", datetime(2024, 5, 20, 10, 39, 49, 500000, tzinfo=UTC)),
        ("2024-05-20T10:39:49", datetime(2024, 5, 20, 10, 39, 49, tzinfo=UTC)),
    ],
)
def test_times_become_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_format_time_matches_the_service() -> None:
    assert format_time(datetime(2024, 5, 20, 10, 39, 49, 610000, tzinfo=UTC)) == (
        "2024-05-20T10:39:49.61Z"
    )
    assert format_time(datetime(2024, 5, 20, 10, 39, 49, tzinfo=UTC)) == "2024-05-20T10:39:49Z"
    east = timezone(timedelta(hours=8))
    assert format_time(datetime(2024, 5, 20, 18, 0, tzinfo=east)) == "2024-05-20T10:00:00Z"


@pytest.mark.parametrize("end_time", ["absent", None, ""])
def test_running_job_end_time_absent_null_or_empty_is_none(end_time: str | None) -> None:
    wire: dict[str, Any] = dict(MINIMAL)
    sub: dict[str, Any] = {"id": "s", "status": "RUNNING"}
    if end_time != "absent":
        wire["end_time"] = sub["end_time"] = end_time
    wire["sub_jobs"] = [sub]
    job = from_wire(wire)
    assert job.end_time is None
    assert job.sub_jobs[0].end_time is None


def test_extra_fields_are_ignored() -> None:
    job = from_wire(
        {**MINIMAL, "new_field": {"x": 1}, "sub_jobs": [{"id": "s", "status": "X", "y": 2}]}
    )
    assert job == ImageJob(
        id=MINIMAL["id"],
        status=JobStatus.RUNNING,
        sub_jobs=(SubJob(id="s", status=SubJobStatus("X")),),
    )


def test_optional_fields_default_when_absent_or_null() -> None:
    job = from_wire({**MINIMAL, "job_type": None, "sub_jobs_total": None, "sub_jobs": None})
    assert job == ImageJob(id=MINIMAL["id"], status=JobStatus.RUNNING)


def test_unknown_enum_values_are_kept() -> None:
    job = from_wire(
        {
            "id": "1",
            "status": "PAUSED",
            "job_type": "RESIZE_IMAGE",
            "sub_jobs": [{"id": "s", "status": "FROZEN"}],
        }
    )
    assert job.status.value == "PAUSED"
    assert not job.is_terminal
    assert job.job_type is not None
    assert job.job_type.value == "RESIZE_IMAGE"
    assert job.sub_jobs[0].status.value == "FROZEN"
    assert to_wire(job)["sub_jobs"][0]["status"] == "FROZEN"


@pytest.mark.parametrize(
    ("wire", "path", "message"),
    [
        ({"status": "RUNNING"}, "$.id", "required field missing"),
        ({"id": "1"}, "$.status", "required field missing"),
        ({"id": 1, "status": "RUNNING"}, "$.id", "expected a string, got 1 (number)"),
        ({"id": "1", "status": None}, "$.status", "expected a string, got null"),
        ({"id": "1", "status": ["RUNNING"]}, "$.status", "expected a string, got array"),
        ({**MINIMAL, "sub_jobs": [{"id": "s"}]}, "$.sub_jobs[0].status", "required field missing"),
        (
            {**MINIMAL, "sub_jobs": [{"id": "s", "status": "OK"}, {"id": "t", "status": 3}]},
            "$.sub_jobs[1].status",
            "expected a string",
        ),
        ({**MINIMAL, "sub_jobs": "abc"}, "$.sub_jobs", "expected an array"),
        ({**MINIMAL, "sub_jobs": {}}, "$.sub_jobs", "expected an array"),
        ({**MINIMAL, "sub_jobs_total": "1"}, "$.sub_jobs_total", "expected an integer"),
        ({**MINIMAL, "sub_jobs_total": True}, "$.sub_jobs_total", "expected an integer"),
        ({**MINIMAL, "begin_time": "yesterday"}, "$.begin_time", "expected an ISO 8601 time"),
        ({**MINIMAL, "end_time": 1716201589}, "$.end_time", "expected an ISO 8601 time"),
        (
            {**MINIMAL, "sub_jobs": [{"id": "s", "status": "OK", "job_resource_info": "x"}]},
            "$.sub_jobs[0].job_resource_info",
            "expected an object",
        ),
        (
            {
                **MINIMAL,
                "sub_jobs": [{"id": "s", "status": "OK", "job_execute_info": {"error_code": 7}}],
            },
            "$.sub_jobs[0].job_execute_info.error_code",
            "expected a string",
        ),
    ],
)
def test_bad_fields_name_their_json_path(wire: object, path: str, message: str) -> None:
    with pytest.raises(MalformedResponse) as info:
        from_wire(wire)
    assert info.value.path == path
    assert message in str(info.value)
    assert f"@ {path}" in str(info.value)


def test_several_problems_are_counted() -> None:
    with pytest.raises(MalformedResponse, match=r"and 1 more"):
        from_wire({"id": 1})


@pytest.mark.parametrize("data", [[], "job", 42, None, True])
def test_a_body_that_is_not_an_object_is_malformed(data: object) -> None:
    with pytest.raises(MalformedResponse, match="expected a JSON object") as info:
        from_wire(data)
    assert info.value.path == "$"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"  \n", "empty body"),
        (b'{"id": ', "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_decode_response_rejects_bodies_that_are_not_json(body: bytes, message: str) -> None:
    with pytest.raises(MalformedResponse, match=message) as info:
        decode_response(200, {"X-Request-Id": "r1"}, body)
    assert info.value.request_id == "r1"
    assert info.value.http_status == 200
    assert "(request id r1)" in str(info.value)


def test_decode_response_returns_a_job() -> None:
    job = decode_response(200, {}, json.dumps(MINIMAL).encode())
    assert job.status is JobStatus.RUNNING


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, JobNotFound),
        (405, BadRequest),
        (429, Throttled),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, ApiError),
    ],
)
def test_error_status_maps_to_its_class(status: int, cls: type[ApiError]) -> None:
    body = json.dumps({"error_code": "WKS.0001", "error_msg": "went wrong"}).encode()
    with pytest.raises(cls) as info:
        decode_response(status, {"x-request-id": "abc"}, body)
    error = info.value
    assert type(error) is cls
    assert (error.http_status, error.error_code, error.error_msg, error.request_id) == (
        status,
        "WKS.0001",
        "went wrong",
        "abc",
    )


def test_api_error_reads_well() -> None:
    error = decode_error(
        404,
        b'{"error_code": "WKS.00081104", "error_msg": "The job does not exist."}',
        "5f1c0a",
    )
    assert str(error) == "404 WKS.00081104: The job does not exist. (request id 5f1c0a)"


def test_request_id_from_the_body_when_the_header_is_missing() -> None:
    body = b'{"error_code": "APIGW.0301", "error_msg": "bad", "request_id": "from-body"}'
    assert decode_error(401, body).request_id == "from-body"
    assert decode_error(401, body, "from-header").request_id == "from-header"


@pytest.mark.parametrize(
    ("status", "body", "cls", "text"),
    [
        (
            502,
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            ServerError,
            "<h1>502 Bad Gateway",
        ),
        (503, b"", ServerError, "empty response body"),
        (401, b"Unauthorized", AuthenticationError, "Unauthorized"),
        (404, b'{"message": "other shape"}', JobNotFound, "other shape"),
        (403, b'{"error_code": 1, "error_msg": "x"}', PermissionDenied, "error_code"),
    ],
)
def test_error_body_of_another_shape_still_maps_by_status(
    status: int, body: bytes, cls: type[ApiError], text: str
) -> None:
    error = decode_error(status, body, "rid")
    assert type(error) is cls
    assert error.error_code is None
    assert text in error.error_msg
    assert str(error).startswith(f"{status} ")


def test_long_error_pages_are_trimmed() -> None:
    error = decode_error(502, b"<p>" + b"x" * 10_000 + b"</p>")
    assert len(error.error_msg) <= 200
    assert error.error_msg.endswith("...")


NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", None),  # not delta-seconds: ignored
        ("Thu, 26 Nov 2026 12:00:30 GMT", 30.0),
        ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_throttled_carries_retry_after() -> None:
    body = b'{"error_code": "APIGW.0308", "error_msg": "throttled"}'
    with pytest.raises(Throttled) as info:
        decode_response(429, {"Retry-After": "7"}, body, now=NOW)
    assert info.value.retry_after == 7.0


# --- Properties --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
JOB_KEYS = ["id", "job_type", "begin_time", "end_time", "status", "sub_jobs_total", "sub_jobs"]
SUB_KEYS = [*JOB_KEYS[:5], "job_resource_info", "job_execute_info", "project_id", "job_id"]
sub_job_like = st.dictionaries(st.sampled_from(SUB_KEYS), json_values | st.text())
job_like = st.dictionaries(
    st.sampled_from(JOB_KEYS), json_values | st.text() | st.lists(sub_job_like, max_size=3)
)


@given(json_values | job_like)
def test_any_json_gives_a_job_or_malformed_response(data: object) -> None:
    try:
        job = from_wire(data)
    except MalformedResponse as exc:
        assert exc.path.startswith("$")
    else:
        assert isinstance(job, ImageJob)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_job_or_a_typed_error(body: bytes) -> None:
    try:
        job = decode_response(200, {}, body)
    except MalformedResponse as exc:
        assert exc.http_status == 200
    else:
        assert isinstance(job, ImageJob)


utc_times = st.datetimes(timezones=st.just(UTC))
open_text = st.text(min_size=1, max_size=20)
strings = st.text(max_size=30)
sub_jobs = st.builds(
    SubJob,
    id=strings,
    job_type=st.none() | st.sampled_from(JobType) | open_text.map(JobType),
    job_resource_info=st.none() | st.builds(ResourceInfo, resource_id=st.none() | strings),
    begin_time=st.none() | utc_times,
    end_time=st.none() | utc_times,
    status=st.sampled_from(SubJobStatus) | open_text.map(SubJobStatus),
    job_execute_info=st.none() | st.builds(ExecuteInfo, error_code=strings, error_message=strings),
    project_id=st.none() | strings,
    job_id=st.none() | strings,
)
jobs = st.builds(
    ImageJob,
    id=strings,
    job_type=st.none() | st.sampled_from(JobType),
    begin_time=st.none() | utc_times,
    end_time=st.none() | utc_times,
    status=st.sampled_from(JobStatus) | open_text.map(JobStatus),
    sub_jobs_total=st.none() | st.integers(min_value=0),
    sub_jobs=st.lists(sub_jobs, max_size=4).map(tuple),
)


@given(jobs)
def test_valid_jobs_round_trip_through_json(job: ImageJob) -> None:
    wire = json.loads(json.dumps(to_wire(job)))
    assert from_wire(wire) == job


# --- List pages and the count -------------------------------------------------

PageReader = Callable[[bytes], Page[Any]]
PAGE_READERS = [
    pytest.param(read_job_page, id="jobs"),
    pytest.param(read_sub_job_page, id="sub-jobs"),
]
INFO_WIRE = {
    "id": "702364883651395584",
    "job_type": "CREATE_SERVER_IMAGE",
    "begin_time": "2024-05-20T10:39:49.61Z",
    "end_time": "2024-05-20T18:03:24.206+08:00",
    "status": "SUCCESS",
    "sub_jobs_total": 2,
}
SUB_WIRE = {
    "id": "702364884037271552",
    "job_type": "CREATE_SERVER_IMAGE",
    "status": "ABNORMAL",
    "job_execute_info": {"error_code": "WKS.9", "error_message": "boom"},
    "project_id": "a4da8115c9d8464ead3a38309130523f",
    "job_id": "702364883651395584",
}


def answer(read: Callable[[bytes], Any], data: object, status: int = 200) -> Any:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return decode_answer(status, {"X-Request-Id": "req-1"}, body, read)


def test_a_good_job_page() -> None:
    odd = {"id": "2", "status": "PAUSED", "job_type": "MAKE_COFFEE", "extra": [1]}
    page = answer(read_job_page, {"count": 57, "items": [INFO_WIRE, odd]})
    assert isinstance(page, Page)
    assert page.count == 57
    first, second = page.items
    assert first == ImageJobInfo(
        id="702364883651395584",
        job_type=JobType.CREATE_SERVER_IMAGE,
        begin_time=datetime(2024, 5, 20, 10, 39, 49, 610000, tzinfo=UTC),
        end_time=datetime(2024, 5, 20, 10, 3, 24, 206000, tzinfo=UTC),
        status=JobStatus.SUCCESS,
        sub_jobs_total=2,
    )
    assert second.status.value == "PAUSED"
    assert not second.status.is_known
    assert second.job_type is not None
    assert second.job_type.value == "MAKE_COFFEE"
    assert to_wire(first) == {**INFO_WIRE, "end_time": "2024-05-20T10:03:24.206Z"}


def test_a_good_sub_job_page() -> None:
    page = answer(read_sub_job_page, {"count": 1, "items": [SUB_WIRE]})
    (item,) = page.items
    assert type(item) is SubJob
    assert item.status is SubJobStatus.ABNORMAL
    assert item.status.is_failure
    assert item.job_id == "702364883651395584"
    assert item.job_execute_info == ExecuteInfo(error_code="WKS.9", error_message="boom")


@pytest.mark.parametrize("read", PAGE_READERS)
@pytest.mark.parametrize("items", [None, [], "absent"])
def test_no_items_is_an_empty_page(read: PageReader, items: object) -> None:
    data: dict[str, object] = {"count": 0}
    if items != "absent":
        data["items"] = items
    assert answer(read, data) == Page(0, ())


@pytest.mark.parametrize("read", [*PAGE_READERS, pytest.param(read_count, id="count")])
@pytest.mark.parametrize(
    ("count", "shown"),
    [
        ("absent", "null"),
        (None, "null"),
        (-1, "-1"),
        (True, "True"),
        (False, "False"),
        ("3", '"3"'),
        (2.0, "2.0"),
        ([3], "array"),
    ],
)
def test_a_bad_count_is_malformed_at_count(
    read: Callable[[bytes], Any], count: object, shown: str
) -> None:
    data: dict[str, object] = {"items": []}
    if count != "absent":
        data["count"] = count
    with pytest.raises(MalformedResponse, match="expected a count of 0 or more") as info:
        answer(read, data)
    assert info.value.path == "$.count"
    assert shown in info.value.detail
    assert (info.value.http_status, info.value.request_id) == (200, "req-1")


def test_a_good_count() -> None:
    assert answer(read_count, {"count": 0}) == 0
    assert answer(read_count, {"count": 12345}) == 12345


@pytest.mark.parametrize("read", PAGE_READERS)
@pytest.mark.parametrize("items", [{}, "items", 3, True, {"0": INFO_WIRE}])
def test_items_that_are_not_an_array_are_malformed(read: PageReader, items: object) -> None:
    with pytest.raises(MalformedResponse, match="expected an array") as info:
        answer(read, {"count": 1, "items": items})
    assert info.value.path == "$.items"


@pytest.mark.parametrize(
    ("read", "good", "bad", "path", "message"),
    [
        (read_job_page, INFO_WIRE, {**INFO_WIRE, "status": 3}, "$.items[1].status", "string"),
        (read_job_page, INFO_WIRE, {**INFO_WIRE, "status": None}, "$.items[1].status", ""),
        (read_job_page, INFO_WIRE, {"status": "RUNNING"}, "$.items[1].id", ""),
        (
            read_job_page,
            INFO_WIRE,
            {**INFO_WIRE, "begin_time": "yesterday"},
            "$.items[1].begin_time",
            "ISO 8601",
        ),
        (
            read_job_page,
            INFO_WIRE,
            {**INFO_WIRE, "sub_jobs_total": "2"},
            "$.items[1].sub_jobs_total",
            "integer",
        ),
        (read_job_page, INFO_WIRE, "702364883651395584", "$.items[1]", "JSON object"),
        (read_job_page, INFO_WIRE, None, "$.items[1]", "JSON object"),
        (read_sub_job_page, SUB_WIRE, {**SUB_WIRE, "status": 7}, "$.items[1].status", "string"),
        (
            read_sub_job_page,
            SUB_WIRE,
            {**SUB_WIRE, "job_execute_info": {"error_code": 9}},
            "$.items[1].job_execute_info.error_code",
            "string",
        ),
        (read_sub_job_page, SUB_WIRE, [SUB_WIRE], "$.items[1]", "JSON object"),
    ],
)
def test_a_bad_item_is_named_by_its_path(
    read: PageReader, good: object, bad: object, path: str, message: str
) -> None:
    with pytest.raises(MalformedResponse) as info:
        answer(read, {"count": 2, "items": [good, bad]})
    assert info.value.path == path
    assert message in info.value.detail
    assert f"@ {path}" in str(info.value)
    assert info.value.http_status == 200


@pytest.mark.parametrize(
    ("read", "what"),
    [
        (read_job_page, "a job list"),
        (read_sub_job_page, "a sub-job list"),
        (read_count, "a count"),
    ],
)
def test_a_200_whose_body_is_an_error_is_malformed_and_says_so(
    read: Callable[[bytes], Any], what: str
) -> None:
    body = {"error_code": "WKS.00211102", "error_msg": "Invalid parameter: limit"}
    with pytest.raises(MalformedResponse) as info:
        answer(read, body)
    error = info.value
    assert f"a 200 whose body is an error, not {what}" in str(error)
    assert "WKS.00211102: Invalid parameter: limit" in str(error)
    assert (error.http_status, error.request_id, error.path) == (200, "req-1", "$")


@pytest.mark.parametrize("read", [*PAGE_READERS, pytest.param(read_count, id="count")])
@pytest.mark.parametrize(
    ("body", "message", "path"),
    [
        (b"", "empty body", "$"),
        (b'{"count": ', "not JSON", "$"),
        (b"[]", "expected", "$"),
        (b"null", "expected", "$"),
    ],
)
def test_a_page_or_count_that_is_not_an_object_is_malformed(
    read: Callable[[bytes], Any], body: bytes, message: str, path: str
) -> None:
    with pytest.raises(MalformedResponse, match=message) as info:
        answer(read, body)
    assert info.value.http_status == 200
    assert info.value.path.startswith(path)


@pytest.mark.parametrize("read", [*PAGE_READERS, pytest.param(read_count, id="count")])
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, JobNotFound),
        (429, Throttled),
        (500, ServerError),
        (503, ServerError),
        (418, ApiError),
    ],
)
def test_an_error_status_on_a_list_is_its_api_error(
    read: Callable[[bytes], Any], status: int, cls: type[ApiError]
) -> None:
    body = {"error_code": "WKS.00211102", "error_msg": "Invalid parameter: job_type is required"}
    with pytest.raises(cls) as info:
        answer(read, body, status)
    error = info.value
    assert type(error) is cls
    assert (error.http_status, error.error_code, error.request_id) == (
        status,
        "WKS.00211102",
        "req-1",
    )
    assert error.error_msg == "Invalid parameter: job_type is required"


@given(json_values | st.fixed_dictionaries({"count": json_values, "items": json_values}))
def test_any_json_gives_a_page_or_malformed_response(data: object) -> None:
    for read in (read_job_page, read_sub_job_page):
        try:
            page = answer(read, data)
        except MalformedResponse as exc:
            assert exc.path.startswith("$")
            assert exc.http_status == 200
        else:
            assert isinstance(page, Page)
            assert isinstance(page.count, int)
            assert page.count >= 0
