"""Reconnect delays: exponential backoff with full jitter."""

from __future__ import annotations

import random


class Backoff:
    """Produce reconnect delays that grow exponentially, with full jitter.

    The n-th delay is drawn uniformly from ``[base * factor**n / 2, base *
    factor**n]`` capped at ``cap``: the jitter keeps many clients (or many
    venues of one engine) from reconnecting in lockstep after a shared outage,
    while the lower half-bound keeps the growth visible. :meth:`reset` after a
    connection has proved healthy.
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

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        # The exponent is clamped so a venue down for days cannot overflow it.
        ceiling = min(self.cap, self.base * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the base delay."""
        self.attempts = 0
