"""Hand each published item to many consumers without letting one slow the rest.

The joint between the aggregator (one producer, on the hot path) and the
subscribers (gRPC streams, recorders, a trading bot): everything runs in one
asyncio event loop, so there are no locks, and ``publish`` is plain synchronous
code that never awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Generic, TypeVar

__all__ = ["FanOut", "Subscription"]

T = TypeVar("T")


#: The lag clock (a module global, so tests can drive it).
_monotonic_ns = time.monotonic_ns


class Subscription(Generic[T]):
    """One consumer's bounded queue of a FanOut; iterate it or call ``get``.

    Overflow policy: the queue holds at most ``maxlen`` items; publishing into
    a full queue drops the OLDEST queued item and keeps the newest ("conflate
    to the newest"), counting it in ``dropped``. A consumer that falls behind
    therefore skips intermediate states instead of lagging behind them, and
    never makes the producer or other consumers wait.

    With ``max_lag_ns`` the queue is bounded in time as well: an item is
    dropped once it has waited longer than ``max_lag_ns`` *and* a newer item
    is queued behind it (checked on every publish and every get). A consumer
    that keeps up, even through bursts shorter than the lag, receives every
    item; one that falls further behind skips ahead to items at most that
    old. With ``maxlen=1`` (no lag bound needed) every get is the newest.

    One consumer task per subscription: ``get`` must not be awaited by two
    tasks at once. Items are never ``None`` (``None`` means "closed").
    """

    __slots__ = (
        "_closed",
        "_fanout",
        "_queue",
        "_stamps",
        "_waiter",
        "delivered",
        "dropped",
        "max_lag_ns",
        "maxlen",
    )

    def __init__(self, fanout: FanOut[T] | None, maxlen: int, max_lag_ns: int | None = None) -> None:
        """Create a subscription of ``fanout``; ``None`` makes it closed from the start."""
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, not {maxlen}")
        if max_lag_ns is not None and max_lag_ns < 0:
            raise ValueError(f"max_lag_ns must be >= 0, not {max_lag_ns}")
        self.maxlen = maxlen
        #: How long a superseded item may wait (ns), or ``None``: only ``maxlen`` bounds the queue.
        self.max_lag_ns = max_lag_ns if maxlen > 1 else None
        #: Items conflated away: published to this subscription, never delivered.
        self.dropped = 0
        #: Items returned by get() / get_nowait().
        self.delivered = 0
        self._queue: deque[T] = deque(maxlen=maxlen)
        # Publish times (time.monotonic_ns), in step with _queue, when lag-bounded.
        self._stamps: deque[int] = deque(maxlen=maxlen)
        # The future get() awaits while the queue is empty; None when nobody
        # waits, so publishing to a busy consumer costs no future and no wake-up.
        self._waiter: asyncio.Future[None] | None = None
        self._fanout = fanout
        self._closed = fanout is None

    @property
    def closed(self) -> bool:
        """Whether no more items will be queued."""
        return self._closed

    def __len__(self) -> int:
        """Return the number of queued items."""
        return len(self._queue)

    def offer(self, item: T, now_ns: int = 0) -> None:
        """Queue ``item`` published at ``now_ns`` (``time.monotonic_ns``), dropping per the policy.

        Wakes the consumer if it waits. Called by FanOut.publish for every
        subscriber: keep it minimal.
        """
        queue = self._queue
        if len(queue) == self.maxlen:
            self.dropped += 1
        queue.append(item)  # a full deque(maxlen) discards its left (oldest) end
        if self.max_lag_ns is not None:
            self._stamps.append(now_ns)
            self._skip_aged(now_ns)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # a cancelled get() leaves a done future
                waiter.set_result(None)

    def _skip_aged(self, now_ns: int) -> None:
        """Drop queued items older than the lag bound that have a newer item behind them."""
        lag = self.max_lag_ns
        stamps = self._stamps
        if lag is None or len(stamps) < 2 or stamps[0] >= now_ns - lag:
            return
        horizon = now_ns - lag
        queue = self._queue
        while len(stamps) > 1 and stamps[0] < horizon:
            stamps.popleft()
            queue.popleft()
            self.dropped += 1

    def _pop(self) -> T:
        if self.max_lag_ns is not None:
            self._skip_aged(_monotonic_ns())
            self._stamps.popleft()
        self.delivered += 1
        return self._queue.popleft()

    def get_nowait(self) -> T | None:
        """Return the next queued item, or ``None`` if the queue is empty."""
        if self._queue:
            return self._pop()
        return None

    async def get(self) -> T | None:
        """Return the next item, waiting for one; ``None`` once closed and drained."""
        while not self._queue:
            if self._closed:
                return None
            if self._waiter is not None:
                raise RuntimeError("Subscription.get() is already awaited by another task")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                # On cancellation offer() may never run: don't leave a stale waiter.
                if self._waiter is waiter:
                    self._waiter = None
        return self._pop()

    def __aiter__(self) -> Subscription[T]:
        """Iterate the items until the subscription is closed and drained."""
        return self

    async def __anext__(self) -> T:
        """Return the next item; stop once closed and drained."""
        item = await self.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Unsubscribe and discard queued items; a waiting get() returns None.

        Idempotent. The FanOut forgets the subscription.
        """
        fanout, self._fanout = self._fanout, None
        if fanout is not None:
            fanout._discard(self)
        self._queue.clear()
        self._stamps.clear()
        self._end()

    def _end(self) -> None:
        """Stop accepting items and wake a waiting get(); queued items stay."""
        self._closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class FanOut(Generic[T]):
    """Single producer, many consumers; each consumer has its own bounded queue that conflates to the newest.

    ``publish`` hands the same object to every subscriber (no copies): publish
    immutable items. See Subscription for the overflow policy: a full queue
    drops its oldest item, so a stalled subscriber costs ``publish`` one
    ``deque.append`` and nothing else, and holds at most ``maxlen`` items.
    """

    __slots__ = ("_closed", "_latest", "_max_lag_ns", "_maxlen", "_subscribers")

    def __init__(self, maxlen: int = 1, max_lag_ns: int | None = None) -> None:
        """Create a FanOut whose subscriptions hold ``maxlen`` items and ``max_lag_ns`` by default."""
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, not {maxlen}")
        self._maxlen = maxlen
        self._max_lag_ns = max_lag_ns
        # Rebuilt (copy-on-write) by subscribe and unsubscribe, which are rare,
        # so publish iterates a plain tuple that nothing mutates under it.
        self._subscribers: tuple[Subscription[T], ...] = ()
        self._latest: T | None = None
        self._closed = False

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscriber; never blocks.

        After close() there are no subscribers: only ``latest`` changes, so a
        producer that outlives the FanOut during shutdown needs no check.
        """
        self._latest = item
        now = _monotonic_ns()
        # Subscription.offer, inlined: a call per subscriber is ~0.1 µs of
        # the hot path's few µs. Keep the two in step (test_fanout runs both).
        for sub in self._subscribers:
            queue = sub._queue
            if len(queue) == sub.maxlen:
                sub.dropped += 1
            queue.append(item)
            lag = sub.max_lag_ns
            if lag is not None:
                stamps = sub._stamps
                stamps.append(now)
                if stamps[0] < now - lag:  # else nothing queued is too old
                    sub._skip_aged(now)
            waiter = sub._waiter
            if waiter is not None:
                sub._waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    def subscribe(self, maxlen: int | None = None, max_lag_ns: int | None = None) -> Subscription[T]:
        """Return a new subscription, already holding the latest item if any.

        ``maxlen`` and ``max_lag_ns`` default to the FanOut's (see
        :class:`Subscription`). After close() the subscription is closed and empty.
        """
        size = self._maxlen if maxlen is None else maxlen
        lag = self._max_lag_ns if max_lag_ns is None else max_lag_ns
        if self._closed:
            return Subscription(None, size, lag)
        subscription = Subscription(self, size, lag)
        if self._latest is not None:
            subscription.offer(self._latest, _monotonic_ns())
        self._subscribers = (*self._subscribers, subscription)
        return subscription

    @property
    def latest(self) -> T | None:
        """The last published item, or ``None`` before the first publish."""
        return self._latest

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def close(self) -> None:
        """End every subscription; each drains what it holds, then yields None.

        Idempotent; later subscribe() calls return closed subscriptions.
        """
        self._closed = True
        subscribers, self._subscribers = self._subscribers, ()
        for subscription in subscribers:
            subscription._fanout = None
            subscription._end()

    def __len__(self) -> int:
        """Return the number of live subscriptions."""
        return len(self._subscribers)

    def _discard(self, subscription: Subscription[T]) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
