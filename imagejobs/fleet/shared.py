"""What a client shares with the other processes of its account, through Redis.

The gateway's limit is per account, so a fleet of processes shares one budget:
each request first passes a limiter whose state lives in Redis and whose clock
is Redis's own (``TIME``), so hosts with skewed clocks agree.

- **Rate**: GCRA (the generic cell rate algorithm, a token bucket kept as one
  "theoretical arrival time") in a Lua script: one round trip grants a request
  or says exactly how long to wait.
- **In flight**: a sorted set of slots, each scored by when its lease expires,
  so a process killed mid-request holds its slot no longer than its lease.
- **Throttling**: a 429 anywhere holds the whole fleet (a shared pause) and
  lowers the shared rate, which climbs back along the same cubic curve as a
  lone client's (:mod:`imagejobs.planning.ratelaw`).
- **Shared polls**: a job's GET is claimed with a lease; the answer is kept in
  a short Redis stream of the job's distinct snapshots, so another process due
  for a look takes those instead of asking the gateway again, and replays
  every change it has not seen.

Redis trouble is never the user's trouble: any Redis error or slow answer
makes every call here answer "not shared" (the client goes on under its own
budget), with one warning, and Redis is tried again a few seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from imagejobs.core.errors import ConfigurationError, InvalidArgument

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["Fleet", "FleetPass", "Shared", "fleet_key", "redacted_url"]

logger = logging.getLogger("imagejobs")

REDIS_TIMEOUT = 0.5
"""Seconds a Redis call may take before Redis counts as unreachable: waits go on without it."""

RETRY_REDIS_AFTER = 2.0
"""Seconds after a Redis failure before Redis is asked again."""

HEARTBEAT = 1.0
"""Seconds between a process's signs of life; :data:`MEMBER_TTL` after the last it is gone."""

MEMBER_TTL = 3.0

LOOK_LEASE = 120.0
"""Seconds a claimed look is held at most: a live holder's claim stands until then, a dead
holder's (no sign of life for :data:`MEMBER_TTL`) is free at once."""

SNAPSHOT_TTL = 300.0
"""Seconds a job's shared snapshots are kept after the last one: longer than any poll gap."""

KEPT_SNAPSHOTS = 8
"""Distinct snapshots kept per job: a process that looks less often replays up to this many."""

QUEUE_HORIZON = 2.0
"""Seconds ahead a request may take its turn in the fleet's queue: one Redis call books it,
instead of every waiter asking again at the same instant."""

SLOT_WAIT = 0.02
"""Seconds to wait before asking again when every fleet-wide slot is taken."""

_SCHEMES = ("redis", "rediss", "unix")

_PRELUDE = """
local DROP, CLIMB = 0.7, 0.1
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function fmt(x) return string.format('%.3f', x) end
local function floor_rate(max_rate) return math.min(0.2, max_rate) end
-- The shared rate: max_rate until a 429, then a cubic climb from 0.7 of the ceiling.
local function current_rate(key, max_rate, now)
  local v = redis.call('HMGET', key, 'ceiling', 'rate', 'dropped')
  if not v[1] then return max_rate end
  local ceiling, rate, dropped = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
  local knee = (ceiling * (1 - DROP) / CLIMB) ^ (1 / 3)
  local x = (now - dropped) / 1000 - knee
  return math.min(max_rate, math.max(rate, ceiling + CLIMB * x * x * x))
end
-- Answers accepted in the last full second, from a ring of 20 tenth-of-a-second buckets.
local function bucket_of(key, b)
  local v = redis.call('HGET', key, tostring(b % 20))
  if not v then return 0 end
  local at, n = string.match(v, '^(%-?%d+):(%d+)$')
  if tonumber(at) == b then return tonumber(n) end
  return 0
end
local function accepted(key, now)
  local b = math.floor(now / 100)
  local total = 0
  for i = 1, 10 do total = total + bucket_of(key, b - i) end
  return total
end
"""

# KEYS: tat, slots, pause, adaptive.
# ARGV: max_rate, pace, burst, max_in_flight, lease_ms, token, booked (ms, 0: none), horizon_ms.
# Returns {state, now, wait, rate, booked}: state 1 granted; 2 a turn booked for `booked`
# (come back with it after wait ms, or after a moment if wait is -1: every slot taken); 0 no
# turn (a pause, or the queue longer than the horizon; ask again after wait ms). A booked
# turn not used within one interval of its time is gone: turns kept while every slot was
# taken must not all go at once when slots free.
_ACQUIRE = (
    _PRELUDE
    + """
local max_rate, pace, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, lease, horizon = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[8])
local booked = tonumber(ARGV[7])
local now = now_ms()
local rate = current_rate(KEYS[4], max_rate, now)
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
if pause > now then return {0, fmt(now), fmt(pause - now), fmt(rate), '0'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local full = redis.call('ZCARD', KEYS[2]) >= cap
local interval = 1000 / (rate * pace)
if booked > 0 and now > booked + interval then booked = 0 end
if booked == 0 then
  -- Take the next turn in the fleet's queue, unless it is further off than the horizon.
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  local allowed_at = tat - (burst - 1) * interval
  if allowed_at - now > horizon then
    return {0, fmt(now), fmt(allowed_at - now - horizon), fmt(rate), '0'}
  end
  redis.call('SET', KEYS[1], fmt(tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
  booked = math.max(allowed_at, now)
  if now < allowed_at then return {2, fmt(now), fmt(allowed_at - now), fmt(rate), fmt(booked)} end
end
if full then return {2, fmt(now), '-1', fmt(rate), fmt(booked)} end
redis.call('ZADD', KEYS[2], now + lease, ARGV[6])
redis.call('PEXPIRE', KEYS[2], lease + 1000)
return {1, fmt(now), '0', fmt(rate), fmt(booked)}
"""
)

# KEYS: slots, accepted. ARGV: token, answered (1/0).
_RELEASE = (
    _PRELUDE
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  local b = math.floor(now_ms() / 100)
  redis.call('HSET', KEYS[2], tostring(b % 20), b .. ':' .. (bucket_of(KEYS[2], b) + 1))
  redis.call('PEXPIRE', KEYS[2], 5000)
end
return 1
"""
)

# KEYS: adaptive, pause, accepted. ARGV: max_rate, sent_ms, retry_after_ms, max_retry_ms.
# Returns 1 if the rate dropped, 0 if the 429 was to a request sent before the last drop.
_THROTTLED = (
    _PRELUDE
    + """
local max_rate, sent = tonumber(ARGV[1]), tonumber(ARGV[2])
local retry_after, max_retry = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local function pause_until(t)
  local old = tonumber(redis.call('GET', KEYS[2]) or '0')
  if t > old then redis.call('SET', KEYS[2], fmt(t), 'PX', math.ceil(t - now) + 1000) end
end
if retry_after > 0 then pause_until(now + math.min(retry_after, max_retry)) end
local v = redis.call('HMGET', KEYS[1], 'dropped', 'hold')
local dropped, hold = tonumber(v[1] or '-1e18'), tonumber(v[2] or '0')
if sent < dropped then return 0 end
local before = current_rate(KEYS[1], max_rate, now)
local seen = accepted(KEYS[3], now)
local base = before * DROP
if seen > 0 then base = math.min(before, seen) end
local low = floor_rate(max_rate)
if hold > 0 and now - dropped <= hold + 2000 then
  hold = math.min(8000, 2 * hold)
else
  hold = 1000
end
redis.call('HSET', KEYS[1], 'ceiling', fmt(math.max(base, low)),
  'rate', fmt(math.max(low, base * DROP)), 'dropped', fmt(now), 'hold', fmt(hold))
redis.call('PEXPIRE', KEYS[1], 600000)
if retry_after <= 0 then pause_until(now + hold) end
return 1
"""
)

# KEYS: members. ARGV: member, ttl_ms, leaving (1/0). Returns {live members, now}.
_HEARTBEAT = (
    _PRELUDE
    + """
local now = now_ms()
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), fmt(now)}
"""
)

# KEYS: log, lease, seen, members. ARGV: fresh_after_ms, mark, member, lease_ms, claim.
# A lease holds the claim, "member:token"; it stands while that member is alive.
# Returns {state, now, taken, entries}: 'fresh' (a look since fresh_after), 'wait' (another
# process is looking) or 'go' (claimed), with the entries after mark (without one, those
# since fresh_after) for the caller to replay first; a fresh answer has the newest at least.
_LOOK = (
    _PRELUDE
    + """
local fresh_after, mark, member = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local now = now_ms()
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local entries = {}
if mark ~= '' then
  -- From the mark on, without it (an exclusive range needs Redis 6.2).
  entries = redis.call('XRANGE', KEYS[1], mark, '+')
  if entries[1] and entries[1][1] == mark then table.remove(entries, 1) end
elseif fresh_after > 0 then
  -- A first look: what was seen since it was wanted (an entry's ID is its time).
  entries = redis.call('XRANGE', KEYS[1], string.format('%d', math.floor(fresh_after)), '+')
end
if newest then
  local fields = {}
  for i = 1, #newest[2], 2 do fields[newest[2][i]] = newest[2][i + 1] end
  local taken = math.max(tonumber(fields['at']), tonumber(redis.call('GET', KEYS[3]) or '0'))
  if taken >= fresh_after or fields['final'] == '1' then
    if #entries == 0 then entries = {newest} end
    return {'fresh', fmt(now), fmt(taken), entries}
  end
end
local holder = redis.call('GET', KEYS[2])
if holder then
  local owner = string.match(holder, '^([^:]*)')
  local alive = redis.call('ZSCORE', KEYS[4], owner)
  if owner ~= member and alive and tonumber(alive) > now then
    return {'wait', fmt(now), '0', entries}
  end
end
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[4])
return {'go', fmt(now), '0', entries}
"""
)

# KEYS: log, lease, seen. ARGV: body, claim ("member:token"), ttl_ms, final (1/0), kept,
# answered_ms.
# Keeps the body unless it repeats the newest snapshot (then only its time) or a look
# answered later is already there. Returns the newest entry's ID.
_PUBLISH = (
    _PRELUDE
    + """
local body, member, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local at = math.min(now, tonumber(ARGV[6]))
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local id = nil
if newest then
  local fields = {}
  for i = 1, #newest[2], 2 do fields[newest[2][i]] = newest[2][i + 1] end
  if tonumber(fields['at']) > at then
    id = newest[1]
  elseif fields['body'] == body then
    id = newest[1]
    redis.call('SET', KEYS[3], fmt(at), 'PX', ttl)
  end
end
if not id then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], '*', 'body', body, 'at', fmt(at),
    'final', ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('GET', KEYS[2]) == member then redis.call('DEL', KEYS[2]) end
return id
"""
)

# KEYS: lease. ARGV: claim ("member:token").
_UNLEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


def redacted_url(url: str) -> str:
    """Return a Redis URL without its user name and password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_redis_url(url: object) -> str:
    """Return ``url`` if it names a Redis server; raise :class:`InvalidArgument` otherwise."""
    if not isinstance(url, str) or not url:
        raise InvalidArgument(f"redis_url must be a redis:// URL, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here, not later
    except ValueError:
        raise InvalidArgument("redis_url is not a URL (redis://host:port/db)") from None
    if parts.scheme not in _SCHEMES or (parts.scheme != "unix" and not parts.hostname):
        raise InvalidArgument(
            f"redis_url must be redis://, rediss:// or unix://, got {redacted_url(url)!r}"
        )
    return url


def fleet_key(project_id: str, account: str) -> str:
    """Return the Redis key prefix of an account's fleet: never the secret, only a hash of it.

    The braces are a Redis Cluster hash tag: every key of a fleet is on one node,
    as a Lua script touching several keys needs.
    """
    digest = hashlib.sha256(b"imagejobs-fleet\0" + account.encode("utf-8", "surrogatepass"))
    return f"imagejobs:{{{project_id}:{digest.hexdigest()[:20]}}}"


@attrs.frozen
class FleetPass:
    """A fleet-wide slot for one request, and when Redis granted it (Redis ms)."""

    token: str
    sent_ms: float


@attrs.frozen
class Shared:
    """What the fleet knows of a job when a process is due to look.

    ``state`` is ``"fresh"`` (another look was recent enough), ``"wait"``
    (another process is looking now), or ``"go"`` (this process holds the
    look, as ``claim``). ``entries`` are the snapshots after the caller's mark,
    oldest first, as ``(id, body, at)``; when fresh and there are none, the
    newest, its time being when it was last confirmed unchanged.
    """

    state: str
    entries: tuple[tuple[str, bytes, float], ...] = ()
    claim: str = ""


def _import_redis() -> Any:
    try:
        import redis.asyncio  # noqa: PLC0415 - an extra, imported only when used
    except ImportError:
        raise ConfigurationError(
            "redis_url needs the redis extra: pip install 'imagejobs[redis]'"
        ) from None
    return redis.asyncio


class Fleet:
    """One client's share of its account's fleet: limiter, slots, throttling and shared looks.

    Times given and returned are on :func:`time.monotonic`; Redis's own clock is
    converted with the offset measured on every call.

    A Redis call that times out or is cancelled may still have run: what it may
    have taken (a slot, a claim on a look) is given back once Redis answers again.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        max_in_flight: int,
        rate: float,
        pace: float,
        burst: float,
        lease: float,
        max_retry_after: float,
    ) -> None:
        aioredis = _import_redis()
        self.where = redacted_url(url)
        """The Redis URL without its credentials."""
        self._redis: Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            decode_responses=False,
        )
        self.key = key
        self.member = uuid.uuid4().hex
        self.max_in_flight = max_in_flight
        self.max_rate = float(rate)
        self._pace = pace
        self._burst = burst
        self._lease_ms = lease * 1000
        self._max_retry_ms = max_retry_after * 1000
        self._scripts: dict[str, AsyncScript] = {
            name: self._redis.register_script(source)
            for name, source in {
                "acquire": _ACQUIRE,
                "release": _RELEASE,
                "throttled": _THROTTLED,
                "heartbeat": _HEARTBEAT,
                "look": _LOOK,
                "publish": _PUBLISH,
                "unlease": _UNLEASE,
            }.items()
        }
        self._tokens = itertools.count()
        self._offset: float | None = None
        self._down_until = -math.inf
        self._down = False
        self.rate = self.max_rate
        self.members = 1
        self.calls = 0
        """Redis calls made, for the benchmarks."""
        self._joining: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._undo: set[tuple[str, str, str]] = set()
        self._closing = False
        self._stop = asyncio.Event()
        self._closed = False

    def __repr__(self) -> str:
        return f"Fleet(redis={self.where!r}, key={self.key!r}, members={self.members})"

    @property
    def sharing(self) -> bool:
        """Whether Redis answered the last call: the fleet's limits hold, not only this client's."""
        return not self._down

    def share(self, local_rate: float) -> float:
        """Return the rate this process may plan on: its part of the fleet's, at most its own."""
        if self._down:
            return local_rate
        return min(local_rate, self.rate / max(1, self.members))

    # --- Redis calls, each of which may fail without harm --------------------------------

    async def _call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script; return None (and go without Redis a while) on any trouble."""
        if self._closed or time.monotonic() < self._down_until:
            return None
        if name != "heartbeat":
            await self._join()
        self.calls += 1
        before = time.monotonic()
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                result = await self._scripts[name](keys=list(keys), args=list(args))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the wait goes on
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled as the timeout ran out: asyncio.timeout made it a TimeoutError.
                raise asyncio.CancelledError from None
            self._went_down(exc)
            return None
        if self._down:
            self._down = False
            logger.warning("Redis at %s is back: sharing the budget again", self.where)
        if isinstance(result, list) and len(result) >= 2:
            # Every script answers with Redis's time second: the offset to this clock.
            self._note_time(result[1], before, time.monotonic())
        return result

    async def _join(self) -> None:
        """Be a member, and know Redis's clock, before the first look or turn.

        A look compares times on Redis's clock, and a claim stands only while its
        holder is a member: neither may come before the first heartbeat.
        """
        if self._offset is not None and self._heartbeat is not None:
            return
        if self._joining is None or self._joining.done():
            self._joining = asyncio.get_running_loop().create_task(self._beat_once())
        await asyncio.shield(self._joining)
        if self._heartbeat is None and not self._closing:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    def _went_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER
        if not self._down:
            self._down = True
            # Its type only: redis-py's messages are safe, but a URL's password must
            # never reach a log, and the type says enough.
            logger.warning(
                "Redis at %s is not answering (%s): going on under this process's own "
                "budget, and trying again every %gs",
                self.where,
                type(exc).__name__,
                RETRY_REDIS_AFTER,
            )

    def _note_time(self, redis_now: Any, before: float, after: float) -> None:
        self._offset = float(redis_now) / 1000 - (before + after) / 2

    def _to_local(self, redis_ms: float) -> float:
        offset = self._offset if self._offset is not None else 0.0
        return redis_ms / 1000 - offset

    def _to_redis(self, local: float) -> float | None:
        return None if self._offset is None else (local + self._offset) * 1000

    def _k(self, name: str) -> str:
        return f"{self.key}:{name}"

    def _spawn(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Run a script in the background: what it reports must not wait, nor be cancelled."""
        try:
            task = asyncio.get_running_loop().create_task(self._call(name, keys, args))
        except RuntimeError:
            return  # no loop any more: the leases expire on their own
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _call_or_give_back(
        self, name: str, keys: Sequence[str], args: Sequence[Any], undo: tuple[str, str, str]
    ) -> Any:
        """Run a script that may take something; if no answer says what, give it back later."""
        try:
            result = await self._call(name, keys, args)
        except asyncio.CancelledError:
            self._give_back(*undo)
            raise
        if result is None:
            self._give_back(*undo)
        return result

    def _give_back(self, kind: str, key: str, token: str) -> None:
        """Undo, once Redis answers, what a call that may have run took."""
        self._undo.add((kind, key, token))

    async def _undo_all(self) -> None:
        for kind, key, token in list(self._undo):
            name = "release" if kind == "slot" else "unlease"
            args = [token, 0] if kind == "slot" else [token]
            keys = [key, self._k("accepted")] if kind == "slot" else [key]
            if await self._call(name, keys, args) is None:
                return
            self._undo.discard((kind, key, token))

    # --- members ------------------------------------------------------------------------

    async def _beat_once(self) -> None:
        ttl = int(MEMBER_TTL * 1000)
        result = await self._call("heartbeat", [self._k("members")], [self.member, ttl, 0])
        if result is not None:
            self.members = max(1, int(result[0]))

    async def _beat(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HEARTBEAT)
            if self._closing:
                return
            await self._beat_once()
            if self._undo:
                await self._undo_all()

    # --- the shared budget --------------------------------------------------------------

    async def acquire(self, deadline: float = math.inf) -> FleetPass | None:
        """Wait for a fleet-wide slot and the shared rate; None if Redis is not answering.

        Raises :class:`TimeoutError` if no slot came by ``deadline`` (monotonic).
        """
        keys = [self._k("tat"), self._k("slots"), self._k("pause"), self._k("adaptive")]
        token = f"{self.member}:{next(self._tokens)}"
        booked = "0"
        while True:
            args = [
                self.max_rate,
                self._pace,
                self._burst,
                self.max_in_flight,
                int(self._lease_ms),
                token,
                booked,
                int(QUEUE_HORIZON * 1000),
            ]
            undo = ("slot", self._k("slots"), token)
            result = await self._call_or_give_back("acquire", keys, args, undo)
            if result is None:
                return None
            state, _, wait_ms, rate = (float(value) for value in result[:4])
            self.rate = rate
            if state == 1:
                return FleetPass(token, float(result[1]))
            # A turn is kept until used (or too late); a pause loses it.
            booked = result[4].decode() if state == 2 else "0"
            wait = SLOT_WAIT if wait_ms < 0 else wait_ms / 1000
            if time.monotonic() + wait >= deadline:
                raise TimeoutError
            await asyncio.sleep(wait)

    def release(
        self,
        ticket: FleetPass | None,
        *,
        answered: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Give back a slot, and tell the fleet of an answer or a 429 (in the background)."""
        if ticket is None:
            return
        self._spawn_undoable(
            "release",
            [self._k("slots"), self._k("accepted")],
            [ticket.token, int(answered)],
            ("slot", self._k("slots"), ticket.token),
        )
        if throttled:
            keys = [self._k("adaptive"), self._k("pause"), self._k("accepted")]
            retry_ms = 0 if retry_after is None or retry_after <= 0 else retry_after * 1000
            args = [self.max_rate, ticket.sent_ms, retry_ms, self._max_retry_ms]
            self._spawn("throttled", keys, args)

    def _spawn_undoable(
        self, name: str, keys: Sequence[str], args: Sequence[Any], undo: tuple[str, str, str]
    ) -> None:
        """Run a script that gives something back; if it does not run, give it back later."""

        async def run() -> None:
            if await self._call(name, keys, args) is None:
                self._give_back(*undo)

        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            return  # no loop any more: the leases expire on their own
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- shared looks -------------------------------------------------------------------

    def _look_keys(self, url: str) -> list[str]:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        return [self._k(f"log:{digest}"), self._k(f"lease:{digest}"), self._k(f"seen:{digest}")]

    async def look(self, url: str, fresh_after: float, mark: str) -> Shared | None:
        """Say whether another process looked at ``url`` since ``fresh_after`` (monotonic).

        Claims the look when nobody did and nobody is looking. None if Redis is
        not answering: then look without sharing.
        """
        keys = [*self._look_keys(url), self._k("members")]
        await self._join()
        fresh_ms = self._to_redis(fresh_after) if math.isfinite(fresh_after) else None
        if fresh_ms is None:
            # Not known on Redis's clock (or asked for a look of its own): nothing is fresh
            # but a final snapshot.
            fresh_ms = 1e18 if fresh_after > 0 or self._offset is None else -1e18
        claim = f"{self.member}:{next(self._tokens)}"
        args = [f"{fresh_ms:.3f}", mark, self.member, int(LOOK_LEASE * 1000), claim]
        result = await self._call_or_give_back("look", keys, args, ("lease", keys[1], claim))
        if result is None:
            return None
        state = result[0].decode()
        taken = float(result[2])
        entries = []
        for entry_id, flat in result[3]:
            fields = dict(zip(flat[::2], flat[1::2], strict=False))
            entries.append((entry_id.decode(), bytes(fields[b"body"]), float(fields[b"at"])))
        if state == "fresh":
            # The newest snapshot holds until it was last confirmed unchanged.
            entries[-1] = (*entries[-1][:2], max(entries[-1][2], taken))
        local = tuple((entry_id, body, self._to_local(at)) for entry_id, body, at in entries)
        return Shared(state, local, claim if state == "go" else "")

    async def publish(
        self, url: str, claim: str, body: bytes, *, final: bool, answered: float
    ) -> str | None:
        """Keep a snapshot for the fleet and let go of the look; return the log's newest ID."""
        keys = self._look_keys(url)
        ttl = int(SNAPSHOT_TTL * 1000)
        answered_ms = self._to_redis(answered)
        if answered_ms is None:
            self.let_go(url, claim)
            return None
        args = [body, claim, ttl, int(final), KEPT_SNAPSHOTS, f"{answered_ms:.3f}"]
        result = await self._call_or_give_back("publish", keys, args, ("lease", keys[1], claim))
        return None if result is None else bytes(result).decode()

    def let_go(self, url: str, claim: str) -> None:
        """Give up a claimed look that found nothing to share (its GET failed)."""
        lease = self._look_keys(url)[1]
        self._spawn_undoable("unlease", [lease], [claim], ("lease", lease, claim))

    # --- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the fleet (its claims free at once) and close the connection to Redis."""
        if self._closing:
            return
        self._closing = True
        self._stop.set()
        if self._heartbeat is not None:
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._heartbeat is not None:
            if self._undo:
                await self._undo_all()
            await self._call("heartbeat", [self._k("members")], [self.member, 0, 1])
        self._closed = True
        try:
            await self._redis.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection is no error of the user's
            logger.debug("closing the Redis connection failed", exc_info=False)
