"""The waits' deadlines: a queue of those that come in order, a heap for the rest."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import PollPolicy
from imagejobs.scheduling.deadlines import CHUNK, Deadlines
from imagejobs.scheduling.subscriptions import Mailbox, Subscription

POLICY = PollPolicy(timeout=60)


def _sub(deadline: float, joined: int) -> Subscription:
    sub = Subscription("j", POLICY, Mailbox(), None, 0.0, deadline, None)
    sub.joined = joined
    return sub


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 30)),
            st.tuples(st.just("discard"), st.integers(0, 200)),
            st.tuples(st.just("pop"), st.integers(0, 30)),
        ),
        max_size=300,
    )
)
def test_waits_come_out_soonest_first_whatever_comes_and_goes(
    steps: list[tuple[str, int]],
) -> None:
    deadlines = Deadlines(chunk=4)  # many chunks, squeezed and dropped
    model: dict[int, Subscription] = {}  # joined: the wait, for those in
    made: list[Subscription] = []
    for step, value in steps:
        if step == "add":
            # Mostly in order (one wait_many), now and then earlier (another's shorter timeout).
            last = max((sub.deadline for sub in made), default=0.0)
            at = last + value % 3 if value % 4 else float(value)
            sub = _sub(at, len(made) + 1)
            made.append(sub)
            deadlines.add(sub)
            model[sub.joined] = sub
        elif step == "discard" and made:
            sub = made[value % len(made)]
            deadlines.discard(sub)  # in or not
            model.pop(sub.joined, None)
        elif step == "pop":
            due = sorted(
                (sub for sub in model.values() if sub.deadline <= value),
                key=lambda sub: (sub.deadline, sub.joined),
            )
            taken = []
            while (popped := deadlines.pop_due(float(value))) is not None:
                taken.append(popped)
            assert taken == due
            for sub in taken:
                del model[sub.joined]
        assert len(deadlines) == len(model)
        soonest = min((sub.deadline for sub in model.values()), default=math.inf)
        assert deadlines.first_at() == soonest
        assert sum(sub is not None for chunk in deadlines._chunks for sub in chunk.waits) + len(
            deadlines._heap
        ) == len(model)  # nothing that ended is held


def _queued(deadlines: Deadlines) -> list[Subscription | None]:
    return [sub for chunk in deadlines._chunks for sub in chunk.waits]


def test_a_wait_that_ends_is_let_go_at_once_and_its_place_soon_after() -> None:
    deadlines = Deadlines()
    subs = [_sub(100.0 + n, n) for n in range(10 * CHUNK)]
    for sub in subs:
        deadlines.add(sub)
    for sub in subs[: 9 * CHUNK]:
        deadlines.discard(sub)
    assert all(each is None or each in subs[9 * CHUNK :] for each in _queued(deadlines))
    assert len(_queued(deadlines)) <= 2 * CHUNK  # chunks of holes dropped
    assert (len(deadlines), deadlines.first_at()) == (CHUNK, 100.0 + 9 * CHUNK)
    for sub in subs[9 * CHUNK :: 3]:  # a third of a chunk: holes kept
        deadlines.discard(sub)
    assert _queued(deadlines).count(None) == CHUNK // 3 + 1
    for sub in subs[9 * CHUNK + 1 :: 3]:  # two thirds: squeezed once past half
        deadlines.discard(sub)
    assert [sub for sub in _queued(deadlines) if sub is not None] == subs[9 * CHUNK + 2 :: 3]
    assert _queued(deadlines).count(None) < CHUNK // 2
    assert deadlines.pop_due(math.inf) is subs[9 * CHUNK + 2]
    for sub in subs[9 * CHUNK + 5 :: 3]:
        deadlines.discard(sub)
    assert (deadlines._chunks, len(deadlines), deadlines.first_at()) == ([], 0, math.inf)


def test_a_deadline_before_the_last_goes_to_the_heap_and_still_comes_out_first() -> None:
    deadlines = Deadlines()
    late, early = _sub(50.0, 1), _sub(10.0, 2)
    deadlines.add(late)
    deadlines.add(early)  # a shorter timeout, subscribed after
    assert (len(_queued(deadlines)), len(deadlines._heap)) == (1, 1)
    assert deadlines.pop_due(49.0) is early
    assert deadlines.pop_due(49.0) is None
    after = _sub(70.0, 3)
    deadlines.add(after)
    assert deadlines.pop_due(50.0) is late
    assert late not in _queued(deadlines)  # taken: let go of at once
    assert (len(deadlines), deadlines.first_at()) == (1, 70.0)


def test_a_wait_that_ended_last_in_the_queue_sends_no_later_one_to_the_heap() -> None:
    deadlines = Deadlines(chunk=4)
    first, long = _sub(10.0, 1), _sub(3600.0, 2)
    deadlines.add(first)
    deadlines.add(long)
    deadlines.discard(long)  # left at once
    shorter = [_sub(60.0 + n, 3 + n) for n in range(10)]
    for sub in shorter:
        deadlines.add(sub)
    assert len(deadlines._heap) == 0  # in the queue, at 24 bytes, not in the heap
    assert [deadlines.pop_due(math.inf) for _ in range(11)] == [first, *shorter]
