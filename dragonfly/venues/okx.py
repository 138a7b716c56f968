"""OKX (API v5, public WebSocket): the ``books`` channel, a snapshot then checksummed updates.

Live endpoint (OKX v5 API docs): ``wss://ws.okx.com:8443/ws/v5/public``. The
snapshot (400 levels a side) arrives in-band after subscribing, so a book that
cannot be trusted is resynchronised by unsubscribing and subscribing again.
OKX closes a connection idle for 30 s: the client sends the text frame
``ping`` every 20 s and the server answers the text ``pong`` (not JSON).

Sync rule (OKX "Order book channel"): size 0 removes a level. Each message
carries ``prevSeqId`` (the previous message's ``seqId``; -1 on a snapshot) and
``seqId``, mapped onto the shared continuity rule as ``first = prevSeqId + 1``,
``last = seqId``. Two documented exceptions are handled here:

* a keep-alive message with ``seqId == prevSeqId`` and no levels changes
  nothing: it yields :class:`~dragonfly.core.diff.Alive`, which proves the
  book at that ``seqId`` current (OKX sends one after ~60 s without a change);
* a sequence reset (``seqId < prevSeqId``, after a maintenance) cannot be
  expressed as a range, so the decoder reports a :class:`Reset` and the symbol
  is resubscribed (a fresh snapshot).

Messages recorded before mid-2022 carry no sequence ids; then only the checksum
guards the book. The checksum (when non-zero: OKX may send 0, meaning none) is
verified after every update and after the snapshot itself.

Since 2026-06-23 OKX sends ``checksum`` 0 on ``books`` (deprecated): the
sequence ids are then the only guard, which the continuity rule applies.

Parsing: one typed msgspec decoder per connection; levels stay the venue's
strings, which the checksum needs (a CRC32 in C: :mod:`dragonfly.core.checksum`).
Each level array goes to the book as decoded (the book's C apply reads its
first two strings). Measured on the recorded updates (issue 15): ~80 µs of a
message went to ``SortedDict`` inserts and removes in Python frames (now C,
:mod:`dragonfly.core.book`) and to copying levels into tuples; the
per-message path fell from ~379k to ~193k instructions (callgrind). Lazy
pysimdjson was measured against the typed decode: every level of an update is
applied, so nothing is skipped, and reading them out took 1.3x the time
(timeit, side by side).

Liveness: updates come only on change (every 100 ms at most) and the
per-instrument keep-alive after ~60 s of none: a book nothing proved current
for 75 s leaves the merge (the connection itself is proved by our ``ping``
every 20 s, and OKX drops a connection without data for 30 s).

Limits (OKX v5 docs, www.okx.com/docs-v5/en/ "Websocket > Overview",
"Connect" and "Subscribe"): 3 connection requests per second per IP;
subscribe, unsubscribe and login requests 480 an hour per connection, so a
resync (unsubscribe + subscribe) is paced, and all our frames, our pings
(180 an hour) included, keep to 400 an hour. One request may name several
channels, "the total length of multiple channels cannot exceed 64 KB": a
subscribe splits its args so that no frame reaches :data:`MAX_REQUEST_BYTES`.
OKX documents no count of channels per connection, so one connection carries
every symbol (``symbols_per_connection`` unset); with many symbols, their
resyncs share the connection's 480 requests an hour. The ``64008`` notice
comes 60 s before a service upgrade closes the connection; we reconnect at
once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from dragonfly.core.book import L2Book
from dragonfly.core.checksum import crc32_interleaved
from dragonfly.core.diff import Alive, Delta, DiffChannel, DiffDecoder, Event, Reset, Snapshot, new_delta
from dragonfly.core.errors import ParseError
from dragonfly.core.health import Liveness, LivenessKind
from dragonfly.core.symbols import joined
from dragonfly.core.venue import Control, ControlKind, Limits, Rate, VenueSpec, json_control

CHANNEL = "books"
#: The depth OKX maintains on ``books``. OKX itself removes levels leaving the
#: window (the recorded BTC-USDT book stays at exactly 400 a side); the cut is a
#: guard against a level beyond it going stale unseen.
BOOK_DEPTH = 400
#: OKX's checksum covers the top 25 levels of each side.
CHECKSUM_LEVELS = 25

#: OKX's own asset codes, where they differ from the common ones.
_ASSETS = {"xbt": "BTC"}


def symbol(instrument: str) -> str:
    """``"ethbtc"`` -> ``"ETH-BTC"`` (an unsplittable name goes as is; OKX rejects it)."""
    return joined(instrument, "-", _ASSETS)


#: The largest subscribe request OKX takes (its channels' total length: 64 KB).
MAX_REQUEST_BYTES = 64 * 1024


def _request(op: str, symbols: Sequence[str], limit: int = MAX_REQUEST_BYTES) -> Sequence[bytes]:
    """``op`` for ``symbols``, in as few frames as keep each under ``limit`` bytes."""
    frames: list[bytes] = []
    args: list[str] = []
    size = 0
    head = b'{"op":"%s","args":[' % op.encode()
    for s in symbols:
        arg = json.dumps({"channel": CHANNEL, "instId": s}, separators=(",", ":"))
        if args and len(head) + size + len(arg) + 2 >= limit:
            frames.append(head + ",".join(args).encode() + b"]}")
            args, size = [], 0
        args.append(arg)
        size += len(arg) + 1
    if args:
        frames.append(head + ",".join(args).encode() + b"]}")
    return frames


def diff_subscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Subscribe the ``books`` channel of ``symbols`` (one request)."""
    return _request("subscribe", symbols)


def diff_unsubscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Unsubscribe the ``books`` channel of ``symbols``."""
    return _request("unsubscribe", symbols)


# gc=False (here and below): a decoded frame holds no reference cycles, so its
# structs need no collector tracking (nor count towards starting a collection).
class _Arg(msgspec.Struct, gc=False):
    channel: str
    instId: str  # noqa: N815 (the venue's field name)


#: A level: ``[px, sz, "0" (deprecated), numOrders]``; the book reads the first two.
_Level = Annotated[list[str], msgspec.Meta(min_length=2)]


class _Book(msgspec.Struct, gc=False):
    asks: list[_Level]
    bids: list[_Level]
    checksum: int | None = None  # 0 or absent: not sent
    prevSeqId: int | None = None  # noqa: N815
    seqId: int | None = None  # noqa: N815


class _Push(msgspec.Struct, gc=False):
    arg: _Arg
    action: str
    data: list[_Book]


def _events(inst: str, action: str, book: _Book) -> list[Event]:
    # The level arrays go to the book as decoded (it reads their first two
    # strings): a copy into (px, sz) tuples cost ~1.5 µs of a 25-level update.
    bids = book.bids
    asks = book.asks
    checksum = book.checksum or None
    seq, prev = book.seqId, book.prevSeqId
    if action == "snapshot":
        events: list[Event] = [Snapshot(inst, bids, asks, seq)]
        if checksum is not None:
            # An empty delta re-validates the loaded book against the snapshot's checksum.
            events.append(Delta(inst, (), (), None, None, checksum))
        return events
    if action != "update":
        raise ParseError(f"unknown books action {action!r:.30}")
    if seq is None or prev is None:
        return [Delta(inst, bids, asks, None, None, checksum)]
    if seq == prev and not bids and not asks:
        return [Alive(inst, seq)]  # keep-alive: no change, the book at seq is current
    if seq < prev:
        return [Reset(inst, f"sequence reset: seqId {seq} after {prev}")]
    return [new_delta((inst, bids, asks, prev + 1, seq, checksum))]


def make_diff_decoder() -> DiffDecoder:
    """Build the decoder of ``books`` pushes for one connection."""
    decode_push = msgspec.json.Decoder(_Push).decode

    def decode(payload: bytes) -> Sequence[Event] | None:
        # Cheap byte tests first: pong, acks/errors (``event``) and other channels.
        # find, not `in`: bytes.__contains__ first tries the needle as an int
        # and raises and clears a TypeError (~60 ns a test here).
        if payload.find(b'"books"') < 0 or payload.find(b'"event"') >= 0:
            return None
        try:
            push = decode_push(payload)
        except msgspec.DecodeError as exc:
            raise ParseError(f"bad books push: {exc}") from None
        if push.arg.channel != CHANNEL:
            return None
        inst = push.arg.instId
        if len(push.data) == 1:
            return _events(inst, push.action, push.data[0])
        return [event for book in push.data for event in _events(inst, push.action, book)]

    return decode


def checksum(book: L2Book) -> int:
    """OKX's CRC32 (signed 32-bit) of the top 25 levels, bid and ask interleaved, as sent."""
    bids, asks = book.top_text(CHECKSUM_LEVELS)
    crc = crc32_interleaved(bids, asks)
    return crc - (1 << 32) if crc & 0x80000000 else crc


_INST_ID = re.compile(r"instId:([A-Za-z0-9_.-]+)")


def control(payload: bytes) -> Control:
    """Classify a non-book frame: ``pong``, a subscription ack, an error or a notice."""
    if payload.strip() == b"pong":
        return Control(ControlKind.PONG)
    return _control_event(payload)


@json_control
def _control_event(msg: dict[str, Any]) -> Control:
    event = msg.get("event")
    arg = msg.get("arg")
    inst = arg.get("instId") if isinstance(arg, dict) else None
    inst = inst if isinstance(inst, str) else None
    if event == "subscribe":
        return Control(ControlKind.SUBSCRIBED, symbol=inst)
    if event == "error":
        code, text = str(msg.get("code", "")), str(msg.get("msg", ""))
        detail = f"{text} (code {code})"
        if code == "60018" or "doesn't exist" in text:
            named = _INST_ID.search(text)
            return Control(ControlKind.REJECTED, detail, named.group(1) if named else inst)
        return Control(ControlKind.ERROR, detail)
    if event == "notice" and str(msg.get("code")) == "64008":
        return Control(ControlKind.RECONNECT, str(msg.get("msg", "service upgrade")))
    return Control(ControlKind.IGNORED)


SPEC = VenueSpec(
    name="okx",
    ws_url="wss://ws.okx.com:8443/ws/v5/public",
    rest_url=None,
    symbol=symbol,
    control=control,
    diff=DiffChannel(
        subscribe=diff_subscribe,
        unsubscribe=diff_unsubscribe,
        make_decoder=make_diff_decoder,
        continuity=True,
        checksum=checksum,
        truncate=BOOK_DEPTH,
        liveness=Liveness(LivenessKind.PINGS, 75.0, "updates on change; a keep-alive after ~60 s without"),
    ),
    default_channel="diff",
    heartbeat=b"ping",
    heartbeat_interval=20.0,
    limits=Limits(connects=Rate(3, 1.0), messages=Rate(400, 3600.0)),
)
