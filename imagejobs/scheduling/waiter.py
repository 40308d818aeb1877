"""The ways to wait: watch, wait, wait_many and watch_many, each a subscriber of the hub.

Each validates its arguments at once, subscribes to the client's :class:`Hub`
and turns what the hub tells it into the shape its caller asked for.
Leaving early (``break``, ``aclose``, cancellation) unsubscribes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Callable, Iterable
from contextlib import aclosing
from typing import TypeVar

from imagejobs.core.errors import ImageJobsError, InvalidArgument, JobFailed
from imagejobs.core.models import ImageJob
from imagejobs.core.outcome import Outcome
from imagejobs.core.transitions import Transition
from imagejobs.core.untracked import untrack
from imagejobs.core.validation import check_id, check_ids
from imagejobs.planning.policy import PollPolicy
from imagejobs.timing.gate import Gate

from .hub import Hub
from .subscriptions import Mailbox, Subscription

__all__ = [
    "OutcomeCallback",
    "TransitionCallback",
    "wait",
    "wait_many",
    "watch",
    "watch_many",
]

Event = Transition | Outcome
TransitionCallback = Callable[[Transition], object]
OutcomeCallback = Callable[[Outcome], object]

_T = TypeVar("_T")

SUBSCRIBE_SLICE = 250
"""Jobs a call subscribes to (or leaves) in one turn of the event loop: a call on a hundred
thousand jobs lets the loop (the hub, other callers) run between slices."""


async def _call(callback: Callable[[_T], object] | None, value: _T) -> None:
    if callback is not None:
        result = callback(value)
        if inspect.isawaitable(result):
            await result


def _check_policy(policy: object) -> PollPolicy:
    if policy is None:
        return PollPolicy()
    if not isinstance(policy, PollPolicy):
        raise InvalidArgument(f"policy must be a PollPolicy, got {type(policy).__name__}")
    return policy


def _check_since(job_id: str, since: object) -> ImageJob | None:
    if since is not None and not isinstance(since, ImageJob):
        raise InvalidArgument(f"since must be an ImageJob, got {type(since).__name__}")
    if since is not None and since.id != job_id:
        raise InvalidArgument(f"since is a snapshot of job {since.id!r}, not of {job_id!r}")
    return since


def _checked_ids(job_ids: Iterable[str]) -> list[str]:
    if isinstance(job_ids, str):
        raise InvalidArgument("job_ids must be an iterable of IDs, not a single string")
    ids = check_ids("job_id", job_ids)  # duplicates are dropped as they subscribe (_events)
    untrack(ids)  # IDs alone: nothing for the collector to find, a hundred thousand to visit
    return ids


async def _events(
    hub: Hub,
    job_ids: list[str],
    policy: PollPolicy,
    since: ImageJob | None = None,
    gate: Gate | None = None,
    *,
    transitions: bool,
) -> AsyncGenerator[Event]:
    """Yield every job's transitions and, last for each job, its outcome.

    ``transitions`` says whether the caller looks at them: if not, the jobs may be swept.
    """
    mailbox = Mailbox()
    # Only the waits not ended yet: an ended one's snapshot and transitions are let go
    # as its outcome is delivered, not when the last of many jobs ends.
    waiting: dict[str, Subscription] = {}
    try:
        for number, job_id in enumerate(job_ids, 1):
            # Each ID once, the first time it comes: nothing leaves ``waiting`` before all
            # have subscribed, so it tells a duplicate a slice a turn, not all in one step.
            if job_id not in waiting:
                waiting[job_id] = hub.subscribe(
                    job_id, policy, since, mailbox, gate, wants_transitions=transitions
                )
            if number % SUBSCRIBE_SLICE == 0:
                untrack(waiting)  # a table of every job, tracked again by what was put in it
                await asyncio.sleep(0)
        untrack(waiting)
        while waiting:
            event = await mailbox.get()
            if isinstance(event, Outcome):
                del waiting[event.job_id]
            yield event
    finally:
        await _unsubscribe(hub, list(waiting.values()))


async def _unsubscribe(hub: Hub, subscriptions: list[Subscription]) -> None:
    """Leave every wait not ended, :data:`SUBSCRIBE_SLICE` a turn of the loop."""
    for number, subscription in enumerate(subscriptions, 1):
        hub.unsubscribe(subscription)
        if number % SUBSCRIBE_SLICE == 0 and number < len(subscriptions):
            try:
                await asyncio.sleep(0)
            except BaseException:
                # Cancelled again while leaving: the rest leave now, not never.
                for rest in subscriptions[number:]:
                    hub.unsubscribe(rest)
                raise


def watch(
    hub: Hub, job_id: str, policy: PollPolicy | None = None, since: ImageJob | None = None
) -> AsyncGenerator[Transition]:
    """Yield a job's transitions until, and including, its SUCCESS or FAILED (see Client.watch)."""
    check_id("job_id", job_id)
    return _watch(hub, job_id, _check_policy(policy), _check_since(job_id, since))


async def _watch(
    hub: Hub, job_id: str, policy: PollPolicy, since: ImageJob | None
) -> AsyncGenerator[Transition]:
    async with aclosing(_events(hub, [job_id], policy, since, transitions=True)) as events:
        async for event in events:
            if isinstance(event, Transition):
                yield event
            elif event.error is not None and not isinstance(event.error, JobFailed):
                raise event.error


async def wait(
    hub: Hub,
    job_id: str,
    policy: PollPolicy | None = None,
    raise_on_failure: bool = True,
    *,
    on_transition: TransitionCallback | None = None,
    since: ImageJob | None = None,
) -> ImageJob:
    """Wait until a job ends and return its final snapshot (see Client.wait)."""
    check_id("job_id", job_id)
    checked = _check_policy(policy)
    since = _check_since(job_id, since)
    wanted = on_transition is not None
    async with aclosing(_events(hub, [job_id], checked, since, transitions=wanted)) as events:
        async for event in events:
            if isinstance(event, Transition):
                await _call(on_transition, event)
                continue
            accepted = event.ok or (event.kind == "failed" and not raise_on_failure)
            if accepted and event.job is not None:
                return event.job
            if event.error is not None:
                raise event.error
    raise ImageJobsError(f"the wait for job {job_id} ended without an outcome")


def wait_many(
    hub: Hub,
    job_ids: Iterable[str],
    policy: PollPolicy | None = None,
    *,
    call_gate: Gate | None = None,
    on_transition: TransitionCallback | None = None,
) -> AsyncGenerator[Outcome]:
    """Wait on many jobs at once; yield each job's outcome as it ends (see Client.wait_many)."""
    return _wait_many(hub, _checked_ids(job_ids), _check_policy(policy), call_gate, on_transition)


async def _wait_many(
    hub: Hub,
    ids: list[str],
    policy: PollPolicy,
    gate: Gate | None,
    on_transition: TransitionCallback | None,
) -> AsyncGenerator[Outcome]:
    wanted = on_transition is not None
    async with aclosing(_events(hub, ids, policy, gate=gate, transitions=wanted)) as events:
        async for event in events:
            if isinstance(event, Outcome):
                yield event
            else:
                await _call(on_transition, event)


def watch_many(
    hub: Hub,
    job_ids: Iterable[str],
    policy: PollPolicy | None = None,
    *,
    call_gate: Gate | None = None,
    on_outcome: OutcomeCallback | None = None,
) -> AsyncGenerator[Transition]:
    """Yield the transitions of many jobs as they are seen (see Client.watch_many)."""
    return _watch_many(hub, _checked_ids(job_ids), _check_policy(policy), call_gate, on_outcome)


async def _watch_many(
    hub: Hub,
    ids: list[str],
    policy: PollPolicy,
    gate: Gate | None,
    on_outcome: OutcomeCallback | None,
) -> AsyncGenerator[Transition]:
    first_error: ImageJobsError | None = None
    async with aclosing(_events(hub, ids, policy, gate=gate, transitions=True)) as events:
        async for event in events:
            if isinstance(event, Transition):
                yield event
            elif on_outcome is not None:
                await _call(on_outcome, event)
            elif event.kind in ("timeout", "error") and first_error is None:
                first_error = event.error
    if first_error is not None:
        raise first_error
