"""What a client shares with the other processes of its account, through Redis.

The gateway's limit is per account, so a fleet of processes shares one budget:
each request first passes a limiter whose state lives in Redis and whose clock
is Redis's own (``TIME``), so hosts with skewed clocks agree.

- **Rate**: GCRA (the generic cell rate algorithm, a token bucket kept as one
  "theoretical arrival time") in a Lua script: one round trip grants a request
  or says exactly how long to wait.
- **In flight**: a sorted set of slots, each scored by when its lease expires,
  so a process killed mid-request holds its slot no longer than its lease.
- **Throttling**: a 429 anywhere holds the whole fleet (a shared pause; any
  answer's ``Retry-After`` does, a 503's too) and lowers the shared rate, which
  follows the same law as a lone client's (:mod:`imagejobs.planning.ratelaw`):
  the same drop, climb, stretch, hold and demand cap, its constants taken from
  there, tested against it on a real Redis.
  The scripts, and the few ways a fleet must differ, are in
  :mod:`imagejobs.fleet.scripts`.
- **Claims**: what one process fetches for the others (a job's look,
  :mod:`.looks`; a page of a list, :mod:`.pages`) is claimed with a lease that
  stands while its holder is alive; the calls those modules make go through
  :meth:`Fleet.call`, so Redis trouble is theirs to ignore too.

Redis trouble is never the user's trouble: any Redis error or slow answer
makes every call here answer "not shared" (the client goes on under its own
budget), with one warning; the heartbeat alone tries Redis again, every few
seconds, so a process sends nothing else to a Redis that is away.
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
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from imagejobs.core.errors import ConfigurationError, InvalidArgument

from .scripts import SCRIPTS
from .undo import Taken, Undo

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["CLAIM_LEASE", "Fleet", "FleetSlot", "fleet_key", "redacted_url"]

logger = logging.getLogger("imagejobs")

REDIS_TIMEOUT = 0.5
"""Seconds a Redis call may take before Redis counts as unreachable: waits go on without it."""

REDIS_CONNECTIONS = 64
"""Connections to Redis a process opens at most; more calls at once wait for one."""

RETRY_REDIS_AFTER = 2.0
"""Seconds after a Redis failure before Redis is asked again."""

HEARTBEAT = 1.0
"""Seconds between a process's signs of life; :data:`MEMBER_TTL` after the last it is gone."""

MEMBER_TTL = 3.0

CLAIM_LEASE = 120.0
"""Seconds a claim (on a look, on a page) is held at most: a live holder's claim stands until
then, a dead holder's (no sign of life for :data:`MEMBER_TTL`) is free at once."""

QUEUE_HORIZON = 2.0
"""Seconds ahead a request may take its turn in the fleet's queue: one Redis call books it,
instead of every waiter asking again at the same instant."""

SLOT_WAIT = 0.02
"""Seconds to wait before asking again when every fleet-wide slot is taken."""

UNDO_BATCH = 200
"""Things given back in one Redis call after an outage."""

_SCHEMES = ("redis", "rediss", "unix")


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
class FleetSlot:
    """A fleet-wide slot for one request, and when Redis granted it (Redis ms)."""

    token: str
    sent_ms: float


def _import_redis() -> Any:
    try:
        import redis.asyncio  # noqa: PLC0415 - an extra, imported only when used
    except ImportError:
        raise ConfigurationError(
            "redis_url needs the redis extra: pip install 'imagejobs[redis]'"
        ) from None
    return redis.asyncio


class Fleet:
    """One client's share of its account's fleet: limiter, slots, throttling, and the calls
    shared looks and pages make.

    ``rate`` is what this member says the fleet's limit is: the ``fleet_rate`` it
    was given if ``explicit``, else its own rate (see :data:`~.scripts.HEARTBEAT`
    for how the members' words make one limit).

    Times given and returned are on :func:`time.monotonic`; Redis's own clock is
    converted with the offset measured on every call.

    A Redis call that times out or is cancelled once sent may still have run: what it
    may have taken (a slot, a claim on a look) is given back once Redis answers again,
    in the background, unless its lease has ended by then. Calls never sent (Redis
    away) take nothing, and leave nothing to give back.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        max_in_flight: int,
        rate: float,
        explicit: bool = False,
        pace: float,
        burst: float,
        lease: float,
        max_retry_after: float,
    ) -> None:
        aioredis = _import_redis()
        self.where = redacted_url(url)
        """The Redis URL without its credentials."""
        # A blocking pool: a call beyond its connections waits for one (within the call's
        # timeout) where the default pool fails it, and one busy moment is no outage.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            decode_responses=False,
        )
        self._redis: Redis = aioredis.Redis.from_pool(pool)  # closed with the client
        self.key = key
        self.member = uuid.uuid4().hex
        self.max_in_flight = max_in_flight
        self.max_rate = float(rate)
        self._explicit = explicit
        self._pace = pace
        self._burst = burst
        self._lease_ms = lease * 1000
        self._max_retry_ms = max_retry_after * 1000
        self._scripts: dict[str, AsyncScript] = {
            name: self._redis.register_script(source) for name, source in SCRIPTS.items()
        }
        self._tokens = itertools.count()
        self._offset: float | None = None
        self._down_until = -math.inf
        self._down = False
        self.rate = self.max_rate
        self.limit = self.max_rate
        """The fleet's limit, as the last heartbeat found it: see :data:`~.scripts.HEARTBEAT`."""
        self.members = 1
        self.calls = 0
        """Redis calls made, for the benchmarks."""
        self._joining: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._undo = Undo({"slot": lease, "lease": CLAIM_LEASE})
        self._undoing: asyncio.Task[None] | None = None
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
        """Return the rate this process may plan on: its part of the fleet's limit (not what
        a 429 left of it, which the limiter paces at and which climbs back only on demand),
        at most its own."""
        if self._down:
            return local_rate
        return min(local_rate, self.limit / max(1, self.members))

    # --- Redis calls, each of which may fail without harm --------------------------------

    async def call(
        self, name: str, keys: Sequence[str], args: Sequence[Any], takes: Taken | None = None
    ) -> Any:
        """Run a script; return None (and go without Redis a while) on any trouble.

        ``takes`` is what the script may take: recorded to give back if the call was
        sent and its outcome is unknown, not if it was never sent.
        """
        if not self._may_send(name):
            return None
        if name != "heartbeat":
            await self.join()
            if self._down or self._closed:  # the join found Redis away
                return None
        self.calls += 1
        before = time.monotonic()
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                result = await self._scripts[name](keys=list(keys), args=list(args))
        except asyncio.CancelledError:
            self._may_hold(takes)
            raise
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the wait goes on
            self._may_hold(takes)
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
        if self._undo and not self._closing and (self._undoing is None or self._undoing.done()):
            # Not awaited here: the heartbeat must go on while what was taken is given back.
            self._undoing = asyncio.get_running_loop().create_task(self._give_back_all())
        return result

    def _may_send(self, name: str) -> bool:
        """Whether a call may go to Redis: while it is away, one heartbeat a retry period."""
        if self._closed:
            return False
        if not self._down:
            return True
        now = time.monotonic()
        if name != "heartbeat" or now < self._down_until:
            return False
        # Before the call, not after its failure: however many ask meanwhile, one is sent.
        self._down_until = now + RETRY_REDIS_AFTER
        return True

    async def join(self) -> None:
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
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._repeat(HEARTBEAT, self._beat_once)
            )

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

    def to_local(self, redis_ms: float) -> float:
        """Return a time on Redis's clock (ms) on this process's monotonic clock."""
        offset = self._offset if self._offset is not None else 0.0
        return redis_ms / 1000 - offset

    def to_redis(self, local: float) -> float | None:
        """Return a monotonic time on Redis's clock (ms); None before Redis's clock is known."""
        return None if self._offset is None else (local + self._offset) * 1000

    def key_for(self, name: str) -> str:
        """Return the Redis key of ``name`` in this fleet."""
        # The rate law's state is "ratelaw" (a hash, in seconds) and the answers accepted
        # "answers" (a sorted set): not the names of earlier versions' ("adaptive", in ms,
        # and "accepted", a hash), so processes of both during an upgrade never read each
        # other's keys as their own.
        return f"{self.key}:{name}"

    def _spawn(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Run a script in the background: what it reports must not wait, nor be cancelled."""
        self._spawn_task(self.call(name, keys, args))

    def _spawn_task(self, call: Coroutine[Any, Any, Any]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(call)
        except RuntimeError:
            call.close()
            return  # no loop any more: the leases expire on their own
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _may_hold(self, taken: Taken | None) -> None:
        if taken is not None:
            self._undo.add(taken)

    async def call_giving_back(
        self, name: str, keys: Sequence[str], args: Sequence[Any], gives: Taken
    ) -> Any:
        """Run a script that gives something back; if it may not have run, give it back later."""
        try:
            result = await self.call(name, keys, args)
        except asyncio.CancelledError:
            self._undo.add(gives)
            raise
        if result is None:
            self._undo.add(gives)
        return result

    def new_claim(self) -> str:
        """Return a new claim for this process to hold on a look or a page: ``member:token``."""
        return f"{self.member}:{next(self._tokens)}"

    def unlease(self, lease: str, claim: str) -> None:
        """Give up a claim that found nothing to share (its request failed), in the background."""
        gives = Taken("lease", lease, claim)
        self._spawn_task(self.call_giving_back("unlease", [lease], [claim], gives))

    async def _give_back_all(self) -> None:
        """Give back what calls of unknown outcome may hold, a batch a call, while Redis answers."""
        while batch := self._undo.batch(UNDO_BATCH):
            slots = [taken.token for taken in batch if taken.kind == "slot"]
            leases = [taken for taken in batch if taken.kind == "lease"]
            keys = [self.key_for("slots"), *(taken.key for taken in leases)]
            args = [len(slots), *slots, *(taken.token for taken in leases)]
            if await self.call("undo", keys, args) is None:
                return
            self._undo.given_back(batch)

    # --- members ------------------------------------------------------------------------

    async def _beat_once(self, *, leaving: bool = False) -> None:
        keys = [self.key_for("members"), self.key_for("said"), self.key_for("limit")]
        ttl = int(MEMBER_TTL * 1000)
        args = [self.member, ttl, int(leaving), self.max_rate, int(self._explicit)]
        result = await self.call("heartbeat", keys, args)
        if result is not None and not leaving:
            self.members = max(1, int(result[0]))
            self.limit = float(result[2]) or self.max_rate

    def every(self, period: float, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` every ``period`` seconds until the fleet closes (its calls, as every
        call here, sent only while Redis answers)."""
        self._spawn_task(self._repeat(period, step))

    async def _repeat(self, period: float, step: Callable[[], Awaitable[None]]) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), period)
            if self._closing:
                return
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - one bad answer must not end the loop
                logger.warning("a fleet's periodic call failed (%s)", type(exc).__name__)

    # --- the shared budget --------------------------------------------------------------

    async def acquire(self, deadline: float = math.inf) -> FleetSlot | None:
        """Wait for a fleet-wide slot and the shared rate; None if Redis is not answering.

        Raises :class:`TimeoutError` if no slot came by ``deadline`` (monotonic).
        """
        keys = [
            self.key_for("tat"),
            self.key_for("slots"),
            self.key_for("pause"),
            self.key_for("ratelaw"),
            self.key_for("answers"),
            self.key_for("limit"),
        ]
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
                int(self._max_retry_ms),
            ]
            result = await self.call("acquire", keys, args, Taken("slot", keys[1], token))
            if result is None:
                return None
            state, _, wait_ms, rate = (float(value) for value in result[:4])
            self.rate = rate
            if state == 1:
                return FleetSlot(token, float(result[1]))
            # A turn is kept until used (or too late); a pause loses it.
            booked = result[4].decode() if state == 2 else "0"
            wait = SLOT_WAIT if wait_ms < 0 else wait_ms / 1000
            if time.monotonic() + wait >= deadline:
                raise TimeoutError
            await asyncio.sleep(wait)

    def release(
        self,
        slot: FleetSlot | None,
        *,
        answered: bool = False,
        throttled: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Give back a slot, and tell the fleet of an answer, a 429 or a Retry-After.

        In the background. A ``retry_after`` holds the whole fleet, capped as a 429's
        is, whatever the answer; only a 429 (``throttled``) lowers the shared rate.
        """
        if slot is None:
            return
        keys = [self.key_for("slots"), self.key_for("answers")]
        gives = Taken("slot", keys[0], slot.token)
        self._spawn_task(self.call_giving_back("release", keys, [slot.token, int(answered)], gives))
        retry_ms = 0 if retry_after is None or retry_after <= 0 else retry_after * 1000
        if throttled or retry_ms:
            keys = [
                self.key_for("ratelaw"),
                self.key_for("pause"),
                self.key_for("answers"),
                self.key_for("limit"),
            ]
            args = [self.max_rate, slot.sent_ms, retry_ms, self._max_retry_ms, int(throttled)]
            self._spawn("throttled", keys, args)

    # --- closing ------------------------------------------------------------------------

    async def close(self) -> None:
        """Leave the fleet (its claims free at once) and close the connection to Redis."""
        if self._closing:
            return
        self._closing = True
        self._stop.set()
        if self._heartbeat is not None:
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._undoing is not None:
            await asyncio.gather(self._undoing, return_exceptions=True)
        if self._heartbeat is not None:
            # Leaving first: a heartbeat is the one call that may find a Redis that was away
            # answering again, and then what is held can be given back too.
            await self._beat_once(leaving=True)
            await self._give_back_all()
        self._closed = True
        try:
            await self._redis.aclose()
        except Exception:  # noqa: BLE001 - closing a broken connection is no error of the user's
            logger.debug("closing the Redis connection failed", exc_info=False)
