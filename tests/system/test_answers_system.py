"""A client keeps each job's last answer: an unchanged job is not read again (over HTTP)."""

from __future__ import annotations

import pytest
from wire_data import JOB_ID, one_sub_job

from imagejobs import Client, MalformedResponse
from imagejobs.testing import FakeClock, FakeWorkspace, Reply
from imagejobs.transport import answers as answers_module


class _Id(str):
    """A job ID of a str subclass: the client does not keep what it knows of it."""


async def test_an_unchanged_job_is_read_once_and_given_again(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job([one_sub_job("RUNNING")])
    first = await client.get_job(JOB_ID)
    second = await client.get_job(JOB_ID)
    assert len(fake.requests) == 2  # asked twice: only the reading is saved
    assert second is first
    assert second.status == "RUNNING"


async def test_a_job_that_changed_is_read_again(fake: FakeWorkspace, client: Client) -> None:
    fake.add_job(
        [
            one_sub_job("RUNNING"),
            one_sub_job("RUNNING", "SUCCESS"),
            one_sub_job("SUCCESS", "SUCCESS"),
        ]
    )
    seen = [await client.get_job(JOB_ID) for _ in range(4)]
    assert [(j.status, j.sub_jobs[0].status) for j in seen] == [
        ("RUNNING", "RUNNING"),
        ("RUNNING", "SUCCESS"),
        ("SUCCESS", "SUCCESS"),
        ("SUCCESS", "SUCCESS"),
    ]
    assert seen[3] is seen[2]
    assert seen[1] is not seen[0]


async def test_a_bad_answer_between_good_ones_is_still_an_error(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job(
        [one_sub_job("RUNNING"), Reply.json({"id": JOB_ID, "status": 7}), one_sub_job("RUNNING")]
    )
    first = await client.get_job(JOB_ID)
    with pytest.raises(MalformedResponse, match=r"\$\.status"):
        await client.get_job(JOB_ID)
    assert await client.get_job(JOB_ID) is first


async def test_an_answer_for_another_job_is_refused_after_a_good_one(
    fake: FakeWorkspace, client: Client
) -> None:
    other = {**one_sub_job("RUNNING"), "id": "1"}
    fake.add_job([one_sub_job("RUNNING"), Reply.json(other), Reply.json(other)], job_id=JOB_ID)
    await client.get_job(JOB_ID)
    for _ in range(2):  # refused each time: a refused body is never kept
        with pytest.raises(MalformedResponse, match="not the job asked for"):
            await client.get_job(JOB_ID)


async def test_get_job_json_gives_the_caller_a_dict_of_its_own(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job([one_sub_job("RUNNING")])
    first = await client.get_job_json(JOB_ID)
    first["status"] = "CHANGED BY THE CALLER"
    first["sub_jobs"].clear()
    second = await client.get_job_json(JOB_ID)
    assert second == one_sub_job("RUNNING")


async def test_forgotten_jobs_give_their_room_back(
    fake: FakeWorkspace, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers_module, "JOBS_KEPT", 3)
    ids = [f"job-{n}" for n in range(7)]
    for job_id in ids:
        fake.add_job([{"id": job_id, "status": "RUNNING", "job_type": "X" * len(job_id)}])
        await client.get_job(job_id)
    kept = client._jobs.kept()
    assert len(kept) == 3
    held = sum(len(known._body) for known in kept)
    assert held > 0
    assert client._jobs.room_left == answers_module.ANSWERS_KEPT - held


async def test_jobs_the_client_does_not_keep_take_no_room(
    fake: FakeWorkspace, client: Client
) -> None:
    fake.add_job([one_sub_job("RUNNING")])
    jobs = [await client.get_job(_Id(JOB_ID)) for _ in range(3)]
    assert jobs[0] == jobs[1] == jobs[2]
    assert client._jobs.room_left == answers_module.ANSWERS_KEPT
    assert JOB_ID not in client._jobs


async def test_a_job_whose_end_a_wait_saw_is_let_go(
    server: FakeWorkspace, clock: FakeClock
) -> None:
    ended = [f"ends-{n}" for n in range(3)]
    for job_id in ended:
        server.add_job(
            [{"id": job_id, "status": "RUNNING"}, {"id": job_id, "status": "SUCCESS"}],
            job_id=job_id,
        )
    server.add_job([{"id": "asked", "status": "RUNNING"}], job_id="asked")
    async with server.client(clock=clock) as client:
        await client.get_job("asked")
        outcomes = [o async for o in client.wait_many(ended)]
        assert sorted(o.job_id for o in outcomes if o.ok) == ended
        # Nothing waits on an ended job: the client keeps only what a caller asked itself.
        assert [known.url.rsplit("/", 1)[1] for known in client._jobs.kept()] == ["asked"]
        asked = len(client._jobs.kept()[0]._body)
        assert client._jobs.room_left == answers_module.ANSWERS_KEPT - asked
