"""The ``liquidity`` aggregator: what the venues in the merge hold around the mid, and what a fill costs.

It reads the same venue slots as the merged book and publishes a
:class:`~dragonfly.core.liquidity.Liquidity` (bands around the mid summed
across venues with each venue's part, and the cost of selling and buying each
configured quantity across venues) when any figure or the merge's members
changed. The figures are :func:`~dragonfly.core.liquidity.compute`'s: with
the C speedups ~20 to 65 µs for 6 venues x 100 levels (~0.1 to 0.3 ms in
pure Python; its module doc), several times the merged book's
recompute. So this aggregator recomputes at most once per event-loop
iteration (a deferred :class:`~dragonfly.core.slots.SlotQueue`, folding the
bursts of every socket read in that iteration) and at most once per
``min_interval`` (default :data:`MIN_INTERVAL`, 50 ms: 20 views a second),
the books conflating in their slots meanwhile; a venue withdrawn from the
merge is never held back (the next view comes at once). ``min_interval=0``
recomputes on every iteration that brought a change. Measured with
``python -m latency.scale`` (20 instruments x 6 venues, depth 50, 4 bands,
3 quantities, paced at 50 ms): ~250-340 recomputes a second, ~15% of the
hub's CPU at 20k frames/s and ~35% at 1.5k (each ~230 µs on the hub's
inputs replayed off-line, more in the hub with its caches cold); see the
README. With the books read on demand and the C side sums, ~390 a second
took ~24% of a py-spy profile's samples of that hub at 8k frames/s (its
deep reads ~5%, the side sums ~8%, the fills and bands ~8%). With the bands
and fills in C too, ~20% (the bands and fills ~1%, reading the sides and
their sums ~7%, the deep reads ~9.5%: by that share ~20 µs a read of 50
levels a side in the hub, against 2.6 µs back to back).

Depth: it reads each venue's book on demand (``on_demand``), ``depth``
levels a side, when it recomputes: a reader per venue
(:meth:`LiquidityAggregator.read_with`, a
:meth:`~dragonfly.core.tee.BookTee.read`) is called for every venue whose
book changed since the last recompute. So the listeners forward per frame
only the top N of the views that recompute on every change (the merged
book's 10 levels), and this view's 50 levels are read some 20 times a second
per instrument rather than on every frame (see :mod:`dragonfly.core.tee`
for what that saves). Without a reader it reads
what the listener forwards. A diff channel's book holds the topology's
deepest depth; a snapshot channel serves its own top N only (Binance
``depth20``: 20 levels, Bitstamp ``order_book``: 100), so a venue read
through one counts only those levels: a quantity that walks past them is
filled from the other venues, or not at all (``complete`` says which).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from dragonfly.core.aggregator import MAX_DEVIATION, BaseAggregator, Run
from dragonfly.core.liquidity import (
    DEFAULT_BANDS_BPS,
    Liquidity,
    SideCache,
    check_bands,
    check_quantities,
    compute,
)
from dragonfly.core.types import VenueBook

_liquidity = partial(tuple.__new__, Liquidity)
#: Seconds between two recomputes at the least, by default (module doc).
MIN_INTERVAL = 0.05


class LiquidityAggregator(BaseAggregator[Liquidity]):
    """Publish the liquidity bands and fill costs of the venues in the merge."""

    kind = "liquidity"
    on_demand = True
    __slots__ = ("_caches", "_last_figures", "_readers", "bands", "quantities")

    def __init__(
        self,
        instrument: str,
        venues: Sequence[str],
        depth: int = 100,
        *,
        bands: Sequence[float] = DEFAULT_BANDS_BPS,
        quantities: Sequence[float] = (),
        max_deviation: float = MAX_DEVIATION,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        # Deferred and paced: its figures cost ~0.1-0.5 ms (module doc).
        super().__init__(
            instrument, venues, depth, max_deviation=max_deviation, deferred=True, min_interval=min_interval
        )
        #: Band half-widths around the mid, basis points, increasing.
        self.bands = check_bands(bands)
        #: Quantities whose fill cost is published, on each side.
        self.quantities = check_quantities(quantities)
        self._last_figures: object = None
        # What was read of each venue's current sides (this aggregator's own).
        self._caches = (SideCache(bids=True), SideCache(bids=False))
        # Per slot, how to read that venue's book now (None: read what is forwarded).
        self._readers: list[Callable[[int], VenueBook | None] | None] = [None] * len(venues)

    def read_with(self, venue: str, reader: Callable[[int], VenueBook | None]) -> None:
        """Read ``venue``'s book with ``reader(depth)`` when it changed (module doc)."""
        self._readers[self.producers[venue].slot] = reader

    def recompute(self) -> None:
        """Read the changed venues' books as deep as this view reads, then recompute."""
        queue = self.queue
        items = queue._items
        readers = self._readers
        depth = self.depth
        for slot in queue._dirty:
            reader = readers[slot]
            if reader is not None and items[slot] is not None:
                # None: not published now (its withdrawal is on its way): out of this view too.
                items[slot] = reader(depth)
        super().recompute()

    def _reset_view(self) -> None:
        self._last_figures = None
        self._caches = (SideCache(bids=True), SideCache(bids=False))

    def _view(
        self,
        bid_runs: list[Run],
        ask_runs: list[Run],
        members: int,
        now: int,
        recv_ns: int,
        source: VenueBook | None,
    ) -> Liquidity | None:
        figures = compute(bid_runs, ask_runs, self.bands, self.quantities, self._caches)
        # Every NaN compute returns is one shared object, and tuple equality checks
        # identity first: unchanged figures compare equal, an empty side's NaN mid too.
        if members == self._last_members and figures == self._last_figures:
            return None
        self._last_figures = figures
        self._last_members = members
        self._sequence += 1
        mid, bands, sells, buys = figures
        return _liquidity(
            (
                self.instrument,
                mid,
                bands,
                sells,
                buys,
                self._sequence,
                recv_ns or now,
                now,
                source.venue if source is not None else "",
                source.frame if source is not None else 0,
                self._states(now, members),
            )
        )
