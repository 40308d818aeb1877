"""AK/SK request signing, algorithm ``SDK-HMAC-SHA256``. Pure: no clock, no I/O.

The gateway recomputes the signature from the request it receives, so both
sides must build the same canonical request: the method, the path with each
segment re-encoded, the sorted query, every signed header (lower-case name,
stripped value), the list of signed headers, and the SHA-256 of the body.
:func:`sign_request` is what a client sends; :func:`verify_signature` is what
the fake server checks.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import attrs

from imagejobs.core.memo import memo

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "MAX_SIGNATURE_AGE",
    "Authorization",
    "HeaderSetSigner",
    "SignedRequest",
    "canonical_request",
    "format_date",
    "host_header",
    "parse_authorization",
    "parse_date",
    "sign_request",
    "signature",
    "verify_signature",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM} Access=(?P<access>[^,\s]+), "
    r"SignedHeaders=(?P<signed>[^,\s]+), Signature=(?P<signature>[0-9a-f]{64})$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}

_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

MAX_SIGNATURE_AGE = timedelta(minutes=15)
"""How far ``X-Sdk-Date`` may be from the gateway's clock, either way."""


@attrs.frozen
class SignedRequest:
    """The URL to send (canonical query) and every header to send with it."""

    url: str
    headers: dict[str, str] = attrs.field(repr=False)


@attrs.frozen
class Authorization:
    """The parts of an ``Authorization`` header."""

    access: str = attrs.field(repr=False)
    signed_headers: tuple[str, ...]
    signature: str = attrs.field(repr=False)


def format_date(when: datetime) -> str:
    """Return ``when`` as an ``X-Sdk-Date`` value (UTC, ``%Y%m%dT%H%M%SZ``)."""
    if when.tzinfo is None:
        raise ValueError("the signing time must be timezone-aware")
    t = when.astimezone(UTC)
    # strftime spells the same; this runs on every request and costs a fifth.
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def parse_date(value: str) -> datetime:
    """Return the aware UTC time an ``X-Sdk-Date`` value names; ValueError if malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)


@memo(maxsize=256)
def host_header(url: str) -> str:
    """Return the ``Host`` value a URL is sent with: the port only when not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


# A waiter signs the same few paths over and over: remember their canonical forms.
@memo(maxsize=4096)
def _canonical_uri(path: str) -> str:
    segments = [quote(segment, safe="~") for segment in unquote(path).split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def _signed_header_names(headers: Mapping[str, str]) -> list[str]:
    # The provider's signer leaves out any header whose name holds an underscore.
    return sorted({name.lower() for name in headers if "_" not in name})


def canonical_request(
    method: str,
    path: str,
    query: str,
    *,
    headers: Mapping[str, str],
    signed_headers: list[str] | tuple[str, ...],
    body: bytes,
) -> str:
    """Return the canonical request text that the signature covers.

    ``path`` and ``query`` are as sent (percent-encoded); ``headers`` is looked
    up case-insensitively for each of ``signed_headers`` (lower-case names).
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    lines = [
        method.upper(),
        _canonical_uri(path),
        _canonical_query(query),
        *(f"{name}:{by_name.get(name, '').strip()}" for name in signed_headers),
        "",
        ";".join(signed_headers),
        _EMPTY_BODY_SHA256 if not body else hashlib.sha256(body).hexdigest(),
    ]
    return "\n".join(lines)


def signature(sk: str, date: str, canonical: str) -> str:
    """Return the hex HMAC-SHA256 of the string to sign for ``canonical``."""
    return _signature(_keyed(sk.encode()), date, canonical)


# Copies of ready contexts: OpenSSL looks SHA-256 up by name on every new one.
_SHA256 = hashlib.sha256()


class _Mac(Protocol):
    """An HMAC context: :class:`hmac.HMAC`, or the OpenSSL one inside it."""

    def copy(self) -> _Mac: ...
    def update(self, msg: bytes) -> None: ...
    def hexdigest(self) -> str: ...


def _keyed(key: bytes) -> _Mac:
    """An HMAC-SHA256 context with the key already mixed in, to copy for each message."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    # The OpenSSL context hmac.HMAC wraps, where there is one: copying it is one C
    # call, where the wrapper's copy is Python making a new wrapper around a copy.
    inner: _Mac | None = getattr(mac, "_hmac", None)
    return mac if inner is None else inner


def _signature(keyed: _Mac, date: str, canonical: str) -> str:
    digest = _SHA256.copy()
    digest.update(canonical.encode())
    mac = keyed.copy()
    mac.update(f"{ALGORITHM}\n{date}\n{digest.hexdigest()}".encode())
    return mac.hexdigest()


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    ak: str,
    sk: str,
    when: datetime,
) -> SignedRequest:
    """Sign a request: add ``X-Sdk-Date``, ``Host`` (if missing) and ``Authorization``.

    ``headers`` already holds everything else to be signed (``X-Project-Id``,
    ``X-Security-Token``...). The returned URL carries the canonical query.
    """
    layout = _layout(method, url, tuple(headers.items()))
    return SignedRequest(layout.url, layout.sign(ak, _keyed(sk.encode()), format_date(when), body))


class HeaderSetSigner:
    """Signs requests that all carry one header set: the layout is looked up by URL alone.

    What a client holds for its constant headers; ``headers(url, date)`` equals the
    headers :func:`sign_request` gives for the time ``date`` formats (with
    ``changing_only``, its ``X-Sdk-Date`` and ``Authorization`` alone).
    """

    __slots__ = ("_ak", "_changing_only", "_items", "_layouts", "_mac", "_method")

    def __init__(
        self,
        method: str,
        headers: Mapping[str, str],
        *,
        ak: str,
        key: bytes,
        changing_only: bool = False,
    ) -> None:
        self._method = method
        self._items = tuple(headers.items())
        self._ak = ak
        self._mac = _keyed(key)
        self._layouts: dict[str, _Layout] = {}
        # Only X-Sdk-Date and Authorization, for a session that sends the rest itself
        # (the headers given, and Host): fewer headers for the HTTP library to merge.
        self._changing_only = changing_only

    def __repr__(self) -> str:
        return f"HeaderSetSigner(method={self._method!r}, urls={len(self._layouts)})"

    def constant_headers(self, url: str) -> dict[str, str]:
        """Return the headers every request to ``url`` carries: all but what signing adds."""
        base = _layout(self._method, url, self._items).base
        return {name: value for name, value in base.items() if name != "X-Sdk-Date"}

    def headers(self, url: str, date: str, body: bytes = b"") -> dict[str, str]:
        """Return every header to send to ``url``, signed at ``date`` (an ``X-Sdk-Date``)."""
        layout = self._layouts.get(url)
        if layout is None:
            if len(self._layouts) >= _LAYOUTS_KEPT:
                del self._layouts[next(iter(self._layouts))]  # the oldest URL
            layout = self._layouts[url] = _layout(self._method, url, self._items)
            if self._changing_only:
                layout.base = {}
        return layout.sign(self._ak, self._mac, date, body)


_LAYOUTS_KEPT = 8192


class _Layout:
    """What a signature over one method, URL and header set keeps: all but the date and body.

    The canonical request is ``date.join(pieces)`` followed by the body's hash:
    the date is the one signed value that changes from request to request.
    """

    __slots__ = ("base", "names", "pieces", "url")

    def __init__(self, url: str, base: dict[str, str], pieces: list[str], names: str) -> None:
        self.url = url
        self.base = base
        self.pieces = pieces
        self.names = names

    def sign(self, ak: str, keyed: _Mac, date: str, body: bytes) -> dict[str, str]:
        body_hash = _EMPTY_BODY_SHA256 if not body else hashlib.sha256(body).hexdigest()
        value = _signature(keyed, date, date.join(self.pieces) + body_hash)
        headers = self.base.copy()
        headers["X-Sdk-Date"] = date
        headers["Authorization"] = (
            f"{ALGORITHM} Access={ak}, SignedHeaders={self.names}, Signature={value}"
        )
        return headers


# Where the date goes in a layout's canonical request. NUL is in no header value
# HTTP allows, and the path and query are percent-encoded, so it marks only the date.
_DATE_SLOT = "\x00X-Sdk-Date\x00"


# Not cached here: the header set may hold a security token, and a signer keeps
# the layouts of its own header set (see HeaderSetSigner).
def _layout(method: str, url: str, header_items: tuple[tuple[str, str], ...]) -> _Layout:
    """The canonical request of :func:`canonical_request`, cut where the date goes."""
    parts = urlsplit(url)
    signed = {**dict(header_items), "X-Sdk-Date": _DATE_SLOT}
    if not any(name.lower() == "host" for name in signed):
        signed["Host"] = host_header(url)
    names = _signed_header_names(signed)
    query = _canonical_query(parts.query)
    canonical = canonical_request(
        method, parts.path, query, headers=signed, signed_headers=names, body=b""
    )
    pieces = canonical.removesuffix(_EMPTY_BODY_SHA256).split(_DATE_SLOT)
    sent_url = f"{parts.scheme}://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    return _Layout(sent_url, signed, pieces, ";".join(names))


def parse_authorization(value: str) -> Authorization | None:
    """Return the parts of an ``SDK-HMAC-SHA256`` ``Authorization`` value, or None."""
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        return None
    return Authorization(match["access"], tuple(match["signed"].split(";")), match["signature"])


def verify_signature(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_for: Callable[[str], str | None],
    now: datetime,
    max_age: timedelta = MAX_SIGNATURE_AGE,
) -> str | None:
    """Check a received request's signature as the gateway does.

    ``secret_for`` maps an access key to its secret (None if unknown). Return
    None if the request is properly signed, or what is wrong with it:
    ``"signature mismatch"``, ``"signature expired"``, or a missing piece.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    authorization = parse_authorization(by_name.get("authorization", ""))
    if authorization is None:
        return f"missing or malformed {ALGORITHM} Authorization header"
    missing = {"host", "x-sdk-date"} - set(authorization.signed_headers)
    if missing:
        return f"signed headers lack {', '.join(sorted(missing))}"
    try:
        signed_at = parse_date(by_name["x-sdk-date"])
    except (KeyError, ValueError):
        return "missing or malformed X-Sdk-Date header"
    secret = secret_for(authorization.access)
    if secret is None:
        return "unknown access key"
    canonical = canonical_request(
        method, path, query, headers=by_name, signed_headers=authorization.signed_headers, body=body
    )
    expected = signature(secret, by_name["x-sdk-date"], canonical)
    if not hmac.compare_digest(expected, authorization.signature):
        return "signature mismatch"
    if abs(now - signed_at) > max_age:
        return "signature expired"
    return None
