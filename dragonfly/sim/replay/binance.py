"""Binance spot replay: recorded ``<sym>@depth@100ms`` diffs served as the live venue does.

Recorded: a combined-stream connection (``/stream?streams=...``), every event
wrapped ``{"stream":"nknusdt@depth@100ms","data":{...depthUpdate...}}``, among
bookTicker / kline / aggTrade streams. (A raw ``/ws`` capture of bare
``depthUpdate`` events is read too.)

Served (current protocol, docs/protocols.md):

* ``/ws``: the recorded ``data`` bytes unchanged (the event alone);
  ``/stream``: the recorded wrapper bytes unchanged. Streams may also be named
  in the path (``/ws/<s1>/<s2>``, ``/stream?streams=<s1>/<s2>``).
* SUBSCRIBE / UNSUBSCRIBE ``<sym>@depth@100ms`` (or ``<sym>@depth``) ->
  ``{"result":null,"id":N}``; LIST_SUBSCRIPTIONS; SET/GET_PROPERTY
  ``combined``. A well-formed stream that was not recorded is acknowledged
  and sends nothing, as on the live venue; bad requests get
  ``{"error":{"code":2,"msg":..},"id":N}``. Other recorded streams and the
  recorded acks are never replayed.
* REST ``/api/v3/depth`` (and the older ``/api/v1/depth``): the recorded
  ``/api/v3/depth`` snapshot of ``symbol`` (``limit`` ignored); unknown symbol
  -> ``400 {"code":-1121,"msg":"Invalid symbol."}``. ``/api/v3/exchangeInfo``
  lists the recorded symbols only (their entries from the recorded
  ``BINANCE.0`` header when present), so a symbol check fails fast for a
  symbol the recording lacks. ``/api/v3/ping`` and ``/api/v3/time``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from dragonfly.recording import Opened, Received, Record, Sent
from dragonfly.sim.binance import rest_error_reply, server_shutdown, ws_endpoint
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.http import HttpReply, json_reply
from dragonfly.sim.peer import Peer
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    compact,
    loads,
)

_DEPTH = re.compile(r"^([a-z0-9]+)@depth(?:@100ms)?$")
_WRAPPED = re.compile(rb'^\{"stream":"([^"]+)","data":(\{.*\})\}$', re.DOTALL)
_LAST_UPDATE_ID = re.compile(rb'"lastUpdateId":(\d+)')
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


def depth_symbol(stream: str) -> str | None:
    """Return the symbol (``NKNUSDT``) of a diff depth stream name, or None."""
    match = _DEPTH.match(stream)
    return match.group(1).upper() if match else None


def _streams_of(url: str) -> list[str]:
    parts = urlsplit(url)
    names = parse_qs(parts.query).get("streams", [""])[0].split("/")
    if parts.path.startswith("/ws/"):
        names += parts.path[4:].split("/")
    return [n for n in names if n]


def translate(records: Sequence[Record], report: Report) -> Track:
    """Keep the recorded diff depth events, raw and wrapped; list the symbols subscribed."""
    symbols: dict[str, None] = {}
    frames: list[Frame] = []
    for record in records:
        if isinstance(record, Opened):
            for stream in _streams_of(record.url):
                symbol = depth_symbol(stream)
                if symbol:
                    symbols[symbol] = None
        elif isinstance(record, Sent):
            request = loads(record.payload, report, record.line)
            if isinstance(request, dict) and request.get("method") == "SUBSCRIBE":
                for stream in request.get("params") or ():
                    symbol = depth_symbol(stream) if isinstance(stream, str) else None
                    if symbol:
                        symbols[symbol] = None
        elif isinstance(record, Received):
            frame = _frame(record, report)
            if frame is not None:
                symbols.setdefault(frame.symbol, None)
                frames.append(frame)
    return Track(frames, list(symbols))


def _frame(record: Received, report: Report) -> Frame | None:
    payload = record.payload
    if payload.startswith(b'{"stream"'):
        if b"@depth" not in payload[:64]:
            return None
        message = loads(payload, report, record.line)
        if not isinstance(message, dict):
            return None
        stream, data = message.get("stream"), message.get("data")
        symbol = depth_symbol(stream) if isinstance(stream, str) else None
        if symbol is None or not isinstance(data, dict) or data.get("e") != "depthUpdate":
            return None
        match = _WRAPPED.match(payload)
        # The exact recorded bytes of the event when the wrapper has the usual shape.
        raw = match.group(2) if match else compact(data)
        return Frame(record.ts, symbol, raw, payload)
    if b'"depthUpdate"' not in payload:
        return None
    event = loads(payload, report, record.line)
    if not isinstance(event, dict) or not isinstance(event.get("s"), str):
        report(record.line, "depthUpdate event without a symbol")
        return None
    symbol = event["s"].upper()
    wrapped = b'{"stream":"%s@depth@100ms","data":%s}' % (symbol.lower().encode(), payload)
    return Frame(record.ts, symbol, payload, wrapped)


class BinanceSession(ReplaySession):
    """A Binance client: raw or combined payloads, its stream names."""

    def __init__(self, conn: ReplayConnection, combined: bool, streams: list[str]) -> None:
        """Bind to ``conn``; ``streams`` (named in the path) are subscribed once connected."""
        super().__init__(conn)
        self.combined = combined
        self.initial = streams
        #: Subscribed stream names, recorded or not, in subscription order.
        self.streams: dict[str, None] = {}


class BinanceReplay(ReplayConnection):
    """A recorded Binance spot connection."""

    venue = "binance"
    ws_path = "/ws"
    capabilities = Capabilities("binance", sequenced=True, notice=True, rest_snapshots=True)
    # serverShutdown states no delay before the close; clients report about ten minutes.
    notice_grace_s = 600.0

    translate = staticmethod(translate)

    def notice_frame(self, peer: Peer) -> bytes:
        """Return ``serverShutdown`` (never wrapped: it belongs to no stream)."""
        return server_shutdown()

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the symbol of a depth request for a recorded snapshot."""
        symbol = query.get("symbol", "").upper()
        if path in ("/api/v3/depth", "/api/v1/depth") and self.snapshots.get(symbol):
            return symbol
        return None

    def restamp(self, body: bytes, ahead: int) -> bytes:
        """Move ``lastUpdateId`` ``ahead`` updates on."""
        return _LAST_UPDATE_ID.sub(lambda m: b'"lastUpdateId":%d' % (int(m.group(1)) + ahead), body, 1)

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error body for ``status``."""
        return rest_error_reply(status)

    @classmethod
    def snapshot_symbol(cls, url: str) -> str | None:
        """Return ``symbol`` of a recorded ``/api/v*/depth`` URL."""
        parts = urlsplit(url)
        if not parts.path.endswith("/depth"):
            return None
        symbol = parse_qs(parts.query).get("symbol", [""])[0]
        return symbol.upper() or None

    # -- WebSocket ---------------------------------------------------------------

    def open_session(self, path: str, query: dict[str, str]) -> BinanceSession | None:
        """Accept /ws, /ws/<streams>, /stream and /stream?streams=<streams>."""
        endpoint = ws_endpoint(path, query)
        return None if endpoint is None else BinanceSession(self, *endpoint)

    def on_open(self, session: ReplaySession) -> None:
        """Subscribe the streams named in the path."""
        assert isinstance(session, BinanceSession)
        for name in session.initial:
            self._subscribe(session, name)

    def encode(self, session: ReplaySession, frame: Frame) -> bytes:
        """The bare event, or its combined-stream wrapping."""
        if frame.alt is not None and cast(BinanceSession, session).combined:
            return frame.alt
        return frame.data

    def _subscribe(self, session: BinanceSession, name: str) -> None:
        session.streams[name] = None
        symbol = depth_symbol(name)
        if symbol is not None:
            self.subscribe(session, symbol)

    def _unsubscribe(self, session: BinanceSession, name: str) -> None:
        session.streams.pop(name, None)
        symbol = depth_symbol(name)
        # Both spellings name one recorded stream; keep it while either is subscribed.
        if symbol is not None and not any(depth_symbol(s) == symbol for s in session.streams):
            self.unsubscribe(session, symbol)

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer one request frame."""
        assert isinstance(session, BinanceSession)
        try:
            message = json.loads(payload)
        except ValueError as exc:
            session.send(compact({"error": {"code": 3, "msg": f"Invalid JSON: {exc}"}}))
            return
        if not isinstance(message, dict):
            _error(session, 2, "Invalid request: expected a JSON object", None)
            return
        req_id = message.get("id")
        method = message.get("method")
        params = message.get("params")
        if method not in _METHODS:
            expected = ", ".join(f"`{m}`" for m in _METHODS)
            _error(session, 2, f"Invalid request: unknown variant `{method}`, expected one of "
                   f"{expected}", req_id)
        elif method == "LIST_SUBSCRIPTIONS":
            _result(session, list(session.streams), req_id)
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            if not isinstance(params, list) or not params or params[0] != "combined":
                _error(session, 0, "Unknown property", req_id)
            elif method == "GET_PROPERTY":
                _result(session, session.combined, req_id)
            elif len(params) != 2 or not isinstance(params[1], bool):
                _error(session, 1, "Invalid value type: expected Boolean", req_id)
            else:
                session.combined = params[1]
                _result(session, None, req_id)
        elif not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            _error(session, 2, "Invalid request: params must be an array of stream names", req_id)
        else:
            for name in params:
                if method == "SUBSCRIBE":
                    self._subscribe(session, name)
                else:
                    self._unsubscribe(session, name)
            _result(session, None, req_id)

    # -- REST ----------------------------------------------------------------------

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Serve the recorded depth snapshots, exchangeInfo, ping and time."""
        if path in ("/api/v3/depth", "/api/v1/depth"):
            symbol = query.get("symbol", "")
            if not symbol:
                return _rest_error(-1102, "Mandatory parameter 'symbol' was not sent, was "
                                   "empty/null, or malformed.")
            body = self.snapshot(symbol.upper())
            return HttpReply(200, body) if body is not None else _rest_error(-1121, "Invalid symbol.")
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info(query)
        if path == "/api/v3/ping":
            return json_reply({})
        if path == "/api/v3/time":
            return json_reply({"serverTime": time.time_ns() // 1_000_000})
        return None

    def _exchange_info(self, query: dict[str, str]) -> HttpReply:
        wanted: list[str] | None
        if "symbol" in query:
            wanted = [query["symbol"]]
        elif "symbols" in query:
            try:
                parsed = json.loads(query["symbols"])
            except ValueError:
                parsed = None
            if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
                return _rest_error(-1100, "Illegal characters found in parameter 'symbols'.")
            wanted = parsed
        else:
            wanted = list(self.symbols)
        entries = self._entries
        found = []
        for symbol in wanted:
            entry = entries.get(symbol.upper())
            if entry is None:
                return _rest_error(-1121, "Invalid symbol.")
            found.append(entry)
        return json_reply({"timezone": "UTC", "serverTime": time.time_ns() // 1_000_000,
                           "rateLimits": [], "exchangeFilters": [], "symbols": found})

    @cached_property
    def _entries(self) -> dict[str, dict[str, Any]]:
        """exchangeInfo entries of the recorded symbols (parsed from the header once)."""
        recorded: dict[str, dict[str, Any]] = {}
        for response in self.header:
            if urlsplit(response.url).path.endswith("/exchangeInfo"):
                try:
                    info = json.loads(response.body)
                except ValueError:
                    continue
                for entry in info.get("symbols", ()) if isinstance(info, dict) else ():
                    if isinstance(entry, dict) and isinstance(entry.get("symbol"), str):
                        recorded[entry["symbol"]] = entry
        return {s: recorded.get(s, {"symbol": s, "status": "TRADING"}) for s in self.symbols}


def _result(session: ReplaySession, result: object, req_id: object) -> None:
    session.send(compact({"result": result, "id": req_id}))


def _error(session: ReplaySession, code: int, msg: str, req_id: object) -> None:
    session.send(compact({"error": {"code": code, "msg": msg}, "id": req_id}))


def _rest_error(code: int, msg: str) -> HttpReply:
    return json_reply({"code": code, "msg": msg}, 400)
