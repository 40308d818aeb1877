"""TLS: certificates are verified unless the caller trusts another authority."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trustme

from imagejobs import RetryPolicy, TransportError
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
