"""The fake server's request log: what a test asserts on."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs.core.codec import parse_http_date
from imagejobs.testing import FakeClock, FakeWorkspace, RecordedRequest
from imagejobs.testing._server import http_date

JOB_ID = "700000000000000001"


def _recorded(**changes: Any) -> RecordedRequest:
    fields: dict[str, Any] = {
        "at": 1.0,
        "method": "GET",
        "path": f"/v1/p/image-server-jobs/{JOB_ID}",
        "project_id": "p",
        "job_id": JOB_ID,
        "status": 200,
        "request_id": "r1",
        "headers": {"X-Auth-Token": "t"},
        "query": {"limit": "100"},
    }
    return RecordedRequest(**{**fields, **changes})


def test_a_recorded_request_is_hashable_and_compares_by_value() -> None:
    one, same = _recorded(), _recorded()
    assert one == same
    assert hash(one) == hash(same)
    assert len({one, same}) == 1
    # The mappings still count for equality, not for the hash: equal ones hash alike.
    other_headers = _recorded(headers={"X-Auth-Token": "u"})
    assert other_headers != one
    assert len({one, other_headers}) == 2
    assert _recorded(query={"limit": "1"}) != one
    assert _recorded(status=404) != one


def test_a_recorded_request_stays_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        _recorded().status = 500  # type: ignore[misc]


async def test_the_requests_a_fake_served_can_be_counted(keys: dict[str, Any]) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([{"id": JOB_ID, "status": "RUNNING"}])
        async with fake.client() as client:
            for _ in range(3):
                await client.get_job(job_id)
    assert Counter(fake.requests).total() == 3
    assert len(set(fake.requests)) == 3  # each its own request ID
    assert {request.job_id for request in fake.requests} == {job_id}


async def _date_of_an_answer(fake: FakeWorkspace) -> datetime | None:
    async with aiohttp.ClientSession() as session, session.get(f"{fake.url}/nowhere") as answer:
        return parse_http_date(answer.headers.get("Date"))


async def test_answers_are_dated_on_a_fake_clock_when_the_fake_runs_on_it() -> None:
    clock = FakeClock()
    clock.advance(90.7)
    async with FakeWorkspace(clock=clock.monotonic) as fake:
        assert await _date_of_an_answer(fake) == clock.now().replace(microsecond=0)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
)
def test_an_answers_date_is_spelled_as_the_email_library_spells_it(when: datetime) -> None:
    assert http_date(when) == format_datetime(when.astimezone(UTC), usegmt=True)


async def test_answers_are_dated_by_now_otherwise() -> None:
    later = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    async with FakeWorkspace(now=lambda: later) as fake:
        assert await _date_of_an_answer(fake) == later
    async with FakeWorkspace() as fake:
        date = await _date_of_an_answer(fake)
    assert date is not None
    assert abs(date - datetime.now(UTC)) < timedelta(minutes=1)
