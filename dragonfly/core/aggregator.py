"""Layer 4: merge the venues' top-N books into one cross-venue top-N book.

Order: bids by price descending, asks by price ascending; at an equal price
the larger amount first, then the venue name alphabetically, so the merged
book is a pure function of the venue books (deterministic ties).

How the merge stays cheap (it runs on the hot path): when a venue's book
arrives its levels become :class:`MergedLevel` tuples once, built through
``tuple.__new__`` (a C call; a NamedTuple's own constructor is Python code).
The recompute concatenates the venues' levels in venue-name order and sorts
twice with C key functions and no per-level key tuples: first by amount
(descending), then by price (descending for bids, ascending for asks).
Python's sort is stable, also with ``reverse=True``, so equal prices keep
the amount order and equal amounts keep the name order: exactly the merge
order above. The runs are already sorted, so timsort merges them in linear
time. Side by side on this VM (noisy), a recompute for 2 venues x 10 levels
took ~14-16 µs against ~19-29 µs for one sort over ``(price, amount, rank,
level)`` key tuples.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter

from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotQueue
from dragonfly.core.types import MergedBook, MergedLevel, VenueBook

#: A consumer of merged books, called synchronously on the hot path.
MergedSink = Callable[[MergedBook], None]

_NAN = float("nan")
_level = partial(tuple.__new__, MergedLevel)
_merged_book = partial(tuple.__new__, MergedBook)
_by_price = attrgetter("price")
_by_amount = attrgetter("amount")


class Aggregator:
    """Consume venue books from a :class:`SlotQueue`, publish merged books to sinks.

    A venue whose slot is withdrawn (disconnected, untrusted) leaves the merge
    at once and re-enters with its next fresh book. A merged book is published
    only when its top N differs from the last one published.
    """

    __slots__ = (
        "_asks",
        "_bids",
        "_last_asks",
        "_last_bids",
        "_order",
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
        #: The producer handle of each venue's slot, for its feed listener.
        self.producers = {name: self.queue.producer(name) for name in venues}
        # Slots in venue-name order: the concatenation order that breaks ties.
        self._order = sorted(range(len(venues)), key=lambda slot: venues[slot])
        self._bids: list[list[MergedLevel]] = [[] for _ in venues]
        self._asks: list[list[MergedLevel]] = [[] for _ in venues]
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
                self._bids[slot] = []
                self._asks[slot] = []
                continue
            if book.recv_ns > recv_ns:
                recv_ns = book.recv_ns
                source = book
            name = names[slot]
            self._bids[slot] = [_level((name, p, a)) for p, a in book.bids]
            self._asks[slot] = [_level((name, p, a)) for p, a in book.asks]
        all_bids: list[MergedLevel] = []
        all_asks: list[MergedLevel] = []
        for slot in self._order:
            all_bids += self._bids[slot]
            all_asks += self._asks[slot]
        # Two stable passes (see module doc): amount descending, then price.
        all_bids.sort(key=_by_amount, reverse=True)
        all_bids.sort(key=_by_price, reverse=True)
        all_asks.sort(key=_by_amount, reverse=True)
        all_asks.sort(key=_by_price)
        depth = self.depth
        bids = tuple(all_bids[:depth])
        asks = tuple(all_asks[:depth])
        if bids == self._last_bids and asks == self._last_asks:
            return
        self._last_bids = bids
        self._last_asks = asks
        self._sequence += 1
        spread = asks[0][1] - bids[0][1] if bids and asks else _NAN
        now = time.time_ns()
        book_out: MergedBook = _merged_book(
            (
                self.instrument,
                spread,
                bids,
                asks,
                self._sequence,
                recv_ns or now,
                now,
                source.venue if source is not None else "",
                source.frame if source is not None else 0,
            )
        )
        self.last = book_out
        for sink in self._sinks:
            try:
                sink(book_out)
            except Exception:  # a consumer's bug must not stop the feeds
                self._sink_errors.warning("merged-book sink %r failed", sink, exc_info=True)
