"""The wire format: JSON bodies to models and errors, and models back to JSON.

This is the only module that knows how the service spells things. It is pure:
it takes status codes, headers and bytes, and returns models or exceptions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar, cast

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

try:
    from orjson import loads as _orjson_import
except ImportError:  # the speedups extra is not installed: json alone
    _orjson_import = None  # type: ignore[assignment]

from .errors import (
    ApiError,
    AuthenticationError,
    BadRequest,
    JobNotFound,
    MalformedResponse,
    PermissionDenied,
    ServerError,
    Throttled,
)
from .models import (
    ExecuteInfo,
    ImageJob,
    ImageJobInfo,
    JobStatus,
    JobType,
    ResourceInfo,
    SubJob,
    SubJobStatus,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "Page",
    "converter",
    "decode_answer",
    "decode_error",
    "decode_response",
    "format_time",
    "from_wire",
    "parse_http_date",
    "parse_retry_after",
    "parse_time",
    "read_count",
    "read_job",
    "read_job_as",
    "read_job_page",
    "read_sub_job_page",
    "to_wire",
]

_T = TypeVar("_T")

_orjson_loads: Callable[[bytes], Any] | None = _orjson_import

MAX_PAGE_SIZE = 100
"""The most items a list gives a page: a larger ``limit`` is refused (400 ``WKS.00211102``)."""

# How much of an unexpected error body ends up in an exception message.
_RAW_TEXT_LIMIT = 200


class _WireTypeError(ValueError):
    """A value of the wrong JSON type or form; its message is shown as is."""


_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _describe(value: object) -> str:
    """Say what a wire value is, briefly and in JSON terms, for error messages."""
    kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    if value is None or isinstance(value, (list, dict)):
        return kind
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind})"


def _expect_str(value: object, _: object) -> str:
    if isinstance(value, str):
        return value
    raise _WireTypeError(f"expected a string, got {_describe(value)}")


def _expect_int(value: object, _: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _WireTypeError(f"expected an integer, got {_describe(value)}")


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time from the wire into an aware UTC datetime.

    Accepts ``Z`` or an offset, and a fraction of any length (digits past
    microseconds are dropped). A time without an offset is taken as UTC.
    Raises ``ValueError`` if ``text`` is not such a time.
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """Format a datetime the way the service does: UTC, ``Z``, no trailing zeros."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None, microsecond=0).isoformat()
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _structure_time(value: object, _: object) -> datetime:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise _WireTypeError(f"expected an ISO 8601 time, got {_describe(value)}")


def _structure_optional_time(value: object, _: object) -> datetime | None:
    # The service sends a running job's end_time as absent, null or "".
    if value is None or value == "":
        return None
    return _structure_time(value, None)


def _open_enum_hook(cls: Callable[[str], _T]) -> Callable[[object, object], _T]:
    def structure(value: object, _: object) -> _T:
        return cls(_expect_str(value, None))

    return structure


def _optional_hook_factory(conv: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    # cattrs looks the inner hook up on every call of an Optional field; bind it once.
    def factory(type_: Any) -> Callable[[Any, Any], Any]:
        inner_type = next(arg for arg in typing.get_args(type_) if arg is not type(None))
        inner = conv.get_structure_hook(inner_type)

        def structure(value: Any, _: Any) -> Any:
            return None if value is None else inner(value, inner_type)

        return structure

    return factory


def _is_optional(type_: Any) -> bool:
    args = typing.get_args(type_)
    return (
        typing.get_origin(type_) in (typing.Union, types.UnionType)
        and len(args) == 2
        and type(None) in args
        and datetime not in args
    )


def _make_converter() -> cattrs.Converter:
    # Detailed validation: it reads only the bodies the fast path leaves, and names the place.
    conv = cattrs.Converter(detailed_validation=True)
    conv.register_structure_hook(str, _expect_str)
    conv.register_structure_hook(int, _expect_int)
    conv.register_structure_hook(datetime, _structure_time)
    conv.register_structure_hook_func(lambda t: t == (datetime | None), _structure_optional_time)
    for enum_cls in (JobStatus, SubJobStatus, JobType):
        conv.register_structure_hook(enum_cls, _open_enum_hook(enum_cls))
    conv.register_structure_hook_factory(_is_optional, _optional_hook_factory(conv))

    default_sub_jobs = conv.get_structure_hook(tuple[SubJob, ...])

    def structure_sub_jobs(value: object, type_: Any) -> tuple[SubJob, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise _WireTypeError(f"expected an array, got {_describe(value)}")
        result: tuple[SubJob, ...] = default_sub_jobs(value, type_)
        return result

    conv.register_structure_hook_func(lambda t: t == tuple[SubJob, ...], structure_sub_jobs)

    for model in (ResourceInfo, ExecuteInfo, SubJob, ImageJob, ImageJobInfo):
        conv.register_structure_hook(model, _object_hook(make_dict_structure_fn(model, conv)))

    conv.register_unstructure_hook(datetime, format_time)
    # Absent optional values stay absent on the wire; an empty list does not.
    for model in (ResourceInfo, ExecuteInfo, SubJob, ImageJobInfo):
        unstructure = make_dict_unstructure_fn(model, conv, _cattrs_omit_if_default=True)
        conv.register_unstructure_hook(model, unstructure)
    unstructure_job = make_dict_unstructure_fn(
        ImageJob,
        conv,
        _cattrs_omit_if_default=True,
        sub_jobs=override(omit_if_default=False),
    )
    conv.register_unstructure_hook(ImageJob, unstructure_job)
    return conv


def _object_hook(hook: Callable[[Any, Any], _T]) -> Callable[[object, Any], _T]:
    # cattrs would read a string as an object with every field absent.
    def structure(value: object, type_: Any) -> _T:
        if not isinstance(value, dict):
            raise _WireTypeError(f"expected an object, got {_describe(value)}")
        return hook(value, type_)

    return structure


converter = _make_converter()
"""The one converter between wire dictionaries and models."""


# --- the fast path ------------------------------------------------------------------
#
# Nearly every body is well formed, and a cattrs hook per field costs more than the
# JSON parse. So each model also gets a reader generated from its attrs fields, by
# the rules above, that does the least work for the usual case: plain types checked
# inline, times and enum members looked up, the instance filled in slot by slot.
# Anything else (a wrong type, an odd time, a missing field) makes it give up, and
# ``converter`` decodes that body: it is the judge, and the one that names errors.
# tests/core/test_fastpath.py holds the two to the same answers over mutated bodies.


class _NotPlain(Exception):
    """A value the fast path leaves to the converter."""


_TIMES_KEPT = 4096
# A job's times repeat from poll to poll: parse each once, within a bound.
_times: dict[str, datetime] = {}


def _fast_time(value: object) -> datetime | None:
    if value.__class__ is not str:
        raise _NotPlain
    if value == "":
        return None  # a running job's end_time
    parsed = parse_time(value)
    if len(_times) >= _TIMES_KEPT:
        _times.clear()
    _times[value] = parsed
    return parsed


def _fast_enum(cls: Callable[[str], _T], value: object) -> _T:
    if value.__class__ is not str:
        raise _NotPlain
    return cls(value)


def _fast_reader(model: type[Any]) -> Callable[[object], Any]:
    """Generate the fast reader of one model (see above); TypeError for a field it cannot do."""
    if getattr(model, "__attrs_post_init__", None) is not None:
        raise TypeError(f"{model.__name__}: no fast path past __attrs_post_init__")
    attrs.resolve_types(model)  # the models' annotations are strings until resolved
    names: dict[str, object] = {
        "_new": object.__new__,
        "_model": model,
        "_not_plain": _NotPlain,
        "_times": _times,
        "_time": _fast_time,
        "_enum": _fast_enum,
    }
    lines = [
        "def read(o):",
        "    if o.__class__ is not dict:",
        "        raise _not_plain",
        "    x = _new(_model)",
    ]
    for field in attrs.fields(model):
        name = field.name
        if field.validator is not None or field.converter is not None or not field.init:
            raise TypeError(
                f"{model.__name__}.{name}: no fast path past a validator, a converter or init=False"
            )
        names[f"_set_{name}"] = model.__dict__[name].__set__
        lines += _fast_field(model, field, names)
        lines.append(f"    _set_{name}(x, v)")
    lines.append("    return x")
    namespace: dict[str, Callable[[object], Any]] = {}
    exec(compile("\n".join(lines), f"<fast reader of {model.__name__}>", "exec"), names, namespace)  # noqa: S102  # our own text, from attrs fields
    return namespace["read"]


def _fast_field(model: type, field: attrs.Attribute[Any], names: dict[str, object]) -> list[str]:
    """The lines that leave field ``field``'s value in ``v``, or raise ``_not_plain``."""
    name, type_ = field.name, field.type
    required = field.default is attrs.NOTHING
    optional = _is_optional(type_) or type_ == (datetime | None)
    inner = next((a for a in typing.get_args(type_) if a is not type(None)), type_)
    if not required and not (optional and field.default is None) and type_ != tuple[SubJob, ...]:
        raise TypeError(f"{model.__name__}.{name}: no fast path for its default")
    get = f"    v = o[{name!r}]" if required else f"    v = o.get({name!r})"
    if type_ == tuple[SubJob, ...] and field.default == ():
        names["_read_sub_job"] = _FAST_SUB_JOB
        return [
            get,
            "    if v is None:",
            "        v = ()",
            "    elif v.__class__ is list:",
            "        v = tuple([_read_sub_job(item) for item in v])",
            "    else:",
            "        raise _not_plain",
        ]
    if inner in (str, int):
        names[f"_type_{name}"] = inner
        test = f"v.__class__ is not _type_{name}"
        return [
            get,
            f"    if {'v is not None and ' if optional else ''}{test}:",
            "        raise _not_plain",
        ]
    if inner is datetime and optional:
        return [
            get,
            "    if v is not None:",
            "        t = _times.get(v)",
            "        v = t if t is not None else _time(v)",
        ]
    if inner in (JobStatus, SubJobStatus, JobType):
        names[f"_members_{name}"] = {member.value: member for member in inner}
        names[f"_class_{name}"] = inner
        body = [
            "m = _members_{0}.get(v)",
            "v = m if m is not None else _enum(_class_{0}, v)",
        ]
        if optional:
            return [get, "    if v is not None:", *(f"        {b.format(name)}" for b in body)]
        return [get, *(f"    {b.format(name)}" for b in body)]
    if inner in _FAST and optional:
        names[f"_read_{name}"] = _FAST[inner]
        return [get, "    if v is not None:", f"        v = _read_{name}(v)"]
    raise TypeError(f"{model.__name__}.{name}: no fast path for {type_!r}")


_FAST: dict[type, Callable[[object], Any]] = {}
_FAST[ResourceInfo] = _fast_reader(ResourceInfo)
_FAST[ExecuteInfo] = _fast_reader(ExecuteInfo)
_FAST_SUB_JOB = _FAST[SubJob] = _fast_reader(SubJob)
_FAST_IMAGE_JOB = _FAST[ImageJob] = _fast_reader(ImageJob)
_FAST[ImageJobInfo] = _fast_reader(ImageJobInfo)


def _format_error(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _WireTypeError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def from_wire(data: object) -> ImageJob:
    """Build an :class:`ImageJob` from a decoded JSON value.

    Unknown fields are ignored and unknown enum values kept. Raises :class:`MalformedResponse`
    naming the JSON path of the first bad value when a required field (``id``, ``status``)
    is missing or a value has the wrong type."""
    return _structure(data, ImageJob, "job")


def _structure(data: object, model: type[_T], what: str, path: str = "$") -> _T:
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {_describe(data)}", path)
    try:
        result: _T = _FAST[model](data)
    except Exception:  # noqa: BLE001  # decoded again, by the judge
        return _judged(data, model, what, path)
    return result


def _judged(data: dict[str, Any], model: type[_T], what: str, path: str = "$") -> _T:
    """Decode with the converter: a body the fast path left, read or named wrong."""
    try:
        return converter.structure(data, model)
    except (cattrs.ClassValidationError, cattrs.IterableValidationError) as exc:
        problems = cattrs.transform_error(exc, format_exception=_format_error)
    except Exception as exc:  # no parse failure may escape untyped
        raise MalformedResponse(f"unreadable {what} ({type(exc).__name__})", path) from exc
    detail, _, where = problems[0].rpartition(" @ ")
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    raise MalformedResponse(detail, path + where.removeprefix("$"))


@attrs.frozen
class Page(Generic[_T]):
    """One page of a list: ``count`` items match in all, ``items`` are this page's."""

    count: int
    items: tuple[_T, ...]


def _page(data: object, model: type[_T], what: str) -> Page[_T]:
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {_describe(data)}")
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise MalformedResponse(f"expected a count of 0 or more, got {_describe(count)}", "$.count")
    items = data.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise MalformedResponse(f"expected an array, got {_describe(items)}", "$.items")
    return Page(
        count, tuple(_structure(item, model, what, f"$.items[{n}]") for n, item in enumerate(items))
    )


def read_job(job_id: str | None = None) -> Callable[[bytes], ImageJob]:
    """Return a reader of a job's details (that must be job ``job_id``, if given)."""
    return functools.partial(read_job_as, job_id)


def read_job_as(job_id: str | None, body: bytes) -> ImageJob:
    """Read a job's details, that must be job ``job_id`` if given: one reader for all jobs."""
    if _orjson_loads is not None:
        return _decoded(body, functools.partial(_job_as, job_id))
    # _decoded without orjson spelled out: it runs on every poll whose answer changed.
    data = _load_json(body)
    if data.__class__ is not dict or "id" not in data:
        return _job_as(job_id, data)
    try:
        found: ImageJob = _FAST_IMAGE_JOB(data)
    except Exception:  # noqa: BLE001  # the judge reads it, or names what is wrong
        found = _judged(data, ImageJob, "job")
    return _asked_for(job_id, found)


def _job_as(job_id: str | None, data: object) -> ImageJob:
    if data.__class__ is dict and "id" not in data and "error_code" in data:
        raise _ErrorBody("a job", data)
    return _asked_for(job_id, from_wire(data))


def _asked_for(job_id: str | None, job: ImageJob) -> ImageJob:
    if job_id is not None and job.id != job_id:
        detail = f"the answer is job {job.id!r}, not the job asked for ({job_id!r})"
        raise MalformedResponse(detail, "$.id")
    return job


def read_job_page(body: bytes) -> Page[ImageJobInfo]:
    """Read a page of the job list (``{"count": n, "items": [...]}``)."""
    return _decoded(body, _job_page)


def _job_page(data: object) -> Page[ImageJobInfo]:
    return _page(_not_an_error(data, "a job list"), ImageJobInfo, "job")


def read_sub_job_page(body: bytes) -> Page[SubJob]:
    """Read a page of the sub-job list (``{"count": n, "items": [...]}``)."""
    return _decoded(body, _sub_job_page)


def _sub_job_page(data: object) -> Page[SubJob]:
    return _page(_not_an_error(data, "a sub-job list"), SubJob, "sub-job")


def read_count(body: bytes) -> int:
    """Read the sub-job count (``{"count": n}``)."""
    return _decoded(body, _count)


def _count(data: object) -> int:
    data = _not_an_error(data, "a count")
    if not isinstance(data, dict):
        raise MalformedResponse(f"expected a JSON object, got {_describe(data)}")
    count = data.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise MalformedResponse(f"expected a count of 0 or more, got {_describe(count)}", "$.count")
    return count


def _not_an_error(data: object, what: str) -> object:
    if isinstance(data, dict) and "count" not in data and "error_code" in data:
        raise _ErrorBody(what, data)
    return data


class _ErrorBody(MalformedResponse):
    """A 2xx whose body is the service's error object; :func:`decode_answer` names the status."""

    def __init__(self, what: str, data: dict[str, Any]) -> None:
        self.what = what
        self.code = data.get("error_code")
        self.msg = data.get("error_msg")
        super().__init__(f"the body is an error, not {what}: {self.code}: {self.msg}")


def to_wire(job: ImageJob | ImageJobInfo | SubJob) -> dict[str, Any]:
    """Return the JSON-ready dictionary the service would send for a job, list item or sub-job."""
    return cast("dict[str, Any]", converter.unstructure(job))


def _decoded(body: bytes, read: Callable[[object], _T]) -> _T:
    """Return what ``read`` makes of the body's JSON value.

    With the ``speedups`` extra, orjson parses it, and json only where the two could
    differ: json reads what orjson refuses (NaN, a lone surrogate, a BOM), and orjson
    reads an integer past 64 bits as a float, which no model field takes; so a body
    orjson cannot parse, or whose value ``read`` refuses, is read again from json's
    parse, and json's answer (or error) is the one given."""
    if _orjson_loads is not None:
        try:
            data = _orjson_loads(body)
        except ValueError:
            pass
        else:
            with contextlib.suppress(MalformedResponse):
                return read(data)
    return read(_load_json(body))


def _load_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = "empty body" if not body.strip() else f"body is not JSON ({exc})"
        raise MalformedResponse(reason) from exc


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def parse_http_date(value: str | None) -> datetime | None:
    """Return an HTTP date as an aware UTC datetime, or ``None`` if it is not one.

    A date without a zone, or with ``-0000`` ("UTC, local zone unknown"), is UTC.
    Never raises: a header is outside input, and an absurd year is just unusable.
    """
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
        if when.tzinfo is None:
            return when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# RFC 9110's delta-seconds, ASCII digits only (float() would take "1_0" or "٣"), and a
# fraction, which some gateways send.
_DELTA_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Return a ``Retry-After`` header's delay in seconds, or ``None`` if unusable.

    Accepts delta-seconds and HTTP dates (relative to ``now``); never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        when = parse_http_date(value)
        if when is None:
            return None
        try:
            seconds = (when - now).total_seconds()
        except OverflowError:
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_ERROR_CLASSES: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: JobNotFound,
    405: BadRequest,
    429: Throttled,
}


def _error_class(status: int) -> type[ApiError]:
    if 500 <= status <= 599:
        return ServerError
    return _ERROR_CLASSES.get(status, ApiError)


def _raw_text(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if not text:
        return "empty response body"
    if len(text) > _RAW_TEXT_LIMIT:
        text = text[: _RAW_TEXT_LIMIT - 3] + "..."
    return text


def decode_error(
    status: int,
    body: bytes,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Build the :class:`ApiError` subclass for an error response.

    The documented body is ``{"error_code": ..., "error_msg": ...}``; any other
    body still gives the subclass for ``status``, with its text trimmed into
    ``error_msg`` and ``error_code`` ``None``.
    """
    cls = _error_class(status)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        code, msg = data.get("error_code"), data.get("error_msg")
        if isinstance(code, str) and isinstance(msg, str):
            body_request_id = data.get("request_id")
            if request_id is None and isinstance(body_request_id, str):
                request_id = body_request_id
            return cls(status, code, msg, request_id, retry_after)
    return cls(status, None, _raw_text(body), request_id, retry_after)


def decode_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
    *,
    job_id: str | None = None,
) -> ImageJob:
    """Turn one HTTP response into a job, or raise what it means.

    Raises the :class:`ApiError` subclass for an error status, and
    :class:`MalformedResponse` for a 2xx body that is not a job, that is an
    error object, or (given ``job_id``, the job asked for) that is another job.
    ``now`` is used to read a ``Retry-After`` given as a date (default: now).
    """
    return decode_answer(status, headers, body, read_job(job_id), now)


def decode_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    read: Callable[[bytes], _T],
    now: datetime | None = None,
) -> _T:
    """Turn one HTTP response into what ``read`` makes of a 2xx body, or raise what it means.

    As :func:`decode_response`, for any answer: ``read`` is :func:`read_job`,
    :func:`read_job_page`, :func:`read_sub_job_page` or :func:`read_count`.
    """
    if 200 <= status <= 299:
        try:
            return read(body)
        except _ErrorBody as exc:
            detail = f"a {status} whose body is an error, not {exc.what}: {exc.code}: {exc.msg}"
            request_id = _header(headers, "X-Request-Id")
            raise MalformedResponse(detail, exc.path, status, request_id) from exc
        except MalformedResponse as exc:
            request_id = _header(headers, "X-Request-Id")
            raise MalformedResponse(exc.detail, exc.path, status, request_id) from exc
    request_id = _header(headers, "X-Request-Id")
    retry_after = parse_retry_after(_header(headers, "Retry-After"), now or datetime.now(UTC))
    raise decode_error(status, body, request_id, retry_after)
