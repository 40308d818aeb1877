"""The fast paths against their judges: the generated readers against the cattrs
converter, orjson against json, the signing layout against the canonical request. Pure."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_codec import jobs

from imagejobs import (
    MalformedResponse,
    from_wire,
    to_wire,
)
from imagejobs.core import codec
from imagejobs.core.codec import converter, read_count, read_job, read_job_page
from imagejobs.core.models import ExecuteInfo, ImageJob, ImageJobInfo, ResourceInfo, SubJob
from imagejobs.core.signing import HeaderSetSigner, format_date, sign_request, verify_signature
from imagejobs.transport.credentials import _sdk_date_now

MODELS = (ImageJob, ImageJobInfo, SubJob, ResourceInfo, ExecuteInfo)

# Values that are right for one field and wrong for another, or nearly right.
TRICKY: list[Any] = [
    None,
    "",
    0,
    -1,
    7,
    2**70,
    True,
    False,
    1.5,
    [],
    {},
    [{}],
    [{"id": "s", "status": "RUNNING"}],
    {"resource_id": "r"},
    "x",
    "RUNNING",
    "SUCCESS",
    "ABNORMAL",
    "BUILD_IMAGE",
    "2024-05-20T10:39:49.61Z",
    "2024-05-20T10:39:49+08:00",
    "2024-05-20T10:39:49.1234567Z",
    "2024-05-20T10:39:49",
    "2024-05-20",
    "20240520T103949Z",
    "not a time",
]
tricky = st.sampled_from(TRICKY)
KEYS = [
    "id",
    "job_type",
    "begin_time",
    "end_time",
    "status",
    "sub_jobs_total",
    "sub_jobs",
    "job_resource_info",
    "job_execute_info",
    "project_id",
    "job_id",
    "resource_id",
    "resource_name",
    "error_code",
    "error_message",
    "unknown",
]


def objects_in(value: object) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, outermost first."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from objects_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from objects_in(item)


@st.composite
def mutated(draw: st.DrawFn, model: type) -> object:
    """A well-formed body of ``model``, then a few of its values dropped or replaced."""
    job = draw(jobs)
    data: object = json.loads(json.dumps(to_wire(job)))
    if model is SubJob:
        data = data["sub_jobs"][0] if job.sub_jobs else {"id": "s", "status": "RUNNING"}  # type: ignore[index]
    elif model in (ResourceInfo, ExecuteInfo):
        data = {"resource_id": "r", "error_code": "", "error_message": "e"}
    for _ in range(draw(st.integers(0, 4))):
        target = draw(st.sampled_from(list(objects_in(data)) or [{}]))
        key = draw(st.sampled_from([*target, *KEYS]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(draw(tricky))  # the samples are shared
    if draw(st.integers(0, 19)) == 0:
        data = copy.deepcopy(draw(tricky))  # not even an object
    return data


def outcome(read: Callable[[object], Any], data: object) -> Any:
    try:
        return read(data)
    except Exception as exc:  # noqa: BLE001  # what failed is compared, not raised
        return exc


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@given(data=st.data())
def test_the_fast_reader_agrees_with_the_converter(model: type, data: st.DataObject) -> None:
    body = data.draw(mutated(model))
    judge = outcome(lambda d: converter.structure(d, model), body)
    fast = outcome(codec._FAST[model], body)
    if not isinstance(fast, Exception):
        assert not isinstance(judge, Exception), (
            f"the fast path took what the converter refuses: {judge}"
        )
        assert type(fast) is model
        assert fast == judge
        # The same JSON back: the same aware UTC times, the same enum values.
        assert converter.unstructure(fast) == converter.unstructure(judge)
    if model is ImageJob:
        got = outcome(from_wire, body)
        if isinstance(judge, Exception):
            assert isinstance(got, MalformedResponse)
        else:
            assert got == judge


BASES: dict[type, dict[str, Any]] = {
    ImageJob: {"id": "j", "status": "RUNNING", "sub_jobs": [{"id": "s", "status": "RUNNING"}]},
    ImageJobInfo: {"id": "j", "status": "RUNNING"},
    SubJob: {"id": "s", "status": "RUNNING", "job_resource_info": {}, "job_execute_info": {}},
    ResourceInfo: {},
    ExecuteInfo: {},
}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_with_every_tricky_value_agrees(model: type) -> None:
    """Each field of each model, alone, given each tricky value (and left out)."""
    fields = [field.name for field in attrs.fields(model)]
    for name in fields:
        for value in [*TRICKY, "left out"]:
            body = copy.deepcopy(BASES[model])
            if value == "left out":
                body.pop(name, None)
            else:
                body[name] = copy.deepcopy(value)
            judge = outcome(lambda d: converter.structure(d, model), body)
            fast = outcome(codec._FAST[model], body)
            if not isinstance(fast, Exception):
                assert not isinstance(judge, Exception), (name, value)
                assert converter.unstructure(fast) == converter.unstructure(judge), (name, value)


@given(jobs)
def test_the_fast_reader_takes_every_well_formed_job(job: ImageJob) -> None:
    body = json.loads(json.dumps(to_wire(job)))
    assert codec._FAST[ImageJob](body) == job
    info = {k: v for k, v in body.items() if k != "sub_jobs"}
    assert codec._FAST[ImageJobInfo](info) == converter.structure(info, ImageJobInfo)


def test_a_running_jobs_empty_end_time_stays_on_the_fast_path() -> None:
    body = {"id": "j", "status": "RUNNING", "begin_time": "2024-05-20T10:39:49Z", "end_time": ""}
    job = codec._FAST[ImageJob](body)
    assert job.end_time is None
    assert job.begin_time == datetime(2024, 5, 20, 10, 39, 49, tzinfo=UTC)


def test_the_time_cache_stays_within_its_bound() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    for n in range(codec._TIMES_KEPT + 10):
        text = (start + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        job = codec._FAST[ImageJob]({"id": "j", "status": "RUNNING", "begin_time": text})
        assert job.begin_time == start + timedelta(seconds=n)
        assert len(codec._times) <= codec._TIMES_KEPT


def test_a_model_with_a_field_it_cannot_read_fast_is_refused_at_import() -> None:
    @attrs.frozen
    class Odd:
        when: float

    with pytest.raises(TypeError, match=r"Odd\.when"):
        codec._fast_reader(Odd)


# --- orjson (the speedups extra) against json ------------------------------------


@contextmanager
def json_only() -> Iterator[None]:
    saved = codec._orjson_loads
    codec._orjson_loads = None
    try:
        yield
    finally:
        codec._orjson_loads = saved


def test_the_suite_runs_with_orjson_installed() -> None:
    # The test extra installs it: the comparisons below compare two paths, not one.
    assert codec._orjson_loads is not None


LITERALS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"123456789012345678901234567890",
    b"1e400",
    b'"\\ud800"',
    b'"a\\udfffb"',
    b'"\\ud83d\\ude00"',
    b"7",
    b"null",
]


@given(
    job=jobs,
    extra=st.sampled_from(LITERALS),
    total=st.none() | st.sampled_from(LITERALS),
    job_id=st.none() | st.sampled_from([b'"\\ud800"', b'"\\u00e9"', b"18446744073709551616"]),
    bom=st.booleans(),
)
def test_orjson_and_json_give_the_same_answer(
    job: ImageJob, extra: bytes, total: bytes | None, job_id: bytes | None, bom: bool
) -> None:
    wire = to_wire(job)
    wire.pop("sub_jobs_total", None)
    wire.pop("id")
    body = b'{"extra":' + extra + b',"id":' + (job_id or json.dumps(job.id).encode())
    if total is not None:
        body += b',"sub_jobs_total":' + total
    body += b"," + json.dumps(wire).encode()[1:]
    if bom:
        body = b"\xef\xbb\xbf" + body

    def answer() -> object:
        try:
            return read_job()(body)
        except MalformedResponse as exc:
            return (str(exc), exc.path)

    fast = answer()
    with json_only():
        plain = answer()
    assert fast == plain


@pytest.mark.parametrize("big", [2**64, 2**64 + 1, -(2**63) - 1, 10**30])
def test_an_integer_past_64_bits_is_read_as_json_reads_it(big: int) -> None:
    body = json.dumps({"id": "j", "status": "RUNNING", "sub_jobs_total": big}).encode()
    assert read_job()(body).sub_jobs_total == big
    count = json.dumps({"count": big}).encode()
    page = json.dumps({"count": big, "items": []}).encode()
    if big >= 0:
        assert read_count(count) == big
        assert read_job_page(page).count == big
    else:
        with pytest.raises(MalformedResponse, match="a count of 0 or more"):
            read_count(count)


# --- signing: the layout against the canonical request ----------------------------

header_names = st.sampled_from(
    ["Content-Type", "User-Agent", "X-Project-Id", "X-Security-Token", "Host", "host", "X_Under"]
)


@given(
    path=st.sampled_from(["/v1/p/image-server-jobs/1", "/v1/p/a%20b/", "/", "/v1/x~y/%E2%82%AC"]),
    query=st.sampled_from(["", "b=2&a=1", "a=%20&a=", "x"]),
    headers=st.dictionaries(header_names, st.from_regex(r"[ -~]{0,12}", fullmatch=True)),
    date=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
    ),
)
def test_the_layout_signs_what_the_canonical_request_verifies(
    path: str, query: str, headers: dict[str, str], date: datetime
) -> None:
    url = "https://h.example.com:8443" + path + (f"?{query}" if query else "")
    key, ak = b"secret-0000", "AK0000"
    signed = sign_request("GET", url, headers, b"", ak=ak, sk="secret-0000", when=date)
    signer = HeaderSetSigner("GET", headers, ak=ak, key=key)
    sent = signer.headers(url, format_date(date))
    assert sent == signed.headers
    assert signer.headers(url, format_date(date)) == sent  # its layout, kept
    sent_path, _, sent_query = signed.url.removeprefix("https://h.example.com:8443").partition("?")
    problem = verify_signature(
        "GET", sent_path, sent_query, sent, b"", secret_for={ak: "secret-0000"}.get, now=date
    )
    assert problem is None


def test_the_date_is_formatted_once_a_second_and_is_now() -> None:
    before = format_date(datetime.now(UTC))
    date = _sdk_date_now()
    after = format_date(datetime.now(UTC))
    assert before <= date <= after
    first, second, third = _sdk_date_now(), _sdk_date_now(), _sdk_date_now()
    assert first is second or second is third  # one string a second: a tick parts one pair


# --- the client's per-job cache ------------------------------------------------------
