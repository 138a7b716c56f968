from __future__ import annotations

import random

import pytest

from dragonfly.core.backoff import Backoff


def test_grows_with_jitter_and_caps() -> None:
    b = Backoff(base=1.0, factor=2.0, cap=8.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    b.reset()
    assert b.next_delay() <= 1.0


def test_survives_very_many_attempts() -> None:
    b = Backoff(base=0.5, cap=30.0)
    for _ in range(5000):
        assert b.next_delay() <= 30.0


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
