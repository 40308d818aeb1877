"""The Lua scripts a fleet runs in Redis, as source text (nothing here talks to Redis).

The shared rate is :class:`imagejobs.planning.ratelaw.AdaptiveRate` in Lua:
:data:`RATE_LAW` has one function for each of its methods (``current_rate``,
``on_accepted``, ``on_throttled``, ``measured``, ``floor_rate``), computes in
seconds with the same float operations in the same order, stores its state with
every digit (``%.17g``), and takes its constants from the Python module (no
number of the law is written here). ``tests/fleet/test_ratelaw_fleet.py`` feeds both
the same answers and 429s on a real Redis and asserts the same rates, ceiling,
stretch and hold.

The accepted answers are a sorted set of the answers' times, each named by its
slot's token, trimmed to the last ``WINDOW`` and to the newest ``MAX_COUNTED``,
so it counts exactly what the Python log counts.

Where the fleet differs, and why:

- Its clock is Redis's (``TIME``), the same for every host, where a lone client
  uses its monotonic clock; an answer is counted when its release reaches Redis,
  a moment after the client saw it.
- The climb is worked out when the rate is asked for (the demand cap reads the
  answers of the second before): here each time a process asks Redis for a
  turn, and at each 429, where a lone client asks at each start and each wait
  it plans. Asked at the same times, the two agree (the test asserts it).
- The law's ``max_rate`` is the fleet's limit, one for every member, not the
  caller's own rate: the lowest ``fleet_rate`` a live member sets, or without
  one the highest rate a member has (:data:`HEARTBEAT` works it out). With
  every process configured alike (the usual case), that is the lone client's
  law exactly.
- Redis forgets the law's state :data:`FORGET_AFTER` seconds after the fleet's
  last request or 429 (a fleet that is gone must leave no keys behind); the
  fleet then starts again at ``max_rate``, as a new client would, where a lone
  client keeps its state, and the last drop's ceiling, for as long as it lives.
"""

from __future__ import annotations

from imagejobs.planning import ratelaw

__all__ = [
    "ACQUIRE",
    "CLOCK",
    "FORGET_AFTER",
    "HEARTBEAT",
    "LOOK",
    "NEWS",
    "NEWS_KEPT",
    "NEWS_READ",
    "NEWS_TTL",
    "PAGE",
    "PUBLISH",
    "PUBLISH_PAGE",
    "RATE_LAW",
    "RELEASE",
    "SCRIPTS",
    "THROTTLED",
    "UNDO",
    "UNLEASE",
    "lua_constants",
]

FORGET_AFTER = 600.0
"""Seconds after the fleet's last request or 429 that Redis keeps the shared rate's state."""

# Every constant ratelaw.py exports (its names in capitals): a new one reaches the Lua too.
_LAW_CONSTANTS = tuple(name for name in ratelaw.__all__ if name.isupper())


def lua_constants() -> str:
    """Return the constants of :mod:`imagejobs.planning.ratelaw` as Lua ``local`` lines.

    ``repr`` of a float is the shortest text that reads back as the same double,
    in Python and in Lua alike.
    """
    return "".join(f"local {name} = {getattr(ratelaw, name)!r}\n" for name in _LAW_CONSTANTS)


CLOCK = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end
local function fmt(x) return string.format('%.3f', x) end
"""
"""Redis's clock in milliseconds, and how milliseconds are written."""

RATE_LAW = (
    "\n-- The 429 rate law: imagejobs.planning.ratelaw, function for function.\n"
    + lua_constants()
    + """
-- Every digit: the state reads back as the very doubles the law computed.
local function num(x) return string.format('%.17g', x) end
-- AdaptiveRate.floor.
local function floor_rate(max_rate) return math.min(FLOOR, max_rate) end
-- AdaptiveRate.measured: answers accepted after now - WINDOW, a second.
local function measured(log, now)
  return redis.call('ZCOUNT', log, '(' .. num(now - WINDOW), '+inf') / WINDOW
end
-- AdaptiveRate.on_accepted. The answer is named by its slot's token: one told twice
-- counts once. Trimmed at once to the window (later times count none of those) and
-- to the newest MAX_COUNTED, as the Python log's maxlen does.
local function on_accepted(log, now, member)
  redis.call('ZADD', log, num(now), member)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', num(now - WINDOW))
  local over = redis.call('ZCARD', log) - MAX_COUNTED
  if over > 0 then redis.call('ZREMRANGEBYRANK', log, 0, over - 1) end
  redis.call('PEXPIRE', log, math.ceil(WINDOW * 1000) + 1000)
end
-- AdaptiveRate.current: max_rate until a 429, then the cubic climb, no faster than
-- twice the accepted rate; the climbed rate is stored, lowered only by a 429.
-- max_rate, the fleet's limit, caps the shared rate.
local function current_rate(key, log, max_rate, now)
  local v = redis.call('HMGET', key, 'ceiling', 'rate', 'dropped', 'stretch')
  if not v[1] then return max_rate end
  local ceiling, rate = tonumber(v[1]), tonumber(v[2])
  if rate >= max_rate then return max_rate end
  local since = (now - tonumber(v[3])) / 2 ^ tonumber(v[4])
  local knee = (ceiling * (1 - DROP) / CLIMB) ^ (1 / 3)
  local curve = ceiling + CLIMB * (since - knee) ^ 3
  if curve > rate then
    local demand_cap = math.max(rate, 2 * measured(log, now))
    rate = math.min(curve, demand_cap, max_rate)
    redis.call('HSET', key, 'rate', num(rate))
  end
  return rate
end
-- AdaptiveRate.on_throttled: the hold in seconds, or nil if the 429 changed nothing
-- (its request was sent before the last drop).
local function on_throttled(key, log, max_rate, now, sent)
  local v = redis.call('HMGET', key, 'ceiling', 'dropped', 'stretch', 'hold')
  local old, dropped, stretch, hold = nil, -math.huge, 0, 0
  if v[1] then
    old, dropped, stretch, hold = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4])
  end
  if sent < dropped then return nil end
  local before = current_rate(key, log, max_rate, now)
  local accepted = measured(log, now)
  local base = before * (1 - DROP)
  if accepted > 0 then base = math.min(before, accepted) end
  local low = floor_rate(max_rate)
  local ceiling = math.max(base, low)
  if old and math.abs(ceiling - old) <= SAME_CEILING * old then
    stretch = math.min(stretch + 1, MAX_STRETCH)
  else
    stretch = 0
  end
  if now - dropped <= hold + 2 * HOLD and hold ~= 0 then
    hold = math.min(MAX_HOLD, 2 * hold)
  else
    hold = HOLD
  end
  redis.call('HSET', key, 'ceiling', num(ceiling), 'rate', num(math.max(low, base * DROP)),
    'dropped', num(now), 'stretch', num(stretch), 'hold', num(hold))
  return hold
end
"""
)
"""The rate law's Lua: its state is a hash (``ceiling``, ``rate``, ``dropped``, ``stretch``,
``hold``; none before the first 429) and a sorted set of accepted answers; times in seconds."""

_FORGET = f"local FORGET_MS = {round(FORGET_AFTER * 1000)}\n"

# KEYS: tat, slots, pause, rate law's state, answers accepted, limit.
# ARGV: the caller's rate (the limit until a heartbeat has set one), pace, burst, max_in_flight,
# lease_ms, token, booked (ms, 0: none), horizon_ms, max_retry_ms.
# Returns {state, now, wait, rate, booked}: state 1 granted; 2 a turn booked for `booked`
# (come back with it after wait ms, or after a moment if wait is -1: every slot taken); 0 no
# turn (a pause, or the queue longer than the horizon; ask again after wait ms). A booked
# turn not used within one interval of its time is gone: turns kept while every slot was
# taken must not all go at once when slots free.
# A time further ahead than anything this script or THROTTLED writes (the queue's end, a
# pause, a turn the caller says it booked) is taken as the furthest they could have written:
# Redis's clock stepped back, and must not hold the fleet for as long as it stepped.
ACQUIRE = (
    CLOCK
    + RATE_LAW
    + _FORGET
    + """
local max_rate = tonumber(redis.call('GET', KEYS[6]) or ARGV[1])
local pace, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, lease, horizon = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[8])
local longest_pause = math.max(tonumber(ARGV[9]), MAX_HOLD * 1000)
local now = now_ms()
local booked = math.min(tonumber(ARGV[7]), now + horizon)
local rate = current_rate(KEYS[4], KEYS[5], max_rate, now / 1000)
redis.call('PEXPIRE', KEYS[4], FORGET_MS)
local pause = tonumber(redis.call('GET', KEYS[3]) or '0')
-- Stored too, so that the pause ends: read again later, it would still be too far ahead.
if pause > now + longest_pause then
  pause = now + longest_pause
  redis.call('SET', KEYS[3], fmt(pause), 'PX', math.ceil(longest_pause) + 1000)
end
if pause > now then return {0, fmt(now), fmt(pause - now), num(rate), '0'} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local full = redis.call('ZCARD', KEYS[2]) >= cap
local interval = 1000 / (rate * pace)
if booked > 0 and now > booked + interval then booked = 0 end
if booked == 0 then
  -- Take the next turn in the fleet's queue, unless it is further off than the horizon.
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  -- The end of a full queue, the furthest a booking writes: any lower and a turn could
  -- come sooner than the rate allows. Stored, so that once an interval has passed the
  -- queue moves again, instead of every caller being told to wait once more.
  local furthest = now + horizon + burst * interval
  if tat > furthest then
    tat = furthest
    redis.call('SET', KEYS[1], fmt(tat), 'PX', math.ceil(tat - now) + 1000)
  end
  local allowed_at = tat - (burst - 1) * interval
  if allowed_at - now > horizon then
    return {0, fmt(now), fmt(allowed_at - now - horizon), num(rate), '0'}
  end
  redis.call('SET', KEYS[1], fmt(tat + interval), 'PX', math.ceil(tat + interval - now) + 1000)
  booked = math.max(allowed_at, now)
  if now < allowed_at then return {2, fmt(now), fmt(allowed_at - now), num(rate), fmt(booked)} end
end
if full then return {2, fmt(now), '-1', num(rate), fmt(booked)} end
redis.call('ZADD', KEYS[2], now + lease, ARGV[6])
redis.call('PEXPIRE', KEYS[2], lease + 1000)
return {1, fmt(now), '0', num(rate), fmt(booked)}
"""
)

# KEYS: slots, answers accepted. ARGV: token, answered (1/0).
RELEASE = (
    CLOCK
    + RATE_LAW
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] == '1' then on_accepted(KEYS[2], now_ms() / 1000, ARGV[1]) end
return 1
"""
)

# KEYS: rate law's state, pause, answers accepted, limit.
# ARGV: the caller's rate (the limit until a heartbeat has set one), sent_ms, retry_after_ms,
# max_retry_ms, throttled (1: a 429; 0: another answer with a Retry-After, such as a 503, which
# holds the fleet but says nothing of its rate).
# Returns 1 if the rate dropped, 0 if not (no 429, or one to a request sent before the last drop).
THROTTLED = (
    CLOCK
    + RATE_LAW
    + _FORGET
    + """
local max_rate = tonumber(redis.call('GET', KEYS[4]) or ARGV[1])
local sent = tonumber(ARGV[2])
local retry_after, max_retry = tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local function pause_until(t)
  local old = tonumber(redis.call('GET', KEYS[2]) or '0')
  if t > old then redis.call('SET', KEYS[2], fmt(t), 'PX', math.ceil(t - now) + 1000) end
end
if retry_after > 0 then pause_until(now + math.min(retry_after, max_retry)) end
if ARGV[5] ~= '1' then return 0 end
local hold = on_throttled(KEYS[1], KEYS[3], max_rate, now / 1000, sent / 1000)
if not hold then return 0 end
redis.call('PEXPIRE', KEYS[1], FORGET_MS)
if retry_after <= 0 then pause_until(now + hold * 1000) end
return 1
"""
)

# KEYS: members, what each says of the limit, limit.
# ARGV: member, ttl_ms, leaving (1/0), its rate, set (1: its fleet_rate, set; 0: its own rate).
# Returns {live members, now, limit}. The limit is the lowest fleet_rate a live member sets,
# so whoever knows the account's limit can lower it for all; without one, the highest rate a
# member has, so a process at a low default (a command line) never slows a faster one.
HEARTBEAT = (
    CLOCK
    + """
local now = now_ms()
local ttl = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5] .. ' ' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
  redis.call('PEXPIRE', KEYS[2], 2 * ttl)
end
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[2], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local set, highest = math.huge, 0
for _, said in ipairs(redis.call('HVALS', KEYS[2])) do
  local kind, rate = string.match(said, '^(%d) (.+)$')
  rate = tonumber(rate)
  if kind == '1' then set = math.min(set, rate) else highest = math.max(highest, rate) end
end
local limit = highest
if set < math.huge then limit = set end
if limit > 0 then
  redis.call('SET', KEYS[3], string.format('%.17g', limit), 'PX', 2 * ttl)
else
  redis.call('DEL', KEYS[3])
end
return {redis.call('ZCARD', KEYS[1]), fmt(now), string.format('%.17g', limit)}
"""
)

# KEYS: log, lease, seen, members. ARGV: fresh_after_ms, mark, member, lease_ms, claim.
# A lease holds the claim, "member:token"; it stands while that member is alive.
# Returns {state, now, taken, entries}: 'fresh' (a look since fresh_after), 'wait' (another
# process is looking) or 'go' (claimed), with the entries after mark (without one, those
# since fresh_after) for the caller to replay first; a fresh answer has the newest at least.
LOOK = (
    CLOCK
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

NEWS_KEPT = 1000
"""Ends a fleet's news stream keeps (about): far more than its processes read between two looks."""

NEWS_TTL = 60.0
"""Seconds the news stream outlives its last entry."""

NEWS_READ = 200
"""Ends a process reads at most in one call: the rest at the next, a moment later."""

_NEWS_CONSTANTS = (
    f"local NEWS_KEPT, NEWS_TTL_MS, NEWS_READ = {NEWS_KEPT}, {int(NEWS_TTL * 1000)}, {NEWS_READ}\n"
)

# KEYS: log, lease, seen, news. ARGV: body, claim ("member:token"), ttl_ms, final (1/0), kept,
# answered_ms, job ID.
# Keeps the body unless it repeats the newest snapshot (then only its time) or a look
# answered later is already there; a job's end kept is news for the fleet (see NEWS).
# Returns the newest entry's ID.
PUBLISH = (
    CLOCK
    + _NEWS_CONSTANTS
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
  if ARGV[4] == '1' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', NEWS_KEPT, '*', 'job', ARGV[7])
    redis.call('PEXPIRE', KEYS[4], NEWS_TTL_MS)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('GET', KEYS[2]) == member then redis.call('DEL', KEYS[2]) end
return id
"""
)

# KEYS: page, lease, members. ARGV: newer_than_ms, member, lease_ms, claim, fresh_after_ms.
# A page is a hash of its answer's body and when it was answered ('at', ms); a lease holds
# the claim as LOOK's does. Returns {state, now, at, body}: 'fresh' (a page answered after
# newer_than, and not before fresh_after), 'wait' (another live process is fetching it) or
# 'go' (claimed).
PAGE = (
    CLOCK
    + """
local member = ARGV[2]
local now = now_ms()
local kept = redis.call('HMGET', KEYS[1], 'at', 'body')
local at = tonumber(kept[1] or '0')
if at > tonumber(ARGV[1]) and at >= tonumber(ARGV[5]) then
  return {'fresh', fmt(now), kept[1], kept[2]}
end
local holder = redis.call('GET', KEYS[2])
if holder then
  local owner = string.match(holder, '^([^:]*)')
  local alive = redis.call('ZSCORE', KEYS[3], owner)
  if owner ~= member and alive and tonumber(alive) > now then
    return {'wait', fmt(now), '0', ''}
  end
end
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
return {'go', fmt(now), '0', ''}
"""
)

# KEYS: page, lease. ARGV: body, claim, ttl_ms, answered_ms.
# Keeps the page unless one answered later is there already; lets go of the claim.
# Returns {at, now}: when the page kept was answered.
PUBLISH_PAGE = (
    CLOCK
    + """
local now = now_ms()
local at = fmt(math.min(now, tonumber(ARGV[4])))
local kept = redis.call('HGET', KEYS[1], 'at')
if kept and tonumber(kept) >= tonumber(at) then
  at = kept
else
  redis.call('HSET', KEYS[1], 'at', at, 'body', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return {at, fmt(now)}
"""
)

# KEYS: lease. ARGV: claim ("member:token").
UNLEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: slots, then one lease a claim. ARGV: how many slots, their tokens, then the claims,
# one a lease. Gives back slots and claimed looks that calls of unknown outcome may have
# taken, all in one round trip; giving back twice changes nothing.
UNDO = """
local slots = tonumber(ARGV[1])
for i = 2, slots + 1 do redis.call('ZREM', KEYS[1], ARGV[i]) end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[slots + i] then redis.call('DEL', KEYS[i]) end
end
return 1
"""

# KEYS: news. ARGV: after (an entry ID; "" for the newest now).
# The jobs whose end a process kept for the fleet (PUBLISH), after an entry, oldest first, as
# {last entry read, now, jobs}: another process waiting on one takes its snapshot at once.
NEWS = (
    CLOCK
    + _NEWS_CONSTANTS
    + """
local now = now_ms()
if ARGV[1] == '' then
  local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  return {newest and newest[1] or '0-0', fmt(now), {}}
end
local last, jobs = ARGV[1], {}
-- From the entry on, without it (an exclusive range needs Redis 6.2); an entry is {'job', ID}.
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', NEWS_READ)) do
  if entry[1] ~= ARGV[1] then
    last = entry[1]
    jobs[#jobs + 1] = entry[2][2]
  end
end
return {last, fmt(now), jobs}
"""
)

SCRIPTS = {
    "acquire": ACQUIRE,
    "release": RELEASE,
    "throttled": THROTTLED,
    "heartbeat": HEARTBEAT,
    "look": LOOK,
    "publish": PUBLISH,
    "page": PAGE,
    "publish_page": PUBLISH_PAGE,
    "news": NEWS,
    "unlease": UNLEASE,
    "undo": UNDO,
}
"""Every script a :class:`~imagejobs.fleet.shared.Fleet` runs, by the name it calls it."""
