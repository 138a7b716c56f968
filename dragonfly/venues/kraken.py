"""Kraken (WebSocket API v1): the ``book`` channel, a snapshot then checksummed updates.

Live endpoint (Kraken WebSockets API v1 docs): ``wss://ws.kraken.com``; there is
no REST snapshot to stitch: the snapshot arrives in-band after subscribing, so a
book that cannot be trusted is resynchronised by unsubscribing and subscribing
again. The server sends ``{"event":"heartbeat"}`` about once a second when idle;
the client also pings (``{"event":"ping"}`` -> ``pong``) every 20 s.

Sync rule (Kraken "Spot Websockets (v1) Book Checksum"): apply every level of an
update message (amount 0 removes; a 4th element ``"r"`` only marks a republished
level), truncate each side to the subscribed depth (Kraken sends no removal for
a level pushed out of scope), then compare the CRC32 of the top 10 asks and top
10 bids with the message's ``c``. An update may split its sides over two dicts,
``{"a": ..}`` then ``{"b": .., "c": ..}``; both go into one :class:`Delta`, so
the checksum (and the crossed-book check) sees the whole message at once.

Parsing: a book frame is a JSON array of mixed types, decoded by one typed
msgspec decoder per connection, which checks in C that every level is an array
of strings. The levels are kept as the venue's strings, which the checksum needs;
the CRC32 runs over them in C (:mod:`dragonfly.core.checksum`): building the
string in Python took ~4 of a ~11 µs update, measured side by side against cryptofeed.
A one-part update (nearly every frame) first tries a typed shape, and its level
arrays go to the book as decoded (the C apply reads their first two strings);
anything else takes the general decode. Lazy pysimdjson, measured against it on
the recorded frames (timeit, side by side), took 1.4x the time.

Liveness (Kraken "heartbeat" doc): the server sends ``{"event":"heartbeat"}``
when a connection has had no subscription traffic for about a second, so
every heartbeat proves the connection's books current; Kraken's own
reconnection guide closes a connection silent for 5 s, and so a book nothing
proved current for 5 s leaves the merge. A book that went silent comes back
once an update's checksum verifies it.

Limits (Kraken WebSocket docs, docs.kraken.com/api/docs/websocket-v1/ and
support "WebSocket API - Frequently Asked Questions"): about 150 connection
attempts per rolling 10 minutes per IP (more bans the IP for 10 minutes), so
we keep to 100; the message rate limit is dynamic and unpublished, so our
frames keep to 5 a second. A subscribe names a list of pairs and Kraken
documents no limit on its length nor on the pairs a connection carries, so
one connection (and one request) carries every symbol. No REST is used.
``systemStatus`` other than ``online`` is logged.

Every ``subscriptionStatus`` names its ``pair``, acks and refusals alike
(``"errorMessage":"Currency pair not supported"``), so a refused pair is
taken out alone and the others of the request carry on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any

import msgspec

from dragonfly.core.book import L2Book, TextLevel
from dragonfly.core.checksum import crc32_digits
from dragonfly.core.diff import Delta, DiffChannel, DiffDecoder, Event, Snapshot, new_delta
from dragonfly.core.errors import ParseError
from dragonfly.core.health import Liveness, LivenessKind
from dragonfly.core.symbols import joined
from dragonfly.core.venue import Control, ControlKind, Limits, Rate, VenueSpec, json_control

#: Subscribed book depth (Kraken serves 10, 25, 100, 500 or 1000). Deeper costs a
#: bigger snapshot and more updates; 100 covers any top N we publish with room for
#: the levels that move into view as the top is eaten.
DEPTH = 100
#: The book depths Kraken serves.
DEPTHS = (10, 25, 100, 500, 1000)
#: Kraken's checksum covers the top 10 levels of each side, whatever the depth.
CHECKSUM_LEVELS = 10

#: Kraken's own asset codes, where they differ from the common ones.
_ASSETS = {"btc": "XBT", "doge": "XDG"}


def symbol(instrument: str) -> str:
    """``"ethbtc"`` -> ``"ETH/XBT"`` (an unsplittable name goes as is; Kraken rejects it)."""
    return joined(instrument, "/", _ASSETS)


def _request(event: str, symbols: Sequence[str], depth: int = DEPTH) -> Sequence[bytes]:
    frame = {"event": event, "pair": list(symbols), "subscription": {"name": "book", "depth": depth}}
    return [json.dumps(frame, separators=(",", ":")).encode()]


def diff_subscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Subscribe ``symbols`` to the ``book`` channel at :data:`DEPTH` (one request)."""
    return _request("subscribe", symbols)


def diff_unsubscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Unsubscribe ``symbols`` from the ``book`` channel."""
    return _request("unsubscribe", symbols)


def book_channel(depth: int = DEPTH) -> DiffChannel:
    """The ``book`` channel subscribed, and kept, at ``depth`` levels a side."""
    if depth not in DEPTHS:
        raise ValueError(f"kraken serves book depths {', '.join(map(str, DEPTHS))}, not {depth}")
    return DiffChannel(
        subscribe=partial(_request, "subscribe", depth=depth),
        unsubscribe=partial(_request, "unsubscribe", depth=depth),
        make_decoder=make_diff_decoder,
        continuity=False,
        checksum=checksum,
        truncate=depth,
        at_depth=book_channel,
        # Snapshots carry no checksum: publish once an update has verified one.
        verify_before_publish=True,
        liveness=Liveness(LivenessKind.HEARTBEAT, 5.0, "a heartbeat after ~1 s without traffic"),
    )


# A book frame: [channelID, {..}, ({..},)? "book-N", "PAIR"]; dict values are
# level arrays, or the checksum string.
_Frame = list[int | str | dict[str, list[list[str]] | str]]


def _levels(raw: Any) -> list[TextLevel]:
    if type(raw) is not list:
        raise ParseError(f"levels are not an array: {raw!r:.60}")
    try:
        return [(level[0], level[1]) for level in raw]
    except IndexError:
        raise ParseError("a level is not [price, volume, timestamp]") from None


#: A level: ``[price, volume, timestamp]`` (and ``"r"``); the book reads the first two.
_Level = Annotated[list[str], msgspec.Meta(min_length=2)]


# gc=False (here and below): a decoded frame holds no reference cycles, so its
# structs need no collector tracking (nor count towards starting a collection).
class _Part(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The object of a one-part update: ``{"a": levels}`` or ``{"b": levels, "c": checksum}``."""

    a: list[_Level] | None = None
    b: list[_Level] | None = None
    c: str | None = None


class _Update(msgspec.Struct, array_like=True, gc=False):
    """A one-part update frame: ``[channelID, {..}, "book-N", "PAIR"]``."""

    channel_id: int
    part: _Part
    channel: str
    pair: str


def _checksum(text: Any) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ParseError(f"bad checksum {text!r:.30}") from None


def make_diff_decoder() -> DiffDecoder:
    """Build the decoder of ``book`` frames for one connection."""
    decode_frame = msgspec.json.Decoder(_Frame).decode
    decode_update = msgspec.json.Decoder(_Update).decode

    def decode(payload: bytes) -> Sequence[Event] | None:
        if payload[:1] != b"[":
            return None  # an event object: status, ack, heartbeat, pong
        # Nearly every frame is a one-part update: decoded into its typed
        # shape (~1 µs less than the general shape and its Python walk). Any
        # other frame (a snapshot, a two-part update, another channel, a bad
        # frame) fails that shape and takes the general decode, which names
        # what is wrong.
        try:
            update = decode_update(payload)
        except msgspec.DecodeError:
            return decode_general(payload)
        part = update.part
        if (part.a is None and part.b is None) or not update.channel.startswith("book"):
            return decode_general(payload)
        checksum = None if part.c is None else _checksum(part.c)
        # The level arrays go to the book as decoded (it reads their first two strings).
        bids = () if part.b is None else part.b
        asks = () if part.a is None else part.a
        return (new_delta((update.pair, bids, asks, None, None, checksum)),)

    def decode_general(payload: bytes) -> Sequence[Event] | None:
        try:
            frame = decode_frame(payload)
        except msgspec.DecodeError as exc:
            if b'"book-' in payload:
                raise ParseError(f"bad book frame: {exc}") from None
            return None  # another channel's data
        if len(frame) < 4:
            return None
        channel, pair = frame[-2], frame[-1]
        if type(channel) is not str or not channel.startswith("book"):
            return None  # another channel's data
        if type(pair) is not str:
            raise ParseError(f"book frame without a pair: {pair!r:.60}")
        parts: list[dict[str, Any]] = []
        for item in frame[1:-2]:
            if type(item) is not dict:
                raise ParseError(f"book frame part is not an object: {item!r:.60}")
            parts.append(item)
        first = parts[0]
        if "as" in first or "bs" in first:
            return (Snapshot(pair, _levels(first.get("bs", [])), _levels(first.get("as", []))),)
        bids: list[TextLevel] = []
        asks: list[TextLevel] = []
        checksum: int | None = None
        for part in parts:
            if "a" in part:
                asks += _levels(part["a"])
            if "b" in part:
                bids += _levels(part["b"])
            if "c" in part:
                checksum = _checksum(part["c"])
        return (Delta(pair, bids, asks, None, None, checksum),)

    return decode


def checksum(book: L2Book) -> int:
    """Kraken's CRC32 (unsigned) of the top 10 asks then top 10 bids, over the venue's strings:
    each price and amount without its ``.`` and leading zeros."""
    bids, asks = book.top_text(CHECKSUM_LEVELS)
    return crc32_digits(asks, bids)


@json_control
def control(msg: dict[str, Any]) -> Control:
    """Classify an event object (status, subscription ack or error, heartbeat, pong)."""
    event = msg.get("event")
    pair = msg.get("pair") if isinstance(msg.get("pair"), str) else None
    if event == "subscriptionStatus":
        status = msg.get("status")
        if status == "subscribed":
            return Control(ControlKind.SUBSCRIBED, symbol=pair)
        if status == "error":
            detail = str(msg.get("errorMessage", "subscription refused"))
            # A resync sends unsubscribe + subscribe: their races are not a refusal of the pair.
            benign = any(text in detail.lower() for text in ("already subscribed", "not found"))
            return Control(ControlKind.ERROR if benign else ControlKind.REJECTED, detail, pair)
        return Control(ControlKind.IGNORED, str(status), pair)  # unsubscribed
    if event == "heartbeat":
        return Control(ControlKind.HEARTBEAT)
    if event == "pong":
        return Control(ControlKind.PONG)
    if event == "systemStatus":
        status = str(msg.get("status"))
        # "maintenance" or "cancel_only": the venue is up but its books may not move.
        return Control(ControlKind.IGNORED if status == "online" else ControlKind.ERROR, f"system {status}")
    if event == "error":
        return Control(ControlKind.ERROR, str(msg.get("errorMessage", msg)))
    return Control(ControlKind.IGNORED)


SPEC = VenueSpec(
    name="kraken",
    ws_url="wss://ws.kraken.com",
    rest_url=None,
    symbol=symbol,
    control=control,
    diff=book_channel(DEPTH),
    default_channel="diff",
    heartbeat=b'{"event":"ping"}',
    heartbeat_interval=20.0,
    limits=Limits(connects=Rate(100, 600.0), messages=Rate(5, 1.0)),
)
