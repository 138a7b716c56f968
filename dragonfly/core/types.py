"""Values that cross layer boundaries: a venue's top of book and the merged book.

Prices and amounts are Python floats. A venue quotes decimal strings; float
keeps every price of the venues we serve exactly enough for ordering and for a
``double`` on the wire (the gRPC API is ``double``), and costs one C call per
value where ``Decimal`` costs an object and a context lookup. Levels are plain
tuples, so comparing two books ("did the top N change?") is one C-level tuple
comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from dragonfly.core.errors import ConfigError

#: The deepest merged book, levels a side, that any part accepts. Binance's
#: deepest REST snapshot is 5000 levels; a deeper "top N" is a full-book dump
#: (>100 KB an update), not a view. The bound also keeps a depth that a user
#: or client chooses far from sizes that could overflow a buffer computation.
MAX_DEPTH = 5000


def check_depth(depth: object, what: str = "depth") -> int:
    """``depth`` if it is an int in ``[1, MAX_DEPTH]``, else :class:`ConfigError` naming ``what``.

    Every place a depth enters (the command lines, the library API, the
    aggregator, a feed's decoders; a topology file or a request parameter
    later) checks it here, so no part sees a depth it was not built for.
    """
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise ConfigError(f"{what} must be an integer, got {depth!r}")
    if not 1 <= depth <= MAX_DEPTH:
        raise ConfigError(f"{what} must be between 1 and {MAX_DEPTH}, got {depth}")
    return depth

#: One price level of one venue: ``(price, amount)``.
Level = tuple[float, float]
#: The levels of one side, best first.
Side = tuple[Level, ...]


class VenueBook(NamedTuple):
    """The top N of one venue's book, as a feed listener forwards it.

    ``bids`` are best (highest) first, ``asks`` best (lowest) first. ``recv_ns``
    is ``time.perf_counter_ns()``-free wall time (``time.time_ns()``) at which
    the frame that produced this book was received, and ``frame`` that frame's
    ordinal on its connection; they travel with the book so the latency of every
    published update can be traced to the venue message behind it. ``seq`` is
    the venue's own position of the book (Binance ``lastUpdateId``/``u``,
    Bitstamp ``microtimestamp``, OKX ``seqId``, Bybit ``u``; 0 where it has none).
    """

    venue: str
    bids: Side
    asks: Side
    recv_ns: int
    frame: int = 0
    seq: int = 0


#: Build a :class:`VenueBook` from all six fields in one C call (hot path; the
#: NamedTuple constructor is Python code: ~300 ns here, against ~130 ns).
new_venue_book: Callable[[tuple[str, Side, Side, int, int, int]], VenueBook] = partial(
    tuple.__new__, VenueBook
)


class MergedLevel(NamedTuple):
    """One level of the merged book: a venue's price level tagged with the venue."""

    exchange: str
    price: float
    amount: float


class VenueState(NamedTuple):
    """One venue's place in a merged update (the wire's ``VenueState``).

    ``in_merge``: its levels are in this update; ``status`` says why not when
    they are not (a :class:`~dragonfly.core.health.VenueStatus` value);
    ``data_ns``: wall time of the newest proof that its book is current (0:
    none yet); ``age_ns``: how old that proof was when the update was made;
    ``seq``: the venue's own position of the book shown (0: none).
    """

    venue: str
    in_merge: bool
    status: int
    data_ns: int
    age_ns: int
    seq: int


class MergedBook(NamedTuple):
    """The cross-venue top N, as the aggregator publishes it.

    ``spread`` is ``best ask - best bid`` and may be zero or negative: venues
    can be locked or crossed against each other, and that is published as is.
    It is ``nan`` when either side of the merged book is empty.
    ``sequence`` increases by one per published update of this aggregator.
    ``recv_ns`` is the receive time of the newest frame that went into this
    update; ``publish_ns`` is when the aggregator produced it (both
    ``time.time_ns()``). ``source_venue`` and ``source_frame`` name the frame
    behind ``recv_ns`` (see :class:`VenueBook`). ``venues`` says, for every
    venue of the aggregator in name order, whether it is in this update and
    how fresh its data is (:class:`VenueState`).
    """

    instrument: str
    spread: float
    bids: tuple[MergedLevel, ...]
    asks: tuple[MergedLevel, ...]
    sequence: int
    recv_ns: int
    publish_ns: int
    source_venue: str = ""
    source_frame: int = 0
    venues: tuple[VenueState, ...] = ()
