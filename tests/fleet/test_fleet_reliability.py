"""A fleet through Redis trouble and a stepped clock, on a real redis-server (issue 26).

What a process records to give back stays as few as the calls it had in flight,
however long Redis is away; giving it back never stops its heartbeat; a limiter
key far ahead of Redis's clock holds nobody longer than a legitimate one could;
a 503's Retry-After holds the fleet as a 429's does, without lowering the rate.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis_server import RedisServer
from test_fleet import _fleet, _keys, _stall_redis

from imagejobs.fleet.scripts import ACQUIRE
from imagejobs.fleet.shared import QUEUE_HORIZON, REDIS_CONNECTIONS, Fleet
from imagejobs.fleet.undo import Taken, Undo
from imagejobs.planning.ratelaw import MAX_HOLD

URL = "https://workspace.example/v1/p/image-server-jobs/"


def _nothing_listens() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def _cycles(fleet: Fleet, count: int) -> None:
    """Requests as a client makes them: a slot, given back, and a look at a job, let go."""
    for n in range(count):
        if n % 100 == 0:
            await asyncio.sleep(0)  # as other work would, let the heartbeat run
        slot = await fleet.acquire()
        fleet.release(slot, answered=True)
        url = f"{URL}{n % 50}"
        shared = await fleet.look(url, 0.0, "")
        if shared is not None and shared.claim:
            fleet.let_go(url, shared.claim)


async def _warm(fleet: Fleet, connections: int = 1) -> None:
    """Make a member whose scripts Redis knows, with connections open and nothing held."""
    await _cycles(fleet, 3)
    slots = await asyncio.gather(*(fleet.acquire() for _ in range(connections)))
    for slot in slots:
        fleet.release(slot)
    for _ in range(100):
        if not fleet._background:
            break
        await asyncio.sleep(0.01)
    assert fleet.sharing
    assert not fleet._background


async def _redis_now(connection: Any) -> float:
    seconds, micros = await connection.time()
    return float(seconds) * 1000 + float(micros) / 1000


# --- Redis away -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["never reachable", "stopped mid-run"])
async def test_requests_while_redis_is_away_leave_nothing_to_give_back(
    how: str, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    if how == "never reachable":
        url = _nothing_listens()
    else:
        server.start()
        url = server.url
    fleet = _fleet(url, "imagejobs:{away}")
    try:
        if server.running:
            await _warm(fleet)
            server.stop()
        await _cycles(fleet, 1000)
        assert not fleet.sharing
        # At most what was in flight when Redis went away, not one a request never sent.
        assert len(fleet._undo) <= 2
    finally:
        await fleet.close()
        server.stop()


async def test_giving_back_after_an_outage_keeps_the_heartbeat_and_frees_everything(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    key = "imagejobs:{back}"
    a = _fleet(server.url, key, max_in_flight=100_000)
    observer = aioredis.Redis.from_url(server.url)
    try:
        await _warm(a, connections=REDIS_CONNECTIONS)
        # Redis busy for a while: calls sent meanwhile time out, and run once it is free.
        stall = _stall_redis(server.port)
        try:
            await asyncio.sleep(0.05)
            slots = [a.acquire() for _ in range(30)]
            looks = [a.look(f"{URL}stalled/{n}", 0.0, "") for n in range(30)]
            assert not any(await asyncio.gather(*slots, *looks))
            assert not a.sharing
        finally:
            stall.close()
        # Once Redis is free, the calls that timed out run after all.
        assert await _keys(server.url, "*:slots") == 30
        assert await _keys(server.url, "*:lease:*") == 30
        await _cycles(a, 20_000)  # before a is back: none of these is sent

        async def alive() -> bool:
            score = await observer.zscore(f"{key}:members", a.member)
            return score is not None and score > await _redis_now(observer)

        for _ in range(400):  # a's heartbeat finds Redis answering again
            if a.sharing and await alive():
                break
            await asyncio.sleep(0.05)
        assert a.sharing
        for _ in range(600):  # a member all along while it gives back what it may hold
            assert await alive()
            if not len(a._undo):
                break
            await asyncio.sleep(0.05)
        assert not len(a._undo)
        assert await _keys(server.url, "*:lease:*") == 0
        assert await _keys(server.url, "*:slots") == 0
    finally:
        await observer.aclose()
        await a.close()
        server.stop()


def test_what_redis_has_freed_by_its_lease_is_not_kept_to_give_back() -> None:
    now = [0.0]
    undo = Undo({"slot": 30.0, "lease": 120.0}, clock=lambda: now[0])
    for n in range(3):
        undo.add(Taken("slot", "k:slots", f"s{n}"))
        undo.add(Taken("lease", f"k:lease:{n}", f"c{n}"))
        now[0] += 10.0
    assert len(undo) == 6
    now[0] = 35.0  # the first slot's lease ended at 30
    assert Taken("slot", "k:slots", "s0") not in undo.batch(10)
    assert len(undo) == 5
    now[0] = 1000.0  # Redis away for long: nothing is kept past its lease
    undo.add(Taken("slot", "k:slots", "s9"))
    assert undo.batch(10) == [Taken("slot", "k:slots", "s9")]
    undo.given_back(undo.batch(10))
    assert len(undo) == 0


# --- a clock stepped back ---------------------------------------------------------------


async def test_a_queue_far_ahead_of_redis_time_holds_nobody_past_the_horizon(
    redis_url: str,
) -> None:
    key = "imagejobs:{step}"
    connection = aioredis.Redis.from_url(redis_url)
    fleet = _fleet(redis_url, key)
    try:
        # As if Redis's clock stepped back 30 s after the fleet booked its turns.
        ahead = await _redis_now(connection) + 30_000
        await connection.set(f"{key}:tat", f"{ahead:.3f}", px=60_000)
        slot = await fleet.acquire(deadline=time.monotonic() + QUEUE_HORIZON + 3)
        assert slot is not None
    finally:
        await connection.aclose()
        await fleet.close()


async def _acquire_script(connection: Any, key: str, *, booked: float = 0) -> list[float]:
    names = ("tat", "slots", "pause", "ratelaw", "answers", "limit")
    keys = [f"{key}:{name}" for name in names]
    max_retry_ms = 1000
    args = [100.0, 1.0, 1.0, 10, 30_000, "t:1", f"{booked:.3f}", int(QUEUE_HORIZON * 1000)]
    result = await connection.eval(ACQUIRE, len(keys), *keys, *args, max_retry_ms)
    return [float(value) for value in result]


async def test_a_pause_far_ahead_of_redis_time_holds_no_longer_than_the_longest_hold(
    redis_url: str,
) -> None:
    key = "imagejobs:{paused}"
    connection = aioredis.Redis.from_url(redis_url)
    try:
        ahead = await _redis_now(connection) + 3_600_000
        await connection.set(f"{key}:pause", f"{ahead:.3f}", px=3_600_000)
        state, now, wait, *_ = await _acquire_script(connection, key)
        assert state == 0
        # Neither a Retry-After (capped at 1 s here) nor a 429's hold ever pauses longer.
        assert 0 < wait <= MAX_HOLD * 1000
        assert float(await connection.get(f"{key}:pause") or 0) <= now + MAX_HOLD * 1000
    finally:
        await connection.aclose()


async def test_a_turn_a_client_says_it_booked_is_never_later_than_the_horizon(
    redis_url: str,
) -> None:
    connection = aioredis.Redis.from_url(redis_url)
    try:
        booked = await _redis_now(connection) + 60_000
        state, now, _, _, kept = await _acquire_script(connection, "imagejobs:{b}", booked=booked)
        assert state == 1
        assert kept <= now + QUEUE_HORIZON * 1000
    finally:
        await connection.aclose()


# --- a 503's Retry-After ----------------------------------------------------------------


async def test_a_503_retry_after_holds_the_fleet_without_lowering_its_rate(
    redis_url: str,
) -> None:
    key = "imagejobs:{503}"
    a, b = (_fleet(redis_url, key, rate=50) for _ in range(2))
    connection = aioredis.Redis.from_url(redis_url)
    try:
        slot = await a.acquire()
        assert slot is not None
        a.release(slot, answered=True, retry_after=20.0)  # a 503, not a 429
        for _ in range(100):  # told in the background
            if await connection.exists(f"{key}:pause"):
                break
            await asyncio.sleep(0.02)
        pause = float(await connection.get(f"{key}:pause") or 0)
        assert 19_000 < pause - await _redis_now(connection) <= 20_000
        with pytest.raises(TimeoutError):
            await b.acquire(deadline=time.monotonic() + 1)
        assert await connection.exists(f"{key}:ratelaw") == 0  # no drop, no hold of its own
        assert a.rate == b.rate == 50
    finally:
        await connection.aclose()
        await a.close()
        await b.close()


async def test_a_503_retry_after_is_capped_as_a_429s_is(redis_url: str) -> None:
    key = "imagejobs:{503cap}"
    fleet = _fleet(redis_url, key, max_retry_after=5.0)
    connection = aioredis.Redis.from_url(redis_url)
    try:
        slot = await fleet.acquire()
        fleet.release(slot, answered=True, retry_after=3600.0)
        for _ in range(100):
            if await connection.exists(f"{key}:pause"):
                break
            await asyncio.sleep(0.02)
        pause = float(await connection.get(f"{key}:pause") or 0)
        assert 4_000 < pause - await _redis_now(connection) <= 5_000
    finally:
        await connection.aclose()
        await fleet.close()


async def test_more_calls_at_once_than_connections_wait_for_one_and_redis_stays_up(
    redis_url: str,
) -> None:
    fleet = _fleet(redis_url, "imagejobs:{busy}", max_in_flight=10_000)
    try:
        await _warm(fleet)
        calls = 3 * REDIS_CONNECTIONS
        looks = await asyncio.gather(*(fleet.look(f"{URL}{n}", 0.0, "") for n in range(calls)))
        assert all(shared is not None for shared in looks)  # none taken for an outage
        assert fleet.sharing
    finally:
        await fleet.close()
