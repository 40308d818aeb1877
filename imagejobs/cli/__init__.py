"""The ``imagejobs`` command: wait on image jobs from a shell or a CI step.

Exit codes: 0 success, 1 a job FAILED, 2 usage or configuration error, 3 timeout,
4 an API error left an outcome unknown, 130 interrupted; the most severe wins.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from imagejobs import ConfigurationError, ImageJobsError, InvalidArgument

from ._args import UsageError, build_parser
from ._commands import run
from ._report import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

__all__ = ["main"]


def _error(message: str) -> None:
    sys.stderr.write(f"imagejobs: error: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: the process's); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="imagejobs: %(levelname)s: %(message)s"
    )
    if debug:
        logging.getLogger("imagejobs").setLevel(logging.DEBUG)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except (ConfigurationError, InvalidArgument) as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ImageJobsError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except Exception as exc:
        if debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)")
        return EXIT_ERROR
