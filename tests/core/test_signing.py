"""AK/SK signing against the provider's own vectors, and the fake server's check. Pure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagejobs import AkSkCredentials
from imagejobs.core.signing import (
    format_date,
    host_header,
    parse_authorization,
    parse_date,
    sign_request,
    verify_signature,
)

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "signing-vectors.json").read_text()
)["vectors"]
AK, SK = "AKTESTEXAMPLE0000000", "SKtestexample0000000000000000000000000000"
WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def vector_url(vector: dict[str, Any]) -> str:
    query = urlencode([tuple(pair) for pair in vector["query"]], quote_via=quote)
    return f"https://{vector['host']}{vector['path']}" + (f"?{query}" if query else "")


def vector_headers(vector: dict[str, Any]) -> dict[str, str]:
    headers = {**vector["headers"], "X-Project-Id": vector["project_id"]}
    if vector["security_token"] is not None:
        headers["X-Security-Token"] = vector["security_token"]
    return headers


def test_there_are_vectors_for_every_case() -> None:
    assert len(VECTORS) == 6


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_sign_reproduces_the_official_vectors(vector: dict[str, Any]) -> None:
    signed = sign_request(
        vector["method"],
        vector_url(vector),
        vector_headers(vector),
        vector["body"].encode(),
        ak=vector["ak"],
        sk=vector["sk"],
        when=parse_date(vector["date"]),
    )
    assert signed.url == vector["expected_url"]
    assert signed.headers == vector["expected_headers"]


GET_VECTORS = [v for v in VECTORS if v["method"] == "GET" and not v["query"]]


@pytest.mark.parametrize("vector", GET_VECTORS, ids=[v["name"] for v in GET_VECTORS])
async def test_ak_sk_credentials_reproduce_the_get_vectors(vector: dict[str, Any]) -> None:
    credentials = AkSkCredentials(
        vector["ak"],
        vector["sk"],
        vector["security_token"],
        clock=lambda: parse_date(vector["date"]),
    )
    headers = await credentials.authorize(
        "GET", vector_url(vector), vector["headers"], vector["project_id"]
    )
    assert headers == vector["expected_headers"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_verify_accepts_each_vector_and_rejects_a_wrong_secret(vector: dict[str, Any]) -> None:
    url = vector["expected_url"]
    path, _, query = url.split(vector["host"], 1)[1].partition("?")
    args = (vector["method"], path, query, vector["expected_headers"], vector["body"].encode())
    now = parse_date(vector["date"]) + timedelta(minutes=1)

    def check(secrets: dict[str, str], at: datetime = now) -> str | None:
        return verify_signature(*args, secret_for=secrets.get, now=at)

    assert check({vector["ak"]: vector["sk"]}) is None
    assert check({vector["ak"]: "wrong"}) == "signature mismatch"
    assert check({}) == "unknown access key"
    assert check({vector["ak"]: vector["sk"]}, now + timedelta(minutes=15)) == "signature expired"


def _signed_get(headers: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    url = "http://127.0.0.1:8080/v1/p/image-server-jobs/1"
    signed = sign_request("GET", url, headers or {}, b"", ak=AK, sk=SK, when=WHEN)
    return "/v1/p/image-server-jobs/1", "", signed.headers


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda h: h.pop("Authorization"), "missing or malformed SDK-HMAC-SHA256"),
        (lambda h: h.update(Authorization="Bearer x"), "missing or malformed SDK-HMAC-SHA256"),
        (lambda h: h.update(Host="127.0.0.1:8081"), "signature mismatch"),
        (lambda h: h.update({"X-Sdk-Date": "20240102T030406Z"}), "signature mismatch"),
        (lambda h: h.update({"X-Sdk-Date": "yesterday"}), "missing or malformed X-Sdk-Date"),
        (lambda h: h.pop("X-Sdk-Date"), "missing or malformed X-Sdk-Date"),
    ],
)
def test_verify_names_what_is_wrong(change: Any, problem: str) -> None:
    path, query, headers = _signed_get()
    change(headers)
    result = verify_signature("GET", path, query, headers, b"", secret_for={AK: SK}.get, now=WHEN)
    assert result is not None
    assert result.startswith(problem)


def test_a_signature_that_does_not_cover_the_date_is_refused() -> None:
    path, query, headers = _signed_get()
    headers["Authorization"] = headers["Authorization"].replace(
        "SignedHeaders=host;x-sdk-date", "SignedHeaders=host"
    )
    result = verify_signature("GET", path, query, headers, b"", secret_for={AK: SK}.get, now=WHEN)
    assert result == "signed headers lack x-sdk-date"


def test_a_tampered_path_is_a_mismatch() -> None:
    _, query, headers = _signed_get()
    result = verify_signature(
        "GET", "/v1/p/image-server-jobs/2", query, headers, b"", secret_for={AK: SK}.get, now=WHEN
    )
    assert result == "signature mismatch"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://a.example.com/x", "a.example.com"),
        ("https://a.example.com:443/x", "a.example.com"),
        ("http://a.example.com:80/x", "a.example.com"),
        ("https://a.example.com:8443/x", "a.example.com:8443"),
        ("http://127.0.0.1:49152/x", "127.0.0.1:49152"),
        ("http://[::1]:8080/x", "[::1]:8080"),
    ],
)
def test_host_keeps_a_port_only_when_not_the_default(url: str, host: str) -> None:
    assert host_header(url) == host
    assert sign_request("GET", url, {}, b"", ak=AK, sk=SK, when=WHEN).headers["Host"] == host


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_date(datetime(2024, 1, 2))


def test_the_date_is_utc_whatever_the_zone() -> None:
    east = datetime(2024, 1, 2, 11, 4, 5, tzinfo=UTC).astimezone()
    assert format_date(east) == "20240102T110405Z"


segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=12
)


@given(
    segments=st.lists(segment, min_size=1, max_size=4),
    query=st.lists(st.tuples(segment, st.text(max_size=8)), max_size=4),
    extra=st.dictionaries(
        st.from_regex(r"X-[A-Za-z][A-Za-z-]{0,10}", fullmatch=True),
        st.from_regex(r"[ -~]{1,20}", fullmatch=True),
        max_size=3,
    ),
    body=st.binary(max_size=64),
)
def test_whatever_is_signed_verifies_and_any_other_secret_does_not(
    segments: list[str], query: list[tuple[str, str]], extra: dict[str, str], body: bytes
) -> None:
    path = "/" + "/".join(quote(s, safe="") for s in segments)
    url = f"https://h.example.com{path}" + (
        "?" + urlencode(query, quote_via=quote) if query else ""
    )
    signed = sign_request("POST", url, extra, body, ak=AK, sk=SK, when=WHEN)
    sent_path, _, sent_query = signed.url.removeprefix("https://h.example.com").partition("?")
    common = ("POST", sent_path, sent_query, signed.headers, body)
    assert verify_signature(*common, secret_for={AK: SK}.get, now=WHEN) is None
    assert (
        verify_signature(*common, secret_for={AK: SK + "x"}.get, now=WHEN) == "signature mismatch"
    )


def test_parse_authorization_hides_the_secret_parts_in_repr() -> None:
    _, _, headers = _signed_get()
    parsed = parse_authorization(headers["Authorization"])
    assert parsed is not None
    assert parsed.signed_headers == ("host", "x-sdk-date")
    assert AK not in repr(parsed)
    assert parsed.signature not in repr(parsed)
