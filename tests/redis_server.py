"""A real ``redis-server`` for the fleet tests: started on a free loopback port, stopped after.

No mock: the limiter and the shared looks are Lua scripts, and only Redis runs them.
Without the binary the fleet tests are skipped, saying how to get it, except in
CI (``CI`` set), where they must run: there a missing binary fails them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

_STARTUP = 10.0

NAME = "redis-server"
"""The binary looked for: on the ``PATH``, then in ``/usr/bin`` and ``/usr/sbin``."""

INSTALL = "apt-get install redis-server on Debian/Ubuntu, brew install redis on macOS"


def find_redis_server() -> str | None:
    """Return the path of :data:`NAME`, or None if it is nowhere to be found."""
    found = shutil.which(NAME)
    if found is not None:
        return found
    fallbacks = (Path("/usr/bin") / NAME, Path("/usr/sbin") / NAME)
    return next((str(path) for path in fallbacks if path.exists()), None)


def redis_server_binary() -> str:
    """Return the path of ``redis-server``; skip the test without it, or fail it in CI."""
    found = find_redis_server()
    if found is None:
        if os.environ.get("CI"):  # as conftest.py reads it: set and not empty
            pytest.fail(f"{NAME} is not installed, and CI must run the fleet tests ({INSTALL})")
        pytest.skip(f"{NAME} is not installed: the fleet tests need it ({INSTALL})")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process of a test's own, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is up."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server on its port and wait until it answers PING."""
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + _STARTUP
        while not _answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def flush(self) -> None:
        """Empty the server's database, so one test's fleet keys never meet another's."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            if not sock.recv(16).startswith(b"+OK"):
                raise RuntimeError("redis-server refused FLUSHALL")

    def stop(self) -> None:
        """Stop the server (as a crash would: at once) and wait for it to exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
