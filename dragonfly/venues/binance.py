"""Binance spot: ``<symbol>@depth20@100ms`` snapshots, or ``@depth@100ms`` diffs.

Live endpoints (Binance spot API docs): WebSocket ``wss://stream.binance.com:9443``,
raw stream path ``/ws`` with a ``SUBSCRIBE`` request; REST ``https://api.binance.com``.
The server pings every 20 s and expects a pong within a minute (picows answers).

Binance acknowledges a subscription to a symbol it does not list and then
sends nothing, so the symbol is first checked with REST ``exchangeInfo``
(``-1121 Invalid symbol.``).

Parsing: a depth20 frame is small and fixed-shape, and converting 40 price
strings to floats dominates its cost. A typed msgspec decode converts the
strings in C while decoding (~6 µs for 20+20 levels here) where lazy simdjson
plus ``float()`` on the top 10 costs ~17 µs (timeit side by side; the chosen
parser is benchmarked in ``python -m latency.bench_hotpath``), so this venue
uses msgspec. With the C speedups (:mod:`dragonfly.accel`) their
``read_levels`` reads only the top N of each side of a compact frame, and
anything it cannot read takes the msgspec decode, which names the error.
Reading only the top N must not mean trusting the rest unread: the whole
frame is first parsed by simdjson (its JSON syntax checked end to end, and
``lastUpdateId`` a non-negative integer). Measured side by side (timeit, a
20+20-level frame, this VM): that check ~0.55 µs (a msgspec decode into a
shape with the sides left raw: ~0.75 µs) plus the C read ~1.7 µs, against
~2.9 µs for the full typed decode of all 40 levels.
A frame whose ``lastUpdateId`` is lower than the last one on the connection
is refused (an older book must never replace a newer one).

Liveness: the partial book depth stream is pushed at a fixed cadence (100 ms;
docs: "Top bids and asks, pushed every ... 100ms"), so a book frame missing
for 3 s (30 pushes) means the feed is dead: the book leaves the merge. The
diff stream pushes only what changed, and only WebSocket pings (the server
pings every 20 s and drops a client that has not answered within a minute)
prove a silent one alive: a silent diff book leaves the merge after 60 s.

Limits (Binance spot "WebSocket Streams" and "LIMITS" docs,
developers.binance.com/docs/binance-spot-api-docs/web-socket-streams): 300
connection attempts per 5 minutes per IP; 5 incoming messages per second per
connection, pings and pongs included (over it the connection is closed, and
an IP closed repeatedly is banned), so our own frames are kept to 3 a
second; "A single connection can listen to a maximum of 1024 streams" (one
stream a symbol here: ``symbols_per_connection``); no limit on the streams
one SUBSCRIBE names is documented, so one request names them all; a
connection lasts at most 24 hours.
REST: 6000 request weight per minute per IP, ``/api/v3/depth`` at
``limit=1000`` weighs 50: snapshots are kept to 40 a minute (a third of the
budget, which other users of the IP share). A 429 or 418 carries
``Retry-After``, which is honoured. The ``serverShutdown`` event
(``{"e":"serverShutdown","E":...}``) asks the client to reconnect.

Several symbols on one connection: a raw ``/ws`` depth frame does not name
its symbol, so such a connection first sends ``SET_PROPERTY combined true``
(documented under "Setting Properties": the property a ``/stream``
connection has from the start), and every frame then comes wrapped as
``{"stream":"ethbtc@depth20@100ms","data":{...}}``. :func:`route` reads the
stream name and slices the inner payload out with byte tests, and the inner
payload takes the one-symbol decoder. Measured side by side (timeit, a
depth20 frame, medians of 15 rounds on this VM): ``route`` ~0.5 µs; a frame
through the routed listener ~7.8 µs against ~6.6 µs for a raw frame through
the bare one. That is measurable, so a one-symbol connection stays raw.

Diff channel: ``<symbol>@depth@100ms`` events with ``U``/``u`` update ids,
stitched to a REST ``/api/v3/depth`` snapshot by Binance's documented rule
(the shared sync machinery with ``continuity=True``). The channel is numeric:
Binance sends no checksum, so msgspec converts prices and amounts to floats
while decoding and the books keep no strings. On the recorded diffs
(``python -m latency`` peers section) this took the whole per-message path to
0.82x the time of decoding strings and converting them in the book.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
import simdjson

from dragonfly import accel
from dragonfly.core.diff import DiffChannel, DiffDecoder, Event, NumericLevel, Snapshot, new_delta
from dragonfly.core.errors import ParseError
from dragonfly.core.health import Liveness, LivenessKind
from dragonfly.core.types import Side
from dragonfly.core.venue import (
    Control,
    ControlKind,
    Decoder,
    Limits,
    Rate,
    SnapshotChannel,
    SymbolCheck,
    VenueSpec,
    json_control,
    never_back,
)

#: Binance serves 5, 10 or 20 levels on this channel; the issue asks for 20.
CHANNEL_DEPTH = 20
SUBSCRIBE_ID = 1
#: The id of the SET_PROPERTY request that turns a connection's frames combined.
COMBINED_ID = 3
#: Streams one connection may carry (Binance spot: 1024).
MAX_STREAMS = 1024


#: An update id: a JSON integer, not negative.
_UpdateId = Annotated[int, msgspec.Meta(ge=0)]


class _Depth(msgspec.Struct):
    lastUpdateId: _UpdateId  # noqa: N815 (the venue's field name)
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class _DepthShape(msgspec.Struct):
    """A depth frame's update id, read strictly (a JSON integer, not negative)."""

    lastUpdateId: _UpdateId  # noqa: N815


def stream_name(symbol: str) -> str:
    """The partial-depth stream of ``symbol`` (stream names are lower case)."""
    return f"{symbol.lower()}@depth{CHANNEL_DEPTH}@100ms"


def subscribe(symbol: str) -> Sequence[bytes]:
    """The SUBSCRIBE request for one symbol's depth stream."""
    return subscribe_many([symbol])


def subscribe_many(symbols: Sequence[str]) -> Sequence[bytes]:
    """One SUBSCRIBE request for the depth streams of ``symbols``."""
    request = {"method": "SUBSCRIBE", "params": [stream_name(s) for s in symbols], "id": SUBSCRIBE_ID}
    return [json.dumps(request, separators=(",", ":")).encode()]


#: Sent first on a connection of several symbols: wrap every frame with its stream name.
SET_COMBINED = b'{"method":"SET_PROPERTY","params":["combined",true],"id":%d}' % COMBINED_ID

_STREAM_HEAD = b'{"stream":"'
_DATA_KEY = b'","data":'


def route(payload: bytes) -> tuple[bytes, bytes] | None:
    """A combined frame -> ``(stream name, inner payload)``; ``None`` for any other frame.

    ``{"stream":"<name>","data":<payload>}``: stream names hold no ``"``, so
    the name ends where ``","data":`` starts, and the payload runs to the
    closing brace. Two byte tests and two slices (~0.5 µs on this VM, about
    a tenth of the decode and book behind it); the decoder checks the inner
    payload whole, so a frame cut short is refused there.
    """
    if payload[:11] != _STREAM_HEAD:
        return None
    end = payload.find(_DATA_KEY, 11)
    if end < 0:
        return None
    return payload[11:end], payload[end + 9 : -1]


def route_key(symbol: str) -> bytes:
    """The stream name :func:`route` returns for ``symbol``'s frames."""
    return stream_name(symbol).encode()


def make_decoder(depth: int) -> Decoder:
    """Build the decoder of depth frames for one connection (see the module doc)."""
    decode_depth = msgspec.json.Decoder(_Depth, strict=False).decode
    decode_shape = msgspec.json.Decoder(_DepthShape).decode
    read = accel.speedups.read_levels if accel.speedups is not None else None
    parser = simdjson.Parser()
    newer = never_back("lastUpdateId")

    def checked_id(payload: bytes) -> int | None:
        """Parse the whole frame; return its update id if it is valid JSON with a sound one."""
        nonlocal parser
        try:
            doc: Any = parser.parse(payload)
        except RuntimeError:  # a proxy of an earlier document is still referenced: a fresh parser
            parser = simdjson.Parser()
            return None
        except ValueError:
            return None
        update_id = doc.get("lastUpdateId") if isinstance(doc, simdjson.Object) else None
        del doc  # before the parser is used again
        return update_id if type(update_id) is int and update_id >= 0 else None

    def decode(payload: bytes) -> tuple[Side, Side, int] | None:
        if read is not None and payload.startswith(b'{"lastUpdateId":'):
            # Compact frames: the whole frame checked, then the top N of each
            # side read in C (module doc). Anything else takes the typed
            # decode, which names what is wrong.
            update_id = checked_id(payload)
            if update_id is not None:
                bids_at = payload.find(b'"bids":[')
                asks_at = payload.find(b'"asks":[', bids_at)
                if bids_at > 0 and asks_at > 0:
                    bids = read(payload, bids_at + 7, depth)
                    asks = read(payload, asks_at + 7, depth)
                    if bids is not None and asks is not None:
                        return bids, asks, newer(update_id)
        try:
            # Strict first, for the update id (the lax decode would take "2"
            # for 2); lax for the levels, whose numbers are strings.
            decode_shape(payload)
            msg = decode_depth(payload)
        except msgspec.DecodeError as exc:
            if b'"lastUpdateId"' in payload or b'"bids"' in payload:
                raise ParseError(f"bad depth frame: {exc}") from None
            return None  # an ack or an error: a control frame
        return tuple(msg.bids[:depth]), tuple(msg.asks[:depth]), newer(msg.lastUpdateId)

    return decode


def is_book(payload: bytes) -> bool:
    """A depth frame, told without parsing (acks and errors start otherwise)."""
    return payload.startswith(b'{"lastUpdateId"')


@json_control
def control(msg: dict[str, Any]) -> Control:
    """Classify a non-depth frame: a request's result or error, a shutdown notice."""
    event = msg.get("data") if "stream" in msg else msg.get("event", msg)
    if isinstance(event, dict) and event.get("e") == "serverShutdown":
        return Control(ControlKind.RECONNECT, "serverShutdown")
    if "error" in msg:
        err = msg["error"]
        detail = f"{err.get('msg', err)} (code {err.get('code')})" if isinstance(err, dict) else str(err)
        kind = ControlKind.REJECTED if msg.get("id") == SUBSCRIBE_ID else ControlKind.ERROR
        return Control(kind, detail)
    if msg.get("id") == SUBSCRIBE_ID and "result" in msg:
        return Control(ControlKind.SUBSCRIBED)
    return Control(ControlKind.IGNORED)


def symbol_rejected(status: int, body: bytes) -> str | None:
    """Read an ``exchangeInfo?symbol=`` answer: a reason if the symbol is not tradable."""
    try:
        msg = json.loads(body)
    except ValueError:
        return None
    if status == 400 and isinstance(msg, dict) and msg.get("code") == -1121:
        return f"not listed ({msg.get('msg', 'Invalid symbol.')})"
    if status == 200 and isinstance(msg, dict):
        symbols = msg.get("symbols") or []
        if symbols and isinstance(symbols[0], dict) and symbols[0].get("status") != "TRADING":
            return f"not trading (status {symbols[0].get('status')})"
    return None


# -- diff channel: <symbol>@depth@100ms + REST /api/v3/depth ------------------


class _DiffEvent(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    s: str
    U: int
    u: int
    b: list[NumericLevel]
    a: list[NumericLevel]


class _Wrapped(msgspec.Struct):
    stream: str
    data: _DiffEvent


class _RestDepth(msgspec.Struct):
    lastUpdateId: int  # noqa: N815
    bids: list[NumericLevel]
    asks: list[NumericLevel]


def diff_subscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """SUBSCRIBE to the 100 ms diff depth streams of ``symbols``."""
    params = [f"{s.lower()}@depth@100ms" for s in symbols]
    return [json.dumps({"method": "SUBSCRIBE", "params": params, "id": SUBSCRIBE_ID}).encode()]


def diff_unsubscribe(symbols: Sequence[str]) -> Sequence[bytes]:
    """UNSUBSCRIBE from the diff depth streams of ``symbols``."""
    params = [f"{s.lower()}@depth@100ms" for s in symbols]
    return [json.dumps({"method": "UNSUBSCRIBE", "params": params, "id": SUBSCRIBE_ID + 1}).encode()]


def make_diff_decoder() -> DiffDecoder:
    """Decode ``depthUpdate`` events, raw (``/ws``) or wrapped (``/stream``), levels as floats."""
    # strict=False: prices and amounts are JSON strings, converted while decoding.
    raw = msgspec.json.Decoder(_DiffEvent, strict=False).decode
    wrapped = msgspec.json.Decoder(_Wrapped, strict=False).decode

    def decode(payload: bytes) -> Sequence[Event] | None:
        # Decode first and look at what failed second: searching every frame
        # for "depthUpdate" before decoding cost ~0.5 µs of ~2 µs per diff.
        # msgspec checks the "e" tag, so acks and other events fail to decode.
        try:
            ev = wrapped(payload).data if payload.startswith(b'{"stream"') else raw(payload)
        except msgspec.DecodeError as exc:
            if b'"depthUpdate"' in payload:
                raise ParseError(f"bad depthUpdate: {exc}") from None
            return None  # acks, errors, other streams on a shared connection
        return (new_delta((ev.s, ev.b, ev.a, ev.U, ev.u, None)),)

    return decode


_rest_depth = msgspec.json.Decoder(_RestDepth, strict=False).decode


def parse_rest_snapshot(symbol: str, body: bytes) -> Snapshot:
    """Read a ``/api/v3/depth`` answer."""
    try:
        snap = _rest_depth(body)
    except msgspec.DecodeError as exc:
        raise ParseError(f"bad depth snapshot for {symbol}: {exc}") from None
    return Snapshot(symbol, snap.bids, snap.asks, snap.lastUpdateId)


SPEC = VenueSpec(
    name="binance",
    ws_url="wss://stream.binance.com:9443/ws",
    rest_url="https://api.binance.com",
    symbol=str.upper,
    control=control,
    snapshot=SnapshotChannel(
        subscribe_many,
        make_decoder,
        CHANNEL_DEPTH,
        is_book,
        Liveness(LivenessKind.CADENCE, 3.0, "depth20@100ms is pushed every 100 ms"),
        route=route,
        route_key=route_key,
        route_setup=(SET_COMBINED,),
    ),
    diff=DiffChannel(
        subscribe=diff_subscribe,
        unsubscribe=diff_unsubscribe,
        make_decoder=make_diff_decoder,
        rest_snapshot="/api/v3/depth?symbol={symbol}&limit=1000",
        parse_rest_snapshot=parse_rest_snapshot,
        continuity=True,
        numeric=True,
        liveness=Liveness(LivenessKind.PINGS, 60.0, "diffs only on change; the server pings every 20 s"),
    ),
    default_channel="snapshot",
    symbol_check=SymbolCheck("/api/v3/exchangeInfo?symbol={symbol}", symbol_rejected),
    limits=Limits(
        connects=Rate(300, 300.0),
        messages=Rate(3, 1.0),
        rest=Rate(40, 60.0),
        symbols_per_connection=MAX_STREAMS,
    ),
)
