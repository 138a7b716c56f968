"""Binance spot market streams and REST, as the live venue speaks them.

WebSocket: ``/ws`` and ``/ws/<s1>/<s2>`` (raw payloads) and ``/stream`` and
``/stream?streams=<s1>/<s2>`` (payloads wrapped as ``{"stream":..,"data":..}``);
requests SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY and
GET_PROPERTY. Data: partial book depth ``<symbol>@depth<5|10|20>[@100ms]``
and diff depth ``<symbol>@depth[@100ms]`` (``depthUpdate`` events).
A well-formed stream for a symbol that is not listed (or of a kind the
simulator does not produce) is acknowledged and never sends data, as on the
live venue. REST: ``/api/v3/ping``, ``/api/v3/time``, ``/api/v3/exchangeInfo``
and ``/api/v3/depth``. All JSON is compact, like the venue's.

Diff depth follows the venue's documented local-book procedure exactly: each
symbol has one update-id sequence (its book's ``update_id``, which grows at
every change) shared by the events and ``/api/v3/depth``'s ``lastUpdateId``.
An event covers ids ``U..u`` with ``U`` one past the previous event's ``u``
on that stream, and lists every level changed in any market step of that
range with its amount at ``u`` (``0.00000000``: removed). So a snapshot taken
at any id ``L`` plus the events with ``u > L`` rebuild the book exactly.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass

from dragonfly.sim.book import BookChanges, SimBook, units_text
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.http import HttpReply, json_reply
from dragonfly.sim.instruments import Instrument, pow10
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.peer import Peer
from dragonfly.sim.server import BookState, Session, VenueConfig, VenueServer

_STREAM = re.compile(r"^([a-z0-9]+)@depth(5|10|20)(?:@(100ms|1000ms))?$")
_DIFF_STREAM = re.compile(r"^([a-z0-9]+)@depth(?:@(100ms|1000ms))?$")
_SYMBOL = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_LIMIT = re.compile(r"^[0-9]{1,20}$")
_SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
#: Printed decimals of every Binance price and quantity.
DECIMALS = 8
DEPTH_DEFAULT = 100
DEPTH_MAX = 5000


@dataclass(frozen=True)
class DepthStream:
    """A partial book depth stream of a listed instrument."""

    instrument: str
    depth: int
    slow: bool  # 1000 ms cadence (no speed suffix, or @1000ms)


@dataclass(frozen=True)
class DiffStream:
    """A diff depth stream of a listed instrument (names for the same one compare equal)."""

    instrument: str
    slow: bool  # 1000 ms cadence (no speed suffix, or @1000ms)


class DiffFeed:
    """The state of one diff stream: where its last event ended and what changed since."""

    def __init__(self, book: SimBook) -> None:
        """Start at ``book``'s current update id, recording its changes from now on."""
        self.book = book
        self.changes: BookChanges = book.watch()
        #: ``u`` of the last event (sent or skipped); the next one starts at last_id + 1.
        self.last_id = book.update_id
        #: Drop (do not send) the next event, as if the venue lost it.
        self.skip_next = False

    def next_event(self, symbol: str, event_ms: int) -> bytes | None:
        """Return the event covering ids since the last one, or None if nothing changed.

        The event lists every changed price with its current amount (0 if gone).
        """
        book = self.book
        if book.update_id == self.last_id:
            return None
        bids = sorted(((p, book.bids.get(p, 0)) for p in self.changes.bids), reverse=True)
        asks = sorted((p, book.asks.get(p, 0)) for p in self.changes.asks)
        first, self.last_id = self.last_id + 1, book.update_id
        self.changes.clear()
        return encode_diff(event_ms, symbol, first, self.last_id,
                           book.text_side(bids), book.text_side(asks))

    def close(self) -> None:
        """Stop recording the book's changes."""
        self.book.unwatch(self.changes)


def parse_stream(name: str, listed: dict[str, Instrument]) -> DepthStream | DiffStream | None:
    """Return the data stream ``name`` names, or None if it produces no data here."""
    match = _STREAM.match(name)
    if match is not None and match.group(1) in listed:
        return DepthStream(match.group(1), int(match.group(2)), match.group(3) != "100ms")
    match = _DIFF_STREAM.match(name)
    if match is not None and match.group(1) in listed:
        return DiffStream(match.group(1), match.group(2) != "100ms")
    return None


def encode_side(levels: list[tuple[str, str]]) -> str:
    """Encode levels as a compact JSON array of [price, amount] strings."""
    return "[" + ",".join(f'["{p}","{a}"]' for p, a in levels) + "]"


def encode_depth(update_id: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]
                 ) -> bytes:
    """Encode a partial book depth payload (also the REST depth body)."""
    return (
        f'{{"lastUpdateId":{update_id},"bids":{encode_side(bids)},'
        f'"asks":{encode_side(asks)}}}'
    ).encode()


def encode_diff(event_ms: int, symbol: str, first: int, last: int,
                bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bytes:
    """Encode a ``depthUpdate`` event covering update ids ``first..last``."""
    return (
        f'{{"e":"depthUpdate","E":{event_ms},"s":"{symbol}","U":{first},"u":{last},'
        f'"b":{encode_side(bids)},"a":{encode_side(asks)}}}'
    ).encode()


def _valid_id(value: object) -> bool:
    # The venue takes a 64-bit signed integer, a string of up to 36 characters, or null.
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, str) and len(value) <= 36


class BinanceSession(Session):
    """A Binance client: raw or combined payloads, plus streams named in the path."""

    def __init__(self, server: BinanceServer, combined: bool, streams: list[str]) -> None:
        """Bind to ``server``; ``streams`` are subscribed once connected."""
        super().__init__(server)
        self.combined = combined
        self.initial = streams


def ws_endpoint(path: str, query: dict[str, str]) -> tuple[bool, list[str]] | None:
    """Return (combined, stream names in the path) of a WebSocket path, or None for 404.

    Accepted: /ws, /ws/<streams>, /stream and /stream?streams=<streams>.
    """
    if path in ("/ws", "/ws/"):
        return False, []
    if path.startswith("/ws/"):
        return False, [s for s in path[4:].split("/") if s]
    if path in ("/stream", "/stream/"):
        return True, [s for s in query.get("streams", "").split("/") if s]
    return None


class BinanceServer(VenueServer[BinanceSession]):
    """The Binance spot market-data endpoint on one port."""

    name = "binance"
    ws_path = "/ws"
    # The live venue PINGs every 20 s, drops a client silent to PINGs for a minute
    # and allows 5 incoming messages per second. Its serverShutdown notice states no
    # delay before the close; clients report about ten minutes.
    default_config = VenueConfig(
        period_s=0.1, slow_factor=10, ping_interval_s=20.0, pong_timeout_s=60.0,
        max_msgs_per_s=5, reconnect_grace_s=600.0,
    )
    capabilities = Capabilities("binance", sequenced=True, notice=True, rest_snapshots=True)

    def __init__(self, market: SyntheticMarket, config: VenueConfig, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, rest_port: int = 0) -> None:
        """Prepare the server; see VenueServer."""
        super().__init__(market, config, host, port, ssl_context, rest_port)
        # Stream name -> what it publishes (None: acknowledged, never sends data).
        self._streams: dict[str, DepthStream | DiffStream | None] = {}
        # Diff stream -> its state, while any name of it has a subscriber.
        self._feeds: dict[DiffStream, DiffFeed] = {}

    # -- WebSocket -----------------------------------------------------------

    def open_session(self, path: str, query: dict[str, str]) -> BinanceSession | None:
        """Accept /ws, /ws/<streams>, /stream and /stream?streams=<streams>."""
        endpoint = ws_endpoint(path, query)
        return None if endpoint is None else BinanceSession(self, *endpoint)

    def on_open(self, session: BinanceSession) -> None:
        """Subscribe the streams named in the connection path."""
        for name in session.initial:
            self._subscribe(session, name)

    def _subscribe(self, session: BinanceSession, name: str) -> None:
        if name not in self._streams:
            self._streams[name] = parse_stream(name, self.market.instruments)
        stream = self._streams[name]
        if isinstance(stream, DiffStream) and stream not in self._feeds:
            self._feeds[stream] = DiffFeed(self.market.book(self.name, stream.instrument))
        self.subscribe(session, name)

    def unsubscribe(self, session: BinanceSession, key: str) -> bool:
        """Remove ``session`` from stream ``key``; end a diff stream nobody follows."""
        removed = super().unsubscribe(session, key)
        stream = self._streams.get(key)
        if (removed and isinstance(stream, DiffStream) and stream in self._feeds
                and not any(self._streams.get(name) == stream for name in self.channels)):
            self._feeds.pop(stream).close()
        return removed

    def notice_frame(self, peer: Peer) -> bytes:
        """Return ``serverShutdown``, sent as is on raw and combined streams alike.

        The venue documents the event, not a combined-stream wrapping for it (it
        belongs to no stream), so it is never wrapped.
        """
        return server_shutdown()

    def book_seq(self, book: SimBook) -> int:
        """Return the update id: ``lastUpdateId`` of depth frames and snapshots, ``u`` of diff events."""
        return book.update_id

    def skip_update(self, instrument: str) -> int:
        """Drop the next event of every diff stream of ``instrument``; return how many.

        The following event then starts past the dropped one's range (its ``U``
        jumps), as when the venue loses a message.
        """
        count = 0
        for stream, feed in self._feeds.items():
            if stream.instrument == instrument:
                feed.skip_next = True
                count += 1
        return count

    def on_message(self, session: BinanceSession, payload: bytes) -> None:
        """Answer one request frame."""
        try:
            message = json.loads(payload)
        except UnicodeDecodeError:
            self._error(session, 3, "Invalid JSON: invalid UTF-8 sequence", omit_id=True)
            return
        except json.JSONDecodeError as exc:
            detail = exc.msg[:1].lower() + exc.msg[1:]
            text = f"Invalid JSON: {detail} at line {exc.lineno} column {exc.colno}"
            self._error(session, 3, text, omit_id=True)
            return
        if not isinstance(message, dict):
            self._error(session, 2, "Invalid request: expected a JSON object")
            return
        req_id = message.get("id")
        if not _valid_id(req_id):
            self._error(session, 2, "Invalid request: request ID must be an integer, "
                        "a string of at most 36 characters or null")
            return
        method = message.get("method")
        if method is None:
            self._error(session, 2, "Invalid request: missing field `method`", req_id)
        elif method not in _METHODS:
            expected = ", ".join(f"`{m}`" for m in _METHODS)
            self._error(session, 2, f"Invalid request: unknown variant `{method}`, "
                        f"expected one of {expected}", req_id)
        elif method == "LIST_SUBSCRIPTIONS":
            self._result(session, list(session.subs), req_id)
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            self._property(session, method, message.get("params"), req_id)
        else:
            self._streams_request(session, method, message.get("params"), req_id)

    def _streams_request(self, session: BinanceSession, method: str, params: object,
                         req_id: object) -> None:
        if params is None:
            self._error(session, 2, "Invalid request: missing field `params`", req_id)
            return
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            self._error(session, 2, "Invalid request: params must be an array of "
                        "stream names (strings)", req_id)
            return
        for name in params:
            if method == "SUBSCRIBE":
                self._subscribe(session, name)
            else:
                self.unsubscribe(session, name)
        self._result(session, None, req_id)

    def _property(self, session: BinanceSession, method: str, params: object,
                  req_id: object) -> None:
        arity = 2 if method == "SET_PROPERTY" else 1
        if not isinstance(params, list) or len(params) != arity:
            self._error(session, 2, f"Invalid request: {method} takes {arity} parameter(s)",
                        req_id)
        elif not isinstance(params[0], str):
            self._error(session, 2, "Invalid request: property name must be a string", req_id)
        elif params[0] != "combined":
            self._error(session, 0, "Unknown property", req_id)
        elif method == "GET_PROPERTY":
            self._result(session, session.combined, req_id)
        elif not isinstance(params[1], bool):
            self._error(session, 1, "Invalid value type: expected Boolean", req_id)
        else:
            session.combined = params[1]
            self._result(session, None, req_id)

    @staticmethod
    def _result(session: BinanceSession, result: object, req_id: object) -> None:
        session.send(json.dumps({"result": result, "id": req_id}, separators=(",", ":")).encode())

    @staticmethod
    def _error(session: BinanceSession, code: int, msg: str, req_id: object = None,
               *, omit_id: bool = False) -> None:
        body: dict[str, object] = {"error": {"code": code, "msg": msg}}
        if not omit_id:
            body["id"] = req_id
        session.send(json.dumps(body, separators=(",", ":")).encode())

    def publish(self, tick: int) -> None:
        """Send every subscribed stream due this period, encoded once each."""
        sent_ns = time.time_ns()
        slow_due = tick % self.config.slow_factor == 0
        # Diff stream -> its event this period (None: nothing changed, or dropped).
        events: dict[DiffStream, bytes | None] = {}
        for name, sessions in list(self.channels.items()):
            stream = self._streams.get(name)
            if stream is None or (stream.slow and not slow_due):
                continue
            if isinstance(stream, DiffStream):
                if stream not in events:
                    events[stream] = self._diff_event(stream, sent_ns // 1_000_000)
                event = events[stream]
                if event is not None:
                    self._send(name, event, sessions)
                continue
            book = self.market.book(self.name, stream.instrument)
            bids, asks = book.sorted_levels()
            bids, asks = bids[: stream.depth], asks[: stream.depth]
            raw = encode_depth(book.update_id, book.text_side(bids), book.text_side(asks))
            if self._send(name, raw, sessions):
                self.record(stream.instrument, book.float_side(bids), book.float_side(asks),
                            sent_ns)

    def _diff_event(self, stream: DiffStream, event_ms: int) -> bytes | None:
        feed = self._feeds.get(stream)
        if feed is None:
            return None
        event = feed.next_event(stream.instrument.upper(), event_ms)
        if event is not None and feed.skip_next:
            feed.skip_next = False
            return None
        if event is not None and self.faults.skips and self.faults.skip(stream.instrument):
            return None
        return event

    def _send(self, name: str, raw: bytes, sessions: dict[BinanceSession, None]) -> int:
        """Send ``raw`` to raw sessions and wrapped to combined ones; return how many."""
        wrapped = b""
        sent = 0
        for session in list(sessions):
            if not session.combined:
                sent += session.send_book(raw)
                continue
            if not wrapped:
                wrapped = b'{"stream":"%s","data":%s}' % (name.encode(), raw)
            sent += session.send_book(wrapped)
        self.sent_count += sent
        return sent

    # -- REST --------------------------------------------------------------------

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Serve /api/v3/ping, /time, /exchangeInfo and /depth."""
        if path == "/api/v3/ping":
            return json_reply({})
        if path == "/api/v3/time":
            return json_reply({"serverTime": time.time_ns() // 1_000_000})
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info(query)
        if path == "/api/v3/depth":
            return self._depth(query)
        return None

    def _lookup(self, symbol: str) -> Instrument | None:
        return self.market.instrument(symbol.lower())

    def _exchange_info(self, query: dict[str, str]) -> HttpReply:
        if "symbol" in query and "symbols" in query:
            return _rest_error(-1128, "Combination of optional parameters invalid.")
        if "symbol" in query:
            symbols: list[str] = [query["symbol"]]
        elif "symbols" in query:
            try:
                parsed = json.loads(query["symbols"])
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                return _illegal("symbols", _SYMBOLS_RANGE)
            symbols = parsed
        else:
            symbols = [name.upper() for name in self.market.instruments]
        entries = []
        for symbol in symbols:
            if not _SYMBOL.match(symbol):
                return _illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
            instrument = self._lookup(symbol)
            if instrument is None:
                return _rest_error(-1121, "Invalid symbol.")
            entries.append(self._symbol_info(instrument))
        return json_reply({
            "timezone": "UTC",
            "serverTime": time.time_ns() // 1_000_000,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": entries,
        })

    def _symbol_info(self, instrument: Instrument) -> dict[str, object]:
        spec = instrument.specs[self.name]
        tick = units_text(spec.tick_units, spec.price_decimals)
        step = units_text(spec.lot_units, spec.amount_decimals)
        max_price = units_text(round(instrument.mid * 1000) * pow10(DECIMALS), DECIMALS)
        return {
            "symbol": instrument.name.upper(),
            "status": "TRADING",
            "baseAsset": instrument.base,
            "baseAssetPrecision": DECIMALS,
            "quoteAsset": instrument.quote,
            "quotePrecision": DECIMALS,
            "quoteAssetPrecision": DECIMALS,
            "baseCommissionPrecision": DECIMALS,
            "quoteCommissionPrecision": DECIMALS,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": max_price,
                 "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000000.00000000",
                 "stepSize": step},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _depth(self, query: dict[str, str]) -> HttpReply:
        symbol = query.get("symbol", "")
        if not symbol:
            return _rest_error(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null,"
                               " or malformed.")
        if not _SYMBOL.match(symbol):
            return _illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
        limit_text = query.get("limit", str(DEPTH_DEFAULT))
        if not _LIMIT.match(limit_text):
            return _illegal("limit", "^[0-9]{1,20}$")
        instrument = self._lookup(symbol)
        if instrument is None:
            return _rest_error(-1121, "Invalid symbol.")
        return self.encode_snapshot(self.book_state(instrument.name), query)

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the instrument of a valid ``/api/v3/depth`` request, else None."""
        if path != "/api/v3/depth" or not _LIMIT.match(query.get("limit", str(DEPTH_DEFAULT))):
            return None
        symbol = query.get("symbol", "")
        instrument = self._lookup(symbol) if _SYMBOL.match(symbol) else None
        return None if instrument is None else instrument.name

    def encode_snapshot(self, state: BookState, query: dict[str, str]) -> HttpReply:
        """Return the ``/api/v3/depth`` body of ``state``, ``limit`` levels per side."""
        # The venue truncates a limit above the maximum rather than refusing it.
        limit = min(max(int(query.get("limit", str(DEPTH_DEFAULT))), 1), DEPTH_MAX)
        book: SimBook = self.market.book(self.name, self._instrument_of(query))
        body = encode_depth(state.update_id, book.text_side(state.bids[:limit]),
                            book.text_side(state.asks[:limit]))
        return HttpReply(200, body)

    def _instrument_of(self, query: dict[str, str]) -> str:
        instrument = self._lookup(query.get("symbol", ""))
        assert instrument is not None, "encode_snapshot of an unlisted symbol"
        return instrument.name

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error body for ``status``."""
        return rest_error_reply(status)


def server_shutdown() -> bytes:
    """Return the ``serverShutdown`` event, stamped now."""
    return b'{"e":"serverShutdown","E":%d}' % (time.time_ns() // 1_000_000)


#: The venue's error (code, message) by HTTP status, for ``rest-error``.
_STATUS_ERRORS = {
    429: (-1003, "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
          "Please use the websocket for live updates to avoid polling the API."),
    418: (-1003, "Way too much request weight used; IP banned until {until}. Please use the "
          "websocket for live updates to avoid bans."),
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few "
          "minutes."),
}


def rest_error_reply(status: int) -> HttpReply:
    """Return the venue's answer with ``status``: ``{"code":..,"msg":..}``."""
    code, msg = _STATUS_ERRORS.get(status, (-1000, "An unknown error occurred while processing "
                                                   "the request."))
    until = time.time_ns() // 1_000_000 + 120_000
    return _rest_error(code, msg.replace("{until}", str(until)), status)


def _rest_error(code: int, msg: str, status: int = 400) -> HttpReply:
    return json_reply({"code": code, "msg": msg}, status)


def _illegal(param: str, pattern: str) -> HttpReply:
    return _rest_error(-1100, f"Illegal characters found in parameter '{param}'; "
                       f"legal range is '{pattern}'.")
