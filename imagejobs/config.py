"""Settings for :meth:`Client.from_env`: arguments, then the environment, then a file.

The environment uses the provider SDK's own variable names where it has them.
The credentials file is the provider's INI file (section ``[basic]``). Resolution
is pure (:func:`resolve`); only :func:`from_environment` reads the process
environment and the file.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .core.errors import ConfigurationError, InvalidArgument
from .core.regions import endpoint_for
from .transport.credentials import AkSkCredentials, Credentials, TokenCredentials

__all__ = [
    "ENV_AK",
    "ENV_AUTH_TOKEN",
    "ENV_CREDENTIALS_FILE",
    "ENV_ENDPOINT",
    "ENV_FLEET_RATE",
    "ENV_PROJECT_ID",
    "ENV_REDIS_URL",
    "ENV_REGION",
    "ENV_SECURITY_TOKEN",
    "ENV_SK",
    "default_credentials_file",
    "from_environment",
    "read_credentials_file",
    "resolve",
]

ENV_AK = "HUAWEICLOUD_SDK_AK"
ENV_SK = "HUAWEICLOUD_SDK_SK"
ENV_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
ENV_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
ENV_CREDENTIALS_FILE = "HUAWEICLOUD_SDK_CREDENTIALS_FILE"
ENV_AUTH_TOKEN = "IMAGEJOBS_AUTH_TOKEN"  # noqa: S105 - a variable name
ENV_REGION = "IMAGEJOBS_REGION"
ENV_ENDPOINT = "IMAGEJOBS_ENDPOINT"
ENV_REDIS_URL = "IMAGEJOBS_REDIS_URL"
ENV_FLEET_RATE = "IMAGEJOBS_FLEET_RATE"

_SECTION = "basic"


def default_credentials_file(environ: Mapping[str, str]) -> Path:
    """Return the credentials file to read: the one the environment names, or the default."""
    named = environ.get(ENV_CREDENTIALS_FILE, "").strip()
    return Path(named).expanduser() if named else Path.home() / ".huaweicloud" / "credentials"


def read_credentials_file(path: Path, *, required: bool) -> dict[str, str]:
    """Return the ``[basic]`` keys of the provider's credentials file.

    A missing file gives ``{}`` unless ``required``. Raises :class:`ConfigurationError`
    for a file that cannot be read or parsed; the message never quotes its content.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigurationError(
                f"credentials file {path} (named by {ENV_CREDENTIALS_FILE}) does not exist"
            ) from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"cannot read credentials file {path}: {reason}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        # Only where: the messages of these errors quote the offending line.
        lines = [number for number, _ in getattr(exc, "errors", [])]
        if isinstance(exc, configparser.MissingSectionHeaderError):
            lines = [exc.lineno]
        where = f"line {', '.join(map(str, lines))}" if lines else type(exc).__name__
        raise ConfigurationError(
            f"credentials file {path} is not valid INI ({where}); it needs a [basic] section"
        ) from None
    if not parser.has_section(_SECTION):
        return {}
    return {key: value.strip() for key, value in parser.items(_SECTION) if value.strip()}


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # CI systems often define a variable as empty rather than leaving it out.
    value = environ.get(name, "").strip()
    return value or None


def _credentials(environ: Mapping[str, str], file: _File) -> Credentials:
    ak, sk = _env(environ, ENV_AK), _env(environ, ENV_SK)
    security_token = _env(environ, ENV_SECURITY_TOKEN)
    token = _env(environ, ENV_AUTH_TOKEN)
    if (ak or sk) and token:
        raise ConfigurationError(
            f"both an access key ({ENV_AK}/{ENV_SK}) and a token ({ENV_AUTH_TOKEN}) are set; "
            "unset one, or pass credentials="
        )
    if ak or sk:
        if not (ak and sk):
            present, absent = (ENV_AK, ENV_SK) if ak else (ENV_SK, ENV_AK)
            raise ConfigurationError(f"{present} is set but {absent} is not")
        return AkSkCredentials(ak, sk, security_token)
    if security_token:
        raise ConfigurationError(f"{ENV_SECURITY_TOKEN} is set without {ENV_AK} and {ENV_SK}")
    if token:
        return TokenCredentials(token)
    keys = file.keys()
    if "ak" in keys or "sk" in keys:
        if not ("ak" in keys and "sk" in keys):
            absent = "sk" if "ak" in keys else "ak"
            raise ConfigurationError(f"credentials file {file.name} has no {absent} in [basic]")
        return AkSkCredentials(keys["ak"], keys["sk"], keys.get("security_token"))
    raise ConfigurationError(
        f"no credentials: pass credentials=, set {ENV_AK} and {ENV_SK} (or {ENV_AUTH_TOKEN}), "
        f"or put ak and sk in [basic] of {file.name}"
    )


def _endpoint(overrides: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    if overrides.get("endpoint") is not None or overrides.get("region") is not None:
        return {}
    endpoint, region = _env(environ, ENV_ENDPOINT), _env(environ, ENV_REGION)
    if endpoint:
        return {"endpoint": endpoint}
    if region:
        try:
            return {"endpoint": endpoint_for(region)}
        except InvalidArgument as exc:
            raise ConfigurationError(f"{ENV_REGION}: {exc}") from None
    raise ConfigurationError(
        f"no endpoint: pass endpoint= or region=, or set {ENV_ENDPOINT} or {ENV_REGION}"
    )


class _File:
    """The credentials file, read only if the arguments and environment lack something."""

    def __init__(self, name: str, load: Callable[[], Mapping[str, str]]) -> None:
        self.name = name
        self.keys = cache(load)


def resolve(
    overrides: Mapping[str, Any],
    environ: Mapping[str, str],
    file_name: str,
    load_file: Callable[[], Mapping[str, str]],
) -> dict[str, Any]:
    """Return the keyword arguments for :class:`Client`.

    An argument in ``overrides`` beats the environment, which beats the file
    (``load_file`` returns its ``[basic]`` keys; it is called only when needed).
    ``credentials=None`` among the overrides means "send none" (a local fake).
    Raises :class:`ConfigurationError` naming what is missing and where it may come from.
    """
    settings = dict(overrides)
    if settings.get("endpoint") is None and settings.get("region") is not None:
        endpoint_for(settings["region"])  # a wrong region is reported before anything else
    file = _File(file_name, load_file)
    if settings.get("project_id") is None:
        project_id = _env(environ, ENV_PROJECT_ID) or file.keys().get("project_id")
        if project_id is None:
            raise ConfigurationError(
                f"no project ID: pass project_id=, set {ENV_PROJECT_ID}, "
                f"or put project_id in [basic] of {file.name}"
            )
        settings["project_id"] = project_id
    if "credentials" not in settings:
        settings["credentials"] = _credentials(environ, file)
    settings.update(_endpoint(settings, environ))
    if settings.get("redis_url") is None and _env(environ, ENV_REDIS_URL):
        settings["redis_url"] = _env(environ, ENV_REDIS_URL)
    # Only for a fleet: a variable set for every shell must not fail a lone client.
    fleet_rate = _env(environ, ENV_FLEET_RATE)
    if settings.get("redis_url") and settings.get("fleet_rate") is None and fleet_rate:
        settings["fleet_rate"] = _fleet_rate(fleet_rate)
    return settings


def _fleet_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not rate > 0:
        raise ConfigurationError(
            f"{ENV_FLEET_RATE} must be a positive number of requests a second, got {text!r}"
        )
    return rate


def from_environment(
    overrides: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Read the environment and the credentials file; return :class:`Client` arguments."""
    environ = os.environ if environ is None else environ
    path = default_credentials_file(environ)
    required = _env(environ, ENV_CREDENTIALS_FILE) is not None
    return resolve(
        overrides, environ, str(path), lambda: read_credentials_file(path, required=required)
    )
