"""A book's top levels as a venue last published them, and the diff to its top now.

Venues with an in-band snapshot (Kraken, OKX, Coinbase, Bybit) publish a book
at a fixed depth (Kraken: the subscribed depth; Bybit: 50; OKX: 400, Coinbase:
all, both deeper than any simulated book) and then the levels that changed in
that window. A :class:`TopView` keeps the window as last published and diffs
it against the book's window now.

Invariant: a client that applies every diff to the previous window (amount 0
removes) and then cuts each side to ``depth`` levels, as each of those venues
documents, holds exactly the current window. A diff lists every level of the
new window whose amount differs from the old window (new, resized, or back in
the window), and with amount 0 every level of the old window gone from the
book. A level pushed out of the window by better ones, but still in the book,
is not listed: the client's cut removes it, since it is worse than every
level of the new window.
"""

from __future__ import annotations

from dragonfly.sim.book import SimBook, UnitLevel

#: A diff: (changed bids best first, changed asks best first), amount 0 = removed.
Diff = tuple[list[UnitLevel], list[UnitLevel]]


def _side_diff(old: dict[int, int], new: list[UnitLevel], book: dict[int, int],
               descending: bool) -> list[UnitLevel]:
    changed = [(p, a) for p, a in new if old.get(p) != a]
    changed += [(p, 0) for p in old if p not in book]
    changed.sort(reverse=descending)
    return changed


class TopView:
    """The top ``depth`` levels a side (None: every level) of ``book`` as last published."""

    __slots__ = ("asks", "bids", "book", "depth", "update_id")

    def __init__(self, book: SimBook, depth: int | None) -> None:
        """Start at ``book``'s window now (what a snapshot sent now shows)."""
        self.book = book
        self.depth = depth
        bids, asks = self.levels()
        self.bids = dict(bids)
        self.asks = dict(asks)
        #: The book's update id the window was taken at.
        self.update_id = book.update_id

    def levels(self) -> tuple[list[UnitLevel], list[UnitLevel]]:
        """Return the book's window now: (bids best first, asks best first)."""
        bids, asks = self.book.sorted_levels()
        depth = self.depth
        return (bids, asks) if depth is None else (bids[:depth], asks[:depth])

    def advance(self) -> Diff | None:
        """Move the window to the book now; return the diff, or None if the window did not change."""
        book = self.book
        if book.update_id == self.update_id:
            return None
        self.update_id = book.update_id
        bids, asks = self.levels()
        diff = (_side_diff(self.bids, bids, book.bids, descending=True),
                _side_diff(self.asks, asks, book.asks, descending=False))
        self.bids = dict(bids)
        self.asks = dict(asks)
        return diff if diff[0] or diff[1] else None
