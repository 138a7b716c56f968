"""A venue's full L2 book for one symbol, kept exactly from snapshots and diffs.

Each side is a ``SortedDict`` keyed by float price (bids by negated price, so
both sides iterate best first) whose value is the ``(price, amount)`` float
pair the merge reads, built once when the level is set. A plain dict beside it
(same keys) keeps the venue's own decimal strings ``(price_text,
amount_text)``, which checksums (Kraken, OKX) are computed over and which
replay output reports exactly as the venue sent them.

Float keys: every price a venue quotes has far fewer than 15 significant
digits, so distinct decimal prices map to distinct floats and equal prices
written differently ("0.10", "0.1") map to the same level, as they should.

Hot path (the per-message cost of every diff venue). Measured with timeit,
old and new side by side in one process, on the recorded Binance NKNUSDT
book and its diffs:

- the top-N read is C calls only: a slice of the sorted keys, then
  ``map(dict.__getitem__)`` over the stored level pairs. Building a
  ``(price, amount)`` tuple per level at read time cost ~3.3 µs for 10+10
  levels; a stored ``(pair, texts)`` value read through two maps ~2.4 µs;
  the stored pairs alone ~1.9 µs (the strings then live in a second dict,
  one more dict store per change). A diff listener re-reads only the side
  a change reached (:meth:`L2Book.update` says which).
- :meth:`L2Book.update` applies a whole diff in one frame, and changing the
  amount of an existing level (most diff entries) writes the dict directly,
  skipping ``SortedDict.__setitem__``'s Python frame; only new and removed
  prices touch the sorted key list.
- :meth:`L2Book.crossed` reads the first key of each side's first sublist:
  ~0.17 µs against ~0.5 µs.

Numeric books (``L2Book(numeric=True)``): for channels that carry no checksum
over the venue's strings, the decoder converts prices and amounts to floats
itself (msgspec does it in C while decoding) and the book keeps no strings:
:meth:`L2Book.update_numeric` and :meth:`L2Book.load` take float pairs. Python's
``float()`` on a venue string such as ``"672.00000000"`` costs ~0.3 µs here,
two per level, plus a second dict store per level for the strings. Measured on
the recorded Binance diffs, interleaved with the string book in one process:
the whole per-message path (decode, apply, top N, forward) took 0.82x the
time. The price is that such a book cannot say how the venue wrote a number
(:meth:`L2Book.top_text` refuses); its floats are what the merge publishes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, cast

from sortedcontainers import SortedDict

from dragonfly import accel
from dragonfly.core.types import Level, Side

#: ``(price text, amount text)`` as a venue sends a level.
TextLevel = tuple[str, str]
#: A level as a venue's array decodes: price and amount strings first, maybe more.
VenueLevel = TextLevel | Sequence[str]
#: The levels of a snapshot or diff: the venue's strings, or float pairs on
#: numeric channels (see module doc).
Levels = Iterable[VenueLevel] | Iterable[Level]

_dict_set = dict.__setitem__
_INF = math.inf

# The C twins of update_numeric (both sides in one call) and of the top-N
# read, or None (the Python code below runs). Module globals: tests swap them
# (both_hot_paths).
_top_levels: Callable[..., Side] | None = accel.speedups.top_levels if accel.speedups is not None else None
_ApplyBook = Callable[
    [SortedDict[float, Level], SortedDict[float, Level], Iterable[Level], Iterable[Level], float, float], int
]
_apply_book: _ApplyBook | None = accel.speedups.apply_book if accel.speedups is not None else None
# The C twin of update's loops (a book that keeps the venue's strings), or None.
_ApplyText = Callable[
    [SortedDict[float, Level], dict[float, TextLevel], Iterable[VenueLevel], bool, float], bool
]
_apply_text_side: _ApplyText | None = accel.speedups.apply_text_side if accel.speedups is not None else None

#: Which sides a change reached (bits of :meth:`L2Book.update`'s result).
BIDS = 1
ASKS = 2
BOTH = BIDS | ASKS


def _head(side: SortedDict, n: int) -> list[float]:
    """The first ``n`` keys of ``side``, fast.

    The public ways (``islice(side.keys(), n)``, ``side.keys()[:n]``) iterate
    in Python: ~4-5 µs for 10 keys here, against ~0.3 µs for a C slice of the
    SortedList's first sublist, which holds the first ``n`` keys unless the
    book is split into short sublists. This reads sortedcontainers' internal
    ``_list._lists`` (stable since 2.0; ``tests/core/test_book.py`` checks it
    against the public API) and falls back to the public slice otherwise.
    """
    lists = side._list._lists
    if not lists:
        return []
    first: list[float] = lists[0]
    if len(first) >= n or len(lists) == 1:
        return first[:n]
    return list(side.keys()[:n])


class L2Book:
    """Both sides of one symbol's book (see module doc).

    ``seq`` is the venue's sequence position of the book (update id, sequence
    number or timestamp, by venue), ``None`` when the venue has none.
    """

    __slots__ = ("ask_text", "asks", "bid_text", "bids", "numeric", "seq")

    def __init__(self, *, numeric: bool = False) -> None:
        self.bids: SortedDict[float, Level] = SortedDict()
        self.asks: SortedDict[float, Level] = SortedDict()
        self.bid_text: dict[float, TextLevel] = {}
        self.ask_text: dict[float, TextLevel] = {}
        self.seq: int | None = None
        #: Levels arrive as float pairs and no venue strings are kept (module doc).
        self.numeric = numeric

    def clear(self) -> None:
        """Empty both sides and forget the sequence position."""
        self.bids.clear()
        self.asks.clear()
        self.bid_text.clear()
        self.ask_text.clear()
        self.seq = None

    def load(self, bids: Levels, asks: Levels, seq: int | None) -> None:
        """Replace the book with a snapshot (zero amounts are skipped).

        Levels are the venue's strings, or float pairs for a numeric book.
        """
        self.clear()
        if self.numeric:
            self.update_numeric(cast(Iterable[Level], bids), cast(Iterable[Level], asks), math.inf, -math.inf)
        else:
            self.update(
                cast(Iterable[VenueLevel], bids), cast(Iterable[VenueLevel], asks), math.inf, -math.inf
            )
        self.seq = seq

    def set_bid(self, price: str, amount: str) -> float:
        """Set a bid level (a zero amount removes it); return its price. ValueError on bad numbers."""
        qty = float(amount)
        value = float(price)
        if not (0.0 < value < _INF and 0.0 <= qty < _INF):
            raise ValueError(f"level out of range: price {price!r:.40}, amount {amount!r:.40}")
        side = self.bids
        key = -value
        if qty == 0.0:
            if key in side:
                side.pop(key)
                del self.bid_text[key]
            return value
        if key in side:
            _dict_set(side, key, (value, qty))
        else:
            side[key] = (value, qty)
        self.bid_text[key] = (price, amount)
        return value

    def set_ask(self, price: str, amount: str) -> float:
        """Set an ask level (a zero amount removes it); return its price. ValueError on bad numbers."""
        qty = float(amount)
        value = float(price)
        if not (0.0 < value < _INF and 0.0 <= qty < _INF):
            raise ValueError(f"level out of range: price {price!r:.40}, amount {amount!r:.40}")
        side = self.asks
        if qty == 0.0:
            if value in side:
                side.pop(value)
                del self.ask_text[value]
            return value
        if value in side:
            _dict_set(side, value, (value, qty))
        else:
            side[value] = (value, qty)
        self.ask_text[value] = (price, amount)
        return value

    def update(
        self, bids: Iterable[VenueLevel], asks: Iterable[VenueLevel], bid_floor: float, ask_ceiling: float
    ) -> int:
        """Apply one diff's levels (zero amount: remove); ValueError on bad numbers (hot path).

        Returns which sides the change can have moved within the top N that
        the bounds enclose: ``BIDS`` if a changed bid is at or above
        ``bid_floor``, plus ``ASKS`` if a changed ask is at or below
        ``ask_ceiling``. The same as calling ``set_bid`` and ``set_ask`` per
        level, in one frame (~0.1 µs less per level).

        A level is the venue's own array: its first two items are the price
        and amount strings, the rest (a timestamp, an order count) is not
        read, so decoders pass the arrays as decoded. A level of fewer items
        is a TypeError; with the C speedups so is one that is not a tuple or
        list of ``str`` (what the decoders give).
        """
        if _apply_text_side is not None:
            hit = BIDS if _apply_text_side(self.bids, self.bid_text, bids, True, bid_floor) else 0
            if _apply_text_side(self.asks, self.ask_text, asks, False, ask_ceiling):
                hit |= ASKS
            return hit
        try:
            return self._update_py(bids, asks, bid_floor, ask_ceiling)
        except IndexError:
            raise TypeError("a level must be a (price, amount, ...) sequence of str") from None

    def _update_py(
        self, bids: Iterable[VenueLevel], asks: Iterable[VenueLevel], bid_floor: float, ask_ceiling: float
    ) -> int:
        """:meth:`update` in Python (the C twin's reference)."""
        hit = 0
        # Two loops that differ only in the key (bids are keyed by the negated
        # price): written out twice so no level pays for a branch or a call.
        side = self.bids
        text = self.bid_text
        for level in bids:
            price = level[0]
            amount = level[1]
            qty = float(amount)
            value = float(price)
            # A price that is not positive and finite, or an amount that is
            # negative or not finite (NaN fails both tests), is a bad level:
            # applied, it would leave a level the venue meant to remove.
            if not (0.0 < value < _INF and 0.0 <= qty < _INF):
                raise ValueError(f"level out of range: price {price!r:.40}, amount {amount!r:.40}")
            key = -value
            if qty == 0.0:
                if key in side:
                    side.pop(key)
                    del text[key]
            else:
                if key in side:
                    _dict_set(side, key, (value, qty))
                else:
                    side[key] = (value, qty)
                text[key] = (price, amount)
            if value >= bid_floor:
                hit = BIDS
        side = self.asks
        text = self.ask_text
        for level in asks:
            price = level[0]
            amount = level[1]
            qty = float(amount)
            value = float(price)
            if not (0.0 < value < _INF and 0.0 <= qty < _INF):
                raise ValueError(f"level out of range: price {price!r:.40}, amount {amount!r:.40}")
            if qty == 0.0:
                if value in side:
                    side.pop(value)
                    del text[value]
            else:
                if value in side:
                    _dict_set(side, value, (value, qty))
                else:
                    side[value] = (value, qty)
                text[value] = (price, amount)
            if value <= ask_ceiling:
                hit |= ASKS
        return hit

    def update_numeric(
        self, bids: Iterable[Level], asks: Iterable[Level], bid_floor: float, ask_ceiling: float
    ) -> int:
        """:meth:`update` for a numeric book: float ``(price, amount)`` levels (hot path).

        The levels must be finite floats (the decoder's job): a non-float
        raises TypeError. With the C speedups a level must be a tuple, as
        the decoders give them.
        """
        if _apply_book is not None:
            return _apply_book(self.bids, self.asks, bids, asks, bid_floor, ask_ceiling)
        hit = 0
        # Two loops that differ only in the key, as in update (hot path).
        side = self.bids
        for level in bids:
            value, qty = level
            key = -value
            if qty == 0.0:
                if key in side:
                    side.pop(key)
            elif key in side:
                _dict_set(side, key, level)
            else:
                side[key] = level
            if value >= bid_floor:
                hit = BIDS
        side = self.asks
        for level in asks:
            value, qty = level
            if qty == 0.0:
                if value in side:
                    side.pop(value)
            elif value in side:
                _dict_set(side, value, level)
            else:
                side[value] = level
            if value <= ask_ceiling:
                hit |= ASKS
        return hit

    def numeric_updater(self) -> Callable[[Iterable[Level], Iterable[Level], float, float], int]:
        """:meth:`update_numeric`, bound once for a caller that applies every delta to this book (hot path).

        With the C speedups, the C update itself with both sides bound (a
        ``partial``): a delta then runs no Python frame of the book's. The
        sides are never replaced (``clear`` empties them in place), so the
        binding holds for the book's life.
        """
        if _apply_book is not None:
            return partial(_apply_book, self.bids, self.asks)
        return self.update_numeric

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels of each side (venues that cap depth; hot path)."""
        # Called after every update, and mostly nothing is cut: test first.
        if len(self.bids) > depth:
            bids, text = self.bids, self.bid_text
            while len(bids) > depth:
                text.pop(bids.popitem()[0], None)
        if len(self.asks) > depth:
            asks, text = self.asks, self.ask_text
            while len(asks) > depth:
                text.pop(asks.popitem()[0], None)

    def top(self, n: int) -> tuple[Side, Side]:
        """The best ``n`` levels of each side as float ``(price, amount)`` pairs (hot path)."""
        if _top_levels is not None:  # the C reads without two more Python frames
            return _top_levels(self.bids, n), _top_levels(self.asks, n)
        return self.top_bids(n), self.top_asks(n)

    def top_bids(self, n: int) -> Side:
        """The best ``n`` bids (hot path)."""
        if _top_levels is not None:
            return _top_levels(self.bids, n)
        bids = self.bids
        lists = bids._list._lists
        # _head's common case inline (a call is ~0.1 µs of a ~1 µs read).
        if len(lists) == 1 or (lists and len(lists[0]) >= n):
            return tuple(map(bids.__getitem__, lists[0][:n]))
        return tuple(map(bids.__getitem__, _head(bids, n)))

    def top_asks(self, n: int) -> Side:
        """The best ``n`` asks (hot path)."""
        if _top_levels is not None:
            return _top_levels(self.asks, n)
        asks = self.asks
        lists = asks._list._lists
        if len(lists) == 1 or (lists and len(lists[0]) >= n):
            return tuple(map(asks.__getitem__, lists[0][:n]))
        return tuple(map(asks.__getitem__, _head(asks, n)))

    def top_text(self, n: int) -> tuple[list[TextLevel], list[TextLevel]]:
        """The best ``n`` levels of each side as the venue's own strings (not for a numeric book)."""
        if self.numeric:
            raise ValueError("a numeric book keeps no venue strings: read top() instead")
        if _top_levels is not None:
            # The same C read, of the strings stored beside the levels (a
            # plain name: a cast would build a typing object on every call).
            read: Any = _top_levels
            return list(read(self.bids, n, self.bid_text)), list(read(self.asks, n, self.ask_text))
        return (
            list(map(self.bid_text.__getitem__, _head(self.bids, n))),
            list(map(self.ask_text.__getitem__, _head(self.asks, n))),
        )

    def crossed(self) -> bool:
        """Whether the best bid is at or above the best ask (a corrupt venue book)."""
        bids = self.bids._list._lists
        asks = self.asks._list._lists
        # The first key of the first sublist is the best level of the side.
        return bool(bids and asks) and -bids[0][0] >= asks[0][0]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)
