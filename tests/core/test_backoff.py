from __future__ import annotations

import random

import pytest

from dragonfly.core.backoff import Backoff, RateLimit


def test_grows_with_full_jitter_and_caps() -> None:
    b = Backoff(base=1.0, factor=2.0, cap=8.0, rng=random.Random(7))
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    delays = []
    for ceiling in ceilings:
        assert b.ceiling() == ceiling
        delays.append(b.next_delay())
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0.0 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    b.reset()
    assert b.ceiling() == 1.0


def test_full_jitter_uses_the_whole_window() -> None:
    b = Backoff(base=1.0, cap=1.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(2000)]
    assert min(delays) < 0.05 and max(delays) > 0.95


def test_survives_very_many_attempts() -> None:
    b = Backoff(base=0.5, cap=30.0)
    for _ in range(5000):
        assert b.next_delay() <= 30.0


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        RateLimit(0, 1.0)
    with pytest.raises(ValueError):
        RateLimit(1, 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_keeps_a_sliding_window() -> None:
    clock = Clock()
    limit = RateLimit(3, 10.0, clock=clock)
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert limit.delay() == pytest.approx(10.0)
    clock.now += 4
    assert limit.delay() == pytest.approx(6.0)
    clock.now += 6  # the three events have left the window
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_rate_limit_holds_until_a_named_time() -> None:
    clock = Clock()
    limit = RateLimit(100, 1.0, clock=clock)
    limit.hold_until(clock.now + 2.5)
    limit.hold_until(clock.now + 1.0)  # a shorter hold never shortens the longer one
    assert limit.delay() == pytest.approx(2.5)
    clock.now += 2.5
    assert limit.try_acquire()


async def test_acquire_waits_for_the_window() -> None:
    import time

    limit = RateLimit(2, 0.2)
    start = time.monotonic()
    for _ in range(3):
        await limit.acquire()
    assert time.monotonic() - start >= 0.19


def test_retry_pacer_goes_at_once_then_backs_off_then_forgives() -> None:
    from dragonfly.core.backoff import RetryPacer

    clock = Clock()
    pacer = RetryPacer(base=1.0, cap=8.0, forgive=20.0, clock=clock, rng=random.Random(3))
    assert pacer.next_delay() == 0.0
    delays = []
    for _ in range(6):
        clock.now += 1.0
        delays.append(pacer.next_delay())
    assert all(0.0 <= d <= 8.0 for d in delays) and pacer.attempts == 6
    clock.now += 19.0  # not yet quiet long enough
    assert pacer.next_delay() <= 8.0 and pacer.attempts == 7
    clock.now += 20.0
    assert pacer.next_delay() == 0.0 and pacer.attempts == 0
    with pytest.raises(ValueError):
        RetryPacer(cap=30.0, forgive=30.0)
