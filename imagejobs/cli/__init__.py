"""The ``imagejobs`` command: wait on image jobs from a shell or a CI step.

Exit codes: 0 success, 1 a job FAILED, 2 usage or configuration error, 3 timeout,
4 an API error left an outcome unknown, 130 interrupted, 141 stdout closed early;
the most severe wins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from imagejobs import ConfigurationError, ImageJobsError, InvalidArgument

from ._args import UsageError, build_parser
from ._commands import run
from ._format import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, visible
from ._ids import read_job_ids, read_one_job_id

__all__ = ["main"]


# The library's configuration errors name its Python arguments; here, the flags.
_IN_CLI_WORDS = (
    ("pass project_id=, set", "pass --project-id, set"),
    ("pass endpoint= or region=, or set", "pass --endpoint or --region, or set"),
    ("no credentials: pass credentials=, set", "no credentials: set"),
    ("; unset one, or pass credentials=", "; unset one"),
    ("pass allow_insecure=True (--allow-insecure)", "pass --allow-insecure"),
    ("max_delay (", "--max-delay ("),
    ("redis_url must be", "--redis (or IMAGEJOBS_REDIS_URL) must be"),
    ("redis_url is not a URL", "--redis (or IMAGEJOBS_REDIS_URL) is not a URL"),
    ("redis_url needs the redis extra", "--redis needs the redis extra"),
    ("must not be below initial_delay (", "must not be below --initial-delay ("),
)


def _in_cli_words(message: str) -> str:
    for python, flags in _IN_CLI_WORDS:
        message = message.replace(python, flags)
    return message


def _error(message: str) -> None:
    # An API error quotes the server: one line, nothing unprintable, whatever it sent.
    sys.stderr.write(f"imagejobs: error: {visible(message)}\n")
    sys.stderr.flush()


class _VisibleFormatter(logging.Formatter):
    """Log lines quote the server (errors, retries): escape them like every other line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return visible(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        # A traceback keeps its lines, indented, so none can start a workflow command.
        return "\n".join("  " + visible(line) for line in super().formatException(ei).split("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: the process's); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    debug = getattr(args, "debug", False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_VisibleFormatter("imagejobs: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    if debug:
        logging.getLogger("imagejobs").setLevel(logging.DEBUG)
    try:
        # Read before the event loop starts, so Ctrl-C during a slow stdin still
        # interrupts at once.
        if getattr(args, "job_ids", None) is not None:
            piped = sys.stdin.read() if "-" in args.job_ids else None
            args.job_ids = read_job_ids(args.job_ids, piped)
        if getattr(args, "job_id", None) == "-":
            args.job_id = read_one_job_id(sys.stdin.read())
        return asyncio.run(run(args))
    except BrokenPipeError:
        # Whoever read stdout stopped (`| head`): end quietly, as shell tools do, and
        # point stdout at nothing so the interpreter's last flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (ConfigurationError, InvalidArgument) as exc:
        _error(_in_cli_words(str(exc)))
        return EXIT_USAGE
    except ImageJobsError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, not a traceback
        if debug:
            traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)")
        return EXIT_ERROR
