"""Layer 4: merge the venues' top-N books into one cross-venue top-N book.

Order: bids by price descending, asks by price ascending; at an equal price
the larger amount first, then the venue name alphabetically, so the merged
book is a pure function of the venue books (deterministic ties).

How the merge stays cheap (it runs on the hot path): each venue's side is
already sorted best first, so the merged side is a K-way merge of sorted
runs, taken in venue-name order. With the C speedups (:mod:`dragonfly.accel`)
``merge_side`` walks the runs and builds only the N :class:`MergedLevel`
tuples it keeps: ~0.8 µs a side for 2 venues x 10 levels, against ~7 µs for
the pure-Python version below.

The pure-Python :func:`merge_side_py` builds every level through
``tuple.__new__`` (a C call; a NamedTuple's own constructor is Python code),
concatenates the runs and sorts twice with C key functions and no per-level
key tuples: first by amount (descending), then by price (descending for
bids, ascending for asks). Python's sort is stable, also with
``reverse=True``, so equal prices keep the amount order and equal amounts
keep the name order: exactly the merge order above. The runs are already
sorted, so timsort merges them in linear time (~14-16 µs a recompute here
against ~19-29 µs for one sort over ``(price, amount, rank, level)`` keys).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter

from dragonfly.accel import speedups
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotQueue
from dragonfly.core.types import MergedBook, MergedLevel, Side, VenueBook

#: A consumer of merged books, called synchronously on the hot path.
MergedSink = Callable[[MergedBook], None]

_NAN = float("nan")
_merged_book = partial(tuple.__new__, MergedBook)
_by_price = attrgetter("price")
_by_amount = attrgetter("amount")
#: One venue's side as a merge input: ``(venue name, levels best first)``.
Run = tuple[str, Side]
#: merge_side_py's last side per venue name: (name, level type) -> (side, its levels).
_levelled: dict[tuple[str, type], tuple[Side, list[MergedLevel]]] = {}
_new_level = partial(tuple.__new__, MergedLevel)


def merge_side_py(
    runs: Sequence[Run], depth: int, descending: bool, level_type: type[MergedLevel] = MergedLevel
) -> tuple[MergedLevel, ...]:
    """The best ``depth`` levels across ``runs`` (pure Python; see module doc).

    ``runs`` are in venue-name order, each side sorted best first with
    distinct prices (what a :class:`VenueBook` holds). Order: price
    (descending if ``descending``), then larger amount, then earlier run.
    """
    levels: list[MergedLevel] = []
    level = _new_level if level_type is MergedLevel else partial(tuple.__new__, level_type)
    for name, side in runs:
        # A venue's side is levelled once, when it arrives: the runs that did
        # not change reuse the levels of their last side (the very object).
        hit = _levelled.get((name, level_type))
        if hit is None or hit[0] is not side:
            hit = _levelled[name, level_type] = (side, [level((name, p, a)) for p, a in side])
        levels += hit[1]
    levels.sort(key=_by_amount, reverse=True)
    levels.sort(key=_by_price, reverse=descending)
    return tuple(levels[:depth])


#: The merge the aggregator runs: the C speedups' ``merge_side`` (same
#: contract) when built, else :func:`merge_side_py`.
merge_side: Callable[[Sequence[Run], int, bool, type[MergedLevel]], tuple[MergedLevel, ...]] = (
    speedups.merge_side if speedups is not None else merge_side_py
)


class Aggregator:
    """Consume venue books from a :class:`SlotQueue`, publish merged books to sinks.

    A venue whose slot is withdrawn (disconnected, untrusted) leaves the merge
    at once and re-enters with its next fresh book. A merged book is published
    only when its top N differs from the last one published.
    """

    __slots__ = (
        "_ask_runs",
        "_bid_runs",
        "_last_asks",
        "_last_bids",
        "_rank",
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
        # The merge's runs in venue-name order (the order that breaks ties);
        # _rank[slot] is a slot's place among them.
        order = sorted(range(len(venues)), key=lambda slot: venues[slot])
        self._rank = [order.index(slot) for slot in range(len(venues))]
        self._bid_runs: list[Run] = [(venues[slot], ()) for slot in order]
        self._ask_runs: list[Run] = [(venues[slot], ()) for slot in order]
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
        bid_runs = self._bid_runs
        ask_runs = self._ask_runs
        for slot, book in self.queue.drain():
            rank = self._rank[slot]
            if book is None:
                bid_runs[rank] = (names[slot], ())
                ask_runs[rank] = (names[slot], ())
                continue
            if book.recv_ns > recv_ns:
                recv_ns = book.recv_ns
                source = book
            bid_runs[rank] = (names[slot], book.bids)
            ask_runs[rank] = (names[slot], book.asks)
        depth = self.depth
        bids = merge_side(bid_runs, depth, True, MergedLevel)
        asks = merge_side(ask_runs, depth, False, MergedLevel)
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
