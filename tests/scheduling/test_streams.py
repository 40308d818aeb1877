"""A stream's own bookkeeping: failures in a row, what an answer resets, what a sweep does not;
which subscriber sets its pace, and what its subscribers have in common."""

from __future__ import annotations

import gc
import math

from hypothesis import given
from hypothesis import strategies as st

from imagejobs import PollPolicy, ServerError
from imagejobs.planning.budget import RequestBudget
from imagejobs.scheduling.streams import NO_FLEET_LOOKS, Failure, FleetLooks, Stream
from imagejobs.scheduling.subscriptions import Mailbox, Subscription
from imagejobs.testing import FakeClock
from imagejobs.timing.gate import Gate

BUSY = ServerError(503, "WKS.0503", "busy")
POLICY = PollPolicy(initial_delay=1, timeout=60)


def test_failures_count_in_a_row_until_an_answer() -> None:
    stream = Stream("j")
    assert [stream.failed(BUSY, since=float(n)) for n in range(3)] == [1, 2, 3]
    assert stream.failure is not None
    assert stream.failure.since == 0.0  # since the first of the row
    stream.answered(draw=0.3)
    assert stream.failure is None
    assert (stream.failures, stream.draw) == (0, 0.3)
    assert stream.failed(BUSY, since=9.0) == 1


def test_a_sweep_that_clears_the_failure_keeps_the_backoff_going() -> None:
    stream = Stream("j")
    stream.failed(BUSY, since=0.0)
    stream.failed(BUSY, since=1.0)
    stream.failure = None  # what a sweep that lists the job does: it is not failing now
    assert stream.failed(BUSY, since=5.0) == 3  # the next GET's failure backs off further
    assert stream.failure is not None
    assert stream.failure.since == 5.0


def test_a_failure_a_sweep_gives_every_job_it_covers_changes_for_one_job_alone() -> None:
    shared = Failure(BUSY, 2.0)  # one for the hundred thousand jobs a failed sweep covers
    one, other = Stream("a"), Stream("b")
    one.failure = other.failure = shared
    gateway = ServerError(502, "APIGW.0502", "bad gateway")
    assert one.failed(gateway, since=5.0) == 1
    assert one.failure is not None
    assert (one.failure.error, one.failure.since) == (gateway, 2.0)  # failing since the sweep
    assert other.failure is shared
    assert (shared.error, shared.since) == (BUSY, 2.0)


def _sub(policy: PollPolicy = POLICY, gate: Gate | None = None) -> Subscription:
    return Subscription("j", policy, Mailbox(), gate, 0.0, math.inf, None)


def test_the_most_demanding_subscriber_sets_when_and_how_the_job_is_looked_at() -> None:
    clock = FakeClock()
    first_gate, second_gate = (Gate(RequestBudget.create(1, 1.0, 0.0), clock) for _ in range(2))
    stream = Stream("j")
    eager, lax, twin = _sub(gate=first_gate), _sub(gate=second_gate), _sub(gate=second_gate)
    for sub, when in ((eager, 5.0), (lax, 9.0), (twin, 5.0)):
        stream.join(sub)
        stream.want(sub, when)
    assert stream.due_at() == 5.0
    assert stream.call_gate() is first_gate  # of two that want the same time, the first to join
    stream.want(eager, 12.0)
    assert (stream.due_at(), stream.call_gate()) == (5.0, second_gate)
    stream.leave(twin)
    assert stream.due_at() == 9.0
    stream.not_before = 10.0
    assert stream.due_at() == 10.0
    stream.want_by(7.0)  # a sweep asks for a GET: nobody later than that
    assert [eager.wants_at, lax.wants_at] == [7.0, 7.0]
    assert stream.fresh_after(8.0) == 7.0 - 1.0  # the first look: one initial delay back
    ungated = _sub()
    stream.join(ungated)
    stream.want(ungated, 20.0)
    assert stream.call_gate() is None  # one subscriber without a gate: the client's own
    stream.leave(ungated)
    stream.leave(lax)
    stream.leave(eager)
    assert stream.due_at() == math.inf


def test_policies_gates_and_watchers_count_while_a_subscriber_has_them() -> None:
    stream = Stream("j")
    stream.sweep.fetched_at = 0.0
    slow = PollPolicy(initial_delay=5, max_delay=60, timeout=None)
    subs = [_sub(), _sub(PollPolicy(initial_delay=1, timeout=60)), _sub(slow)]
    subs[2].wants_transitions = False
    for sub in subs:
        stream.join(sub)
    assert set(stream.policies()) == {POLICY, slow}  # an equal policy counts as the same
    assert set(stream.gates()) == {None}
    assert stream.watched()
    assert not stream.overdue(now=590.0)  # ten of the longest gap (60 s) without a GET
    assert stream.overdue(now=600.0)
    stream.leave(subs[0])
    stream.leave(subs[1])
    assert set(stream.policies()) == {slow}
    assert not stream.watched()
    stream.leave(subs[2])
    assert not stream.policies()
    assert not stream.gates()


def test_a_stream_of_one_subscriber_keeps_no_index_and_builds_one_for_a_second() -> None:
    stream = Stream("j")
    alone = _sub()
    stream.join(alone)
    for when in (3.0, 8.0, 2.0):  # a sweep looking at it again and again leaves nothing
        stream.want(alone, when)
    assert stream._wants is None
    assert stream.due_at() == 2.0
    second = _sub()
    stream.join(second)
    stream.want(second, 1.0)
    assert stream.due_at() == 1.0  # the index holds the first as well as the second
    stream.leave(second)
    assert stream._wants is None
    assert (stream.due_at(), stream.call_gate(), list(stream.policies())) == (2.0, None, [POLICY])
    stream.want_by(1.5)
    assert stream.due_at() == 1.5
    stream.leave(alone)
    assert (stream.due_at(), stream._wants, list(stream.subscribers)) == (math.inf, None, [])


@given(
    st.lists(
        st.tuples(st.sampled_from(["join", "leave", "want"]), st.integers(0, 3), st.integers(0, 9)),
        max_size=40,
    )
)
def test_subscribers_joining_leaving_and_wanting_in_any_order(
    steps: list[tuple[str, int, int]],
) -> None:
    stream = Stream("j")
    pool = [_sub() for _ in range(4)]
    joined: list[Subscription] = []  # the model: who is in, in joining order
    for step, which, when in steps:
        sub = pool[which]
        if step == "join" and sub not in joined:
            sub.wants_at = float(when)
            stream.join(sub)
            joined.append(sub)
        elif step == "leave" and sub in joined:
            stream.leave(sub)
            joined.remove(sub)
        elif step == "want":
            stream.want(sub, float(when))
        assert list(stream.subscribers) == joined
        # The first to join wins a tie; a stream of one keeps neither a dict nor a heap.
        first = min(joined, key=lambda each: (each.wants_at, joined.index(each)), default=None)
        assert stream._most_demanding() is first
        assert stream.due_at() == (math.inf if first is None else first.wants_at)
        assert (stream._numbers is None) == (len(joined) <= 1)
        assert (stream._wants is None) == (len(joined) <= 1)


def test_a_stream_no_fleet_looks_at_shares_the_defaults_one_that_changes_gets_its_own() -> None:
    one, other = Stream("a"), Stream("b")
    assert one.fleet is other.fleet is NO_FLEET_LOOKS  # no record a job without a fleet
    one.set_fleet(news=True)
    one.set_fleet(others_looking=2)
    assert (one.fleet.news, one.fleet.others_looking) == (True, 2)
    assert other.fleet is NO_FLEET_LOOKS
    assert FleetLooks() == NO_FLEET_LOOKS
    assert not gc.is_tracked(one.fleet)
