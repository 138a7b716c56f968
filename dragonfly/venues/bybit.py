"""Bybit v5 public spot: ``orderbook.50.<SYMBOL>`` diffs, snapshot in-band.

Live endpoint (Bybit v5 WebSocket docs): ``wss://stream.bybit.com/v5/public/spot``;
public topics need no authentication. Subscribing (``{"op":"subscribe","args":[topics]}``,
at most 10 topics per request on spot) is answered ``{"success":true,"op":"subscribe",...}``;
an unknown symbol by ``"success":false`` with a ``ret_msg`` naming the topic. The
client sends ``{"op":"ping"}`` every 20 s; the server answers ``"ret_msg":"pong"``
and cuts a connection with neither pings nor data after 10 minutes.

Book messages: ``{"topic","type":"snapshot"|"delta","data":{"s","b","a","u","seq"}}``.
A snapshot replaces the book: the first after subscribing, and any other Bybit
sends, including one with ``u == 1`` after a service restart. A delta's ``u``
must be the previous ``u + 1`` (the shared sync machinery with
``continuity=True``, first = last = ``u``); a gap resubscribes the symbol for a
fresh snapshot. Size "0" removes a level, and the book is cut to :data:`DEPTH`
after every update, as Bybit keeps it.

Parsing: one typed msgspec decoder per connection. The channel is numeric
(Bybit sends no checksum over its strings): msgspec converts prices and
amounts to floats in C while decoding, and the books keep no strings, as on
Binance's diff channel (:class:`~dragonfly.core.book.L2Book` ``numeric``; a
price that is not above zero, or an amount that is negative or not a finite
number, fails the decode, named). With the C apply of float levels this took
the per-message path (``python -m latency.peers --venues bybit``, measured
under callgrind, which does not drift with load) from ~91k to ~56k
instructions. msgspec's typed decode is kept over lazy pysimdjson: a delta is
small (~200 bytes, 5 levels on average) and every level is applied, so a
lazy parser skips nothing, and reading the levels out of it took 1.5x the
time of the typed decode (timeit, the recorded deltas, side by side).

Deltas in the exact shape Bybit writes them are read by the C speedups
(``read_bybit_delta``: no whitespace, the fields in Bybit's order, plain
decimal numbers); anything else, snapshots included, returns ``None`` there
and msgspec decodes it as above, so a frame that reader accepts is one
msgspec reads to the same values, and every error is still msgspec's
(scripts/fuzz_speedups.py and tests/venues/test_bybit.py hold the two
side by side). msgspec's decode was ~10k of the ~54k instructions a message
(callgrind, the recorded deltas), building two Structs and strings that are
dropped at once; the C reader takes ~5k. With the listener's and the book's
Python frames cut (issue 15), the whole message went from ~54k to ~43k
instructions, against ~148k for cryptofeed's.

Liveness: ``orderbook.50`` pushes only on change (every 20 ms at most) and has
no keep-alive (Bybit re-sends snapshots every 3 s on ``orderbook.1`` only),
so only our pings prove a silent connection: a book nothing proved current
for 60 s leaves the merge.

Limits (Bybit v5 docs, bybit-exchange.github.io/docs/v5/ws/connect and
"Rate Limit Rules"): at most 500 connections in 5 minutes per domain; on
spot, at most 10 args (topics) per subscribe request, so :func:`subscribe`
splits its topics into frames of :data:`MAX_ARGS` (``args_per_message``);
the args of a connection are limited to 21,000 characters, which at
``"orderbook.50.<up to 12 characters>",`` (28) is 750 topics:
``symbols_per_connection``. No message rate is published ("too frequent
requests" is error 20003), so our frames keep to 5 a second.

Acks name no topic (``{"success":true,"op":"subscribe","req_id":..}``, one
per request), so an ack accepts every symbol not answered yet; a refusal
names its topic in ``ret_msg`` and takes that symbol out alone. With more
than 10 symbols (several requests) an earlier request's ack may accept a
symbol that a later request's refusal then takes out: its book is then
``REJECTED`` although ``Feed.outcomes`` said accepted first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from dragonfly import accel
from dragonfly.core.diff import DiffChannel, DiffDecoder, Event, NumericLevel, Snapshot, new_delta
from dragonfly.core.errors import ParseError
from dragonfly.core.health import Liveness, LivenessKind
from dragonfly.core.venue import Control, ControlKind, Limits, Rate, VenueSpec, json_control

#: Book depth subscribed. Spot serves 1, 50, 200 (and, in the current docs, 1000)
#: levels; depth 1 sends snapshots only. 50 is pushed every 20 ms, 200 every 200 ms.
DEPTH = 50
#: Topics per subscribe request on spot.
MAX_ARGS = 10
#: Topics per connection: 21,000 characters of args at 28 a topic.
MAX_TOPICS = 750
SUBSCRIBE_ID = "1"
UNSUBSCRIBE_ID = "2"
_TOPIC = re.compile(r"orderbook\.\d+\.([A-Za-z0-9]+)")


def topic(symbol: str) -> str:
    """The order book topic of ``symbol``."""
    return f"orderbook.{DEPTH}.{symbol}"


def _requests(op: str, req_id: str, symbols: Sequence[str]) -> Sequence[bytes]:
    topics = [topic(s) for s in symbols]
    return [
        json.dumps(
            {"op": op, "args": topics[i : i + MAX_ARGS], "req_id": req_id}, separators=(",", ":")
        ).encode()
        for i in range(0, len(topics), MAX_ARGS)
    ]


def subscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Subscribe to the order book topics of ``symbols``."""
    return _requests("subscribe", SUBSCRIBE_ID, symbols)


def unsubscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """Unsubscribe from the order book topics of ``symbols``."""
    return _requests("unsubscribe", UNSUBSCRIBE_ID, symbols)


# gc=False (here and below): a decoded frame holds no reference cycles, so its
# structs need no collector tracking (nor count towards starting a collection).
class _Book(msgspec.Struct, gc=False):
    s: str
    b: list[NumericLevel]
    a: list[NumericLevel]
    u: int


class _Message(msgspec.Struct, gc=False):
    topic: str
    type: str
    data: _Book


def make_decoder() -> DiffDecoder:
    """Build the msgspec decoder of order book messages for one connection, levels as floats."""
    # strict=False: prices and amounts are JSON strings, converted while decoding.
    decode_message = msgspec.json.Decoder(_Message, strict=False).decode
    # The C reader of the common delta (None for anything else: msgspec then).
    read_delta = accel.speedups.read_bybit_delta if accel.speedups is not None else None

    def decode(payload: bytes) -> Sequence[Event] | None:
        if read_delta is not None:
            fields = read_delta(payload)
            if fields is not None:
                return (new_delta(fields),)
        # Decode first and look at what failed second: an op response (ack,
        # pong) or another topic's data has not this shape. Byte tests on
        # every frame first cost ~0.14 µs of ~5 (find, not `in`:
        # bytes.__contains__ first tries the needle as an int, and raises and
        # clears a TypeError).
        try:
            msg = decode_message(payload)
        except msgspec.DecodeError as exc:
            if payload.find(b'"topic"') < 0 or payload.find(b'"orderbook.') < 0:
                return None
            raise ParseError(f"bad orderbook message: {exc}") from None
        if not msg.topic.startswith("orderbook."):
            return None  # another topic whose data has a book's fields
        book = msg.data
        if msg.type == "delta":
            return (new_delta((book.s, book.b, book.a, book.u, book.u, None)),)
        if msg.type == "snapshot":
            return (Snapshot(book.s, book.b, book.a, book.u),)
        raise ParseError(f"unknown orderbook message type {msg.type!r}")

    return decode


@json_control
def control(msg: dict[str, Any]) -> Control:
    """Classify an op response: subscribe ack or refusal, pong."""
    op = msg.get("op")
    detail = str(msg.get("ret_msg") or "")
    if op in ("ping", "pong") or detail == "pong":
        return Control(ControlKind.PONG)
    if msg.get("success") is True:
        return Control(ControlKind.SUBSCRIBED if op == "subscribe" else ControlKind.IGNORED)
    if msg.get("success") is False:
        if op == "subscribe":
            found = _TOPIC.search(detail)
            return Control(ControlKind.REJECTED, detail, found.group(1) if found else None)
        return Control(ControlKind.ERROR, f"{op}: {detail}")
    return Control(ControlKind.IGNORED)


SPEC = VenueSpec(
    name="bybit",
    ws_url="wss://stream.bybit.com/v5/public/spot",
    rest_url="https://api.bybit.com",
    symbol=str.upper,
    control=control,
    diff=DiffChannel(
        subscribe=subscribe,
        unsubscribe=unsubscribe,
        make_decoder=make_decoder,
        continuity=True,
        truncate=DEPTH,
        numeric=True,
        liveness=Liveness(LivenessKind.PINGS, 60.0, "updates only on change; no keep-alive on orderbook.50"),
    ),
    default_channel="diff",
    heartbeat=b'{"op":"ping"}',
    heartbeat_interval=20.0,
    limits=Limits(
        connects=Rate(500, 300.0),
        messages=Rate(5, 1.0),
        symbols_per_connection=MAX_TOPICS,
        args_per_message=MAX_ARGS,
    ),
)
