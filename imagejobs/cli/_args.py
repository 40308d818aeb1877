"""The command line's grammar: subcommands, options and duration values. No I/O."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from imagejobs import DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE, PollPolicy, __version__

DEFAULT_NOT_FOUND_GRACE = PollPolicy().not_found_grace
DEFAULT_UNREACHABLE_TIMEOUT = 300.0
"""Seconds with no request reaching the service before a wait gives up (exit 4)."""

__all__ = [
    "DEFAULT_UNREACHABLE_TIMEOUT",
    "EXIT_CODES_HELP",
    "UsageError",
    "build_parser",
    "parse_duration",
]

EXIT_CODES_HELP = """\
exit codes:
  0    every job ended SUCCESS
  1    at least one job ended FAILED
  2    usage or configuration error
  3    the timeout ended the wait with a job still running
  4    an API error made a job's outcome unknowable (auth, permission,
       not found after the grace, no answer)
  130  interrupted (SIGINT: Ctrl-C; a cancelled GitHub Actions job gets it first)
  141  stdout was closed early (a pipe to head)
  143  terminated (SIGTERM)
  With several jobs the most severe wins: 2 > 4 > 1 > 3 > 0.
"""

CREDENTIALS_HELP = """\
credentials and project come from the environment, as the provider's SDK reads them:
  HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK, HUAWEICLOUD_SDK_SECURITY_TOKEN,
  HUAWEICLOUD_SDK_PROJECT_ID, IMAGEJOBS_AUTH_TOKEN, IMAGEJOBS_REGION,
  IMAGEJOBS_ENDPOINT, or ~/.huaweicloud/credentials ([basic] ak, sk, project_id).
"""

_T = TypeVar("_T")
# One term of a duration: a number and its unit (none: seconds). "1h30m" is two terms.
_TERM = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", re.IGNORECASE)
_UNIT_SECONDS = {
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
}
DURATION_HELP = "durations: 90s, 5m, 5min, 1h30m, 2h, 250ms, or plain seconds"


class UsageError(Exception):
    """The command line could not be understood; the message says why."""


def parse_duration(text: str, *, zero: bool = False) -> float:
    """Return seconds for ``90s``, ``5m``, ``5min``, ``1h30m``, ``2h``, ``250ms`` or ``0.5``.

    Terms add up (``1h30m`` is 5,400 s); a number without a unit is seconds. Zero is
    refused unless ``zero`` (an option where 0 means none).
    """
    problem = f"{text!r} is not a duration ({DURATION_HELP})"
    position, seconds, terms = 0, 0.0, 0
    while position < len(text.rstrip()):
        match = _TERM.match(text, position)
        unit = match[2].lower() if match is not None else None
        if match is None or unit not in _UNIT_SECONDS or (terms and unit == ""):
            raise argparse.ArgumentTypeError(problem)
        seconds += float(match[1]) * _UNIT_SECONDS[unit]
        position, terms = match.end(), terms + 1
    if not terms:
        raise argparse.ArgumentTypeError(problem)
    if not seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration")
    if seconds <= 0 and not zero:
        raise argparse.ArgumentTypeError(f"{text!r} must be a duration of more than 0")
    return seconds


def _duration_or_zero(text: str) -> float:
    return parse_duration(text, zero=True)


def _convert(text: str, convert: Callable[[str], _T], what: str) -> _T:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _positive_int(text: str) -> int:
    value = _convert(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = _convert(text, float, "a number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _port(text: str) -> int:
    value = _convert(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return value


def _host(text: str) -> str:
    """Return ``text`` if the URL printed for it (``http://HOST:PORT``) is one a client takes."""
    from imagejobs import Client, InvalidArgument  # noqa: PLC0415 - aiohttp only when used

    url = f"http://[{text}]" if ":" in text else f"http://{text}"
    try:
        Client(project_id="p", endpoint=url)
    except InvalidArgument:
        shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
        raise argparse.ArgumentTypeError(
            f"{shown} is not an IP address or host name (127.0.0.1, ::1, localhost)"
        ) from None
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: CI logs show the problem at once. The
        # command's own name is the prefix the error line already has.
        where = self.prog.split()[1:]
        prefix = f"{' '.join(where)}: " if where else ""
        raise UsageError(f"{prefix}{message} (see --help)")


def _service_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("service")
    where.add_argument("--project-id", help="project ID (default: from the environment)")
    where.add_argument("--region", help="region, e.g. ap-southeast-1 (default: IMAGEJOBS_REGION)")
    where.add_argument("--endpoint", help="endpoint URL; wins over --region")
    where.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow credentials over plain http to a non-loopback host (a test server)",
    )


def _output_options(parser: argparse.ArgumentParser, *, heartbeat: bool = True) -> None:
    output = parser.add_argument_group("output")
    if heartbeat:
        output.add_argument(
            "--heartbeat",
            type=_duration_or_zero,
            default=60.0,
            help="outside a terminal, a timestamped line with the counts this often, so a CI "
            "log never looks hung (default 60s; 0 for none)",
        )
        output.add_argument(
            "--no-progress",
            action="store_true",
            help="on a terminal, no live view redrawn in place: plain lines, as in a log",
        )
    output.add_argument(
        "--json", action="store_true", help="NDJSON on stdout: transitions, then one result per job"
    )
    output.add_argument(
        "--quiet",
        action="store_true",
        help="no progress: only why a job did not succeed, and the results on stdout",
    )
    output.add_argument(
        "--debug", action="store_true", help="request log and tracebacks (secrets stay hidden)"
    )


def _poll_options(parser: argparse.ArgumentParser) -> None:
    polling = parser.add_argument_group(f"polling ({DURATION_HELP})")
    polling.add_argument(
        "--timeout", type=parse_duration, default=3600.0, help="give up after this (default 1h)"
    )
    polling.add_argument(
        "--initial-delay", type=parse_duration, default=2.0, help="first delay (default 2s)"
    )
    polling.add_argument(
        "--max-delay",
        type=parse_duration,
        help="longest delay (default 27s; up to 8 times that where a history places polls)",
    )
    polling.add_argument(
        "--unreachable-timeout",
        type=_duration_or_zero,
        default=DEFAULT_UNREACHABLE_TIMEOUT,
        metavar="DURATION",
        help="give up, exit 4, when no request has reached the service for this long (a "
        f"wrong endpoint, no network; default {DEFAULT_UNREACHABLE_TIMEOUT / 60:g}m; "
        "0: only --timeout ends the wait)",
    )
    polling.add_argument(
        "--not-found-grace",
        type=_duration_or_zero,
        default=DEFAULT_NOT_FOUND_GRACE,
        help="how long a job the service does not know yet is looked for before it is an "
        f"error (default {DEFAULT_NOT_FOUND_GRACE:g}s: a new job takes a moment to show; "
        "0: an unknown job is an error at once)",
    )


def _history_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history",
        metavar="PATH",
        help="how long jobs of each type took, kept between runs so polls go where ends "
        "are likely (default: $IMAGEJOBS_HISTORY, or imagejobs/durations.json in the "
        "user's cache directory)",
    )
    parser.add_argument("--no-history", action="store_true", help="neither read nor keep one")


def _budget_options(parser: argparse.ArgumentParser) -> None:
    budget = parser.add_argument_group("request budget, shared by every request of the command")
    budget.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help=f"requests at once (default {DEFAULT_MAX_IN_FLIGHT})",
    )
    budget.add_argument(
        "--rate",
        type=_positive_float,
        default=DEFAULT_RATE,
        help=f"requests per second, lowered further by 429s (default {DEFAULT_RATE:g})",
    )
    budget.add_argument(
        "--redis",
        metavar="URL",
        help="share the budget and the polls with every process of the account that uses "
        "this Redis, redis://host:port/db (default: IMAGEJOBS_REDIS_URL; needs imagejobs[redis])",
    )


_FULL_EPILOG = EXIT_CODES_HELP + "\n" + CREDENTIALS_HELP


def _command(
    commands: Any, name: str, summary: str, description: str, epilog: str | None = _FULL_EPILOG
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for ``imagejobs``."""
    parser = _Parser(
        prog="imagejobs",
        description="Wait for Huawei Cloud Workspace image jobs.",
        epilog=_FULL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"imagejobs {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    wait = _command(
        commands,
        "wait",
        "wait until jobs end; exit code tells how",
        "Wait until every job ends, printing each sub-job transition.",
    )
    wait.add_argument(
        "job_ids",
        nargs="+",
        metavar="JOB_ID",
        help="job IDs; - reads them from stdin: one a line (or separated by spaces or "
        'commas), or the JSON KooCLI prints ({"job_id": ...}, an array of those, JSON Lines)',
    )
    _service_options(wait)
    _poll_options(wait)
    _budget_options(wait)
    wait.add_argument(
        "--no-sweeps",
        action="store_true",
        help="poll each job by GET, never page the job lists (see docs/sweeps.md)",
    )
    _history_option(wait)
    _output_options(wait)

    watch = _command(
        commands,
        "watch",
        "stream one job's transitions until it ends",
        "Stream one job's transitions until it ends.",
    )
    watch.add_argument("job_id", metavar="JOB_ID", help="the job ID; - reads it from stdin")
    _service_options(watch)
    _poll_options(watch)
    _budget_options(watch)
    _history_option(watch)
    _output_options(watch)

    get = _command(
        commands,
        "get",
        "print a job as JSON, as the service sends it",
        "Print a job's details as JSON (wire form) on stdout.",
    )
    get.add_argument("job_id", metavar="JOB_ID", help="the job ID; - reads it from stdin")
    _service_options(get)
    get.add_argument(
        "--timeout",
        type=parse_duration,
        help=f"give up after this, retries included ({DURATION_HELP})",
    )
    get.add_argument("--debug", action="store_true", help="request log and tracebacks")

    listing = _command(
        commands,
        "list",
        "list the project's jobs (filtered by status and job type)",
        "List the project's jobs, one line each (ID, type, status, sub-jobs, begin, end), "
        "paging through the job list. The service documents no order, and a list that "
        "changes while it is paged can skip or repeat a job: it is a hint, not proof. "
        "The English API reference says job_type is mandatory: pass --job-type.",
        epilog="exit codes: 0 listed, 2 usage or configuration error, 4 an API error\n\n"
        + CREDENTIALS_HELP,
    )
    listing.add_argument("--status", help="WAITING, RUNNING, SUCCESS or FAILED")
    listing.add_argument(
        "--job-type", help="e.g. CREATE_SERVER, CREATE_SERVER_IMAGE, DELETE_SERVER"
    )
    listing.add_argument(
        "--limit", type=_positive_int, help="stop after this many jobs (default: all)"
    )
    _service_options(listing)
    listing.add_argument("--json", action="store_true", help="NDJSON on stdout: one job a line")
    listing.add_argument("--debug", action="store_true", help="request log and tracebacks")

    history = _command(
        commands,
        "history",
        "print how long jobs of each type took, as the history knows",
        "Print what the duration history knows per job type: how many jobs, and the "
        "median, 10th and 90th percentile of their durations. --learn first fills it "
        "from the project's finished jobs (two pages of the job list per type).",
        epilog="exit codes: 0 printed, 2 usage or configuration error, 4 an API error\n\n"
        + CREDENTIALS_HELP,
    )
    history.add_argument("--history", metavar="PATH", help="the history file (default as for wait)")
    history.add_argument(
        "--learn", action="store_true", help="fill it from the project's finished jobs first"
    )
    _service_options(history)
    _budget_options(history)
    history.add_argument("--json", action="store_true", help="JSON on stdout")
    history.add_argument("--debug", action="store_true", help="request log and tracebacks")

    demo = _command(
        commands,
        "demo",
        "watch scripted jobs on a built-in fake server (about 15 s)",
        "Start the fake server in-process and wait on a few scripted jobs "
        "with the same code as `imagejobs wait`.",
        epilog=EXIT_CODES_HELP,
    )
    demo.add_argument("--with-failure", action="store_true", help="add a job that fails (exit 1)")
    _output_options(demo)

    fake = _command(
        commands,
        "fake-server",
        "run the fake Workspace server until interrupted",
        "Serve scripted jobs over HTTP for your own tests. Prints the URL "
        "on stdout. Without --scenario it serves the demo's jobs.",
        epilog=None,
    )
    fake.add_argument(
        "--host", type=_host, default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    fake.add_argument("--port", type=_port, default=0, help="port (default: a free one)")
    fake.add_argument("--scenario", metavar="FILE", help="JSON scenario file (see docs/testing.md)")
    return parser
