"""Layer 4: merge the venues' top-N books into one cross-venue top-N book.

Order: bids by price descending, asks by price ascending; at an equal price
the larger amount first, then the venue name alphabetically, so the merged
book is a pure function of the venue books (deterministic ties).

How the merge stays cheap: when a venue's book arrives, its levels are turned
once into sort keys that encode the whole order in one tuple,
``(price, amount, -rank, level)`` for bids (sorted descending) and
``(price, -amount, rank, level)`` for asks (ascending), where ``rank`` is the
venue's position in name order. Keys of one venue never tie (a venue has one
level per price), so ``level`` is never compared. The recompute is then one
``sorted`` over the concatenated, already-sorted runs, which timsort merges in
linear time, and a slice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotQueue
from dragonfly.core.types import MergedBook, MergedLevel, VenueBook

#: A consumer of merged books, called synchronously on the hot path.
MergedSink = Callable[[MergedBook], None]

_BidKey = tuple[float, float, int, MergedLevel]
_AskKey = tuple[float, float, int, MergedLevel]
_NAN = float("nan")


class Aggregator:
    """Consume venue books from a :class:`SlotQueue`, publish merged books to sinks.

    A venue whose slot is withdrawn (disconnected, untrusted) leaves the merge
    at once and re-enters with its next fresh book. A merged book is published
    only when its top N differs from the last one published.
    """

    __slots__ = (
        "_ask_keys",
        "_bid_keys",
        "_last_asks",
        "_last_bids",
        "_ranks",
        "_sequence",
        "_sink_errors",
        "_sinks",
        "depth",
        "instrument",
        "last",
        "producers",
        "queue",
    )

    def __init__(self, instrument: str, venues: Sequence[str], depth: int = 10) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.instrument = instrument
        self.depth = depth
        self.queue: SlotQueue[VenueBook] = SlotQueue(self.recompute)
        ordered = sorted(venues)
        self._ranks = {name: ordered.index(name) for name in venues}
        self._bid_keys: list[list[_BidKey]] = []
        self._ask_keys: list[list[_AskKey]] = []
        #: The producer handle of each venue's slot, for its feed listener.
        self.producers = {name: self.queue.producer(name) for name in venues}
        for _ in venues:
            self._bid_keys.append([])
            self._ask_keys.append([])
        self._sinks: list[MergedSink] = []
        self._last_bids: tuple[MergedLevel, ...] = ()
        self._last_asks: tuple[MergedLevel, ...] = ()
        self._sequence = 0
        self._sink_errors = RateLimitedLog(logging.getLogger("dragonfly.aggregator"))
        #: The last merged book published, or ``None``.
        self.last: MergedBook | None = None

    def add_sink(self, sink: MergedSink) -> None:
        """Call ``sink`` with every merged book published from now on."""
        self._sinks.append(sink)

    def remove_sink(self, sink: MergedSink) -> None:
        """Stop calling ``sink``."""
        self._sinks.remove(sink)

    def recompute(self) -> None:
        """Fold the changed venue slots into the merge and publish if the top N moved."""
        recv_ns = 0
        source: VenueBook | None = None
        names = self.queue.names
        for slot, book in self.queue.drain():
            if book is None:
                self._bid_keys[slot] = []
                self._ask_keys[slot] = []
                continue
            if book.recv_ns > recv_ns:
                recv_ns = book.recv_ns
                source = book
            name = names[slot]
            rank = self._ranks[name]
            self._bid_keys[slot] = [
                (p, a, -rank, MergedLevel(name, p, a)) for p, a in book.bids
            ]
            self._ask_keys[slot] = [
                (p, -a, rank, MergedLevel(name, p, a)) for p, a in book.asks
            ]
        depth = self.depth
        bid_keys: list[_BidKey] = []
        for keys in self._bid_keys:
            bid_keys += keys
        ask_keys: list[_AskKey] = []
        for akeys in self._ask_keys:
            ask_keys += akeys
        bid_keys.sort(reverse=True)
        ask_keys.sort()
        bids = tuple([k[3] for k in bid_keys[:depth]])
        asks = tuple([k[3] for k in ask_keys[:depth]])
        if bids == self._last_bids and asks == self._last_asks:
            return
        self._last_bids = bids
        self._last_asks = asks
        self._sequence += 1
        spread = asks[0].price - bids[0].price if bids and asks else _NAN
        book_out = MergedBook(
            self.instrument,
            spread,
            bids,
            asks,
            self._sequence,
            recv_ns or time.time_ns(),
            time.time_ns(),
            source.venue if source is not None else "",
            source.frame if source is not None else 0,
        )
        self.last = book_out
        for sink in self._sinks:
            try:
                sink(book_out)
            except Exception:  # a consumer's bug must not stop the feeds
                self._sink_errors.warning("merged-book sink %r failed", sink, exc_info=True)
