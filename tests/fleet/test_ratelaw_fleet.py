"""The fleet's rate law against a lone client's: the same answers and 429s, the same rates.

:class:`imagejobs.planning.ratelaw.AdaptiveRate` is the description;
:data:`imagejobs.fleet.scripts.RATE_LAW` is the same law in Redis Lua. A driver
script built on the very ``RATE_LAW`` text the fleet runs (its functions take
``now`` as an argument) plays a sequence of events at explicit times on a real
redis-server, in one round trip; ``AdaptiveRate`` plays the same sequence; every
answer and every piece of the state must agree after every event.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_server import RedisServer

from imagejobs.fleet import scripts
from imagejobs.fleet.scripts import RATE_LAW
from imagejobs.fleet.shared import Fleet
from imagejobs.planning import ratelaw
from imagejobs.planning.ratelaw import AdaptiveRate

# KEYS: the law's state, the answers accepted. ARGV: max_rate, then for each step its
# op, its time and its argument (an answer's name, or a 429's sent_at). Returns, for
# each step, its answer and the state after it; deletes both keys when done.
DRIVER = (
    RATE_LAW
    + """
local max_rate = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 3 do
  local op, now, arg = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local answer = ''
  if op == 'accepted' then
    on_accepted(KEYS[2], now, arg)
  elseif op == 'throttled' then
    local hold = on_throttled(KEYS[1], KEYS[2], max_rate, now, tonumber(arg))
    if hold then answer = num(hold) else answer = 'none' end
  elseif op == 'current' then
    answer = num(current_rate(KEYS[1], KEYS[2], max_rate, now))
  elseif op == 'measured' then
    answer = num(measured(KEYS[2], now))
  else
    error('no such step: ' .. op)
  end
  local v = redis.call('HMGET', KEYS[1], 'ceiling', 'rate', 'dropped', 'stretch', 'hold')
  out[#out + 1] = {answer, v[1] or '', v[2] or '', v[3] or '', v[4] or '', v[5] or ''}
end
redis.call('DEL', KEYS[1], KEYS[2])
return out
"""
)

Step = tuple[str, float, Any]
# The law's answer to a step (None: none, or a 429 that changed nothing), then its
# state: ceiling (None before the first 429), rate, dropped_at, stretch, hold.
Seen = tuple[float | None, float | None, float, float, float, float]


class Lua:
    """The driver, registered once on a real Redis; a fresh pair of keys per play."""

    def __init__(self, url: str) -> None:
        self.connection = redis.Redis.from_url(url)
        self.script = self.connection.register_script(DRIVER)
        self.plays = 0

    def play(self, max_rate: float, steps: list[Step]) -> list[Seen]:
        self.plays += 1
        keys = [f"law:{{{self.plays}}}:ratelaw", f"law:{{{self.plays}}}:answers"]
        args: list[Any] = [max_rate]
        for op, now, arg in steps:
            args += [op, now, "" if arg is None else arg]
        rows = self.script(keys=keys, args=args)
        return [_lua_seen(max_rate, [bytes(value).decode() for value in row]) for row in rows]


def _lua_seen(max_rate: float, row: list[str]) -> Seen:
    answer, ceiling, rate, dropped, stretch, hold = row
    if not ceiling:  # no state yet: what AdaptiveRate.create starts from
        return (_number(answer), None, max_rate, -math.inf, 0.0, 0.0)
    return (
        _number(answer),
        float(ceiling),
        float(rate),
        float(dropped),
        float(stretch),
        float(hold),
    )


def _number(text: str) -> float | None:
    return None if text in {"", "none"} else float(text)


def play_python(max_rate: float, steps: list[Step]) -> list[Seen]:
    law = AdaptiveRate.create(max_rate)
    seen: list[Seen] = []
    for op, now, arg in steps:
        answer: float | None = None
        if op == "accepted":
            law.on_accepted(now)
        elif op == "throttled":
            answer = law.on_throttled(now, arg)
        elif op == "current":
            answer = law.current(now)
        else:
            answer = law.measured(now)
        state = (law.ceiling, law.rate, law.dropped_at, float(law.stretch), law.hold)
        seen.append((answer, *state))
    return seen


def _same(python: float | None, lua: float | None) -> bool:
    if python is None or lua is None:
        return python is lua
    return python == lua or math.isclose(python, lua, rel_tol=1e-9)


def assert_same(steps: list[Step], python: list[Seen], lua: list[Seen]) -> None:
    assert len(python) == len(lua) == len(steps)
    names = ("answer", "ceiling", "rate", "dropped_at", "stretch", "hold")
    before: tuple[Seen, Seen] | None = None
    for step, ours, theirs in zip(steps, python, lua, strict=True):
        for name, a, b in zip(names, ours, theirs, strict=True):
            assert _same(a, b), f"{step}: {name} is {a!r} in Python, {b!r} in Lua"
        if step[0] == "throttled" and ours[0] is None and before is not None:
            # A 429 to a request sent before the last drop changes nothing, on either side.
            assert ours[1:] == before[0][1:]
            assert theirs[1:] == before[1][1:]
        before = (ours, theirs)


@pytest.fixture(scope="module")
def lua(redis_server: RedisServer) -> Iterator[Lua]:
    driver = Lua(redis_server.url)
    yield driver
    driver.connection.close()


# --- the sequences ----------------------------------------------------------------------

MAX_RATES = st.one_of(
    # The floor's cases: below it (the floor is the configured rate), at it; the default;
    # a gateway's; a huge one.
    st.sampled_from([0.05, ratelaw.FLOOR, 1.5, 10.0, 50.0, 1e9]),
    st.floats(min_value=0.01, max_value=1000),
)
# Round gaps land events on the window's edges and the knee; long ones let the climb end.
GAPS = st.one_of(
    st.sampled_from([0.0, 0.1, 0.5, ratelaw.WINDOW, 2.0, 10.0, 60.0]),
    st.floats(min_value=0, max_value=5),
)
SPACINGS = st.one_of(
    st.sampled_from([0.0, 0.001, 0.02, 0.1]), st.floats(min_value=0, max_value=0.3)
)


@st.composite
def plays(draw: st.DrawFn) -> tuple[float, list[Step]]:
    """A configured rate, and events at increasing times: answers, 429s, questions."""
    max_rate = draw(MAX_RATES)
    limit = draw(st.integers(min_value=1, max_value=60))  # a gateway's, for steady 429s
    now = draw(st.floats(min_value=0, max_value=1e6))
    last_429: float | None = None
    steps: list[Step] = []
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        now += draw(GAPS)
        op = draw(st.sampled_from(["accepted", "steady", "throttled", "current", "measured"]))
        if op == "steady":
            # A gateway at its limit: a second of answers, then a 429 (drops at one ceiling).
            for n in range(limit):
                steps.append(("accepted", now + n / limit, f"answer-{len(steps)}"))
            now += 1.0
            steps.append(("current", now, None))
            steps.append(("throttled", now, now))
            last_429 = now
        elif op == "accepted":
            spacing = draw(SPACINGS)
            for _ in range(draw(st.integers(min_value=1, max_value=40))):
                steps.append(("accepted", now, f"answer-{len(steps)}"))
                now += spacing
        elif op == "throttled":
            # Sent before or after the last drop, at its very instant, or a hair before.
            choices = ["lag"] if last_429 is None else ["lag", "at_last", "before_last"]
            how = draw(st.sampled_from(choices))
            if how == "lag" or last_429 is None:
                sent_at = now - draw(st.floats(min_value=0, max_value=3))
            elif how == "at_last":
                sent_at = last_429
            else:
                sent_at = math.nextafter(last_429, -math.inf)
            steps.append(("throttled", now, sent_at))
            last_429 = now
        else:
            steps.append((op, now, None))
    return max_rate, steps


@settings(max_examples=100)
@given(play=plays())
def test_the_fleet_and_a_lone_client_follow_one_law(
    lua: Lua, play: tuple[float, list[Step]]
) -> None:
    max_rate, steps = play
    assert_same(steps, play_python(max_rate, steps), lua.play(max_rate, steps))


# --- the cases the issue named, and the bounds ------------------------------------------


def test_with_nothing_accepted_both_drop_to_the_same_base(lua: Lua) -> None:
    steps: list[Step] = [("throttled", 10.0, 10.0), ("current", 10.5, None)]
    python, theirs = play_python(50.0, steps), lua.play(50.0, steps)
    assert_same(steps, python, theirs)
    base = 50.0 * (1 - ratelaw.DROP)
    assert theirs[0][1] == pytest.approx(base)  # the ceiling: 0.3 of the rate, not 0.7
    assert theirs[1][0] == pytest.approx(base * ratelaw.DROP)  # no demand: no climb


def test_drops_at_one_ceiling_stretch_the_climb_and_demand_caps_it(lua: Lua) -> None:
    steps: list[Step] = []
    for drop in range(ratelaw.MAX_STRETCH + 2):  # 429s far apart, 10 answers before each
        start = drop * 100.0
        steps += [("accepted", start + 0.05 + n / 10, f"a{drop}-{n}") for n in range(10)]
        steps.append(("throttled", start + 1.0, start + 1.0))
    asked = []
    steps += [("accepted", 503.0 + n / 40, f"s{n}") for n in range(40)]
    steps.append(("current", 504.0, None))  # 3 s after the last drop: a 16 times slower climb
    asked.append(len(steps) - 1)
    steps.append(("current", 1000.0, None))  # long after, but no answers: no climb
    asked.append(len(steps) - 1)
    steps += [("accepted", 1000.05 + n / 10, f"b{n}") for n in range(10)]
    steps.append(("current", 1001.0, None))  # twice the 10 answers of the last second
    asked.append(len(steps) - 1)
    steps.append(("current", 1001.5, None))  # half of those: the rate never goes back
    asked.append(len(steps) - 1)
    steps += [("accepted", 1002.0 + n / 40, f"c{n}") for n in range(40)]
    steps.append(("current", 1003.0, None))  # twice 39 a second is past the max
    asked.append(len(steps) - 1)
    python, theirs = play_python(50.0, steps), lua.play(50.0, steps)
    assert_same(steps, python, theirs)
    drops = [row for step, row in zip(steps, theirs, strict=True) if step[0] == "throttled"]
    assert [row[1] for row in drops] == [10.0] * 6  # the same ceiling every time
    assert [row[4] for row in drops] == [0, 1, 2, 3, 4, 4]  # so the curve stretches, to 16x
    knee = (10.0 * (1 - ratelaw.DROP) / ratelaw.CLIMB) ** (1 / 3)
    stretched = 10.0 + ratelaw.CLIMB * (3.0 / 2**ratelaw.MAX_STRETCH - knee) ** 3
    assert 10.0 * ratelaw.DROP < stretched < 8.0
    rates = [theirs[n][0] for n in asked]
    assert rates == pytest.approx([stretched, stretched, 20.0, 20.0, 50.0])


def test_at_most_max_counted_answers_count_on_both_sides(lua: Lua) -> None:
    count = ratelaw.MAX_COUNTED + 50
    steps: list[Step] = [("accepted", 5.0 + n / (2 * count), f"a{n}") for n in range(count)]
    steps.append(("measured", 5.5, None))
    python, theirs = play_python(1e9, steps), lua.play(1e9, steps)
    assert_same(steps, python, theirs)
    assert theirs[-1][0] == ratelaw.MAX_COUNTED / ratelaw.WINDOW


def test_the_law_writes_no_number_of_its_own() -> None:
    """Every constant of the law comes from ratelaw.py: the Lua holds no second copy."""
    constants = scripts.lua_constants()
    for name in set(ratelaw.__all__) - {"AdaptiveRate"}:
        assert f"local {name} = {getattr(ratelaw, name)!r}\n" in constants
    body = RATE_LAW.replace(constants, "")
    code = "\n".join(line.split("--")[0] for line in body.splitlines())
    # 0 to 3 are the law's shape (a cube, twice the demand), 1000 milliseconds a second.
    assert set(re.findall(r"(?<![\w.[])\d+(?:\.\d+)?", code)) <= {"0", "1", "2", "3", "1000"}


async def test_the_fleet_scripts_run_the_law(redis_url: str) -> None:
    """Through Fleet itself: answers counted by release, a 429 dropping as the law says."""
    fleet = Fleet(
        redis_url,
        "imagejobs:{law}",
        max_in_flight=10,
        rate=50.0,
        pace=1.0,
        burst=10.0,
        lease=30.0,
        max_retry_after=30.0,
    )
    connection = fleet._redis
    try:
        for _ in range(5):
            fleet.release(await fleet.acquire(), answered=True)
        await asyncio.gather(*fleet._background)
        assert await connection.zcard("imagejobs:{law}:answers") == 5
        early, late = await fleet.acquire(), await fleet.acquire()
        assert early is not None
        assert late is not None
        fleet.release(late, throttled=True)
        await asyncio.gather(*fleet._background)
        state = await connection.hgetall("imagejobs:{law}:ratelaw")
        law = AdaptiveRate.create(50.0)
        for _ in range(5):
            law.on_accepted(0.0)
        law.on_throttled(0.0, 0.0)
        assert float(state[b"ceiling"]) == law.ceiling == 5.0
        assert float(state[b"rate"]) == pytest.approx(law.rate)
        assert float(state[b"hold"]) == law.hold
        assert await connection.pttl("imagejobs:{law}:pause") > 0  # the hold, fleet-wide
        fleet.release(early, throttled=True)  # sent before the drop: nothing changes
        await asyncio.gather(*fleet._background)
        assert await connection.hgetall("imagejobs:{law}:ratelaw") == state
    finally:
        await fleet.close()
