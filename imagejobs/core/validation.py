"""Checks on values that end up in a URL path or a header, made before any request."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable

import attrs

from .errors import InvalidArgument

__all__ = ["check_header_value", "check_id", "check_ids", "is_host", "number_validator"]

_UNSAFE_HEADER_VALUE = re.compile(r"[\x00-\x1f\x7f]")

# Real IDs are 18-digit job numbers and 32-hex project IDs; this leaves room
# for other formats while refusing anything that could leave the path segment.
_MAX_ID_LENGTH = 128
_FORBIDDEN_IN_ID = re.compile(r"[\s/\\\x00-\x1f\x7f]")
# What every real ID looks like, passed by one match: a wait on 100,000 IDs checks
# them all in one step of the caller's, which the checks below would make longer.
_PLAIN_ID = re.compile(rf"[0-9A-Za-z_-]{{1,{_MAX_ID_LENGTH}}}")
# The same, for many IDs joined by newlines (which no ID may hold): one match for all.
_PLAIN_IDS = re.compile(rf"{_PLAIN_ID.pattern}(?:\n{_PLAIN_ID.pattern})*")


def check_ids(name: str, values: Iterable[object]) -> list[str]:
    """Return ``values`` as a list if :func:`check_id` takes each; else raise what it
    raises for the first it refuses.

    IDs of the characters every real ID is made of pass by one match over them all:
    a wait on 100,000 IDs checks them in one step of the caller's, a few milliseconds.
    """
    ids = list(values)
    try:
        joined = "\n".join(ids)  # type: ignore[arg-type]  # refused below if not all str
    except TypeError:
        joined = ""
    # As many newlines as joins: a newline within an ID is no separator.
    if joined.count("\n") != len(ids) - 1 or not _PLAIN_IDS.fullmatch(joined):
        for value in ids:
            check_id(name, value)
    return ids  # type: ignore[return-value]  # each checked to be a str


def check_id(name: str, value: object) -> str:
    """Return ``value`` if it is usable as a project or job ID in a URL path.

    Raises :class:`InvalidArgument` naming the problem: not a string, empty,
    longer than 128 characters, ``.`` or ``..``, or containing ``/``, ``\\``,
    whitespace or a control character.
    """
    if type(value) is str and _PLAIN_ID.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidArgument(f"{name} must not be empty")
    shown = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if len(value) > _MAX_ID_LENGTH:
        raise InvalidArgument(
            f"{name} {shown} is too long ({len(value)} characters, at most {_MAX_ID_LENGTH})"
        )
    if value in (".", ".."):
        raise InvalidArgument(f"{name} must not be {value!r}")
    bad = _FORBIDDEN_IN_ID.search(value)
    if bad:
        raise InvalidArgument(f"{name} {shown} contains {bad.group()!r}, not allowed in an ID")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: what Python makes of bytes that are not UTF-8 (argv, files).
        raise InvalidArgument(f"{name} {shown} is not valid Unicode text") from None
    return value


# RFC 1123 labels (underscores tolerated, as resolvers do), after IDNA encoding.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?",
    re.ASCII,
)


def is_host(text: str) -> bool:
    """Whether ``text`` is an IP address or a host name a URL can carry (IDNA allowed)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return True
    try:
        encoded = text.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return bool(_HOST_NAME.fullmatch(encoded))


def check_header_value(name: str, value: object) -> str:
    """Return ``value`` if it can be sent as an HTTP header value.

    Raises :class:`InvalidArgument` (without echoing the value, which may be a
    secret) if it is not a non-empty string free of CR, LF and other controls.
    """
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidArgument(f"{name} must not be empty")
    if _UNSAFE_HEADER_VALUE.search(value):
        raise InvalidArgument(f"{name} contains a control character (CR, LF, ...)")
    return value


def number_validator(
    *, minimum: float, allow_none: bool = False, whole: bool = False, unit: str = "seconds"
) -> Callable[..., None]:
    """Return an attrs validator for a finite number (of ``unit``) of at least ``minimum``.

    It raises :class:`InvalidArgument` naming the field; ``whole`` demands an ``int``.
    """

    def check(_: object, attribute: attrs.Attribute[object], value: object) -> None:
        if value is None and allow_none:
            return
        kinds = (int,) if whole else (int, float)
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < minimum:  # type: ignore[arg-type, operator]
            bound = "positive" if minimum > 0 else "not negative"
            kind = "a whole number" if whole else f"a finite number of {unit}"
            raise InvalidArgument(f"{attribute.name} must be {kind}, {bound}, got {value!r}")

    return check
