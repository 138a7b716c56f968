"""Serialize the views (book, BBO, liquidity) as ``dragonfly.v1.Update`` messages, fast.

Each view an aggregator publishes is encoded once per (source, depth) and the
bytes are shared by every subscriber (:mod:`dragonfly.serve.v1`), so this runs
once per update, not once per subscriber. Like :mod:`dragonfly.serve.encode`
it writes the proto3 wire format directly, the exact bytes of the official
serializer (fields in number order, defaults omitted; tests/serve/
test_v1_encode.py compares every kind with :func:`encode_update_pb`).

Reuse, by design of the proto: ``Update`` fields 4 to 11 have the numbers and
types of ``orderbook.Summary``'s, ``Book`` is Summary's fields 1 to 3 (with
the same ``Level``), and ``Bbo`` starts with a spread and two levels at those
numbers (a singular message field and a repeated one of one element have the
same bytes). So :func:`~dragonfly.serve.encode.encode_summary` (its C twin
when built) writes the header and venue states of every kind, the levels of a
book and the best bid and ask of a BBO, from a MergedBook-shaped tuple of the
view's fields; only the BBO's quotes and the liquidity figures are packed
here, with the same technique (a cached struct per venue name and field, one
``pack`` per item).

Measured (timeit, CPython 3.11, C speedups built, this 2-core VM), whole
Update per view: see :func:`_bench` (``python -m dragonfly.serve.v1_encode``)
and docs/serving.md.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from functools import partial

from dragonfly.core.liquidity import Band, Fill, Liquidity, VenueAmount
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import BboView, VenueBbo
from dragonfly.serve import dragonfly_v1_pb2 as pb
from dragonfly.serve.encode import (
    _BYTE,
    _MAX_CACHED,
    _pack_key_double,
    _string_field,
    _uvarint,
    encode_summary,
)

__all__ = [
    "KINDS",
    "KIND_BBO",
    "KIND_BOOK",
    "KIND_LIQUIDITY",
    "KIND_NAMES",
    "BookEncoder",
    "encode_bbo",
    "encode_book",
    "encode_liquidity",
    "encode_update_pb",
]

KIND_BOOK: int = pb.KIND_BOOK
KIND_BBO: int = pb.KIND_BBO
KIND_LIQUIDITY: int = pb.KIND_LIQUIDITY
#: The wire's kinds by the topology's kind names, and back.
KINDS: dict[str, int] = {"book": KIND_BOOK, "bbo": KIND_BBO, "liquidity": KIND_LIQUIDITY}
KIND_NAMES: dict[int, str] = {number: name for name, number in KINDS.items()}

# Keys (field number << 3 | wire type).
_UPDATE_VIEW = {KIND_BOOK: 0x0A, KIND_BBO: 0x12, KIND_LIQUIDITY: 0x1A}  # oneof view: 1, 2, 3
_UPDATE_KIND = 0x60  # 12, enum
_BBO_QUOTES = 0x22  # Bbo.quotes = 4
_LIQ_MID = 0x09  # Liquidity.mid = 1
_LIQ_BANDS = 0x12  # 2
_LIQ_SELLS = 0x1A  # 3
_LIQ_BUYS = 0x22  # 4
_BAND_BID_VENUES = 0x22  # Band.bid_venues = 4
_BAND_ASK_VENUES = 0x2A  # 5
_FILL_VENUES = 0x32  # Fill.venues = 6
_FILL_COMPLETE = b"\x38\x01"  # Fill.complete = 7, true
_AMOUNT_VENUE = 0x0A  # VenueAmount.venue = 1
_AMOUNT_AMOUNT = 0x11  # VenueAmount.amount = 2
# Keys of the consecutive doubles 1, 2, 3, ... of a message (Quote's start at 2).
_DOUBLE_KEYS = tuple((number << 3) | 1 for number in range(1, 8))

#: The kind field of each kind: constant, so written as is.
_KIND_FIELD = {kind: _BYTE[_UPDATE_KIND] + _uvarint(kind) for kind in _UPDATE_VIEW}

_summary: Callable[[tuple[object, ...]], MergedBook] = partial(tuple.__new__, MergedBook)


def _is_set(value: float) -> bool:
    """Return whether proto3 writes a double: anything but +0.0 (all bits zero)."""
    return bool(value) or math.copysign(1.0, value) < 0.0


def _length(key: int, body: bytes) -> bytes:
    """Return the length-delimited field ``key`` holding ``body``."""
    return _BYTE[key] + _uvarint(len(body)) + body


def _header(instrument: str, rest: tuple[object, ...], kind: int) -> tuple[bytes, bytes]:
    """Return Update fields 4 to 11, and 12, of a view whose fields from ``sequence`` on are ``rest``."""
    return encode_summary(_summary((instrument, 0.0, (), (), *rest))), _KIND_FIELD[kind]


def encode_book(book: MergedBook, depth: int = 0) -> bytes:
    """Return ``book`` as an Update (kind BOOK) with its top ``depth`` levels a side (0: all)."""
    bids, asks = book[2], book[3]
    if depth:
        bids, asks = bids[:depth], asks[:depth]
    body = encode_summary(_summary(("", book[1], bids, asks, 0, 0, 0, "", 0, ())))
    head, kind = _header(book[0], book[4:], KIND_BOOK)
    return b"".join((_length(0x0A, body), head, kind))


class BookEncoder:
    """Encode a source's books at one depth, leaving out updates unchanged at that depth.

    An aggregator publishes when its top N or the venues in its merge
    change; a reader of the top ``depth < N`` levels gets the same rule: an
    update whose top ``depth`` levels and venue memberships (in the merge or
    not, status) equal the last encoded one's is not encoded nor sent
    (:meth:`__call__` returns None). Its sequence, times and data ages would
    be the only news; the membership rule keeps "in the merge" exact, and the
    next change carries fresh ages. Comparing costs a slice and a tuple
    compare, far less than encoding and writing to every subscriber.
    """

    __slots__ = ("_depth", "_last", "_suppress")

    def __init__(self, depth: int, source_depth: int) -> None:
        """Encode ``depth`` levels a side of books ``source_depth`` deep (0: all)."""
        self._depth = depth
        self._suppress = 0 < depth < source_depth
        self._last: tuple[object, ...] | None = None

    def __call__(self, book: MergedBook) -> bytes | None:
        """Return ``book`` encoded, or None when unchanged at this depth."""
        if self._suppress:
            depth = self._depth
            key = (book[2][:depth], book[3][:depth], [state[1:3] for state in book.venues])
            if key == self._last:
                return None
            self._last = key
        return encode_book(book, self._depth)


# ---------------------------------------------------------------- BBO

# (venue, which of the four doubles are written) -> packer of a whole Quote field.
_QuotePacker = Callable[..., bytes]
_quote_packers: dict[tuple[str, int], _QuotePacker] = {}


def _quote_packer(venue: str, present: int) -> _QuotePacker:
    """Build the packer of a Quote field; ``present`` bits 1, 2, 4, 8: bid price, bid amount, ask ..."""
    name = _string_field(0x0A, venue) if venue else b""
    keys = [_DOUBLE_KEYS[1 + i] for i in range(4) if present >> i & 1]
    prefix = _BYTE[_BBO_QUOTES] + _uvarint(len(name) + 9 * len(keys)) + name
    pack = struct.Struct(f"<{len(prefix)}s" + "Bd" * len(keys)).pack
    if len(keys) == 4:
        k1, k2, k3, k4 = keys
        return lambda a, b, c, d: pack(prefix, k1, a, k2, b, k3, c, k4, d)
    return partial(_pack_present, pack, prefix, keys)


def _pack_present(pack: Callable[..., bytes], prefix: bytes, keys: list[int], *values: float) -> bytes:
    args: list[object] = [prefix]
    for key, value in zip(keys, [v for v in values if _is_set(v)], strict=True):
        args += (key, value)
    return pack(*args)


def _quotes(quotes: tuple[VenueBbo, ...]) -> bytes:
    parts: list[bytes] = []
    for venue, bid_price, bid_amount, ask_price, ask_amount in quotes:
        # Truthiness: false for both zeros (written only if -0.0), true for NaN (always written).
        if bid_price and bid_amount and ask_price and ask_amount:
            present = 15
        else:
            present = (
                _is_set(bid_price)
                | _is_set(bid_amount) << 1
                | _is_set(ask_price) << 2
                | _is_set(ask_amount) << 3
            )
        key = (venue, present)
        pack = _quote_packers.get(key)
        if pack is None:
            if len(_quote_packers) >= _MAX_CACHED:
                _quote_packers.clear()
            pack = _quote_packers[key] = _quote_packer(venue, present)
        parts.append(pack(bid_price, bid_amount, ask_price, ask_amount))
    return b"".join(parts)


def encode_bbo(bbo: BboView) -> bytes:
    """Return ``bbo`` as an Update (kind BBO)."""
    best_bid, best_ask = bbo[2], bbo[3]
    body = encode_summary(
        _summary(
            (
                "",
                bbo[1],
                () if best_bid is None else (best_bid,),
                () if best_ask is None else (best_ask,),
                0,
                0,
                0,
                "",
                0,
                (),
            )
        )
    )
    quotes = bbo[4]
    if quotes:
        body += _quotes(quotes)
    head, kind = _header(bbo[0], bbo[5:], KIND_BBO)
    return b"".join((_length(0x12, body), head, kind))


# ---------------------------------------------------------------- liquidity

# (field key, venue) -> packer of a VenueAmount field with a written amount.
_amount_packers: dict[tuple[int, str], Callable[[int, float], bytes]] = {}


def _venue_amounts(parts: list[bytes], key: int, amounts: tuple[VenueAmount, ...]) -> None:
    for venue, amount in amounts:
        if amount and venue:  # the common case: one pack with a cached prefix
            pack = _amount_packers.get((key, venue))
            if pack is None:
                if len(_amount_packers) >= _MAX_CACHED:
                    _amount_packers.clear()
                name = _string_field(_AMOUNT_VENUE, venue)
                prefix = _BYTE[key] + _uvarint(len(name) + 9) + name
                pack = _amount_packers[key, venue] = partial(struct.Struct(f"<{len(prefix)}sBd").pack, prefix)
            parts.append(pack(_AMOUNT_AMOUNT, amount))
        else:
            body = _string_field(_AMOUNT_VENUE, venue) if venue else b""
            if _is_set(amount):
                body += _pack_key_double(_AMOUNT_AMOUNT, amount)
            parts.append(_length(key, body))


def _doubles(parts: list[bytes], values: tuple[float, ...]) -> None:
    """Append the fields 1, 2, ... of ``values`` (doubles), the written ones."""
    for key, value in zip(_DOUBLE_KEYS, values, strict=False):
        if value or math.copysign(1.0, value) < 0.0:
            parts.append(_pack_key_double(key, value))


# Fields 1 to 3 (a band's numbers) and 1 to 5 (a fill's), every one written:
# one pack instead of one per number (NaN is truthy, hence written, as it must be).
_pack_3_doubles = partial(struct.Struct("<BdBdBd").pack, 0x09)
_pack_5_doubles = partial(struct.Struct("<BdBdBdBdBd").pack, 0x09)


def _band(band: Band) -> bytes:
    parts: list[bytes] = []
    bps, bid_amount, ask_amount = band[:3]
    if bps and bid_amount and ask_amount:
        parts.append(_pack_3_doubles(bps, 0x11, bid_amount, 0x19, ask_amount))
    else:
        _doubles(parts, band[:3])
    _venue_amounts(parts, _BAND_BID_VENUES, band[3])
    _venue_amounts(parts, _BAND_ASK_VENUES, band[4])
    return b"".join(parts)


def _fill(fill: Fill) -> bytes:
    parts: list[bytes] = []
    quantity, filled, average, worst, slippage = fill[1:6]  # the side is told by the list
    if quantity and filled and average and worst and slippage:
        parts.append(_pack_5_doubles(quantity, 0x11, filled, 0x19, average, 0x21, worst, 0x29, slippage))
    else:
        _doubles(parts, fill[1:6])
    _venue_amounts(parts, _FILL_VENUES, fill[6])
    if fill[7]:
        parts.append(_FILL_COMPLETE)
    return b"".join(parts)


def encode_liquidity(liquidity: Liquidity) -> bytes:
    """Return ``liquidity`` as an Update (kind LIQUIDITY)."""
    parts: list[bytes] = []
    mid = liquidity[1]
    if _is_set(mid):
        parts.append(_pack_key_double(_LIQ_MID, mid))
    for band in liquidity[2]:
        parts.append(_length(_LIQ_BANDS, _band(band)))
    for fill in liquidity[3]:
        parts.append(_length(_LIQ_SELLS, _fill(fill)))
    for fill in liquidity[4]:
        parts.append(_length(_LIQ_BUYS, _fill(fill)))
    head, kind = _header(liquidity[0], liquidity[5:], KIND_LIQUIDITY)
    return b"".join((_length(0x1A, b"".join(parts)), head, kind))


# ---------------------------------------------------------------- reference


def _level_pb(level: MergedLevel) -> pb.Level:
    return pb.Level(venue=level[0], price=level[1], amount=level[2])


def _amounts_pb(amounts: tuple[VenueAmount, ...]) -> list[pb.VenueAmount]:
    return [pb.VenueAmount(venue=venue, amount=amount) for venue, amount in amounts]


def _fill_pb(fill: Fill) -> pb.Fill:
    return pb.Fill(
        quantity=fill.quantity,
        filled=fill.filled,
        average_price=fill.average_price,
        worst_price=fill.worst_price,
        slippage_bps=fill.slippage_bps,
        venues=_amounts_pb(fill.venues),
        complete=fill.complete,
    )


def _states_pb(states: tuple[VenueState, ...]) -> list[pb.VenueState]:
    return [
        pb.VenueState(
            venue=s.venue,
            in_merge=s.in_merge,
            status=pb.VenueStatus.ValueType(s.status),
            data_ns=s.data_ns,
            age_ns=s.age_ns,
            seq=s.seq,
        )
        for s in states
    ]


def update_pb(view: MergedBook | BboView | Liquidity, depth: int = 0) -> pb.Update:
    """Return ``view`` as a generated ``Update`` (books truncated to ``depth`` levels a side, 0: all)."""
    update = pb.Update(
        instrument=view.instrument,
        sequence=view.sequence,
        recv_ns=view.recv_ns,
        publish_ns=view.publish_ns,
        source_venue=view.source_venue,
        source_frame=view.source_frame,
        venues=_states_pb(view.venues),
    )
    if isinstance(view, MergedBook):
        end = depth or None
        update.kind = pb.KIND_BOOK
        update.book.SetInParent()
        update.book.spread = view.spread
        update.book.bids.extend(_level_pb(level) for level in view.bids[:end])
        update.book.asks.extend(_level_pb(level) for level in view.asks[:end])
    elif isinstance(view, BboView):
        update.kind = pb.KIND_BBO
        update.bbo.spread = view.spread
        if view.best_bid is not None:
            update.bbo.best_bid.CopyFrom(_level_pb(view.best_bid))
        if view.best_ask is not None:
            update.bbo.best_ask.CopyFrom(_level_pb(view.best_ask))
        update.bbo.SetInParent()
        update.bbo.quotes.extend(
            pb.Quote(venue=q[0], bid_price=q[1], bid_amount=q[2], ask_price=q[3], ask_amount=q[4])
            for q in view.quotes
        )
    else:
        update.kind = pb.KIND_LIQUIDITY
        liquidity = update.liquidity
        liquidity.SetInParent()
        liquidity.mid = view.mid
        liquidity.bands.extend(
            pb.Band(
                bps=band.bps,
                bid_amount=band.bid_amount,
                ask_amount=band.ask_amount,
                bid_venues=_amounts_pb(band.bid_venues),
                ask_venues=_amounts_pb(band.ask_venues),
            )
            for band in view.bands
        )
        liquidity.sells.extend(_fill_pb(fill) for fill in view.sells)
        liquidity.buys.extend(_fill_pb(fill) for fill in view.buys)
    return update


def encode_update_pb(view: MergedBook | BboView | Liquidity, depth: int = 0) -> bytes:
    """Return ``view`` serialized with the generated classes: the reference of the encoders here."""
    return update_pb(view, depth).SerializeToString()
