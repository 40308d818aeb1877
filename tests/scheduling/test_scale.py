"""The hub at scale: no step of its loop does work that grows with the jobs in play.

Counted, never timed: the Python calls made in each step of the hub's loop (from
a wake to the next sleep, when nothing else runs), on virtual time, with
scripted looks and lists. A step that looked at every job (choosing the sweeps'
cover afresh, reading a sweep's findings in one go, dropping a queue's stale
entries at once) would make more calls the more jobs there are.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import math
import platform
import random
import sys
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

import pytest

from imagejobs import (
    ImageJob,
    ImageJobInfo,
    JobStatus,
    JobType,
    Outcome,
    PollPolicy,
    RetryPolicy,
    ServerError,
    SubJob,
)
from imagejobs.core.codec import Page
from imagejobs.core.trim import trim_heap
from imagejobs.planning.budget import RequestBudget
from imagejobs.planning.sweeps import Listing
from imagejobs.scheduling import hub as hub_module
from imagejobs.scheduling.coverage import SLICE, Coverage
from imagejobs.scheduling.hub import Hub
from imagejobs.scheduling.looks import ListFunction, Look, LookResult, PageResult
from imagejobs.scheduling.streams import Failure, Stream
from imagejobs.scheduling.subscriptions import Mailbox, Subscription
from imagejobs.scheduling.sweeper import Sweeper
from imagejobs.scheduling.waiter import wait_many
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate

TYPE = JobType.CREATE_SERVER
POLICY = PollPolicy(timeout=7200)


class Tenant:
    """Jobs that run until a scripted end, listed by ID; a page costs what it holds."""

    def __init__(self, clock: FakeClock, ends: dict[str, float]) -> None:
        self.clock = clock
        self.ends = ends
        self._running = sorted(ends)
        self._by_end = sorted(ends, key=ends.__getitem__, reverse=True)
        self.gets = 0
        self.list_error: Exception | None = None

    def _move_on(self) -> None:
        now = self.clock.monotonic()
        while self._by_end and self.ends[self._by_end[-1]] <= now:
            ended = self._by_end.pop()
            del self._running[bisect.bisect_left(self._running, ended)]

    async def poll(self, job_id: str, priority: float, gate: Gate | None, look: Look) -> LookResult:
        self.gets += 1
        ended = self.clock.monotonic() >= self.ends[job_id]
        status = JobStatus.SUCCESS if ended else JobStatus.RUNNING
        job = ImageJob(id=job_id, status=status, job_type=TYPE)
        return LookResult(((job, self.clock.monotonic()),), look.mark)

    async def list_page(
        self, listing: Listing, offset: int, priority: float, gate: Gate | None
    ) -> PageResult:
        self._move_on()
        if self.list_error is not None:
            raise self.list_error
        if listing.job_type != TYPE.value or listing.status != "RUNNING":
            return PageResult(Page(0, ()), self.clock.monotonic())
        shown: tuple[ImageJobInfo | SubJob, ...] = tuple(
            ImageJobInfo(id=job_id, status=JobStatus.RUNNING, job_type=TYPE)
            for job_id in self._running[offset : offset + 100]
        )
        return PageResult(Page(len(self._running), shown), self.clock.monotonic())


class StepCounter:
    """Counts the Python calls made in each step of a hub's loop."""

    def __init__(self, hub: Hub) -> None:
        self.steps: list[int] = []
        self._calls = 0
        run, sleep_until = hub._run, hub._sleep_until

        def count(frame: FrameType, event: str, arg: object) -> None:
            if event == "call":
                self._calls += 1

        def counting() -> None:
            self._calls = 0
            sys.setprofile(count)

        def counted() -> None:
            sys.setprofile(None)
            self.steps.append(self._calls)

        async def counted_run() -> None:
            counting()
            try:
                await run()
            finally:
                counted()

        async def counted_sleep(wake: float) -> None:
            counted()
            try:
                await sleep_until(wake)
            finally:
                counting()

        def start() -> Coroutine[Any, Any, None]:
            return counted_run()

        hub._run = start  # type: ignore[method-assign]
        hub._sleep_until = counted_sleep  # type: ignore[method-assign]


def _hub(
    tenant: Tenant,
    *,
    rate: float = 20.0,
    draw: Callable[[], float] = random.random,
    list_page: ListFunction | None = None,
) -> Hub:
    """A hub on the tenant's clock, looks and lists, four looks out at most."""
    return Hub(
        tenant.poll,
        tenant.clock,
        RetryPolicy(),
        max_polls=4,
        random=draw,
        list_page=tenant.list_page if list_page is None else list_page,
        rate=lambda now: rate,
    )


@contextlib.asynccontextmanager
async def _waiting(hub: Hub, ids: list[str], gate: Gate | None = None) -> AsyncIterator[None]:
    """A wait on ``ids`` under way while the block runs, left as it ends."""
    waits = wait_many(hub, ids, POLICY, call_gate=gate)
    first = asyncio.ensure_future(anext(waits))
    try:
        yield
    finally:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await waits.aclose()


async def _wait_all(jobs: int) -> tuple[dict[str, Outcome], list[int], Tenant]:
    clock = FakeClock()
    draw = random.Random(jobs)  # noqa: S311 - a repeatable tenant
    ends = {f"{n:07d}": draw.uniform(5.0, 600.0) for n in range(jobs)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant, draw=draw.random)
    counter = StepCounter(hub)
    outcomes: dict[str, Outcome] = {}
    try:
        async with contextlib.aclosing(wait_many(hub, list(ends), POLICY)) as waits:
            async for outcome in waits:
                outcomes[outcome.job_id] = outcome
    finally:
        await hub.close()
    return outcomes, counter.steps, tenant


async def test_no_step_of_the_hub_grows_with_the_jobs_in_play() -> None:
    few, few_steps, _ = await _wait_all(2000)
    many, many_steps, tenant = await _wait_all(6000)
    assert all(outcome.ok for outcome in [*few.values(), *many.values()])
    assert len(many) == 6000
    assert tenant.gets < 1.5 * 6000, "the lists stood in for the GETs"
    # Three times the jobs: each step's work the same, a few slices of them at most.
    assert max(many_steps) <= 1.1 * max(few_steps), (max(many_steps), max(few_steps))
    assert max(many_steps) <= 100 * SLICE


@pytest.mark.parametrize("collector", [True, False], ids=["collected", "counted"])
async def test_a_wait_lets_go_of_each_job_as_its_outcome_is_delivered(collector: bool) -> None:
    # Counted: with the collector off, reference counting alone frees a job's objects
    # (they hold no cycles), as it must: they are untracked (imagejobs.core.untracked).
    clock = FakeClock()
    # The last to subscribe end first: their deadlines are not the next due.
    ends = {f"{n:07d}": 310.0 - n for n in range(300)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant, rate=5.0, draw=random.Random(1).random)  # noqa: S311 - repeatable
    subscribe = hub.subscribe
    held: dict[str, tuple[weakref.ref[Subscription], weakref.ref[Stream]]] = {}

    def subscribing(job_id: str, *args: Any, **options: Any) -> Subscription:
        sub = subscribe(job_id, *args, **options)
        held[job_id] = (weakref.ref(sub), weakref.ref(hub._streams[job_id]))
        return sub

    hub.subscribe = subscribing  # type: ignore[method-assign]
    delivered: list[str] = []
    gc.collect()
    if not collector:
        gc.disable()
    try:
        async with contextlib.aclosing(wait_many(hub, list(ends), POLICY)) as waits:
            async for outcome in waits:
                delivered.append(outcome.job_id)
                del outcome
                if len(delivered) % (20 if collector else 1) == 0:  # collecting takes long
                    await asyncio.sleep(0)  # a turn of the loop: what the hub noted is let go
                    if collector:
                        gc.collect()
                    kept = [
                        job_id
                        for job_id in delivered
                        if any(ref() is not None for ref in held[job_id])
                    ]
                    assert kept == [], f"{len(kept)} ended waits still held"
                    # One deadline a wait not ended, one entry at most a job still waited on.
                    assert len(hub._deadlines) == len(hub._streams) <= 300 - len(delivered)
                    assert hub._due.entries() <= len(hub._streams)
    finally:
        gc.enable()
    await hub.close()


async def test_a_failed_sweep_gives_the_jobs_it_covers_one_failure_not_one_each() -> None:
    clock = FakeClock()
    ends = {f"{n:07d}": 600.0 + n for n in range(2000)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant)
    async with _waiting(hub, list(ends)):
        await clock.sleep(60.0)  # the jobs swept a while
        covered = [stream for stream in hub._streams.values() if stream.sweep.covered]
        assert len(covered) > 1000
        assert all(stream.failure is None for stream in covered)
        tenant.list_error = ServerError(503, "WKS.0503", "busy")
        await clock.sleep(30.0)
        failing = [stream.failure for stream in covered if stream.failure is not None]
        assert len(failing) > 1000
        assert len({id(failure) for failure in failing}) <= 3  # one a failed sweep, not a job
    await hub.close()


async def test_a_wait_left_early_lets_go_of_its_jobs_by_reference_counting() -> None:
    # The jobs' records are untracked (imagejobs.core.untracked): nothing but counting
    # would free them, so leaving must break every path back to them.
    clock = FakeClock()
    ends = {f"{n:07d}": 100.0 + n for n in range(600)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant, rate=math.inf)
    gc.collect()
    gc.disable()
    try:
        async with _waiting(hub, list(ends)):
            for _ in range(20):
                await asyncio.sleep(0)  # subscribed, 250 a turn, and polls sent
            held: list[weakref.ref[Any]] = [weakref.ref(each) for each in hub._streams.values()]
            held += [weakref.ref(sub) for each in hub._streams.values() for sub in each.subscribers]
            assert len(held) == 2 * len(ends)
        for _ in range(20):
            await asyncio.sleep(0)  # left, 250 a turn; the polls in flight cancelled
        assert hub._streams == {}
        # Those that left in the last turns too, not kept until the next wait comes.
        assert sum(ref() is not None for ref in held) == 0
    finally:
        gc.enable()
    await hub.close()


def test_a_bug_that_ends_a_wait_on_many_jobs_leaves_nothing_behind() -> None:
    # The hub gives the bug to each job's wait, all in the caller's one mailbox: the copies
    # not raised were kept, and through their frames the waits and the hub.
    held: list[weakref.ref[Hub]] = []

    async def main() -> None:
        clock = FakeClock()
        tenant = Tenant(clock, {f"{n:07d}": 100.0 for n in range(5)})
        draws = itertools.count()

        def draw() -> float:
            if next(draws) > 8:
                raise RuntimeError("a bug")
            return 0.5

        hub = Hub(tenant.poll, clock, RetryPolicy(), max_polls=50, random=draw)
        held.append(weakref.ref(hub))
        with pytest.raises(RuntimeError, match="a bug"):
            async for _ in wait_many(hub, list(tenant.ends), PollPolicy(initial_delay=1.0)):
                pass
        await hub.close()

    asyncio.run(main())
    gc.collect()
    assert held[0]() is None


async def test_the_sweeps_page_no_list_for_the_jobs_of_a_wait_that_was_left() -> None:
    clock = FakeClock()
    ends = {f"a{n:05d}": 600.0 for n in range(2000)} | {f"b{n:05d}": 9000.0 for n in range(2000)}
    tenant = Tenant(clock, ends)
    pages: list[Gate | None] = []
    list_page = tenant.list_page

    async def paging(listing: Listing, offset: int, priority: float, gate: Gate | None) -> Any:
        pages.append(gate)
        return await list_page(listing, offset, priority, gate)

    hub = _hub(tenant, list_page=paging)
    async with _waiting(hub, [job_id for job_id in ends if job_id < "b"]):
        await clock.sleep(60.0)  # swept a while, then left
    assert None in pages
    pages.clear()
    # The next wait goes through a gate of its own: the client's sweeper has no job left.
    gate = Gate(RequestBudget.create(4, 20.0, clock.monotonic()), clock)
    async with _waiting(hub, [job_id for job_id in ends if job_id >= "b"], gate):
        await clock.sleep(30.0)
        assert pages
        assert None not in pages
    await hub.close()
    await hub.close()


async def test_a_closed_hub_lets_go_of_the_tables_its_waits_grew() -> None:
    # A dict emptied by deletions keeps the table it grew to; closing starts afresh.
    clock = FakeClock()
    tenant = Tenant(clock, {f"{n:07d}": 5.0 for n in range(3000)})
    hub = Hub(tenant.poll, clock, RetryPolicy(), max_polls=4, list_page=tenant.list_page)
    ids = list(tenant.ends)
    async with contextlib.aclosing(wait_many(hub, ids, POLICY)) as waits:
        async for _ in waits:
            pass
    assert sys.getsizeof(hub._streams) > sys.getsizeof({})  # emptied, not shrunk
    deadlines = hub._deadlines
    for deadline in (2.0, 1.0):  # the second out of order: to the heap
        deadlines.add(Subscription("x", POLICY, Mailbox(), None, 0.0, deadline, None))
    assert sys.getsizeof(deadlines._heap._where) > sys.getsizeof({})
    due, groups = hub._due._due, hub._sweeper._groups
    group_of = hub._sweeper._group_of
    assert groups
    await hub.close()
    empty = sys.getsizeof({})
    assert sys.getsizeof(hub._streams) == empty
    assert hub._deadlines is deadlines  # cleared, not made anew among the freed jobs
    assert (len(deadlines), deadlines._chunks, deadlines._starts) == (0, [], [])
    assert sys.getsizeof(deadlines._heap._where) == empty  # its heap's table not kept
    assert hub._due.entries() == 0
    assert hub._due._due is due  # the same: what is made at close sits among the freed jobs
    assert hub._sweeper._groups is groups
    assert groups == {}  # no group, and no new one made for nobody
    assert hub._sweeper._group_of is group_of
    assert hub._sweeper.wake_at() == math.inf
    assert sys.getsizeof(hub._sweeper._group_of) == empty


@pytest.mark.parametrize(("jobs", "trims"), [(299, 0), (300, 1)])
async def test_a_hub_that_held_many_jobs_gives_the_freed_memory_back_as_it_closes(
    monkeypatch: pytest.MonkeyPatch, jobs: int, trims: int
) -> None:
    # The C library's part (imagejobs.core.trim), only after as many jobs as TRIM_AFTER:
    # a client of a few jobs closes without walking the process's heap.
    monkeypatch.setattr(hub_module, "TRIM_AFTER", 300)
    given_back: list[bool] = []
    monkeypatch.setattr(hub_module, "trim_heap", lambda: given_back.append(trim_heap()))
    clock = FakeClock()
    tenant = Tenant(clock, {f"{n:07d}": 5.0 for n in range(jobs)})
    hub = Hub(tenant.poll, clock, RetryPolicy(), max_polls=4, list_page=tenant.list_page)
    async with contextlib.aclosing(wait_many(hub, list(tenant.ends), POLICY)) as waits:
        async for _ in waits:
            pass
    assert given_back == []  # not as the waits end: a client may wait again
    await hub.close()
    assert given_back == [platform.libc_ver()[0] == "glibc"] * trims


async def test_a_job_waited_on_gives_the_collector_next_to_nothing_to_walk() -> None:
    # A full collection walks every tracked object: with a stream, a subscription,
    # their records, heap places, snapshots and transitions tracked, 100,000 jobs held
    # the loop 0.2 s each time. They are untracked (imagejobs.core.untracked).
    clock = FakeClock()
    draw = random.Random(3)  # noqa: S311 - a repeatable tenant
    ends = {f"{n:07d}": draw.uniform(60.0, 600.0) for n in range(3000)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant, draw=draw.random)
    gc.collect()
    before = len(gc.get_objects())
    async with contextlib.aclosing(wait_many(hub, list(ends), POLICY)) as waits:
        async for outcome in waits:
            assert outcome.ok
            break  # the first end: every job subscribed, swept and polled a while
        gc.collect()
        per_job = (len(gc.get_objects()) - before) / len(ends)
        # Nor a table of them all: a full collection would visit each job in it.
        tables = [
            type(each).__qualname__
            for each in gc.get_objects()
            if sum(isinstance(it, (Stream, Subscription)) for it in gc.get_referents(each))
            > len(ends) // 2
        ]
        assert tables == []
        streams = list(hub._streams.values())
        assert len(streams) > 0.99 * len(ends)
        assert not any(gc.is_tracked(stream) for stream in streams)
        assert not any(gc.is_tracked(sub) for stream in streams for sub in stream.subscribers)
        assert not any(gc.is_tracked(stream._numbers) for stream in streams if stream._numbers)
        assert per_job < 0.2, per_job  # six a job, tracked
    await hub.close()


async def test_an_id_given_twice_slices_apart_is_waited_on_once() -> None:
    # Duplicates are dropped as the IDs subscribe, a slice a turn: the first of each stays.
    clock = FakeClock()
    ends = {f"{n:07d}": 5.0 + n % 7 for n in range(600)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant)
    ids = list(ends)
    given = [*ids, *reversed(ids[:300]), ids[0], *ids[::2]]  # every ID again, turns later
    seen: list[str] = []
    async with contextlib.aclosing(wait_many(hub, given, POLICY)) as waits:
        async for outcome in waits:
            assert outcome.ok
            seen.append(outcome.job_id)
    assert sorted(seen) == ids  # each once
    await hub.close()


@pytest.mark.parametrize("sweep", ["answered", "failed"])
async def test_a_job_waited_on_again_while_a_sweep_is_read_is_not_decided_by_it(
    monkeypatch: pytest.MonkeyPatch, sweep: str
) -> None:
    # The findings are read by job ID, a slice a turn: a job whose wait ended and that is
    # waited on again meanwhile is another stream, which a sweep started before it existed
    # says nothing about (nor fails it), even where the clock has not moved since.
    clock = FakeClock()
    ends = {f"{n:07d}": 6000.0 + n for n in range(1000)}
    tenant = Tenant(clock, ends)
    hub = _hub(tenant, draw=random.Random(3).random)  # noqa: S311 - repeatable
    again: list[Stream] = []
    decided: list[bool] = []
    armed: list[bool] = []
    failed: list[Failure | None] = []
    read, decided_by = Sweeper._read, Coverage.decided_by

    def reading(sweeper: Sweeper, *args: Any) -> Iterator[None]:
        injected = False
        for number, _ in enumerate(read(sweeper, *args)):
            if number == 0 and not again and armed:
                job_id = list(sweeper.coverage._covered)[-1].job_id  # in the last slice
                for sub in list(hub._streams[job_id].subscribers):
                    hub.unsubscribe(sub)
                hub.subscribe(job_id, POLICY, None, Mailbox(), wants_transitions=False)
                again.append(hub._streams[job_id])
                injected = True
            yield
        if injected:
            failed.append(again[0].failure)  # as that read ends: later sweeps may decide

    def deciding(coverage: Coverage, stream: Stream, *args: Any) -> bool:
        taken = decided_by(coverage, stream, *args)
        if stream in again and not failed:
            decided.append(taken)
        return taken

    monkeypatch.setattr(Sweeper, "_read", reading)
    monkeypatch.setattr(Coverage, "decided_by", deciding)
    async with _waiting(hub, list(ends)):
        await clock.sleep(60.0)
        if sweep == "failed":
            tenant.list_error = ServerError(503, "WKS.0503", "busy")
        armed.append(True)
        await clock.sleep(120.0)  # the next sweeps, and the reads of what they found
        assert again, "a job was waited on again while a sweep was read"
        assert failed == [None]
        assert True not in decided
    await hub.close()
