"""The ``checksum`` fault: change a level the venue's checksum covers, keep the checksum.

Kraken checks the top 10 levels per side, OKX the top 25: an amount changed
deeper than that goes unnoticed. So the fault follows each symbol's book as
the client sees it (rebuilt from the frames already sent, then kept up to date
from every frame passing by) and changes only a level of an update that ends
inside the checksummed top: a client that checks the checksum must notice.
"""

from __future__ import annotations

from collections.abc import Iterable

from dragonfly.sim.faults.shapes import BookView, Level, read_book
from dragonfly.sim.faults.values import as_decimal, bump, is_zero


class TopTracker:
    """One symbol's book as a client keeps it, enough to rank a level."""

    def __init__(self, depth: int) -> None:
        """Track a book whose checksum covers the top ``depth`` levels of each side."""
        self.depth = depth
        self.sides: dict[bool, dict[float, None]] = {True: {}, False: {}}

    @classmethod
    def rebuilt(cls, venue: str, depth: int, frames: Iterable[bytes]) -> TopTracker:
        """Return a tracker that has seen ``frames`` (the symbol's frames sent so far)."""
        tracker = cls(depth)
        for data in frames:
            view = read_book(venue, data)
            if view is not None:
                tracker.apply(view)
        return tracker

    def apply(self, view: BookView) -> None:
        """Apply a snapshot (replaces the book) or an update."""
        if view.snapshot:
            for levels in self.sides.values():
                levels.clear()
        for side in view.sides:
            book = self.sides[side.bid]
            for level in side.levels:
                price = as_decimal(level.price)
                if price is None:
                    continue
                if is_zero(level.amount):
                    book.pop(float(price), None)
                else:
                    book[float(price)] = None

    def covered(self, view: BookView) -> Level | None:
        """Return a live level of ``view`` (applied) that falls in the checksummed top."""
        for side in view.sides:
            book = self.sides[side.bid]
            for level in side.levels:
                price = as_decimal(level.price)
                if price is None or is_zero(level.amount):
                    continue
                value = float(price)
                better = sum(1 for p in book if (p > value if side.bid else p < value))
                if better < self.depth:
                    return level
        return None


def break_checksum(tracker: TopTracker, view: BookView) -> bool:
    """Track ``view``; if it is a checksummed update, change a covered amount (True)."""
    tracker.apply(view)
    if view.snapshot or not view.checksummed:
        return False
    level = tracker.covered(view)
    if level is None:
        return False
    level.amount = bump(level.amount)
    return True
