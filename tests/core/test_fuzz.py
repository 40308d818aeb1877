"""Fuzzing: whatever bytes, JSON, IDs or header values come in, only typed results come out."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import (
    AkSkCredentials,
    ApiError,
    Client,
    ImageJob,
    InvalidArgument,
    MalformedResponse,
    TokenCredentials,
    from_wire,
)
from imagejobs.core.codec import decode_error, decode_response

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
job_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(), json_values), "status": st.one_of(st.text(), json_values)},
    optional={
        "sub_jobs": st.one_of(
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {"id": json_values, "status": json_values},
                    optional={"job_execute_info": json_values, "begin_time": json_values},
                ),
                max_size=3,
            ),
        ),
        "begin_time": st.one_of(st.text(), json_values),
        "end_time": st.one_of(st.text(), json_values),
        "sub_jobs_total": json_values,
        "job_type": json_values,
    },
)


@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_job_or_a_malformed_response(body: bytes) -> None:
    try:
        job = decode_response(200, {}, body)
    except MalformedResponse as error:
        assert error.path.startswith("$")
    else:
        assert isinstance(job, ImageJob)


@given(st.one_of(json_values, job_like))
def test_any_json_decodes_to_a_job_or_names_where_it_is_wrong(data: Any) -> None:
    try:
        job = from_wire(data)
    except MalformedResponse as error:
        assert error.path.startswith("$")
    else:
        assert isinstance(job, ImageJob)
        assert isinstance(job.id, str)


@given(
    status=st.integers(min_value=400, max_value=599),
    body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
)
def test_any_error_body_gives_the_error_for_its_status(status: int, body: bytes) -> None:
    error = decode_error(status, body)
    assert isinstance(error, ApiError)
    assert error.http_status == status
    assert str(error).startswith(str(status))
    with pytest.raises(ApiError):
        decode_response(status, {"Retry-After": "garbage"}, body)


def _job_path(url: str) -> list[str]:
    return [unquote(part) for part in urlsplit(url).path.split("/")]


@given(project_id=st.text(max_size=40), job_id=st.text(max_size=140))
def test_any_id_is_refused_or_lands_on_the_intended_path(project_id: str, job_id: str) -> None:
    try:
        client = Client(project_id=project_id, endpoint="https://wks.example.com")
        url = client.job_url(job_id)
    except InvalidArgument:
        return
    assert urlsplit(url).netloc == "wks.example.com"
    assert not urlsplit(url).query
    assert not urlsplit(url).fragment
    assert _job_path(url) == ["", "v1", project_id, "image-server-jobs", job_id]


@given(st.text(max_size=60))
def test_any_token_is_refused_or_safe_to_send(token: str) -> None:
    for make in (TokenCredentials, lambda v: AkSkCredentials("AK", "SK", v)):
        try:
            make(token)
        except InvalidArgument as error:
            assert token not in str(error) or not token.strip()
        else:
            assert token.strip()
            assert not any(ord(c) < 32 or ord(c) == 127 for c in token)
