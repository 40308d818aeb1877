"""Hooks: what a client tells the objects given as ``Client(hooks=[...])``, and how.

A hook is any object with some of these methods, each called with one frozen
record: ``on_request`` (:class:`RequestRecord`, every request sent),
``on_retry`` (:class:`RetryRecord`, before a call tries again), ``on_throttle``
(:class:`ThrottleRecord`, every 429), ``on_wait`` (:class:`WaitRecord`, a wait
begins), ``on_transition`` (:class:`~imagejobs.Transition`, once per change the
client sees, whoever waits on the job) and ``on_outcome``
(:class:`~imagejobs.Outcome`, a wait ends). A method may be a coroutine
function; it then runs as a task of its own, at most :data:`MAX_HOOK_TASKS` of
one method at once: past that, its records are dropped, with a warning, until
some finish. A hook that raises is logged and never breaks a wait. The
records are in :mod:`imagejobs.observability.records`; none holds a secret.
The log is one more hook, always there (:mod:`imagejobs.observability.logs`):
it takes a record only while the ``imagejobs`` logger is enabled for its level.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable
from typing import Any

from imagejobs.core.errors import InvalidArgument
from imagejobs.observability.logs import LOG_LEVELS, LogHook

__all__ = ["HOOK_GRACE", "HOOK_METHODS", "MAX_HOOK_TASKS", "Hooks"]

logger = logging.getLogger("imagejobs")

HOOK_GRACE = 1.0
"""Seconds a closing client waits for async hooks still running before it cancels them."""

MAX_HOOK_TASKS = 1000
"""Calls of one async hook method running at once, at most: a hook that hangs must not
hold a task (and its record) for every request until the client closes."""

HOOK_METHODS = ("on_request", "on_retry", "on_throttle", "on_wait", "on_transition", "on_outcome")


class Hooks:
    """The hooks of one client, each method looked up once."""

    def __init__(self, hooks: Iterable[object] = ()) -> None:
        if isinstance(hooks, (str, bytes)) or not isinstance(hooks, Iterable):
            raise InvalidArgument(f"hooks must be a list of objects, got {type(hooks).__name__}")
        self._hooks = list(hooks)
        self._methods: dict[str, list[Any]] = {name: [] for name in HOOK_METHODS}
        for hook in self._hooks:
            found = [name for name in HOOK_METHODS if callable(getattr(hook, name, None))]
            if not found:
                raise InvalidArgument(
                    f"hook {type(hook).__name__} has none of the methods {', '.join(HOOK_METHODS)}"
                )
            for name in found:
                self._methods[name].append(getattr(hook, name))
        self._running: dict[Any, set[asyncio.Task[Any]]] = {}
        self._dropped: dict[Any, int] = {}
        self._log = LogHook()

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def wants(self, name: str) -> bool:
        """Whether any hook, or the log, takes ``name`` records: one nobody reads is not made."""
        if self._methods[name]:
            return True
        level = LOG_LEVELS.get(name)
        return level is not None and logger.isEnabledFor(level)

    def call(self, name: str, record: object) -> None:
        """Give ``record`` to every hook's ``name`` method; what they raise is only logged."""
        if LogHook.wants(name):
            getattr(self._log, name)(record)
        for method in self._methods[name]:
            running = self._running.get(method)
            if running is not None and len(running) >= MAX_HOOK_TASKS:
                self._drop(method)
                continue
            try:
                result = method(record)
                if inspect.isawaitable(result):
                    self._track(name, method, result)
            except Exception:  # a broken hook must never break a wait
                logger.warning("hook %s raised; ignored", _name(method), exc_info=True)

    def _track(self, name: str, method: Any, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        running = self._running.setdefault(method, set())
        running.add(task)

        def done(task: asyncio.Task[Any]) -> None:
            running.discard(task)
            if not running:
                del self._running[method]
            dropped = self._dropped.pop(method, 0)
            if dropped:
                logger.warning(
                    "hook %s is taking records again: %d dropped while it was behind",
                    _name(method),
                    dropped,
                )
            if not task.cancelled() and task.exception() is not None:
                logger.warning("hook %s raised; ignored", _name(method), exc_info=task.exception())

        task.add_done_callback(done)

    def _drop(self, method: Any) -> None:
        """Drop a record for a hook method that has too many calls still running."""
        dropped = self._dropped.get(method, 0)
        if not dropped:
            logger.warning(
                "hook %s has %d calls still running: its records are dropped until some finish",
                _name(method),
                MAX_HOOK_TASKS,
            )
        self._dropped[method] = dropped + 1

    async def close(self) -> None:
        """Let the hooks still running finish, for a second at most; cancel the others."""
        tasks = {task for running in self._running.values() for task in running}
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=HOOK_GRACE)
        for task in late:
            logger.warning("a hook still running when the client closed was cancelled")
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)


def _name(method: Any) -> str:
    return getattr(method, "__qualname__", type(method).__name__)
