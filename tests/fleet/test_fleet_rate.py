"""The fleet's limit is one setting: a member's own ``rate`` bounds only its own share.

Each test runs on a real redis-server; clients here are separate processes in all
but name (each has its own connection and member ID).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from wire_data import snap

from imagejobs import Client, InvalidArgument
from imagejobs.config import resolve
from imagejobs.core.errors import ConfigurationError
from imagejobs.fleet.shared import Fleet
from imagejobs.testing import FakeWorkspace


def _fleet(url: str, key: str, rate: float, *, explicit: bool = False) -> Fleet:
    return Fleet(
        url,
        key,
        max_in_flight=100,
        rate=rate,
        explicit=explicit,
        pace=1.0,
        burst=1.0,
        lease=30.0,
        max_retry_after=30.0,
    )


async def _queue_ahead_ms(url: str, key: str) -> float:
    """How far ahead of Redis's clock the fleet's queue ends (its theoretical arrival time)."""
    connection = aioredis.Redis.from_url(url)
    try:
        tat = float(await connection.get(f"{key}:tat") or 0)
        seconds, micros = await connection.time()
        return tat - (seconds * 1000 + micros / 1000)
    finally:
        await connection.aclose()


async def test_a_slow_members_turn_books_the_fleets_interval_not_its_own(redis_url: str) -> None:
    key = "imagejobs:{limit}"
    slow, fast = _fleet(redis_url, key, 1.5), _fleet(redis_url, key, 20.0, explicit=True)
    try:
        await fast._join()
        await slow._join()
        slot = await slow.acquire()
        assert slot is not None
        # One turn of the fleet's 20 a second is 50 ms, not the 667 ms of the slow one's 1.5.
        assert await _queue_ahead_ms(redis_url, key) <= 1000 / 20
        assert slow.limit == fast.limit == 20.0
    finally:
        await slow.close()
        await fast.close()


async def test_without_a_setting_the_fleets_limit_is_its_fastest_members_rate(
    redis_url: str,
) -> None:
    key = "imagejobs:{nolimit}"
    slow, fast = _fleet(redis_url, key, 1.5), _fleet(redis_url, key, 20.0)
    try:
        await slow._join()
        await fast._join()
        await slow._beat_once()  # the slow one hears of the fast one at its next heartbeat
        assert slow.limit == fast.limit == 20.0
        await fast.close()  # the fast one leaves: the slow one's rate is all that is said
        await slow._beat_once()
        assert slow.limit == 1.5
    finally:
        await slow.close()
        await fast.close()


async def test_a_set_limit_is_the_lowest_set_whatever_the_members_rates(redis_url: str) -> None:
    key = "imagejobs:{set}"
    fleets = [
        _fleet(redis_url, key, 50.0),
        _fleet(redis_url, key, 20.0, explicit=True),
        _fleet(redis_url, key, 30.0, explicit=True),
    ]
    try:
        for fleet in fleets:
            await fleet._join()
        for fleet in fleets:
            await fleet._beat_once()
        assert {fleet.limit for fleet in fleets} == {20.0}
    finally:
        for fleet in fleets:
            await fleet.close()


async def test_a_client_at_the_default_rate_leaves_a_fast_one_its_share(
    redis_url: str, keys: dict[str, Any]
) -> None:
    """A CLI at 1.5/s joining a service at 20/s: the service goes on at close to 20/s."""
    async with FakeWorkspace(**keys) as fake:
        slow_job = fake.add_job([snap("700000000000000001", "RUNNING")])
        fast_job = fake.add_job([snap("700000000000000002", "RUNNING")])
        async with (
            fake.client(redis_url=redis_url, rate=20, fleet_rate=20) as fast,
            fake.client(redis_url=redis_url, rate=1.5) as slow,
        ):
            await fast.get_job(fast_job)
            await slow.get_job(slow_job)  # both members, each answered once
            stop = asyncio.Event()

            async def fast_gets() -> None:
                while not stop.is_set():
                    await fast.get_job(fast_job)

            task = asyncio.create_task(fast_gets())
            try:
                for _ in range(3):  # three turns of the slow one: about two seconds
                    await slow.get_job(slow_job)
            finally:
                stop.set()
                await task
        fast_gets_sent = len(fake.requests_for(fast_job)) - 1
        # Its share of 20 a second over those two seconds is some 35 GETs; each turn of
        # the slow one holding the whole fleet for 667 ms left it 4 to 6.
        assert fast_gets_sent >= 15


def test_fleet_rate_is_checked_and_needs_redis_url() -> None:
    with pytest.raises(InvalidArgument, match="fleet_rate needs redis_url"):
        Client(project_id="p", endpoint="http://127.0.0.1:1", fleet_rate=20)
    with pytest.raises(InvalidArgument, match="fleet_rate must be a positive number"):
        Client(
            project_id="p",
            endpoint="http://127.0.0.1:1",
            redis_url="redis://127.0.0.1:1/0",
            redis_key="k",
            fleet_rate=0,
        )


def test_imagejobs_fleet_rate_is_read_with_a_redis_url_only() -> None:
    base = {"project_id": "p", "endpoint": "http://127.0.0.1:1", "credentials": None}
    environ = {"IMAGEJOBS_FLEET_RATE": "20"}
    assert "fleet_rate" not in resolve(base, environ, "none", dict)
    environ["IMAGEJOBS_REDIS_URL"] = "redis://127.0.0.1:1/0"
    assert resolve(base, environ, "none", dict)["fleet_rate"] == 20.0
    assert resolve({**base, "fleet_rate": 5}, environ, "none", dict)["fleet_rate"] == 5
    environ["IMAGEJOBS_FLEET_RATE"] = "fast"
    with pytest.raises(ConfigurationError, match="IMAGEJOBS_FLEET_RATE"):
        resolve(base, environ, "none", dict)
