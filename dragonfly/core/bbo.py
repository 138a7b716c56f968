"""The ``bbo`` aggregator: each venue's best bid and ask, and the cross-venue best.

It reads the same venue slots as the merged book (one listener feeds both,
through a :class:`~dragonfly.core.tee.BookTee`) and publishes a
:class:`~dragonfly.core.views.BboView` only when a venue's best bid or ask
(price or amount) changed, or a venue entered or left the merge: a change
deeper in a book publishes nothing. It needs one level a side, so it adds
nothing to what the listeners forward.

Cost: the runs are already sorted best first, so a venue's quote is its
sides' first levels. With 120 books a BBO view recomputes on ~0.8 of the
frames (``python -m latency.scale``, scenario b), so the quotes and bests
are one C call (``bbo_quotes``, :mod:`dragonfly.accel`): 0.45 µs for 6
venues against 2.4 µs for its twin :func:`bbo_quotes_py` (timeit). A whole
recompute (put, wake, fold, freshness, quotes, states, publish) took 4.5 µs
back to back, against 7.3 µs with the twin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from dragonfly.accel import speedups
from dragonfly.core.aggregator import MAX_DEVIATION, BaseAggregator, Run
from dragonfly.core.types import MergedLevel, VenueBook
from dragonfly.core.views import BboView, VenueBbo

_NAN = float("nan")
_bbo_view = partial(tuple.__new__, BboView)

#: What :func:`bbo_quotes_py` returns: the venues' quotes, the best bid, the best ask.
Quotes = tuple[tuple[VenueBbo, ...], MergedLevel | None, MergedLevel | None]


def bbo_quotes_py(
    bid_runs: Sequence[Run],
    ask_runs: Sequence[Run],
    quote_type: type[VenueBbo] = VenueBbo,
    level_type: type[MergedLevel] = MergedLevel,
    nan: float = _NAN,
) -> Quotes:
    """Each venue's quote and the best of each side across venues (pure Python; the C twin is ``bbo_quotes``).

    ``bid_runs`` and ``ask_runs`` hold one run per venue in name order (its
    name and its side, ``()`` when absent). A venue with both sides empty has
    no quote; an empty side is quoted at ``nan`` (this very object: equal
    quotes then compare equal) for 0.0. The best of a side: the best price,
    then the larger amount, then the venue first in the runs.
    """
    quotes = []
    best_bid: tuple[str, float, float] | None = None
    best_ask: tuple[str, float, float] | None = None
    for (name, bids), (_, asks) in zip(bid_runs, ask_runs, strict=True):
        if not bids and not asks:
            continue
        bid_price, bid_amount = bids[0] if bids else (nan, 0.0)
        ask_price, ask_amount = asks[0] if asks else (nan, 0.0)
        quotes.append(tuple.__new__(quote_type, (name, bid_price, bid_amount, ask_price, ask_amount)))
        if bids and (
            best_bid is None
            or bid_price > best_bid[1]
            or (bid_price == best_bid[1] and bid_amount > best_bid[2])
        ):
            best_bid = (name, bid_price, bid_amount)
        if asks and (
            best_ask is None
            or ask_price < best_ask[1]
            or (ask_price == best_ask[1] and ask_amount > best_ask[2])
        ):
            best_ask = (name, ask_price, ask_amount)
    return (
        tuple(quotes),
        tuple.__new__(level_type, best_bid) if best_bid is not None else None,
        tuple.__new__(level_type, best_ask) if best_ask is not None else None,
    )


#: The C speedups' ``bbo_quotes`` when built (``None`` from it: use the twin), else the twin.
bbo_quotes: Callable[..., Quotes | None] = speedups.bbo_quotes if speedups is not None else bbo_quotes_py


class BboAggregator(BaseAggregator[BboView]):
    """Publish every venue's best bid and ask and the best of each side across venues."""

    kind = "bbo"
    __slots__ = ("_last_quotes",)

    def __init__(
        self,
        instrument: str,
        venues: list[str] | tuple[str, ...],
        *,
        max_deviation: float = MAX_DEVIATION,
        min_interval: float = 0.0,
    ) -> None:
        super().__init__(instrument, venues, 1, max_deviation=max_deviation, min_interval=min_interval)
        self._last_quotes: tuple[VenueBbo, ...] | None = None

    def _reset_view(self) -> None:
        self._last_quotes = None

    def _view(
        self,
        bid_runs: list[Run],
        ask_runs: list[Run],
        members: int,
        now: int,
        recv_ns: int,
        source: VenueBook | None,
    ) -> BboView | None:
        args = (bid_runs, ask_runs, VenueBbo, MergedLevel, _NAN)
        found = bbo_quotes(*args)
        quoted, bid, ask = found if found is not None else bbo_quotes_py(*args)
        # An empty side's price is the one _NAN object: tuple equality checks identity
        # first, so unchanged quotes compare equal, NaN and all.
        if members == self._last_members and quoted == self._last_quotes:
            return None
        self._last_quotes = quoted
        self._last_members = members
        self._sequence += 1
        return _bbo_view(
            (
                self.instrument,
                ask.price - bid.price if bid is not None and ask is not None else _NAN,
                bid,
                ask,
                quoted,
                self._sequence,
                recv_ns or now,
                now,
                source.venue if source is not None else "",
                source.frame if source is not None else 0,
                self._states(now, members),
            )
        )

