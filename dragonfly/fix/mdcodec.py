"""The market-data messages of the FIX gateway: MarketDataRequest (V) in, W and Y out.

``parse_request`` turns a V into an :class:`MdRequest` or raises
:class:`MdRejectError` with the MDReqRejReason (281) and a Text a person can
act on. The encoders turn one published view into the *shared* part of a
MarketDataSnapshotFullRefresh (W): everything after the per-subscription
fields, with its byte sum, so each view is encoded once per (view source,
depth, entry types) and every session only frames it behind its own header
(``FixSession.send_body``). docs/fix.md lists every tag; in short:

W body = ``262 MDReqID, 55 Symbol`` (per subscription: the request's own
spelling) then the shared part::

    268 NoMDEntries, each entry: 269 MDEntryType (0 bid, 1 offer), 270 MDEntryPx,
        271 MDEntrySize, [276 QuoteCondition], 282 MDEntryOriginator (venue),
        290 MDEntryPositionNo (level, 1 = best) [, liquidity tags]
    20001 DFViewSeq       the view's sequence (the gRPC Update.sequence)
    20002 DFPublishNs     when the aggregator made the view (ns since the epoch)
    20003 DFRecvNs        when the newest frame in it was received (ns since the epoch)
    20004 DFSourceVenue   the venue of that frame, and 20005 DFSourceFrame its number on the
                          venue's connection (the gRPC APIs' source_venue and source_frame; 20004
                          absent and 20005=0 for a view made from no frame)
    20010 DFNoVenues      each venue of the view: 20011 DFVenue, 20012 DFVenueInMerge (Y/N),
                          20013 DFVenueStatus (LIVE, STALE, ...), 20014 DFVenueDataNs, 20015 DFVenueAgeNs

The fields after the entries come after the group so that a reader of the
book stops at the first non-entry tag (FIX ends a group at the first tag not
in it). BBO view (MarketDepth 1): the cross-venue best bid and offer with
QuoteCondition 276=D (consolidated best) and their venue, then each venue's
best bid and offer with 276=C (exchange best), all with 290=1. Liquidity view
(request tag 20000 DFView=liquidity): see :func:`encode_liquidity`.

Numbers: prices and sizes are the floats' shortest round-trip decimals
(``repr``), never with an exponent (``codec.format_float``), so
``float(text)`` is exactly the float the gRPC API carries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from dragonfly import accel
from dragonfly.core.errors import ConfigError
from dragonfly.core.health import VenueStatus
from dragonfly.core.liquidity import Fill, Liquidity, VenueAmount
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import BboView
from dragonfly.fix.codec import FieldError, FixMessage, byte_sum, format_float

__all__ = [
    "BID",
    "MAX_MD_REQ_ID",
    "OFFER",
    "VIEW_TAG",
    "Encoder",
    "MdRejectError",
    "MdRequest",
    "MdUpdate",
    "encoder_for",
    "parse_request",
]

#: MDEntryType values served.
BID: Final = b"0"
OFFER: Final = b"1"
#: The user-defined request tag that picks the view: book, bbo or liquidity.
VIEW_TAG: Final = 20000
#: The longest MDReqID accepted (characters).
MAX_MD_REQ_ID: Final = 64
#: Instruments one request may name at most.
MAX_SYMBOLS: Final = 100

# MDReqRejReason (281).
REJ_UNKNOWN_SYMBOL: Final = "0"
REJ_DUPLICATE_ID: Final = "1"
REJ_BANDWIDTH: Final = "2"
REJ_SUBSCRIPTION_TYPE: Final = "4"
REJ_MARKET_DEPTH: Final = "5"
REJ_UPDATE_TYPE: Final = "6"
REJ_AGGREGATED_BOOK: Final = "7"
REJ_ENTRY_TYPE: Final = "8"

_VIEWS: Final = ("book", "bbo", "liquidity")


class MdRejectError(Exception):
    """A MarketDataRequest refused: MDReqRejReason (281, or ``None``) and Text (58)."""

    def __init__(self, reason: str | None, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(frozen=True, slots=True)
class MdRequest:
    """A checked MarketDataRequest.

    ``subscription``: 0 snapshot, 1 snapshot + updates, 2 unsubscribe.
    ``depth``: MarketDepth (0: the view's full depth). ``view``: ``book``,
    ``bbo`` or ``liquidity``. ``entry_types``: the MDEntryTypes asked, a
    subset of ``(b"0", b"1")`` in that order. ``symbols``: (the client's
    spelling, the normalised instrument) per Symbol, in order, each once.
    """

    md_req_id: str
    subscription: int
    depth: int
    view: str
    entry_types: tuple[bytes, ...]
    symbols: tuple[tuple[str, str], ...]


def parse_request(msg: FixMessage) -> MdRequest:
    """Check a MarketDataRequest (V); ``MdRejectError`` says why one cannot be served.

    Raises ``FieldError`` (a session Reject) when MDReqID is missing or
    malformed: there is no id to answer a MarketDataRequestReject to.
    """
    req_id = msg.get_str(262)
    if req_id is None or not req_id:
        raise FieldError(262, 1, "MarketDataRequest without MDReqID (262)")
    if len(req_id) > MAX_MD_REQ_ID or not req_id.isprintable():
        raise FieldError(262, 5, f"MDReqID must be 1 to {MAX_MD_REQ_ID} printable characters")
    sub_text = msg.get(263)
    if sub_text not in (b"0", b"1", b"2"):
        got = "missing" if sub_text is None else repr(sub_text.decode("ascii", "replace")[:16])
        raise MdRejectError(
            REJ_SUBSCRIPTION_TYPE,
            f"SubscriptionRequestType (263) {got}: "
            "send 0 (snapshot), 1 (snapshot + updates) or 2 (unsubscribe)",
        )
    subscription = int(sub_text)
    if subscription == 2:
        return MdRequest(req_id, 2, 0, "book", (), ())
    depth_text = msg.get(264)
    if depth_text is None or not depth_text.isdigit() or len(depth_text) > 6:
        got = "missing" if depth_text is None else repr(depth_text.decode("ascii", "replace")[:16])
        raise MdRejectError(
            REJ_MARKET_DEPTH,
            f"MarketDepth (264) {got}: send 0 (the full merged book), 1 (top of book) or N levels",
        )
    depth = int(depth_text)
    update_type = msg.get(265)
    if update_type not in (None, b"0"):
        raise MdRejectError(
            REJ_UPDATE_TYPE,
            "MDUpdateType (265): only 0 (full refresh) is served; every W is a whole book (docs/fix.md)",
        )
    aggregated = msg.get(266)
    if aggregated not in (None, b"Y"):
        raise MdRejectError(
            REJ_AGGREGATED_BOOK, "AggregatedBook (266): only Y (one entry per price level) is served"
        )
    view_text = msg.get_str(VIEW_TAG)
    if view_text is None:
        view = "bbo" if depth == 1 else "book"
    elif view_text.lower() in _VIEWS:
        view = view_text.lower()
    else:
        raise MdRejectError(None, f"DFView ({VIEW_TAG}) {view_text[:16]!r}: send book, bbo or liquidity")
    if view == "bbo" and depth > 1:
        raise MdRejectError(
            REJ_MARKET_DEPTH, f"the bbo view is top of book: send MarketDepth 0 or 1, not {depth}"
        )
    if view == "liquidity" and depth != 0:
        raise MdRejectError(
            REJ_MARKET_DEPTH, f"the liquidity view has no depth: send MarketDepth 0, not {depth}"
        )
    types = msg.group(267, 269, frozenset({269}))
    if not types:
        raise MdRejectError(REJ_ENTRY_TYPE, "NoMDEntryTypes (267): ask for 269=0 (bid) and/or 269=1 (offer)")
    asked = {entry[269] for entry in types}
    other = sorted(t.decode("ascii", "replace") for t in asked - {BID, OFFER})
    if other:
        raise MdRejectError(
            REJ_ENTRY_TYPE, f"MDEntryType {', '.join(other)} is not served: only 0 (bid) and 1 (offer)"
        )
    entry_types = tuple(t for t in (BID, OFFER) if t in asked)
    related = msg.group(146, 55, frozenset({55, 65, 48, 22, 460, 167, 207, 15}))
    if not related:
        raise MdRejectError(
            REJ_UNKNOWN_SYMBOL, "NoRelatedSym (146): name one or more instruments in Symbol (55)"
        )
    if len(related) > MAX_SYMBOLS:
        raise MdRejectError(REJ_UNKNOWN_SYMBOL, f"at most {MAX_SYMBOLS} instruments a request")
    symbols: dict[str, str] = {}
    for entry in related:
        raw = entry[55]
        text = raw.decode("ascii", "replace")
        try:
            if not raw.isascii():  # the W echoes the spelling: FIX strings are ASCII here
                raise ConfigError("not ASCII")
            name = normalise_instrument(text)
        except ConfigError:
            raise MdRejectError(
                REJ_UNKNOWN_SYMBOL, f"Symbol {text[:32]!r} is not an instrument name like ethbtc or ETH/BTC"
            ) from None
        if name not in symbols.values():
            symbols[text] = name
    return MdRequest(req_id, subscription, depth, view, entry_types, tuple(symbols.items()))


class MdUpdate(NamedTuple):
    """The shared part of a W: its bytes, their byte sum, and the view's sequence."""

    tail: bytes
    tail_sum: int
    sequence: int


#: Turns a view into the shared part of a W, or ``None`` to send nothing (unchanged at this depth).
Encoder = Callable[[Any], "MdUpdate | None"]

_venue_fields: dict[str, bytes] = {}
#: The C writer of a side's entries (``None``: pure Python; see :class:`BookEncoder`).
_fix_entries = accel.speedups.fix_entries if accel.speedups is not None else None
_STATUS_NAMES: Final = {int(s): s.name.encode() for s in VenueStatus}


def _venue(name: str) -> bytes:
    """``282=name<SOH>``, cached (venue names are few)."""
    out = _venue_fields.get(name)
    if out is None:
        if len(_venue_fields) > 1000:
            _venue_fields.clear()
        out = _venue_fields[name] = b"282=" + name.encode("ascii", "replace").replace(b"\x01", b"?") + b"\x01"
    return out


def _trailer(view: MergedBook | BboView | Liquidity) -> bytes:
    """The fields after the entries: view sequence, times and every venue's state."""
    states: tuple[VenueState, ...] = view.venues
    source = view.source_venue
    parts = [
        b"20001=%d\x0120002=%d\x0120003=%d\x01%s20005=%d\x0120010=%d\x01"
        % (
            view.sequence,
            view.publish_ns,
            view.recv_ns,
            b"20004=%s\x01" % source.encode("ascii", "replace").replace(b"\x01", b"?") if source else b"",
            view.source_frame,
            len(states),
        )
    ]
    for venue, in_merge, status, data_ns, age_ns, _ in states:
        parts.append(
            b"20011=%s\x0120012=%s\x0120013=%s\x0120014=%d\x0120015=%d\x01"
            % (
                venue.encode("ascii", "replace"),
                b"Y" if in_merge else b"N",
                _STATUS_NAMES.get(status, b"UNKNOWN"),
                data_ns,
                age_ns,
            )
        )
    return b"".join(parts)


# Where repr writes a float without an exponent: there ``b"%r" % x`` is its FIX
# form, one C-level formatting for a whole entry (the hot path of every W).
_PLAIN_LOW: Final = 1e-4
_PLAIN_HIGH: Final = 1e16
_LEVEL_FAST: Final = {t: b"269=" + t + b"\x01270=%r\x01271=%r\x01%s290=%d\x01" for t in (BID, OFFER)}
_LEVEL_SLOW: Final = {t: b"269=" + t + b"\x01270=%s\x01271=%s\x01%s290=%d\x01" for t in (BID, OFFER)}
#: An entry without its MDEntryPositionNo (290), which :class:`BookEncoder` keeps per level, from
#: the price's text.
_ENTRY_PRICED: Final = {t: b"269=" + t + b"\x01270=%s\x01271=%r\x01%s" for t in (BID, OFFER)}
#: ``_POSITIONS[n]`` is ``290=n<SOH>`` (extended on demand by :func:`_positions`).
_POSITIONS: list[bytes] = [b"290=%d\x01" % n for n in range(101)]
#: Price texts a :class:`BookEncoder` keeps (then it starts afresh): ~0.2 MB.
_CACHE_MAX: Final = 2048


def _positions(count: int) -> list[bytes]:
    """``_POSITIONS``, holding ``290=n`` up to ``n = count`` at least."""
    if count >= len(_POSITIONS):
        _POSITIONS.extend(b"290=%d\x01" % n for n in range(len(_POSITIONS), count + 1))
    return _POSITIONS


def _levels(parts: list[bytes], entry_type: bytes, levels: Sequence[MergedLevel]) -> int:
    """Append the entries of ``levels`` (best first, 290 = 1, 2, ...); return how many.

    A level with a non-finite price or size (never in a checked book) is left out.
    """
    fast = _LEVEL_FAST[entry_type]
    position = 0
    for venue, price, amount in levels:
        if _PLAIN_LOW <= price < _PLAIN_HIGH and _PLAIN_LOW <= amount < _PLAIN_HIGH:
            position += 1
            parts.append(fast % (price, amount, _venue(venue), position))
        elif math.isfinite(price) and math.isfinite(amount):
            position += 1
            parts.append(
                _LEVEL_SLOW[entry_type] % (format_float(price), format_float(amount), _venue(venue), position)
            )
    return position


def fix_entries_py(
    levels: tuple[MergedLevel, ...], entry_type: bytes, venues: dict[str, bytes]
) -> tuple[bytes, int] | None:
    """The twin of the C ``fix_entries`` (:mod:`dragonfly.accel`): a side's entries, or ``None``.

    The bytes :func:`_levels` writes for ``levels``, and how many, when
    every level is one the C writer writes exactly (price and size floats
    in the plain range, the venue's ``282`` field in ``venues``); ``None``
    at the first level that is not (or for ``levels`` not a tuple), and the
    caller writes the side in Python. TypeError for a shape the C function
    refuses. The tests and
    ``scripts/fuzz_speedups.py`` hold the C function to it.
    """
    if not isinstance(levels, tuple):
        return None  # a side as a list (not what the merge makes): the caller writes it
    if not isinstance(entry_type, bytes) or not isinstance(venues, dict):
        raise TypeError("fix_entries(levels, entry_type: bytes, venues: dict)")
    parts: list[bytes] = []
    for level in levels:
        # tuple's own length and items, as C reads them (not a subclass's overrides)
        if not isinstance(level, tuple) or tuple.__len__(level) != 3:
            raise TypeError("a level must be a (venue, price, amount) tuple")
        venue, price, amount = (tuple.__getitem__(level, i) for i in range(3))
        if type(price) is not float or type(amount) is not float or type(venue) is not str:
            return None
        if not (_PLAIN_LOW <= price < _PLAIN_HIGH and _PLAIN_LOW <= amount < _PLAIN_HIGH):
            return None
        field = venues.get(venue)
        if field is None:
            return None
        if not isinstance(field, bytes):
            raise TypeError("a venue's field must be bytes")
        entry = (entry_type, price, amount, field, len(parts) + 1)
        parts.append(b"269=%s\x01270=%r\x01271=%r\x01%s290=%d\x01" % entry)
    return b"".join(parts), len(parts)


def _levels_cached(
    parts: list[bytes],
    entry_type: bytes,
    levels: Sequence[MergedLevel],
    last: dict[MergedLevel, bytes],
    seen: dict[MergedLevel, bytes],
    prices: dict[float, bytes],
) -> int:
    """:func:`_levels`, each entry's text (but its 290) reused when the last update held its level.

    ``last`` maps the levels of the side's last update (venue, price, amount)
    to their entries; ``seen`` receives this one's, the same way, for the
    next. ``prices`` holds the text of the prices seen (a price recurs far
    more often than its level's size). Only values of the plain range are
    kept, where equal floats have one text (no -0.0, no NaN). The books of an
    aggregator hold floats, never ints, which would compare equal to a float
    and be written as it. Returns how many entries were written.
    """
    positions = _positions(len(levels))
    fast = _ENTRY_PRICED[entry_type]
    position = 0
    for level in levels:
        entry = last.get(level)
        if entry is None:
            venue, price, amount = level
            if _PLAIN_LOW <= price < _PLAIN_HIGH and _PLAIN_LOW <= amount < _PLAIN_HIGH:
                text = prices.get(price)
                if text is None:
                    if len(prices) >= _CACHE_MAX:
                        prices.clear()
                    text = prices[price] = b"%r" % price
                entry = fast % (text, amount, _venue_fields.get(venue) or _venue(venue))
            elif math.isfinite(price) and math.isfinite(amount):
                position += 1
                slow = (format_float(price), format_float(amount), _venue(venue), position)
                parts.append(_LEVEL_SLOW[entry_type] % slow)
                continue
            else:
                continue
        seen[level] = entry
        position += 1
        parts.append(entry)
        parts.append(positions[position])
    return position


def _side(
    parts: list[bytes],
    entry_type: bytes,
    levels: Sequence[MergedLevel],
    last: dict[MergedLevel, bytes],
    prices: dict[float, bytes],
) -> tuple[int, dict[MergedLevel, bytes]]:
    """Append one side's entries (the C writer's, else :func:`_levels_cached`); return how
    many, and the side's entries by level for the next update (``last`` when C wrote them:
    the Python cache stays valid, an entry's text depends on its level alone)."""
    written = _fix_entries(levels, entry_type, _venue_fields) if _fix_entries is not None else None
    if written is not None:
        parts.append(written[0])
        return written[1], last
    seen: dict[MergedLevel, bytes] = {}
    return _levels_cached(parts, entry_type, levels, last, seen, prices), seen


def _finish(
    count: int, parts: list[bytes], view: MergedBook | BboView | Liquidity, extra: bytes = b""
) -> MdUpdate:
    tail = b"268=%d\x01" % count + b"".join(parts) + extra + _trailer(view)
    return MdUpdate(tail, byte_sum(tail), view.sequence)


def encode_book(book: MergedBook, depth: int = 0, entry_types: tuple[bytes, ...] = (BID, OFFER)) -> MdUpdate:
    """Return the shared part of the W of ``book``'s top ``depth`` levels a side (0: all)."""
    bids, asks = book.bids, book.asks
    if depth:
        bids, asks = bids[:depth], asks[:depth]
    parts: list[bytes] = []
    count = 0
    if BID in entry_types:
        count += _levels(parts, BID, bids)
    if OFFER in entry_types:
        count += _levels(parts, OFFER, asks)
    return _finish(count, parts, book)


class BookEncoder:
    """Encode a source's books at one depth, leaving out updates unchanged at that depth.

    The same rule as the gRPC v1 API's (:class:`dragonfly.serve.v1_encode.BookEncoder`),
    so a FIX client and a gRPC client of one (instrument, depth) receive the
    same sequence of books: an update whose top ``depth`` levels and venue
    memberships equal the last encoded one's is not sent.

    With the C speedups a side's entries are written by ``fix_entries``
    (the float formatting is most of a W's encoding: it has a shortcut for
    short decimals, docs/fix.md), ~3x faster than Python where every size is
    new; it declines a side it cannot write exactly (a level outside the
    plain range, an unknown venue) and Python writes that one. In Python the
    entries of the last update are kept by level, and each price's text
    (:func:`_levels_cached`): from one book to the next most levels are
    unchanged, or only moved, and most prices recur, so they are not
    formatted again. Only the last update's entries are kept, a few hot
    dicts: a cache of every level seen (2048 a side) hit no more often (a
    level that comes back later has mostly another size) and was no faster
    live. The bytes are :func:`encode_book`'s either way; ``python -m
    latency.bench_fix`` measures them on the latency harness's books.
    """

    __slots__ = ("_asks", "_bids", "_depth", "_last", "_prices", "_suppress", "_types")

    def __init__(self, depth: int, source_depth: int, entry_types: tuple[bytes, ...] = (BID, OFFER)) -> None:
        """Encode ``depth`` levels a side (0: all) of books ``source_depth`` deep."""
        self._depth = depth
        self._types = entry_types
        self._suppress = 0 < depth < source_depth
        self._last: tuple[object, ...] | None = None
        #: Each side's entries of the last update, by level.
        self._bids: dict[MergedLevel, bytes] = {}
        self._asks: dict[MergedLevel, bytes] = {}
        self._prices: dict[float, bytes] = {}

    def __call__(self, book: MergedBook) -> MdUpdate | None:
        """Return the shared W part of ``book``, or ``None`` when unchanged at this depth."""
        bids, asks = book.bids, book.asks
        depth = self._depth
        if depth:
            bids, asks = bids[:depth], asks[:depth]
            if self._suppress:
                key = (bids, asks, [state[1:3] for state in book.venues])
                if key == self._last:
                    return None
                self._last = key
        parts = [b""]  # 268, once the entries are counted
        count = 0
        if BID in self._types:
            written, self._bids = _side(parts, BID, bids, self._bids, self._prices)
            count += written
        if OFFER in self._types:
            written, self._asks = _side(parts, OFFER, asks, self._asks, self._prices)
            count += written
        parts[0] = b"268=%d\x01" % count
        parts.append(_trailer(book))
        tail = b"".join(parts)
        return MdUpdate(tail, byte_sum(tail), book.sequence)


def encode_bbo(bbo: BboView, entry_types: tuple[bytes, ...] = (BID, OFFER)) -> MdUpdate:
    """Return the shared part of the W of a BBO view (module doc: 276=D best, 276=C each venue's)."""
    parts: list[bytes] = []
    count = 0
    for entry_type, best in ((BID, bbo.best_bid), (OFFER, bbo.best_ask)):
        if best is not None and entry_type in entry_types and math.isfinite(best.price + best.amount):
            parts.append(
                b"269=%s\x01270=%s\x01271=%s\x01276=D\x01%s290=1\x01"
                % (entry_type, format_float(best.price), format_float(best.amount), _venue(best.exchange))
            )
            count += 1
    for venue, bid_price, bid_amount, ask_price, ask_amount in bbo.quotes:
        for entry_type, price, amount in ((BID, bid_price, bid_amount), (OFFER, ask_price, ask_amount)):
            if entry_type in entry_types and math.isfinite(price) and math.isfinite(amount) and amount > 0:
                parts.append(
                    b"269=%s\x01270=%s\x01271=%s\x01276=C\x01%s290=1\x01"
                    % (entry_type, format_float(price), format_float(amount), _venue(venue))
                )
                count += 1
    return _finish(count, parts, bbo)


def _amounts(
    parts: list[bytes], entry_type: bytes, tag_value: bytes, amounts: tuple[VenueAmount, ...]
) -> int:
    for venue, amount in amounts:
        parts.append(
            b"269=%s\x01271=%s\x01%s%s" % (entry_type, format_float(amount), _venue(venue), tag_value)
        )
    return len(amounts)


def _optional(tag: int, value: float) -> bytes:
    return b"%d=%s\x01" % (tag, format_float(value)) if math.isfinite(value) else b""


def _fill(parts: list[bytes], entry_type: bytes, fill: Fill) -> int:
    qty = b"20021=%s\x01" % format_float(fill.quantity)
    parts.append(
        b"269=%s\x01%s271=%s\x01%s%s%s20024=%s\x01"
        % (
            entry_type,
            _optional(270, fill.average_price),
            format_float(fill.filled),
            qty,
            _optional(20022, fill.worst_price),
            _optional(20023, fill.slippage_bps),
            b"Y" if fill.complete else b"N",
        )
    )
    return 1 + _amounts(parts, entry_type, qty, fill.venues)


def encode_liquidity(liquidity: Liquidity, entry_types: tuple[bytes, ...] = (BID, OFFER)) -> MdUpdate:
    """Return the shared part of the W of a liquidity view.

    Entries, bid side (269=0) then offer side (269=1) of each kind:

    * a band: ``271`` the amount within ``20020 DFBandBps`` of the mid summed
      across venues (no 282), then one entry per venue holding some of it
      (``282`` venue, ``271`` its part, the same ``20020``);
    * a fill: selling walks the bids (269=0), buying the offers (269=1):
      ``20021 DFFillQty`` the quantity asked, ``271`` the amount filled,
      ``270`` the average price, ``20022 DFWorstPx``, ``20023 DFSlippageBps``
      (the last three absent when nothing filled), ``20024 DFFillComplete``
      (Y/N); then one entry per venue filling part (``282``, ``271``, the
      same ``20021``).

    ``20025 DFMid`` (after the entries) is the mid the bands are measured
    from (absent while a side is empty).
    """
    parts: list[bytes] = []
    count = 0
    for entry_type in (BID, OFFER):
        if entry_type not in entry_types:
            continue
        for band in liquidity.bands:
            amount, venues = (
                (band.bid_amount, band.bid_venues)
                if entry_type == BID
                else (band.ask_amount, band.ask_venues)
            )
            bps = b"20020=%s\x01" % format_float(band.bps)
            parts.append(b"269=%s\x01271=%s\x01%s" % (entry_type, format_float(amount), bps))
            count += 1 + _amounts(parts, entry_type, bps, venues)
    if BID in entry_types:
        for fill in liquidity.sells:
            count += _fill(parts, BID, fill)
    if OFFER in entry_types:
        for fill in liquidity.buys:
            count += _fill(parts, OFFER, fill)
    return _finish(count, parts, liquidity, _optional(20025, liquidity.mid))


def encoder_for(view: str, depth: int, source_depth: int, entry_types: tuple[bytes, ...]) -> Encoder:
    """Return the encoder of one (view kind, depth, entry types) of a ``source_depth`` source."""
    if view == "book":
        return BookEncoder(depth, source_depth, entry_types)
    if view == "bbo":
        return lambda bbo: encode_bbo(bbo, entry_types)
    return lambda liquidity: encode_liquidity(liquidity, entry_types)
