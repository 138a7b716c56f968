"""Aggregated liquidity: what the venues hold around the mid, and what a fill costs across them.

Pure functions over the merge's runs (:data:`~dragonfly.core.aggregator.Run`:
``(venue, side)`` in venue-name order, each side best first with distinct
prices, ``()`` for a venue not in the merge); floats in, floats out, no I/O.

Definitions (a desk liquidating a big order reads these):

* ``mid``: ``(best bid + best ask) / 2`` over all the venues in the merge, so
  venues crossed against each other give a mid between the crossed quotes.
  ``nan`` when either side is empty everywhere; then every band holds 0 with
  no venues (a band needs a mid).
* A band of ``bps``: bids priced ``>= mid * (1 - bps/1e4)``, asks priced
  ``<= mid * (1 + bps/1e4)``, summed across venues, with each venue's part.
  A level exactly at the edge is in: the edge is widened by ``1e-12 * mid``
  (:data:`_EDGE`), far below any tick and far above the float rounding of the
  mid and the edge (a few ulps), so ``99.00`` is in the 100 bps band of a mid
  of ``100.00`` whatever the rounding.
* A fill of ``quantity``: ``sell`` hits the bids, ``buy`` lifts the asks,
  across venues in the merged book's order (best price first; at one price
  the larger amount first, then the venue first by name), the last level
  touched only as far as needed. ``filled = min(quantity, what the books
  hold)``, ``complete`` when the books held it all. A quantity that ends
  within ``1e-12`` (relative) of a level's end ends at that level, again so
  that float rounding of cumulative sums (``0.1 + 0.2 != 0.3``) never touches
  one more level (a worse worst price, a venue filling 5e-17) nor leaves a
  book that holds exactly the quantity short. ``slippage_bps`` is the average
  price's distance from the side's best price, in bps of the best, positive
  when worse (never negative: a float rounding below 0 is reported as 0).
  Prices are > 0 and amounts > 0 (what a venue book holds).

Every ``nan`` published is the one object :data:`_NAN`: tuples compare their
items by identity first, so two results with the same empty side compare equal
and a consumer's "did anything change?" check stays cheap and right.

How it stays fast (it runs after every burst of every instrument with a
liquidity view). Each venue side is read through a cache keyed by the side
tuple's identity (a venue's side object is replaced only when it changes,
like ``_levelled`` in :mod:`dragonfly.core.aggregator`): its sort keys
(prices ascending for asks, negated prices for bids, so one ascending
``bisect`` serves both), prefix sums of amounts and of ``price * amount``.
Then:

* a band is one ``bisect`` and one list index per venue;
* a quantity beyond what the books hold is the whole book: the prefix
  sums' last items, no walk;
* the other quantities share one K-way walk over the venues, smallest
  quantity first, that stops at the largest. The walk takes *runs*, not
  levels: the venue at the top of a heap takes, in one ``bisect`` and two
  prefix-sum differences, all its levels priced strictly better than the next
  venue's best; a quantity ending inside a run is located by a ``bisect`` on
  the prefix sums. It never reads past the largest fill.
* venues usually alternate level by level near the top, so a deep fill
  would take a run per level: after :data:`_SKIP_AFTER` runs towards one
  quantity the walk bisects ahead instead (:func:`_skip`: a probe is one
  ``bisect`` per venue; ~8 probes for 6 x 100 levels), then ends in at most
  one run per venue.

The cache (:class:`SideCache`, one pair per consumer: no state shared across
aggregators or engines) holds each venue's last side with what was read from
it, and reads a side again only when the venue's side is a new object (a
venue's side tuple is replaced, never changed, when its book changes): one
entry per venue, so it is as big as the books it reads.

The bands and the fills are C functions when the speedups are built
(``band_figures`` and ``fill_figures``, :mod:`dragonfly.accel`), with
:func:`band_figures_py` and :func:`fill_figures_py` their twins: the same
floats bit for bit, the twins' additions in the twins' order (sums left to
right from 0.0, on every Python version: :data:`_sum`). Measured with
``python -m dragonfly.core.liquidity`` (:func:`_bench`: best of 5 x 500
:func:`compute` calls; 6 venues x 100 levels a side interleaved level by
level with ties, 4 bands, quantities 10, half the books, twice the books) on
this 2-core VM, where one ``bisect_right`` over 100 items takes 0.18 µs,
C / pure Python (``DRAGONFLY_PURE_PYTHON=1``):

* cached, no side changed: 19-25 / 113-115 µs (4 bands 5.2 / 26 µs, a
  side's 3 fills 4.6 / 41 µs);
* cached, three shallow quantities (1, 10, 25): 17-20 / 64-65 µs;
* one venue's two sides changed (the common burst): 26 / 141-145 µs;
* uncached, all 12 sides new: 63-65 / 274-282 µs (each side's keys and
  running sums, ``side_sums``, 1.6 / 6.5 µs on 50 levels).

Without the bisection ahead, the half-the-books fill walks ~300 runs (in
Python ~390 µs a side instead of ~40).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from functools import partial, reduce
from heapq import heapify, heappop, heapreplace
from itertools import accumulate, compress, pairwise, repeat
from operator import add, getitem, itemgetter, mul, neg, sub
from typing import NamedTuple

from dragonfly.accel import speedups
from dragonfly.core.errors import ConfigError
from dragonfly.core.types import Side, VenueState

_NAN = float("nan")
#: Relative slack at a band's edge and at a quantity's end (module doc).
_EDGE = 1e-12
#: Runs the fill walk takes towards one quantity before it bisects ahead (:func:`_skip`).
_SKIP_AFTER = 8
#: The widest band: 100% of the mid (every bid; asks up to twice the mid).
_MAX_BAND_BPS = 10_000.0


class VenueAmount(NamedTuple):
    """One venue's part of an amount."""

    venue: str
    amount: float  # base-currency amount from this venue


class Band(NamedTuple):
    """What the venues hold within ``bps`` of the mid, per side, with each venue's part.

    ``bid_amount``: bids priced ``>= mid * (1 - bps/1e4)``; ``ask_amount``:
    asks priced ``<= mid * (1 + bps/1e4)``. ``bid_venues``/``ask_venues``:
    each venue's part, venue-name order, venues holding 0 left out. All 0
    with no venues when the mid is ``nan`` (a side empty).
    """

    bps: float
    bid_amount: float
    ask_amount: float
    bid_venues: tuple[VenueAmount, ...]
    ask_venues: tuple[VenueAmount, ...]


class Fill(NamedTuple):
    """The cost of selling (hitting the bids) or buying (lifting the asks) ``quantity`` across venues.

    ``filled = min(quantity, what the books hold)``; ``average_price`` is the
    volume-weighted price of it, ``worst_price`` the last price touched,
    ``slippage_bps`` the average's distance from the side's best price in
    bps of the best (>= 0, worse than the best); all three ``nan`` when
    nothing was filled. ``venues``: how much each venue fills, venue-name
    order, zeros left out. ``complete``: ``filled == quantity``.
    """

    side: str  # "sell" or "buy"
    quantity: float
    filled: float
    average_price: float
    worst_price: float
    slippage_bps: float
    venues: tuple[VenueAmount, ...]
    complete: bool


class Liquidity(NamedTuple):
    """The liquidity view of one instrument, as its aggregator publishes it.

    ``mid``, ``bands``, ``sells`` and ``buys`` are :func:`compute`'s (one
    fill per configured quantity, in the configured order). The other fields
    are the merged book's (:class:`~dragonfly.core.types.MergedBook`).
    """

    instrument: str
    mid: float
    bands: tuple[Band, ...]
    sells: tuple[Fill, ...]
    buys: tuple[Fill, ...]
    sequence: int
    recv_ns: int
    publish_ns: int
    source_venue: str = ""
    source_frame: int = 0
    venues: tuple[VenueState, ...] = ()


DEFAULT_BANDS_BPS = (10.0, 25.0, 50.0, 100.0)


def _numbers(values: object, what: str) -> list[float]:
    """``values`` as floats if it is a list or tuple of finite real numbers, else :class:`ConfigError`."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ConfigError(f"{what} must be a list of numbers, got {values!r}")
    out: list[float] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{what}: {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{what}: {value!r} is not a finite number")
        out.append(number)
    return out


def check_bands(bands: Sequence[float], what: str = "bands_bps") -> tuple[float, ...]:
    """``bands`` as a tuple of floats if valid, else :class:`ConfigError` naming ``what``.

    Valid: at least one band, each a finite half-width in bps with
    ``0 < bps <= 10000``, strictly increasing.
    """
    values = _numbers(bands, what)
    if not values:
        raise ConfigError(
            f"{what} must list at least one band half-width in bps, e.g. {list(DEFAULT_BANDS_BPS)}"
        )
    for bps in values:
        if not 0.0 < bps <= _MAX_BAND_BPS:
            raise ConfigError(
                f"{what}: {bps:g} bps is out of range: a band's half-width around the mid "
                f"must be > 0 and <= {_MAX_BAND_BPS:g} bps (100%)"
            )
    for narrower, wider in pairwise(values):
        if not wider > narrower:
            raise ConfigError(
                f"{what} must be strictly increasing, without duplicates: "
                f"{wider:g} comes after {narrower:g} (got {values})"
            )
    return tuple(values)


def check_quantities(quantities: Sequence[float], what: str = "quantities") -> tuple[float, ...]:
    """``quantities`` as a tuple of floats if each is finite and > 0, else :class:`ConfigError`.

    Empty is allowed (no fill costs are computed). Quantities are
    base-currency amounts (BTC of BTC-USDT), in any order, repeats allowed.
    """
    values = _numbers(quantities, what)
    for quantity in values:
        if not quantity > 0.0:
            raise ConfigError(
                f"{what}: {quantity:g} is not a quantity to fill: each must be > 0 (a base-currency amount)"
            )
    return tuple(values)


# ---------------------------------------------------------------- side cache

#: One venue side as read: (the side, sort keys ascending, prefix sums of
#: amounts, prefix sums of price * amount); the prefix lists start with 0.0.
_Depth = tuple[Side, Sequence[float], list[float], list[float]]


def side_sums_py(side: Side, negate: bool) -> tuple[Sequence[float], list[float], list[float]]:
    """A side's sort keys and prefix sums of amounts and of ``price * amount`` (pure Python).

    Keys: the prices negated into a list when ``negate`` (bids), else the
    prices as a tuple (``bisect`` reads either). The C twin is ``side_sums``
    (one pass: 1.6 µs against 6.5 µs on 50 levels, timeit; it returns
    ``None`` where this one must decide: any side that is not a non-empty
    tuple of float pairs).
    """
    # One C pass splits the levels.
    prices, amounts = zip(*side, strict=True)
    return (
        list(map(neg, prices)) if negate else prices,
        list(accumulate(amounts, initial=0.0)),
        list(accumulate(map(mul, prices, amounts), initial=0.0)),
    )


#: The C speedups' ``side_sums`` when built (``None`` from it: use the twin), else the twin.
side_sums: Callable[[Side, bool], tuple[Sequence[float], list[float], list[float]] | None] = (
    speedups.side_sums if speedups is not None else side_sums_py
)

_price = itemgetter(0)
_amount = itemgetter(1)
_first = itemgetter(0)
_last = itemgetter(-1)


class _Venues:
    """The venues of one side with a non-empty side, in venue-name order (a venue's rank: its index).

    Parallel lists, so that a figure over every venue is a ``map`` of C calls.
    """

    __slots__ = ("amounts", "keys", "names", "notionals", "sides")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sides: list[Side] = []
        self.keys: list[Sequence[float]] = []
        self.amounts: list[list[float]] = []
        self.notionals: list[list[float]] = []


class SideCache:
    """Each venue's last side as read, kept while it is the same object (module doc).

    One per side of one consumer (a :class:`~dragonfly.core.liquidity_agg.LiquidityAggregator`
    holds its own pair): no state is shared between consumers, and the cache
    holds at most one side per venue name, so its size is that of the books.
    """

    __slots__ = ("bids", "entries")

    def __init__(self, bids: bool) -> None:
        self.bids = bids
        self.entries: dict[str, _Depth] = {}

    def read(self, runs: Sequence[tuple[str, Side]]) -> _Venues:
        """The venues of ``runs`` with a non-empty side, in the runs' order, each side read."""
        entries = self.entries
        out = _Venues()
        for name, side in runs:
            if side:
                depth = entries.get(name)
                if depth is None or depth[0] is not side:
                    depth = entries[name] = self._read(side)
                out.names.append(name)
                out.sides.append(side)
                out.keys.append(depth[1])
                out.amounts.append(depth[2])
                out.notionals.append(depth[3])
        return out

    def _read(self, side: Side) -> _Depth:
        sums = side_sums(side, self.bids)
        if sums is None:
            sums = side_sums_py(side, self.bids)
        return (side, *sums)


#: A venue's next level in the fill walk's heap: (key, -amount, rank).
_Head = tuple[float, float, int]
#: What a figure is made of: (fill type, venue-amount type, the nan published).
_Kit = tuple[type[Fill], type[VenueAmount], float]
#: Floats summed left to right from 0.0, on every Python version (``sum`` of
#: floats is compensated from 3.12 on): the C twins add in the same order.
_sum = partial(reduce, add)


def _parts(names: list[str], amounts: list[float], amount_type: type[VenueAmount]) -> tuple[VenueAmount, ...]:
    """``(name, amount)`` of each venue, zeros left out (C calls only)."""
    make = partial(tuple.__new__, amount_type)
    return tuple(compress(map(make, zip(names, amounts, strict=True)), amounts))


# ---------------------------------------------------------------- figures


def compute(
    bid_runs: Sequence[tuple[str, Side]],
    ask_runs: Sequence[tuple[str, Side]],
    bands: tuple[float, ...],
    quantities: tuple[float, ...],
    caches: tuple[SideCache, SideCache] | None = None,
) -> tuple[float, tuple[Band, ...], tuple[Fill, ...], tuple[Fill, ...]]:
    """``(mid, bands, sells, buys)`` of the venues in ``bid_runs``/``ask_runs`` (module doc).

    Runs are in venue-name order, each side best first with distinct prices
    (``()``: the venue is absent). ``bands`` as :func:`check_bands` returns
    them, ``quantities`` as :func:`check_quantities` does; one :class:`Band`
    per band and one sell and one buy :class:`Fill` per quantity, in order.
    ``caches`` (bids, asks) keep the sides read between calls; without them
    every side is read afresh.
    """
    if caches is None:
        caches = (SideCache(bids=True), SideCache(bids=False))
    bids = caches[0].read(bid_runs)
    asks = caches[1].read(ask_runs)
    if bids.names and asks.names:
        # Keys ascending: a side's best is its venues' lowest first key.
        mid = (min(map(_first, asks.keys)) - min(map(_first, bids.keys))) * 0.5
        args = (bids.names, bids.keys, bids.amounts, asks.names, asks.keys, asks.amounts, mid, bands)
        out_bands = band_figures(*args, Band, VenueAmount)
        if out_bands is None:
            out_bands = band_figures_py(*args, Band, VenueAmount)
    else:
        mid = _NAN
        out_bands = tuple(tuple.__new__(Band, (bps, 0.0, 0.0, (), ())) for bps in bands)
    return mid, out_bands, _fills(bids, quantities, True), _fills(asks, quantities, False)


def _fills(venues: _Venues, quantities: tuple[float, ...], sell: bool) -> tuple[Fill, ...]:
    args = (venues.names, venues.sides, venues.keys, venues.amounts, venues.notionals, quantities, sell)
    fills = fill_figures(*args, Fill, VenueAmount, _NAN)
    return fills if fills is not None else fill_figures_py(*args, Fill, VenueAmount, _NAN)


def band_figures_py(
    bid_names: list[str],
    bid_keys: list[Sequence[float]],
    bid_amounts: list[list[float]],
    ask_names: list[str],
    ask_keys: list[Sequence[float]],
    ask_amounts: list[list[float]],
    mid: float,
    bands: tuple[float, ...],
    band_type: type[Band] = Band,
    amount_type: type[VenueAmount] = VenueAmount,
) -> tuple[Band, ...]:
    """One :class:`Band` per ``bands`` around ``mid`` (pure Python; the C twin is ``band_figures``).

    Per side, the venues with a non-empty side in name order: their names,
    sort keys and prefix sums of amounts (:class:`SideCache`). Bid keys are
    negated prices.
    """
    out = []
    for bps in bands:
        width = bps * 1e-4 + _EDGE
        # Bid keys are negated prices: price >= low <=> -price <= -low.
        ends = map(bisect_right, bid_keys, repeat(-(mid * (1.0 - width))))
        bid_parts = list(map(getitem, bid_amounts, ends))
        ends = map(bisect_right, ask_keys, repeat(mid * (1.0 + width)))
        ask_parts = list(map(getitem, ask_amounts, ends))
        out.append(
            tuple.__new__(
                band_type,
                (
                    bps,
                    _sum(bid_parts, 0.0),
                    _sum(ask_parts, 0.0),
                    _parts(bid_names, bid_parts, amount_type),
                    _parts(ask_names, ask_parts, amount_type),
                ),
            )
        )
    return tuple(out)


def fill_figures_py(
    names: list[str],
    sides: list[Side],
    keys: list[Sequence[float]],
    amounts: list[list[float]],
    notionals: list[list[float]],
    quantities: tuple[float, ...],
    sell: bool,
    fill_type: type[Fill] = Fill,
    amount_type: type[VenueAmount] = VenueAmount,
    nan: float = _NAN,
) -> tuple[Fill, ...]:
    """One fill per quantity on one side (``sell``: the bids), in the quantities' order.

    Pure Python; the C twin is ``fill_figures``. The venues with a non-empty
    side, in name order: their names, sides, sort keys and prefix sums of
    amounts and of ``price * amount`` (:class:`SideCache`). ``nan`` is the
    object every ``nan`` figure is.
    """
    if not quantities:
        return ()
    kit: _Kit = (fill_type, amount_type, nan)
    label = "sell" if sell else "buy"
    if not names:
        return tuple(tuple.__new__(fill_type, (label, q, 0.0, nan, nan, nan, (), False)) for q in quantities)
    venues = _Venues()
    venues.names, venues.sides, venues.keys, venues.amounts, venues.notionals = (
        names,
        sides,
        keys,
        amounts,
        notionals,
    )
    total = _sum(map(_last, amounts), 0.0)
    best_key = min(map(_first, keys))
    best = -best_key if sell else best_key
    fills: list[Fill | None] = [None] * len(quantities)
    walk: list[int] = []  # the quantities the books hold, smallest first
    whole: Fill | None = None
    for index in sorted(range(len(quantities)), key=quantities.__getitem__):
        quantity = quantities[index]
        if quantity * (1.0 - _EDGE) <= total:
            walk.append(index)
        elif whole is None:
            fills[index] = whole = _whole(venues, label, quantity, total, best, sell, kit)
        else:  # the same figures, another quantity (never complete: it exceeds the books)
            fills[index] = tuple.__new__(fill_type, (label, quantity, *whole[2:]))
    if walk and not _walk(venues, quantities, walk, fills, label, best, sell, kit):
        # The walk ran out of levels by a rounding (cannot happen with _EDGE;
        # be total anyway): what is left gets the whole book.
        for index in walk:
            if fills[index] is None:
                fills[index] = _whole(venues, label, quantities[index], total, best, sell, kit)
    return tuple(fills)  # type: ignore[arg-type]  # every slot is set above


def _whole(
    venues: _Venues, label: str, quantity: float, total: float, best: float, sell: bool, kit: _Kit
) -> Fill:
    """The fill of every level of every venue (``total`` of them) for ``quantity``."""
    worst_key = max(map(_last, venues.keys))
    return _result(
        label,
        quantity,
        total,
        _sum(map(_last, venues.notionals), 0.0),
        -worst_key if sell else worst_key,
        best,
        sell,
        _parts(venues.names, list(map(_last, venues.amounts)), kit[1]),
        kit,
    )


def _walk(
    venues: _Venues,
    quantities: tuple[float, ...],
    walk: list[int],
    fills: list[Fill | None],
    label: str,
    best: float,
    sell: bool,
    kit: _Kit,
) -> bool:
    """Fill ``quantities[i]`` for each ``i`` of ``walk`` (increasing quantities) in one K-way walk.

    True when it set them all (it stops there), False if the levels ran out first.
    """
    names = venues.names
    sides = venues.sides
    keyss = venues.keys
    amountss = venues.amounts
    notionalss = venues.notionals
    # The heap orders each venue's next level as the merged book does: key
    # (price, best first), larger amount, venue rank (= name order).
    heap = [(keys[0], -side[0][1], rank) for rank, (keys, side) in enumerate(zip(keyss, sides, strict=True))]
    heapify(heap)
    cursor = [0] * len(names)  # each venue's levels taken whole
    taken = [0.0] * len(names)  # their amounts: amounts[cursor] of each venue
    filled = 0.0  # == sum(taken), summed in walk order
    notional = 0.0
    done = 0
    runs = 0  # runs walked towards the current quantity
    index = walk[0]
    target = quantities[index]
    reach = target * (1.0 - _EDGE)
    while heap:
        if runs == _SKIP_AFTER:
            # A deep fill through interleaved venues: jump close to its end.
            cursor, heap = _skip(venues, cursor, reach)
            taken = list(map(getitem, amountss, cursor))
            filled = _sum(taken, 0.0)
            notional = _sum(map(getitem, notionalss, cursor), 0.0)
            runs = 0
        rank = heap[0][2]
        keys = keyss[rank]
        amounts = amountss[rank]
        notionals = notionalss[rank]
        start = cursor[rank]
        # This venue's run: its levels strictly better than the next venue's
        # best (an equal price goes back to the heap, where amount and name
        # order the tie). The top level is in the run whatever its price.
        size = len(heap)
        if size > 1:
            following = heap[1][0] if size == 2 else min(heap[1][0], heap[2][0])
            end = bisect_left(keys, following, start + 1)
        else:
            end = len(keys)
        base = amounts[start]
        run = amounts[end] - base
        while filled + run >= reach:
            # The quantity ends in this run, at the first level whose
            # cumulative amount reaches it (within _EDGE).
            last = bisect_left(amounts, base + (reach - filled), start + 1, end) - 1
            need = target - filled
            price = sides[rank][last][0]
            cost = notional + (notionals[last] - notionals[start]) + (need - (amounts[last] - base)) * price
            parts = taken.copy()
            parts[rank] += need
            fills[index] = _result(
                label, target, target, cost, price, best, sell, _parts(names, parts, kit[1]), kit
            )
            done += 1
            if done == len(walk):
                return True
            runs = 0
            index = walk[done]
            target = quantities[index]
            reach = target * (1.0 - _EDGE)
        filled += run
        notional += notionals[end] - notionals[start]
        taken[rank] += run
        cursor[rank] = end
        runs += 1
        if end < len(keys):
            heapreplace(heap, (keys[end], -sides[rank][end][1], rank))
        else:
            heappop(heap)
    return False


def _skip(venues: _Venues, cursor: list[int], reach: float) -> tuple[list[int], list[_Head]]:
    """Take whole every level that a fill reaching ``reach`` surely takes whole; the walk's new state.

    A bisection over the merged order without building it: each venue's
    untaken levels that may hold the end (its candidates) are a range of its
    levels. Probe the middle candidate of the venue with the most: the
    levels of every venue priced at or better than the probe hold ``F``; if
    ``F`` reaches the quantity, the end is at or before the probe (drop the
    later candidates), else after it (take the earlier ones whole). Stop
    when each venue has at most one candidate: the walk sorts those out,
    ties and all, in a few runs. Returns the new cursor and heap.
    """
    keyss = venues.keys
    amountss = venues.amounts
    lows = cursor
    highs = list(map(len, keyss))
    while True:
        counts = list(map(sub, highs, lows))
        most = max(counts)
        if most < 2:
            break
        rank = counts.index(most)
        # The lower middle, so that two candidates always split.
        probe = keyss[rank][lows[rank] + (most - 1) // 2]
        ends = list(map(bisect_right, keyss, repeat(probe), lows, highs))
        if _sum(map(getitem, amountss, ends), 0.0) >= reach:
            highs = ends
        else:
            lows = ends
    heap = [
        (keys[at], -side[at][1], rank)
        for rank, (keys, side, at) in enumerate(zip(keyss, venues.sides, lows, strict=True))
        if at < len(keys)
    ]
    heapify(heap)
    return lows, heap


def _result(
    label: str,
    quantity: float,
    filled: float,
    notional: float,
    worst: float,
    best: float,
    sell: bool,
    venues: tuple[VenueAmount, ...],
    kit: _Kit,
) -> Fill:
    fill_type, _, nan = kit
    if not filled:
        return tuple.__new__(fill_type, (label, quantity, 0.0, nan, nan, nan, (), False))
    average = notional / filled
    slippage = ((best - average) if sell else (average - best)) / best * 1e4
    if slippage < 0.0:  # only a float rounding: no fill beats the best price
        slippage = 0.0
    complete = filled == quantity
    return tuple.__new__(fill_type, (label, quantity, filled, average, worst, slippage, venues, complete))


#: The C speedups' ``band_figures`` and ``fill_figures`` when built (``None`` from
#: either: use its twin, it declines what the twin must decide), else the twins.
band_figures: Callable[..., tuple[Band, ...] | None] = (
    speedups.band_figures if speedups is not None else band_figures_py
)
fill_figures: Callable[..., tuple[Fill, ...] | None] = (
    speedups.fill_figures if speedups is not None else fill_figures_py
)


def _bench() -> None:  # pragma: no cover - a measurement, run by hand
    """Print :func:`compute`'s cost: cached, one venue changed, uncached (module doc)."""
    import random
    import timeit

    rng = random.Random(7)
    names = ["binance", "bitstamp", "bybit", "coinbase", "kraken", "okx"]

    def book() -> tuple[Side, Side]:
        # 100 levels a side on a 400-tick grid around 10000: venues interleave
        # level by level, with ties across venues.
        bid_ticks = sorted(rng.sample(range(400), 100))
        ask_ticks = sorted(rng.sample(range(400), 100))
        bids = tuple((10000.0 - t * 0.5, round(rng.uniform(0.01, 5.0), 4)) for t in bid_ticks)
        asks = tuple((10000.5 + t * 0.5, round(rng.uniform(0.01, 5.0), 4)) for t in ask_ticks)
        return bids, asks

    books = [book() for _ in names]
    bid_runs = [(name, b) for name, (b, _) in zip(names, books, strict=True)]
    ask_runs = [(name, a) for name, (_, a) in zip(names, books, strict=True)]
    total = sum(a for _, side in bid_runs for _, a in side)
    # A shallow quantity, one that walks half the books, one they cannot fill.
    quantities = (10.0, total / 2, total * 2)
    bands = DEFAULT_BANDS_BPS
    number, repeat = 500, 5

    def best(stmt: Callable[[], object]) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6

    caches = (SideCache(bids=True), SideCache(bids=False))
    cached = best(lambda: compute(bid_runs, ask_runs, bands, quantities, caches))
    shallow = best(lambda: compute(bid_runs, ask_runs, bands, (1.0, 10.0, 25.0), caches))
    fresh_one = iter(
        [(tuple(list(bid_runs[0][1])), tuple(list(ask_runs[0][1]))) for _ in range(number * repeat)]
    )
    fresh_all = iter(
        [
            [(tuple(list(b)), tuple(list(a))) for (_, b), (_, a) in zip(bid_runs, ask_runs, strict=True)]
            for _ in range(number * repeat)
        ]
    )

    def changed_one() -> None:
        b, a = next(fresh_one)
        bid_runs[0] = (names[0], b)
        ask_runs[0] = (names[0], a)
        compute(bid_runs, ask_runs, bands, quantities, caches)

    def changed_all() -> None:
        sides = next(fresh_all)
        compute(
            [(n, b) for n, (b, _) in zip(names, sides, strict=True)],
            [(n, a) for n, (_, a) in zip(names, sides, strict=True)],
            bands,
            quantities,
            caches,
        )

    one_changed = best(changed_one)
    uncached = best(changed_all)
    keys = list(range(100))
    calibration = best(lambda: bisect_right(keys, 50.5))
    for what, micros in (
        ("cached", cached),
        ("cached, 3 shallow quantities", shallow),
        ("one venue changed", one_changed),
        ("uncached", uncached),
        ("(one bisect_right, 100 items)", calibration),
    ):
        print(f"{what:>30}: {micros:7.2f} µs")


if __name__ == "__main__":  # pragma: no cover
    _bench()
