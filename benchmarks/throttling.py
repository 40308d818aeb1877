"""Adaptive rate against a throttling gateway: imagejobs' budget beside botocore's scheme.

A discrete-event simulation, no HTTP: 100 jobs polled with the default policy
by a client told 50 requests a second, against a gateway that allows 10, in
three shapes (a token bucket, a fixed one-second window, a sliding window).
The same demand and the same gateway go through each limiter in turn; what
differs is only how it reacts to 429s. The botocore-style limiter follows the
published design of botocore's adaptive retry mode: CUBIC (C = 0.4, beta = 0.7)
on a smoothed measure of the send rate, every 429 counted, no limit at all
before the first one.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from typing import Protocol

from imagejobs.planning.budget import RequestBudget

__all__ = ["GATEWAYS", "LIMITERS", "simulate"]

LATENCY = 0.05  # seconds a request takes
LIMIT = 10  # the gateway's requests a second
RATE = 50.0  # what the client is told


class Gateway(Protocol):
    def admit(self, now: float) -> bool: ...


class TokenBucketGateway:
    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.at = rate, rate, 0.0

    def admit(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FixedWindowGateway:
    def __init__(self, rate: float) -> None:
        self.rate, self.window, self.count = rate, -1, 0

    def admit(self, now: float) -> bool:
        if int(now) != self.window:
            self.window, self.count = int(now), 0
        self.count += 1
        return self.count <= self.rate


class SlidingWindowGateway:
    def __init__(self, rate: float) -> None:
        self.rate, self.times = rate, deque[float]()

    def admit(self, now: float) -> bool:
        while self.times and self.times[0] <= now - 1:
            self.times.popleft()
        if len(self.times) < self.rate:
            self.times.append(now)
            return True
        return False


GATEWAYS: dict[str, Callable[[float], Gateway]] = {
    "token bucket": TokenBucketGateway,
    "fixed window": FixedWindowGateway,
    "sliding window": SlidingWindowGateway,
}


class Limiter(Protocol):
    @property
    def has_room(self) -> bool: ...
    def try_start(self, now: float) -> bool: ...
    def next_start(self, now: float) -> float: ...
    def finish(self, now: float, *, sent_at: float, answered: bool, throttled: bool) -> None: ...


class Imagejobs:
    def __init__(self, rate: float) -> None:
        self.budget = RequestBudget.create(16, rate, 0.0)

    @property
    def has_room(self) -> bool:
        return self.budget.has_room

    def try_start(self, now: float) -> bool:
        return self.budget.try_start(now)

    def next_start(self, now: float) -> float:
        return self.budget.next_start(now)

    def finish(self, now: float, *, sent_at: float, answered: bool, throttled: bool) -> None:
        self.budget.finish(now, sent_at=sent_at, answered=answered, throttled=throttled)


class BotocoreStyle:
    """CUBIC on the measured send rate, as botocore's adaptive mode describes it."""

    SCALE, BETA, MIN_RATE, BUCKET, SMOOTH = 0.4, 0.7, 0.5, 0.5, 0.8

    def __init__(self, rate: float) -> None:
        self.max_rate = rate
        self.enabled = False
        self.fill_rate = rate
        self.tokens = 0.0
        self.at = 0.0
        self.in_flight = 0
        self.last_max = rate
        self.last_throttle = 0.0
        self.measured = 0.0
        self.bucket_start = 0.0
        self.bucket_count = 0

    @property
    def has_room(self) -> bool:
        return self.in_flight < 16

    def _refill(self, now: float) -> None:
        capacity = max(self.fill_rate, 1.0)
        self.tokens = min(capacity, self.tokens + (now - self.at) * self.fill_rate)
        self.at = now

    def try_start(self, now: float) -> bool:
        if not self.has_room:
            return False
        if self.enabled:
            self._refill(now)
            if self.tokens < 1 - 1e-9:
                return False
            self.tokens -= 1
        self.in_flight += 1
        self._clock_send(now)
        return True

    def next_start(self, now: float) -> float:
        if not self.enabled:
            return now
        self._refill(now)
        if self.tokens >= 1 - 1e-9:
            return now
        return max(now + (1 - self.tokens) / self.fill_rate, math.nextafter(now, math.inf))

    def _clock_send(self, now: float) -> None:
        bucket = math.floor(now / self.BUCKET) * self.BUCKET
        self.bucket_count += 1
        if bucket > self.bucket_start:
            rate = self.bucket_count / (bucket - self.bucket_start)
            self.measured = rate * self.SMOOTH + self.measured * (1 - self.SMOOTH)
            self.bucket_count, self.bucket_start = 0, bucket

    def finish(self, now: float, *, sent_at: float, answered: bool, throttled: bool) -> None:
        self.in_flight -= 1
        if throttled:
            rate = self.measured if not self.enabled else min(self.measured, self.fill_rate)
            self.last_max, self.last_throttle = rate, now
            new_rate = rate * self.BETA
            self.enabled = True
        else:
            knee = (self.last_max * (1 - self.BETA) / self.SCALE) ** (1 / 3)
            new_rate = self.SCALE * (now - self.last_throttle - knee) ** 3 + self.last_max
            new_rate = min(new_rate, 2 * self.measured)
        self._refill(now)
        self.fill_rate = max(self.MIN_RATE, min(new_rate, self.max_rate))


LIMITERS: dict[str, Callable[[float], Limiter]] = {
    "imagejobs": Imagejobs,
    "botocore-style": BotocoreStyle,
}


def simulate(
    limiter: Limiter, gateway: Gateway, jobs: int = 100, seed: int = 1
) -> dict[str, float]:
    """Poll ``jobs`` jobs (2 s doubling to 30 s, full jitter) until each ends."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable workload, not a secret
    ends = {job: rng.uniform(20, 300) for job in range(jobs)}
    delays = dict.fromkeys(ends, 2.0)
    due = [(0.0, job, 0) for job in ends]
    heapq.heapify(due)
    replies: list[tuple[float, int, int, bool, float, int]] = []
    order = 0
    now, sent, throttled = 0.0, 0, 0
    late: list[float] = []
    while len(late) < jobs:
        while due and due[0][0] <= now and limiter.try_start(now):
            _, job, failures = heapq.heappop(due)
            sent += 1
            order += 1
            heapq.heappush(replies, (now + LATENCY, order, job, gateway.admit(now), now, failures))
        wakes = [replies[0][0]] if replies else []
        if due and limiter.has_room:
            wakes.append(max(due[0][0], limiter.next_start(now)))
        now = min(wakes)
        while replies and replies[0][0] <= now:
            _, _, job, admitted, sent_at, failures = heapq.heappop(replies)
            limiter.finish(now, sent_at=sent_at, answered=admitted, throttled=not admitted)
            if not admitted:
                throttled += 1
                backoff = min(8.0, 0.5 * 2**failures) * (0.5 + 0.5 * rng.random())
                heapq.heappush(due, (now + backoff, job, failures + 1))
            elif now >= ends[job]:
                late.append(now - ends[job])
            else:
                delay, delays[job] = delays[job], min(30.0, delays[job] * 2)
                heapq.heappush(due, (now + delay * rng.random(), job, 0))
    late.sort()
    return {
        "requests": sent,
        "throttled": throttled,
        "throttled_share": throttled / sent,
        "p95_late_s": late[int(len(late) * 0.95)],
    }
