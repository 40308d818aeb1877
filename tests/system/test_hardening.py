"""What a hostile or broken gateway, or a careless caller, can send us: each ends in the tree."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagejobs import (
    AuthenticationError,
    Client,
    ImageJobsError,
    InvalidArgument,
    MalformedResponse,
    PollPolicy,
    ResponseTooLarge,
    RetryPolicy,
    TransportError,
)
from imagejobs.core.codec import decode_response, parse_http_date, parse_retry_after
from imagejobs.testing import FakeClock, FakeWorkspace, Reply

JOB = "702364883651395584"
RUNNING = {"id": JOB, "status": "RUNNING", "sub_jobs": []}
DONE = {"id": JOB, "status": "SUCCESS", "sub_jobs": []}

DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Xyz"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@st.composite
def http_dates(draw: st.DrawFn) -> str:
    """Strings shaped like HTTP dates, with any year, any zone and junk mixed in."""
    day = draw(st.sampled_from(DAYS))
    month = draw(st.sampled_from([*MONTHS, "Foo"]))
    year = draw(st.integers(min_value=-10, max_value=10**12))
    zone = draw(
        st.one_of(
            st.sampled_from(["GMT", "UTC", "-0000", "+0000", "EST", "+2359", "-2359", "Z"]),
            st.from_regex(r"[+-]\d{4}", fullmatch=True),
            st.text(max_size=5),
        )
    )
    clock = draw(st.from_regex(r"\d{1,2}:\d{1,2}:\d{1,2}", fullmatch=True))
    return f"{day}, {draw(st.integers(0, 99))} {month} {year} {clock} {zone}"


@given(st.one_of(http_dates(), st.text()))
def test_any_http_date_is_read_or_refused_never_raised(text: str) -> None:
    when = parse_http_date(text)
    assert when is None or when.utcoffset() == timedelta(0)
    delay = parse_retry_after(text, datetime.now(UTC))
    assert delay is None or 0 <= delay < float("inf")


def test_a_date_in_minus_0000_is_utc() -> None:
    stamp = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parse_http_date(format_datetime(stamp, usegmt=True)) == stamp
    assert parse_http_date("Fri, 27 Nov 2026 10:00:00 -0000") == stamp


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with this machine's zone 8 hours from UTC, where a naive date goes wrong."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
@pytest.mark.parametrize("zone", ["GMT", "-0000"])
async def test_the_clock_hint_reads_a_server_date_in_any_utc_spelling(
    keys: dict[str, Any], zone: str
) -> None:
    later = datetime.now(UTC) + timedelta(minutes=20)
    date = later.strftime("%a, %d %b %Y %H:%M:%S ") + zone
    expired = Reply.error(401, "APIGW.0301", "Incorrect IAM authentication information: expired")
    async with FakeWorkspace(**keys) as fake:
        fake.add_job([Reply(status=401, body=expired.body, headers={"Date": date})], job_id=JOB)
        async with fake.client() as client:
            with pytest.raises(AuthenticationError) as info:
                await client.get_job(JOB)
    message = str(info.value)
    skew = int(message.rsplit(", which is ", 1)[1].split("s ", 1)[0])
    assert 1190 <= skew <= 1210, message  # 20 minutes, whatever this machine's zone
    assert "behind the server's" in message


async def test_an_absurd_retry_after_date_ends_nothing_but_that_poll(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    absurd = Reply(
        status=429,
        body=b'{"error_code": "APIGW.0308", "error_msg": "slow down"}',
        headers={"Retry-After": "Sun, 06 Nov 99999 08:49:37 GMT"},
    )
    server.add_job([RUNNING, absurd, DONE], job_id=JOB)
    server.add_job([{**DONE, "id": "2"}], job_id="2")
    async with server.client(clock=clock) as client:
        outcomes = {o.job_id: o async for o in client.wait_many([JOB, "2"])}
    assert outcomes[JOB].ok
    assert outcomes["2"].ok


@pytest.mark.parametrize(
    "job_id", ["\ud800", "abc\udcff", "\udfff" + JOB], ids=["lone", "escaped", "leading"]
)
async def test_an_id_that_is_not_unicode_text_is_refused_before_any_request(
    server: FakeWorkspace, job_id: str
) -> None:
    async with server.client() as client:
        with pytest.raises(InvalidArgument, match="not valid Unicode text"):
            await client.get_job(job_id)
        with pytest.raises(InvalidArgument, match="not valid Unicode text"):
            await client.wait(job_id)
        with pytest.raises(InvalidArgument, match="not valid Unicode text"):
            client.wait_many(["1", job_id])
    with pytest.raises(InvalidArgument, match="project_id"):
        Client(project_id="p\ud800", endpoint=server.url)
    assert server.requests == []


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://[::1",
        "https://[::1]x",
        "https://host:99999",
        "https://host:port",
        "https://h\ud800st",
        "https://a..b",
        "https://host\x00.com",
        "https://\u2028host",
        "ftp://x",
    ],
)
def test_an_endpoint_that_is_not_a_url_is_an_invalid_argument(endpoint: str) -> None:
    with pytest.raises(InvalidArgument, match="is not an http"):
        Client(project_id="p", endpoint=endpoint)


async def test_an_answer_about_another_job_is_refused(server: FakeWorkspace) -> None:
    server.add_job([{**DONE, "id": "2"}], job_id="1")
    async with server.client(retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(MalformedResponse) as info:
            await client.get_job("1")
    assert info.value.path == "$.id"
    assert "the answer is job '2', not the job asked for ('1')" in str(info.value)


async def test_a_wait_never_takes_another_jobs_success_for_its_own(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([{**RUNNING, "id": "1"}, {**DONE, "id": "2"}], job_id="1")
    async with server.client(clock=clock) as client:
        with pytest.raises(MalformedResponse, match="not the job asked for"):
            await client.wait("1", PollPolicy(timeout=60))


def test_a_200_carrying_an_error_names_its_code() -> None:
    body = b'{"error_code": "WKS.00081104", "error_msg": "The job does not exist."}'
    with pytest.raises(MalformedResponse) as info:
        decode_response(200, {"X-Request-Id": "r9"}, body, job_id=JOB)
    message = str(info.value)
    assert "a 200 whose body is an error, not a job: WKS.00081104" in message
    assert "The job does not exist." in message
    assert info.value.request_id == "r9"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_the_size_cap_holds_on_decoded_bytes(keys: dict[str, Any], encoding: str) -> None:
    inflated = 64 * 2**20
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    bomb = Reply(
        body=compress(b" " * inflated),
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    async with FakeWorkspace(**keys) as fake:
        fake.add_job([bomb], job_id=JOB)
        options = {"max_body_size": 2**20, "retry": RetryPolicy(max_attempts=1)}
        async with fake.client(**options) as client:
            tracemalloc.start()
            try:
                with pytest.raises(ResponseTooLarge, match="decoded response is over the"):
                    await client.get_job(JOB)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert len(bomb.body) < 2**20, "small on the wire, under the cap by its Content-Length"
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB held for a 1 MB cap"


async def test_a_compressed_job_under_the_cap_is_read(keys: dict[str, Any]) -> None:
    body = gzip.compress(json.dumps(DONE).encode())
    reply = Reply(
        body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    async with FakeWorkspace(**keys) as fake:
        fake.add_job([reply], job_id=JOB)
        async with fake.client() as client:
            assert (await client.get_job(JOB)).status.value == "SUCCESS"


async def test_max_time_bounds_the_whole_call_not_just_the_start_of_each_try(
    keys: dict[str, Any],
) -> None:
    silent = Reply(body=b"{}", delay=30)
    async with FakeWorkspace(**keys) as fake:
        fake.add_job([silent], job_id=JOB)
        retry = RetryPolicy(max_time=0.3, max_attempts=5)
        async with fake.client(timeout=30, retry=retry) as client:
            with pytest.raises(TransportError, match=r"timed out after 0\.\d+s"):
                await client.get_job(JOB)
    assert len(fake.requests) == 1, "the one try took all the time there was"


@pytest.mark.parametrize(
    "retry_after", ["86400", "99999999999999999999", "Sun, 06 Nov 2994 08:49:37 GMT"]
)
async def test_a_huge_retry_after_is_capped_at_the_policys_longest_gap(
    server: FakeWorkspace, clock: FakeClock, retry_after: str
) -> None:
    throttled = Reply(
        status=429,
        body=b'{"error_code": "APIGW.0308", "error_msg": "come back tomorrow"}',
        headers={"Retry-After": retry_after},
    )
    server.add_job([RUNNING, throttled, DONE], job_id=JOB)
    policy = PollPolicy(initial_delay=2, max_delay=30, jitter=0)
    async with server.client(clock=clock) as client:
        job = await client.wait(JOB, policy)
    assert job.status.value == "SUCCESS"
    assert [r.at for r in server.requests] == [0, 2, 32]


def _encode(payload: bytes, encoding: str, corrupt: bool) -> bytes:
    if encoding == "gzip":
        body = gzip.compress(payload)
    elif encoding == "deflate":
        body = zlib.compress(payload)
    else:
        body = payload
    if corrupt and body:
        body = body[: len(body) // 2] + bytes(reversed(body[len(body) // 2 :]))
    return body


async def _fetch_raw(body: bytes, encoding: str) -> object:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    async with FakeWorkspace() as fake:
        fake.add_job([Reply(body=body, headers=headers)], job_id=JOB)
        options = {"max_body_size": 4096, "retry": RetryPolicy(max_attempts=1)}
        async with fake.client(**options) as client:
            try:
                return await client.get_job(JOB)
            except ImageJobsError as error:
                return error


@settings(max_examples=40)
@given(
    payload=st.one_of(
        st.binary(max_size=2048),
        st.just(json.dumps(DONE).encode()),
        st.integers(1, 20).map(lambda n: b" " * (n * 1024)),
    ),
    encoding=st.sampled_from(["gzip", "deflate", "identity", "br", "x-unknown"]),
    corrupt=st.booleans(),
)
def test_any_encoded_body_is_a_job_or_an_error_of_the_tree(
    payload: bytes, encoding: str, corrupt: bool
) -> None:
    result = asyncio.run(_fetch_raw(_encode(payload, encoding, corrupt), encoding))
    assert isinstance(result, ImageJobsError) or getattr(result, "id", None) == JOB


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([b"wait", b"ab\xffcd"], "job_id 'ab\\udcffcd' is not valid Unicode text"),
        ([b"get", b"1", b"--endpoint", b"https://[::1"], "is not an http(s) URL"),
    ],
)
def test_the_command_line_says_bad_input_in_one_line_and_exits_2(
    args: list[bytes], message: str, tmp_path: Any
) -> None:
    env = {
        "HOME": str(tmp_path),
        "PATH": os.environ.get("PATH", ""),
        "HUAWEICLOUD_SDK_AK": "AKEXAMPLE0000000000",
        "HUAWEICLOUD_SDK_SK": "an-example-secret-key",
        "HUAWEICLOUD_SDK_PROJECT_ID": "0123456789abcdef0123456789abcdef",
        "IMAGEJOBS_REGION": "cn-north-4",
    }
    command = [sys.executable.encode(), b"-m", b"imagejobs", *args]
    result = subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
    assert result.returncode == 2
    lines = result.stderr.decode(errors="replace").splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert "Traceback" not in lines[0]


class _BrokenForOneJob:
    """Credentials that fail in an unforeseen way, for one job only."""

    def __init__(self, signer: Any, job_id: str) -> None:
        self.signer, self.job_id = signer, job_id

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], project_id: str
    ) -> dict[str, str]:
        if url.endswith("/" + self.job_id):
            raise KeyError("no key for this one")
        signed: dict[str, str] = await self.signer.authorize(method, url, headers, project_id)
        return signed


async def test_an_unforeseen_error_in_one_poll_ends_only_that_job(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    for job_id in ("ok-1", "odd", "ok-2"):
        server.add_job([{**RUNNING, "id": job_id}, {**DONE, "id": job_id}])
    broken = _BrokenForOneJob(server.credentials, "odd")
    async with server.client(clock=clock, credentials=broken) as client:
        outcomes = {o.job_id: o async for o in client.wait_many(["ok-1", "odd", "ok-2"])}
    assert outcomes["ok-1"].ok
    assert outcomes["ok-2"].ok
    error = outcomes["odd"].error
    assert type(error) is ImageJobsError
    assert str(error).endswith("/odd failed unexpectedly: KeyError")
    assert "no key for this one" not in str(error), "only the type: its text may hold secrets"
    assert isinstance(error.__cause__, KeyError)
    assert len(server.requests_for("odd")) == 0, "no point in trying again"


class _BytesToken:
    """Credentials that hand over a token as bytes, as read from a file."""

    async def authorize(
        self, method: str, url: str, headers: dict[str, str], project_id: str
    ) -> dict[str, Any]:
        return {**headers, "X-Auth-Token": b"SUPERSECRET-TOKEN"}


async def test_an_unforeseen_error_never_quotes_what_was_sent(server: FakeWorkspace) -> None:
    server.add_job([DONE], job_id=JOB)
    async with server.client(credentials=_BytesToken()) as client:
        with pytest.raises(ImageJobsError) as info:
            await client.get_job(JOB)
    assert "SUPERSECRET" not in str(info.value)
    assert "failed unexpectedly: TypeError" in str(info.value)
    assert info.value.attempts == 1, "not retried"


def test_log_lines_quoting_the_server_are_escaped_too() -> None:
    from imagejobs.cli import _VisibleFormatter  # noqa: PLC0415 - the CLI's own handler

    formatter = _VisibleFormatter("imagejobs: %(levelname)s: %(message)s")
    hostile = "busy\n::error title=pwned::INJECTED\n##[error]x \x1b[31mred"
    record = logging.LogRecord(
        "imagejobs", logging.DEBUG, __file__, 1, "retrying: %s", (hostile,), None
    )
    line = formatter.format(record)
    assert "\n" not in line
    assert "\x1b" not in line
    assert "##[" not in line
    assert line.startswith("imagejobs: DEBUG: retrying: busy\\n::error")


async def test_max_time_counts_the_wait_for_the_budget(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    server.add_job([DONE], job_id=JOB)
    async with server.client(clock=clock, rate=0.2, retry=RetryPolicy(max_time=1)) as client:
        await client.get_job(JOB)
        with pytest.raises(TransportError, match="request budget held it past"):
            await client.get_job(JOB)
    assert clock.monotonic() == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("text", ["1_0", "\u0663", "1e3", "inf", "nan", "-3", "0x10", "+5"])
def test_retry_after_seconds_are_ascii_digits_only(text: str) -> None:
    assert parse_retry_after(text, datetime.now(UTC)) is None
    assert parse_retry_after("2.5", datetime.now(UTC)) == 2.5
