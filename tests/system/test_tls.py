"""TLS: certificates are verified unless the caller trusts another authority."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import aiohttp
import pytest
import trustme

from imagejobs import InvalidArgument, RetryPolicy, TransportError
from imagejobs.testing import FakeWorkspace

JOB = "702364883651395584"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_fake(authority: trustme.CA, keys: dict[str, Any]) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    async with FakeWorkspace(ssl=context, **keys) as fake:
        fake.add_job([{"id": JOB, "status": "RUNNING"}])
        yield fake


async def test_a_certificate_from_an_unknown_authority_is_refused(tls_fake: FakeWorkspace) -> None:
    assert tls_fake.url.startswith("https://127.0.0.1:")
    async with tls_fake.client(retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get_job(JOB)
    assert tls_fake.requests == []  # nothing, credentials included, was sent


async def test_trusting_the_authority_explicitly_works(
    tls_fake: FakeWorkspace, authority: trustme.CA
) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    async with tls_fake.client(ssl=context) as client:
        assert (await client.get_job(JOB)).id == JOB
    assert tls_fake.requests[-1].headers["Authorization"].startswith("SDK-HMAC-SHA256 ")


async def test_turning_checks_off_takes_allow_insecure_too(
    tls_fake: FakeWorkspace, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidArgument, match="turns TLS certificate checks off"):
        tls_fake.client(ssl=False)
    with pytest.raises(InvalidArgument, match=r"ssl must be an ssl\.SSLContext"):
        tls_fake.client(ssl="no")
    with caplog.at_level(logging.WARNING, logger="imagejobs"):
        client = tls_fake.client(ssl=False, allow_insecure=True)
    assert "TLS certificate checks are off" in caplog.text
    async with client:
        assert (await client.get_job(JOB)).id == JOB


async def test_a_borrowed_session_that_checks_nothing_is_checked_anyway(
    tls_fake: FakeWorkspace,
) -> None:
    connector = aiohttp.TCPConnector(ssl=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        client = tls_fake.client(session=session, retry=RetryPolicy(max_attempts=1))
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get_job(JOB)
        await client.close()
    assert tls_fake.requests == []


async def test_a_context_that_checks_nothing_counts_as_ssl_false(tls_fake: FakeWorkspace) -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(InvalidArgument, match="checks nothing"):
        tls_fake.client(ssl=lax)
    async with tls_fake.client(ssl=lax, allow_insecure=True) as client:
        assert (await client.get_job(JOB)).id == JOB


async def test_a_borrowed_session_that_trusts_a_private_authority_keeps_it(
    tls_fake: FakeWorkspace, authority: trustme.CA
) -> None:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        tls_fake.client(session=session) as client,
    ):
        assert (await client.get_job(JOB)).id == JOB
