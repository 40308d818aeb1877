"""Accounts kept apart in a fleet: whose budget a process shares, and whose snapshots it may take.

On a real redis-server: the keys a client would use are the ones it uses, and a
snapshot another process published is really in Redis when a refused one looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from wire_data import snap

from imagejobs import (
    AkSkCredentials,
    AuthenticationError,
    Client,
    ConfigurationError,
    InvalidArgument,
    PollPolicy,
    RefreshableTokenCredentials,
    TokenCredentials,
)
from imagejobs.testing import FakeWorkspace

FAST = PollPolicy(initial_delay=0.02, max_delay=0.05, timeout=30)
PROJECT = "0123456789abcdef0123456789abcdef"
REDIS = "redis://127.0.0.1:6379/0"


async def _token_of(user: str) -> str:
    return f"token-of-{user}-0123456789"


class Signed:
    """Credentials of a user's own kind, that may or may not say whose they are."""

    def __init__(self, account: object = None) -> None:
        if account is not None:
            self.account = account

    async def authorize(
        self, method: str, url: str, headers: Mapping[str, str], project_id: str
    ) -> dict[str, str]:
        return dict(headers)


def _key(credentials: Any, **kw: Any) -> str | None:
    client = Client(project_id=PROJECT, region="ap-southeast-1", credentials=credentials, **kw)
    return client._fleet.key if client._fleet is not None else None


@pytest.mark.parametrize(
    "credentials",
    [RefreshableTokenCredentials(lambda: _token_of("a")), Signed(), Signed(account="  ")],
    ids=["refreshable", "custom", "custom-blank"],
)
def test_credentials_that_do_not_say_whose_they_are_need_a_named_fleet(credentials: Any) -> None:
    pytest.importorskip("redis")
    with pytest.raises(ConfigurationError, match=r"whose credentials.*account.*redis_key="):
        _key(credentials, redis_url=REDIS)
    assert _key(credentials, redis_url=REDIS, redis_key="imagejobs:{team-a}") == (
        "imagejobs:{team-a}"
    )
    assert _key(credentials) is None  # no Redis, no question


def test_default_fleet_keys_differ_for_any_two_accounts_and_not_across_refreshes() -> None:
    pytest.importorskip("redis")
    alice = RefreshableTokenCredentials(lambda: _token_of("alice"), account="alice")
    alice_again = RefreshableTokenCredentials(lambda: _token_of("alice2"), account="alice")
    bob = RefreshableTokenCredentials(lambda: _token_of("alice"), account="bob")
    keys = {
        "alice": _key(alice, redis_url=REDIS),
        "bob": _key(bob, redis_url=REDIS),
        "carol": _key(Signed(account="carol"), redis_url=REDIS),
        "ak1": _key(AkSkCredentials("AKONE0000000", "SK" * 10), redis_url=REDIS),
        "ak2": _key(AkSkCredentials("AKTWO0000000", "SK" * 10), redis_url=REDIS),
        "token1": _key(TokenCredentials("token-one-0123456789"), redis_url=REDIS),
        "token2": _key(TokenCredentials("token-two-0123456789"), redis_url=REDIS),
    }
    assert len(set(keys.values())) == len(keys)
    assert _key(alice_again, redis_url=REDIS) == keys["alice"]  # one user, new tokens
    for key in keys.values():
        assert key is not None
        assert not any(secret in key for secret in ("alice", "token-one", "AKONE"))


def test_an_account_must_be_a_non_empty_string() -> None:
    with pytest.raises(InvalidArgument, match="account"):
        RefreshableTokenCredentials(lambda: _token_of("a"), account="")


async def test_a_refused_user_never_gets_another_users_snapshot_even_sharing_keys(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        job_id = fake.add_job([snap("700000000000000001", "SUCCESS")])
        refused = AkSkCredentials(keys["ak"], "not-the-secret-key-at-all")
        shared = {"redis_url": redis_url, "redis_key": "imagejobs:{one-team}"}
        async with (
            fake.client(**shared) as a,
            fake.client(credentials=refused, **shared) as b,
        ):
            assert (await a.wait(job_id, FAST)).status.value == "SUCCESS"  # published
            asked = len(fake.requests)
            with pytest.raises(AuthenticationError):
                await b.wait(job_id, FAST)
            assert len(fake.requests) == asked + 1  # b asked for itself, and was refused
            assert [r.status for r in fake.requests[asked:]] == [401]


async def test_a_user_refused_after_being_accepted_stops_taking_snapshots(
    redis_url: str, keys: dict[str, Any]
) -> None:
    async with FakeWorkspace(**keys) as fake:
        first = fake.add_job([snap("700000000000000001", "SUCCESS")])
        second = fake.add_job([snap("700000000000000002", "SUCCESS")])
        async with (
            fake.client(redis_url=redis_url) as a,
            fake.client(redis_url=redis_url) as b,
        ):
            assert (await b.wait(first, FAST)).status.value == "SUCCESS"
            assert (await a.wait(second, FAST)).status.value == "SUCCESS"  # published
            fake.sk = "rotated-secret-key-0000"  # b's key is revoked; a is told... later
            before = len(fake.requests)
            with pytest.raises(AuthenticationError):
                await b.get_job(first)  # b learns it is refused
            with pytest.raises(AuthenticationError):
                await b.wait(second, FAST)  # and a's snapshot of second does not answer it
            assert all(r.status == 401 for r in fake.requests[before:])
