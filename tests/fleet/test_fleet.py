"""A fleet on a real redis-server: one budget and one poll per job for many processes.

Each client here has its own Redis connection and its own member ID, exactly as
separate processes would; one test kills a real process with SIGKILL.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer
from wire_data import snap, sub

from imagejobs import (
    Client,
    ConfigurationError,
    InvalidArgument,
    PollPolicy,
    Transition,
)
from imagejobs.fleet.looks import SharedLooks
from imagejobs.fleet.shared import Fleet, fleet_key, redacted_url
from imagejobs.testing import FakeClock, FakeWorkspace, Faults

FAST = PollPolicy(initial_delay=0.05, max_delay=0.15, timeout=60)


def _fleet(url: str, key: str, *, rate: float = 1e9, max_in_flight: int = 100, **kw: Any) -> Fleet:
    options: dict[str, Any] = {"pace": 1.0, "burst": 1.0, "lease": 30.0, "max_retry_after": 30.0}
    options.update(kw)
    return Fleet(url, key, max_in_flight=max_in_flight, rate=rate, **options)


def _staged(fake: FakeWorkspace, count: int, every: float, prefix: str = "7") -> list[str]:
    """Script jobs whose one sub-job goes WAITING, RUNNING, SUCCESS, a step every ``every`` s."""
    ids = []
    for n in range(count):
        job_id, sub_id = f"{prefix}{n:017d}", f"9{n:017d}"
        steps = [
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "WAITING")]),
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "RUNNING")]),
            snap(job_id, "SUCCESS", sub_jobs=[sub(sub_id, "SUCCESS")]),
        ]
        ids.append(fake.add_job(steps, every=every, start=time.monotonic()))
    return ids


def _story(seen: list[Transition]) -> Counter[tuple[str, str | None, Any]]:
    return Counter((t.job_id, t.sub_job_id, t.current) for t in seen)


# --- the limiter ------------------------------------------------------------------------


async def test_the_shared_rate_holds_for_every_client_together(redis_url: str) -> None:
    rate, clients, each = 200.0, 4, 40
    fleets = [_fleet(redis_url, "imagejobs:{rate}", rate=rate) for _ in range(clients)]
    try:

        async def grants(fleet: Fleet) -> list[float]:
            times = []
            for _ in range(each):
                ticket = await fleet.acquire()
                assert ticket is not None
                times.append(ticket.sent_ms / 1000)
                fleet.release(ticket, answered=True)
            return times

        granted = sorted(t for ts in await asyncio.gather(*map(grants, fleets)) for t in ts)
    finally:
        for fleet in fleets:
            await fleet.close()
    assert len(granted) == clients * each
    # On Redis's clock: no second ever holds more than the rate (burst 1, pace 1).
    busiest = max(bisect.bisect_left(granted, t + 1.0) - i for i, t in enumerate(granted))
    assert busiest <= rate + 1
    # And the turns are spread, not granted at once: 160 at 200/s span most of a second.
    assert granted[-1] - granted[0] >= (len(granted) - 1) / rate - 0.01


async def test_fleet_wide_slots_cap_requests_in_flight_and_free_on_release(redis_url: str) -> None:
    a, b = (_fleet(redis_url, "imagejobs:{slots}", max_in_flight=2) for _ in range(2))
    try:
        first, second = await a.acquire(), await a.acquire()
        assert first is not None
        assert second is not None
        with pytest.raises(TimeoutError):
            await b.acquire(deadline=time.monotonic() + 0.2)  # both slots are a's
        a.release(first, answered=True)
        assert await b.acquire(deadline=time.monotonic() + 10) is not None
    finally:
        await a.close()
        await b.close()


async def test_a_slot_never_given_back_is_free_once_its_lease_ends(redis_url: str) -> None:
    a = _fleet(redis_url, "imagejobs:{lease}", max_in_flight=1, lease=0.3)
    b = _fleet(redis_url, "imagejobs:{lease}", max_in_flight=1, lease=0.3)
    try:
        assert await a.acquire() is not None  # and never released, as by a killed process
        assert await b.acquire(deadline=time.monotonic() + 10) is not None
    finally:
        await a.close()
        await b.close()


async def test_a_429_to_one_client_slows_and_holds_the_others(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys, faults=Faults(at={1: "429"})) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        async with (
            fake.client(redis_url=redis_url, rate=50) as a,
            fake.client(redis_url=redis_url, rate=50) as b,
        ):
            await a.get_job(job_id)  # its first try is throttled, its retry answered
            assert fake.requests[0].status == 429
            fleet = b._fleet
            assert fleet is not None
            for _ in range(50):  # the 429 reaches Redis in the background
                ticket = await fleet.acquire()
                fleet.release(ticket, answered=True)
                if fleet.rate < 50:
                    break
                await asyncio.sleep(0.01)
            assert fleet.rate < 50  # b never saw a 429, yet sends slower


# --- shared polls -------------------------------------------------------------------------


async def test_a_job_watched_by_several_clients_is_polled_once_and_each_sees_every_step(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async def watch_all(clients: int, redis: str | None) -> tuple[list[list[Transition]], int]:
        async with FakeWorkspace(**keys) as fake:
            ids = _staged(fake, 5, every=0.6)

            async def one() -> list[Transition]:
                async with fake.client(redis_url=redis) as client:
                    return [t async for t in client.watch_many(ids, FAST)]

            seen = await asyncio.gather(*(one() for _ in range(clients)))
            return seen, len(fake.requests)

    (alone,), alone_requests = await watch_all(1, None)
    together, requests = await watch_all(3, redis_url)
    for seen in together:
        assert _story(seen) == _story(alone)  # every step of every job, from any client's GET
    assert requests < 2 * alone_requests  # three watchers, not three times the polls


async def test_waits_share_one_poll_stream_across_clients(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _staged(fake, 20, every=0.5)
        async with (
            fake.client(redis_url=redis_url) as a,
            fake.client(redis_url=redis_url) as b,
        ):
            outcomes = await asyncio.gather(
                *(client.wait(job_id, FAST) for client in (a, b) for job_id in ids)
            )
            assert all(job.status.value == "SUCCESS" for job in outcomes)
            assert a._fleet is not None
            assert a._fleet.members == 2


# --- Redis trouble ------------------------------------------------------------------------


async def test_redis_stopped_mid_run_ends_no_wait_and_sharing_comes_back(
    tmp_path: Path, keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        async with FakeWorkspace(**keys) as fake:
            ids = _staged(fake, 10, every=0.4)
            async with (
                fake.client(redis_url=server.url) as a,
                fake.client(redis_url=server.url) as b,
            ):
                seen: list[list[Transition]] = [[], []]

                async def watch(n: int, client: Client) -> None:
                    async for transition in client.watch_many(ids, FAST):
                        seen[n].append(transition)
                        if transition.is_terminal and server.running:
                            server.stop()  # the first job's end: Redis goes away

                with caplog.at_level(logging.WARNING, logger="imagejobs"):
                    await asyncio.gather(watch(0, a), watch(1, b))
                assert a._fleet is not None
                assert not a._fleet.sharing
                down = [r for r in caplog.records if "not answering" in r.getMessage()]
                assert 1 <= len(down) <= 2  # one warning a client, not one a request
                for story in seen:
                    finals = {t.job_id for t in story if t.is_terminal}
                    assert finals == set(ids)  # every wait ended, with its true outcome
                    ends = [t.current for t in story if t.is_terminal]
                    assert all(end is not None and end.value == "SUCCESS" for end in ends)
                server.start()
                fleet = a._fleet
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    ticket = await fleet.acquire()
                    fleet.release(ticket)
                    if ticket is not None:
                        break
                assert fleet.sharing
                assert any("is back" in r.getMessage() for r in caplog.records)
    finally:
        server.stop()


async def test_an_unreachable_redis_is_one_warning_and_never_shows_its_password(
    keys: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    secret_url = "redis://user:s3cretpassw0rd@127.0.0.1:1/0"
    async with FakeWorkspace(**keys) as fake:
        ids = _staged(fake, 3, every=0.1)
        with caplog.at_level(logging.DEBUG, logger="imagejobs"):
            async with fake.client(redis_url=secret_url) as client:
                assert "s3cret" not in repr(client._fleet)
                outcomes = [o async for o in client.wait_many(ids, FAST)]
        assert all(o.error is None for o in outcomes)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "redis://127.0.0.1:1/0" in warnings[0].getMessage()
        assert all("s3cret" not in r.getMessage() for r in caplog.records)


def test_redis_urls_are_told_without_their_credentials() -> None:
    assert redacted_url("rediss://me:pw@cache.example:6380/2") == "rediss://cache.example:6380/2"
    assert redacted_url("redis://:pw@[::1]:6379") == "redis://[::1]:6379"


def test_a_fleet_is_keyed_by_project_and_a_hash_never_the_key_itself() -> None:
    key = fleet_key("p1", "ak:AKSECRETISH")
    assert key.startswith("imagejobs:{p1:")
    assert "AKSECRETISH" not in key
    assert key != fleet_key("p1", "ak:OTHER")
    assert key != fleet_key("p2", "ak:AKSECRETISH")
    assert key == fleet_key("p1", "ak:AKSECRETISH")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:6379", "redis://", "redis://host:99999/0", "", 6379],
)
def test_a_bad_redis_url_is_refused_at_once(url: Any) -> None:
    with pytest.raises(InvalidArgument, match="redis_url") as caught:
        Client(project_id="p", endpoint="http://127.0.0.1:1", redis_url=url)
    assert "99999" not in str(caught.value) or "redis_url" in str(caught.value)


def test_a_fleet_needs_the_system_clock_and_redis_key_needs_redis_url() -> None:
    with pytest.raises(InvalidArgument, match="system clock"):
        Client(
            project_id="p",
            endpoint="http://127.0.0.1:1",
            redis_url="redis://127.0.0.1:1/0",
            clock=FakeClock(),
        )
    with pytest.raises(InvalidArgument, match="redis_key needs redis_url"):
        Client(project_id="p", endpoint="http://127.0.0.1:1", redis_key="mine")


def test_without_the_extra_redis_url_names_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'imagejobs\[redis\]'"):
        Client(project_id="p", endpoint="http://127.0.0.1:1", redis_url="redis://127.0.0.1:1")


# --- a real process, killed ---------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from imagejobs import Client, PollPolicy

    async def main():
        client = Client(project_id=sys.argv[3], endpoint=sys.argv[1], redis_url=sys.argv[2],
                        max_in_flight=2, rate=1000, timeout=0.5)
        async for _ in client.wait_many(sys.argv[4:], PollPolicy(initial_delay=0.05)):
            pass

    asyncio.run(main())
    """
)


async def test_a_process_killed_mid_wait_holds_no_slot_past_its_lease(
    redis_url: str, tmp_path: Path
) -> None:
    async with FakeWorkspace(latency=30.0) as fake:
        ids = [fake.add_job([snap(f"70000000000000000{n}", "SUCCESS")]) for n in range(2)]
        script = tmp_path / "holder.py"
        script.write_text(_HOLDER)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent.parent)}
        holder = subprocess.Popen(  # noqa: ASYNC220 - started once, killed, waited on at once
            [sys.executable, str(script), fake.url, redis_url, fake.project_id, *ids], env=env
        )
        try:
            for _ in range(400):  # until its two requests hang at the slow server
                if fake.in_flight == 2:
                    break
                await asyncio.sleep(0.025)
            assert fake.in_flight == 2
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        killed_at = time.time()
        connection = aioredis.Redis.from_url(redis_url)
        try:
            (slots,) = [key async for key in connection.scan_iter(match="*:slots")]
            taken = cast(
                "list[tuple[bytes, float]]",
                await connection.zrange(slots, 0, -1, withscores=True),
            )
        finally:
            await connection.aclose()
        assert len(taken) == 2  # both fleet-wide slots are the dead process's
        lease = 0.5 + 2.0  # its request timeout, and a little
        assert all(expires / 1000 <= killed_at + lease for _, expires in taken)
        fake.latency = 0.0
        policy = PollPolicy(initial_delay=0.05, timeout=30)
        async with fake.client(
            redis_url=redis_url, max_in_flight=2, rate=1000, timeout=0.5
        ) as survivor:
            outcomes = [o async for o in survivor.wait_many(ids, policy)]
        assert all(o.job is not None and o.job.status.value == "SUCCESS" for o in outcomes)


# --- the command line ---------------------------------------------------------------------


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imagejobs",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, err.decode()


def _cli_env(fake: FakeWorkspace, home: Path, **extra: str) -> dict[str, str]:
    assert fake.ak is not None
    assert fake.sk is not None
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HUAWEICLOUD_SDK_AK": fake.ak,
        "HUAWEICLOUD_SDK_SK": fake.sk,
        "HUAWEICLOUD_SDK_PROJECT_ID": fake.project_id,
        "IMAGEJOBS_ENDPOINT": fake.url,
        **extra,
    }


async def _shared_snapshots(redis_url: str) -> int:
    connection = aioredis.Redis.from_url(redis_url)
    try:
        return len([key async for key in connection.scan_iter(match="imagejobs:*:log:*")])
    finally:
        await connection.aclose()


@pytest.mark.parametrize("how", ["--redis", "IMAGEJOBS_REDIS_URL"])
async def test_the_command_line_joins_the_fleet(
    how: str, redis_url: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        ids = _staged(fake, 2, every=0.2)
        env = _cli_env(fake, tmp_path)
        args = ["wait", *ids, "--initial-delay", "50ms", "--max-delay", "100ms", "--no-history"]
        if how == "--redis":
            args += ["--redis", redis_url]
        else:
            env["IMAGEJOBS_REDIS_URL"] = redis_url
        code, err = await _cli(*args, env=env)
        assert code == 0, err
        assert await _shared_snapshots(redis_url) == 2  # each job's GETs were shared


async def test_a_bad_redis_url_on_the_command_line_is_exit_2_in_one_line(
    keys: dict[str, Any], tmp_path: Path
) -> None:
    async with FakeWorkspace(**keys) as fake:
        env = _cli_env(fake, tmp_path)
        code, err = await _cli(
            "wait", "700000000000000001", "--redis", "http://u:hunter2@x:1", env=env
        )
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "--redis (or IMAGEJOBS_REDIS_URL) must be" in err
    assert "hunter2" not in err


# --- what a review found ------------------------------------------------------------------

_STALL = (
    b"EVAL \"local t=redis.call('TIME') local e=t[1]*1e6+t[2]+800000 "
    b"while true do local n=redis.call('TIME') if n[1]*1e6+n[2]>e then break end end "
    b'return 1" 0\r\n'
)


def _stall_redis(port: int) -> socket.socket:
    """Keep Redis busy for 0.8 s (a script that spins), as a slow Redis would be."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(_STALL)
    return connection


async def _keys(redis_url: str, pattern: str) -> int:
    connection = aioredis.Redis.from_url(redis_url)
    try:
        return sum(
            [
                await connection.zcard(key) if key.endswith(b":slots") else 1
                async for key in connection.scan_iter(match=pattern)
            ]
        )
    finally:
        await connection.aclose()


async def test_what_a_stalled_redis_call_took_is_given_back(
    redis_server: RedisServer, keys: dict[str, Any]
) -> None:
    redis_url = redis_server.url
    redis_server.flush()
    policy = PollPolicy(initial_delay=0.05, max_delay=0.1, timeout=15)
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        warm = fake.add_job([snap("700000000000000002", "SUCCESS")])
        async with (
            fake.client(redis_url=redis_url) as a,
            fake.client(redis_url=redis_url) as b,
        ):
            await a.wait(warm, policy)  # scripts loaded, a member
            stall = _stall_redis(redis_server.port)
            try:
                await asyncio.sleep(0.05)
                # Its look times out, but runs once Redis is free: a claim nobody publishes.
                assert (await a.wait(job_id, policy)).status.value == "SUCCESS"
            finally:
                stall.close()
            for _ in range(100):  # a gives back its claim and slot once Redis answers
                if not await _keys(redis_url, "*:lease:*") + await _keys(redis_url, "*:slots"):
                    break
                await asyncio.sleep(0.05)
            assert await _keys(redis_url, "*:lease:*") == 0
            assert await _keys(redis_url, "*:slots") == 0
            assert (await b.wait(job_id, policy)).status.value == "SUCCESS"


async def test_a_process_leaving_leaves_the_others_members(redis_url: str) -> None:
    a, b, c = (_fleet(redis_url, "imagejobs:{m}") for _ in range(3))
    url = "https://workspace.example/v1/p/image-server-jobs/1"
    try:
        for fleet in (a, b, c):
            await fleet.join()
        assert (await SharedLooks(a).look(url, 0.0, "")).state == "go"  # type: ignore[union-attr]
        await c.close()
        shared = await SharedLooks(b).look(url, 0.0, "")
        assert shared is not None
        assert shared.state == "wait"  # a still holds the look, and is alive
    finally:
        await a.close()
        await b.close()


async def test_turns_booked_while_every_slot_was_taken_do_not_all_go_at_once(
    redis_url: str,
) -> None:
    rate, start = 50.0, time.monotonic()
    fleets = [_fleet(redis_url, "imagejobs:{b}", rate=rate, max_in_flight=4) for _ in range(3)]
    granted: list[float] = []

    async def worker(fleet: Fleet) -> None:
        while time.monotonic() - start < 2.0:
            ticket = await fleet.acquire()
            assert ticket is not None
            granted.append(ticket.sent_ms / 1000)
            # A slow server at first (the slots are what limits), then a fast one.
            await asyncio.sleep(0.6 if time.monotonic() - start < 0.8 else 0.001)
            fleet.release(ticket, answered=True)

    try:
        await asyncio.gather(*(worker(fleet) for fleet in fleets for _ in range(8)))
    finally:
        for fleet in fleets:
            await fleet.close()
    granted.sort()
    busiest = max(bisect.bisect_left(granted, t + 1.0) - i for i, t in enumerate(granted))
    assert busiest <= rate + 2


async def test_a_final_snapshot_is_taken_however_it_was_timed(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = "700000000000000001"
        fake.add_job([snap(job_id, "RUNNING", sub_jobs=[sub("900000000000000001", "RUNNING")])])
        connection = aioredis.Redis.from_url(redis_url)
        async with fake.client(redis_url=redis_url) as client:

            async def another_process_saw_the_end(transition: Transition) -> None:
                if transition.sub_job_id is not None:
                    return
                # Its GET, answered a moment before this one's (a lagging replica may
                # have answered this one), saw the end.
                (log,) = [key async for key in connection.scan_iter(match="*:log:*")]
                entries = cast(
                    "list[tuple[bytes, dict[bytes, bytes]]]",
                    await connection.xrevrange(log, count=1),
                )
                newest = entries[0][1]
                body = newest[b"body"].replace(b'"RUNNING"', b'"SUCCESS"')
                earlier = f"{float(newest[b'at']) - 50:.3f}"
                await connection.xadd(log, {"body": body, "at": earlier, "final": b"1"})

            policy = PollPolicy(initial_delay=0.05, max_delay=0.1, timeout=10)
            try:
                job = await client.wait(job_id, policy, on_transition=another_process_saw_the_end)
            finally:
                await connection.aclose()
        # The fake only ever answers RUNNING: the end came from the fleet, and was taken.
        assert job.status.value == "SUCCESS"
        assert {r.step for r in fake.requests} == {0}


async def test_a_since_is_never_contradicted_by_an_older_shared_snapshot(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id, sub_id = "700000000000000001", "900000000000000001"
        steps = [
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "WAITING")]),
            snap(job_id, "RUNNING", sub_jobs=[sub(sub_id, "RUNNING")]),
            snap(job_id, "SUCCESS", sub_jobs=[sub(sub_id, "SUCCESS")]),
        ]
        fake.add_job(steps, every=1.0, start=time.monotonic())
        policy = PollPolicy(initial_delay=0.05, max_delay=0.1, timeout=30)
        async with fake.client(redis_url=redis_url) as first:  # shares the WAITING snapshot
            await anext(aiter(first.watch(job_id, policy)))
        await asyncio.sleep(1.2)
        async with fake.client() as alone:
            since = await alone.get_job(job_id)
        assert since.sub_jobs[0].status.value == "RUNNING"
        async with fake.client(redis_url=redis_url) as later:
            seen = [(t.previous, t.current) async for t in later.watch(job_id, policy, since)]
        assert all(previous is not None and previous.value != "SUCCESS" for previous, _ in seen)
        assert all(current is not None and current.value != "WAITING" for _, current in seen)
