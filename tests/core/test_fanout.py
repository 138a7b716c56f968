"""FanOut: conflating single-producer, multi-consumer hand-off."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core import fanout as fanout_module
from dragonfly.core.fanout import FanOut, Subscription


def test_every_subscriber_gets_the_same_object() -> None:
    fanout: FanOut[list[int]] = FanOut()
    first, second = fanout.subscribe(), fanout.subscribe()
    item = [1, 2, 3]
    fanout.publish(item)
    assert first.get_nowait() is item
    assert second.get_nowait() is item
    assert first.delivered == second.delivered == 1
    assert first.get_nowait() is None


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    fanout: FanOut[int] = FanOut()
    newest_only = fanout.subscribe()
    three = fanout.subscribe(maxlen=3)
    for n in range(1, 6):
        fanout.publish(n)
    assert newest_only.get_nowait() == 5
    assert newest_only.dropped == 4
    assert [three.get_nowait() for _ in range(4)] == [3, 4, 5, None]
    assert three.dropped == 2
    assert three.delivered == 3


def test_default_maxlen_comes_from_the_fanout() -> None:
    fanout: FanOut[int] = FanOut(maxlen=2)
    subscription = fanout.subscribe()
    for n in range(3):
        fanout.publish(n)
    assert len(subscription) == 2
    assert subscription.maxlen == 2
    with pytest.raises(ValueError, match="maxlen"):
        FanOut[int](maxlen=0)
    with pytest.raises(ValueError, match="maxlen"):
        fanout.subscribe(maxlen=0)


def test_a_new_subscriber_starts_with_the_latest_item() -> None:
    fanout: FanOut[str] = FanOut()
    assert fanout.latest is None
    assert fanout.subscribe().get_nowait() is None
    fanout.publish("a")
    fanout.publish("b")
    assert fanout.latest == "b"
    late = fanout.subscribe()
    assert late.get_nowait() == "b"
    assert late.dropped == 0


async def test_get_waits_for_the_next_item() -> None:
    fanout: FanOut[int] = FanOut()
    subscription = fanout.subscribe()
    waiting = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    fanout.publish(7)
    assert await waiting == 7


async def test_a_future_is_made_only_for_a_waiting_consumer() -> None:
    loop = asyncio.get_running_loop()
    made = 0
    create_future = loop.create_future

    def counting() -> asyncio.Future[object]:
        nonlocal made
        made += 1
        return create_future()

    loop.create_future = counting  # type: ignore[method-assign]
    try:
        fanout: FanOut[int] = FanOut()
        subscription = fanout.subscribe()
        for n in range(100):  # nobody waits: no future, no wake-up
            fanout.publish(n)
        assert made == 0
        assert await subscription.get() == 99  # queued: no future either
        assert made == 0
        waiting = asyncio.create_task(subscription.get())
        await asyncio.sleep(0)
        fanout.publish(100)
        fanout.publish(101)  # the consumer was woken once already
        assert await waiting == 101
        assert made == 1
    finally:
        del loop.create_future


async def test_a_stalled_subscriber_does_not_hold_back_the_others() -> None:
    fanout: FanOut[int] = FanOut()
    stalled = fanout.subscribe()
    reader = fanout.subscribe()
    received: list[int] = []

    async def read() -> None:
        async for item in reader:
            received.append(item)

    task = asyncio.create_task(read())
    for n in range(1000):
        fanout.publish(n)
        await asyncio.sleep(0)  # let the reader run, as the event loop would
    fanout.close()
    await task
    assert received == list(range(1000))
    assert reader.dropped == 0
    assert len(stalled) == 1  # bounded however long it stalls
    assert stalled.dropped == 999
    assert stalled.get_nowait() == 999


async def test_close_ends_every_subscription_after_draining() -> None:
    fanout: FanOut[int] = FanOut()
    idle = fanout.subscribe(maxlen=2)
    waiting_subscription = fanout.subscribe()
    waiting = asyncio.create_task(waiting_subscription.get())
    await asyncio.sleep(0)
    fanout.publish(1)
    fanout.publish(2)
    fanout.close()
    fanout.close()  # idempotent
    assert await waiting == 2  # woken by 1, but 2 replaced it before it ran
    assert waiting_subscription.dropped == 1
    assert await waiting_subscription.get() is None
    assert [item async for item in idle] == [1, 2]
    assert await idle.get() is None
    assert idle.closed
    assert len(fanout) == 0
    fanout.publish(3)  # a late producer is harmless: nobody is left to get it
    assert fanout.latest == 3
    assert await idle.get() is None


async def test_close_wakes_a_waiting_get_with_none() -> None:
    fanout: FanOut[int] = FanOut()
    subscription = fanout.subscribe()
    waiting = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    fanout.close()
    assert await waiting is None


async def test_subscribing_to_a_closed_fanout_gives_a_closed_subscription() -> None:
    fanout: FanOut[int] = FanOut()
    fanout.publish(1)
    fanout.close()
    late = fanout.subscribe()
    assert late.closed
    assert await late.get() is None
    assert len(fanout) == 0


async def test_unsubscribe_removes_and_wakes() -> None:
    fanout: FanOut[int] = FanOut()
    keep = fanout.subscribe()
    leave = fanout.subscribe()
    assert len(fanout) == 2
    waiting = asyncio.create_task(leave.get())
    await asyncio.sleep(0)
    leave.close()
    leave.close()  # idempotent
    assert await waiting is None
    assert len(fanout) == 1
    fanout.publish(5)
    assert leave.get_nowait() is None
    assert keep.get_nowait() == 5
    assert [s async for s in leave] == []


async def test_unsubscribe_discards_what_was_queued() -> None:
    fanout: FanOut[int] = FanOut(maxlen=4)
    subscription = fanout.subscribe()
    fanout.publish(1)
    subscription.close()
    assert await subscription.get() is None


async def test_a_cancelled_get_leaves_the_subscription_usable() -> None:
    fanout: FanOut[int] = FanOut()
    subscription = fanout.subscribe()
    waiting = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    fanout.publish(1)  # must not touch the cancelled future
    assert await subscription.get() == 1
    again = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    fanout.publish(2)
    assert await again == 2


async def test_two_concurrent_gets_are_refused() -> None:
    subscription: Subscription[int] = FanOut[int]().subscribe()
    first = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already awaited"):
        await subscription.get()
    subscription.close()
    assert await first is None


class _Clock:
    """A fake monotonic clock for the lag-bounded queues (ns)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1_000_000_000
        monkeypatch.setattr("dragonfly.core.fanout._monotonic_ns", lambda: self.now)


def test_a_lag_bounded_queue_keeps_a_burst_shorter_than_the_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(monkeypatch)
    fanout: FanOut[int] = FanOut(maxlen=64, max_lag_ns=1_000_000)
    sub = fanout.subscribe()
    for n in range(10):  # ten items 0.1 ms apart: all within 1 ms
        fanout.publish(n)
        clock.now += 100_000
    assert [sub.get_nowait() for _ in range(11)] == [*range(10), None]
    assert sub.dropped == 0


def test_a_lag_bounded_queue_skips_what_waited_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(monkeypatch)
    fanout: FanOut[int] = FanOut(maxlen=64, max_lag_ns=1_000_000)
    sub = fanout.subscribe()
    for n in range(30):  # 3 ms of items 0.1 ms apart; the reader is away
        fanout.publish(n)
        clock.now += 100_000
    # Published at +0..+2.9 ms, read at +3.0 ms: only the last 1 ms is kept.
    got = [sub.get_nowait() for _ in range(11)]
    assert got == [*range(20, 30), None]
    assert sub.dropped == 20 and sub.delivered == 10


def test_a_lag_bounded_queue_never_drops_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(monkeypatch)
    fanout: FanOut[str] = FanOut(maxlen=8, max_lag_ns=1_000)
    sub = fanout.subscribe()
    fanout.publish("a")
    clock.now += 10**9  # a quiet market: nothing newer for a second
    assert sub.get_nowait() == "a"
    fanout.publish("b")
    clock.now += 10**9
    fanout.publish("c")  # b waited too long and c is newer: b goes
    assert [sub.get_nowait(), sub.get_nowait()] == ["c", None]
    assert sub.dropped == 1


def test_maxlen_still_bounds_a_lag_bounded_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    _Clock(monkeypatch)  # time stands still: nothing ages
    fanout: FanOut[int] = FanOut(maxlen=4, max_lag_ns=1_000_000)
    sub = fanout.subscribe()
    for n in range(10):
        fanout.publish(n)
    assert [sub.get_nowait() for _ in range(5)] == [6, 7, 8, 9, None]
    assert sub.dropped == 6
    with pytest.raises(ValueError, match="max_lag_ns"):
        fanout.subscribe(max_lag_ns=-1)


class _OfferFanOut(FanOut[int]):
    """publish as Subscription.offer per subscriber: the reference for FanOut's inlined loop."""

    def publish(self, item: int) -> None:
        self._latest = item
        now = fanout_module._monotonic_ns()
        for subscription in self._subscribers:
            subscription.offer(item, now)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 8), st.sampled_from([None, 0, 500, 5_000])), min_size=1, max_size=4),
    st.lists(
        st.tuples(
            st.sampled_from(["publish", "get", "wait"]),
            # Waits right at the lags' edges, and any.
            st.one_of(st.sampled_from([0, 1, 499, 500, 501, 4_999, 5_000, 5_001]), st.integers(0, 3_000)),
        ),
        max_size=60,
    ),
)
def test_publish_does_what_offer_does(
    queues: list[tuple[int, int | None]], script: list[tuple[str, int]]
) -> None:
    """Same items, drops and deliveries for the inlined publish as for offer, step by step."""
    clock = [0]
    original = fanout_module._monotonic_ns
    fanout_module._monotonic_ns = lambda: clock[0]
    try:
        fast: FanOut[int] = FanOut()
        reference = _OfferFanOut()
        pairs = [
            (fast.subscribe(maxlen, lag), reference.subscribe(maxlen, lag)) for maxlen, lag in queues
        ]
        for n, (action, value) in enumerate(script):
            if action == "publish":
                fast.publish(n)
                reference.publish(n)
            elif action == "wait":
                clock[0] += value
            else:
                for mine, theirs in pairs:
                    assert mine.get_nowait() == theirs.get_nowait()
            for mine, theirs in pairs:
                assert (mine.dropped, mine.delivered, len(mine)) == (
                    theirs.dropped,
                    theirs.delivered,
                    len(theirs),
                )
    finally:
        fanout_module._monotonic_ns = original
