"""Retry delays: exponential backoff with full jitter, and a sliding-window rate limit.

Both pace what a client asks of a venue after something failed: reconnects,
REST snapshots and resubscribes. :class:`Backoff` spaces the attempts of one
thing; :class:`RateLimit` keeps the attempts of everything sharing one budget
(a venue's connection attempts per IP, its REST requests, one connection's
subscribe messages) inside the limit the venue documents, and can be held off
until a time the venue names (HTTP ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable


class Backoff:
    """Produce retry delays that grow exponentially, with full jitter, up to a cap.

    The n-th delay is drawn uniformly from ``[0, min(cap, base * factor**n)]``
    ("full jitter"): many clients (or many venues of one engine) that failed
    together spread their retries over the whole window instead of retrying
    in lockstep. :meth:`reset` only once the thing retried has proved healthy
    for a while, never at the first sign of success: a venue that accepts a
    connection and drops it again would otherwise be retried at the base
    delay forever.
    """

    __slots__ = ("_rng", "attempts", "base", "cap", "factor")

    def __init__(
        self,
        base: float = 0.5,
        factor: float = 2.0,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or factor < 1 or cap < base:
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        self.base = base
        self.factor = factor
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """Return the upper bound of the next delay."""
        # The exponent is clamped so a venue down for days cannot overflow it.
        return min(self.cap, self.base * self.factor ** min(self.attempts, 64))

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        ceiling = self.ceiling()
        self.attempts += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Start again from the base delay."""
        self.attempts = 0


class RateLimit:
    """At most ``count`` events in any ``per`` seconds (a sliding window).

    :meth:`delay` says how long the next event must wait, :meth:`acquire`
    waits that long and records the event, :meth:`hold_until` blocks every
    event until a monotonic time (a venue's ``Retry-After``). Shared by every
    user of one budget in one event loop; no locks are needed.
    """

    __slots__ = ("_clock", "_held_until", "_times", "count", "per")

    def __init__(self, count: int, per: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if count < 1 or per <= 0:
            raise ValueError("a rate limit needs count >= 1 and per > 0")
        self.count = count
        self.per = per
        self._clock = clock
        self._times: deque[float] = deque()
        self._held_until = 0.0

    def delay(self) -> float:
        """Return how many seconds the next event must wait (0: now)."""
        now = self._clock()
        times = self._times
        while times and times[0] <= now - self.per:
            times.popleft()
        wait = self._held_until - now
        if len(times) >= self.count:
            wait = max(wait, times[len(times) - self.count] + self.per - now)
        return max(wait, 0.0)

    def record(self) -> None:
        """Count an event happening now."""
        self._times.append(self._clock())

    def try_acquire(self) -> bool:
        """Record an event and return True if one is allowed now, else return False."""
        if self.delay() > 0:
            return False
        self.record()
        return True

    async def acquire(self) -> None:
        """Wait until an event is allowed, then record it."""
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.record()

    def hold_until(self, until: float) -> None:
        """Allow no event before monotonic time ``until`` (it only ever extends the hold)."""
        self._held_until = max(self._held_until, until)


class RetryPacer:
    """Pace the retries of one thing (a symbol's resync): the first at once, then backed off.

    :meth:`next_delay` returns 0 for a first retry and a :class:`Backoff`
    delay for each further one; a retry that comes ``forgive`` seconds or
    more after the one before counts as a first again (the thing was healthy
    meanwhile). ``forgive`` must exceed the backoff's cap, or a thing that
    fails at every retry would be forgiven by its own delays.
    """

    __slots__ = ("_backoff", "_clock", "_last", "forgive")

    def __init__(
        self,
        base: float = 0.2,
        cap: float = 30.0,
        forgive: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if forgive <= cap:
            raise ValueError("forgive must be longer than the backoff's cap")
        self._backoff = Backoff(base=base, cap=cap, rng=rng)
        self._clock = clock
        self._last = -math.inf
        self.forgive = forgive

    @property
    def attempts(self) -> int:
        """Retries backed off since the last first one."""
        return self._backoff.attempts

    def next_delay(self) -> float:
        """Return the delay before this retry and count it."""
        now = self._clock()
        first = now - self._last >= self.forgive
        self._last = now
        if first:
            self._backoff.reset()
            return 0.0
        return self._backoff.next_delay()
