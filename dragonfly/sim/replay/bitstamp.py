"""Bitstamp replay: recorded ``diff_order_book_<pair>`` events, native (bytes unchanged).

Recorded: WebSocket API v2 on ``wss://ws.bitstamp.net/``, ``bts:subscribe``
to ``diff_order_book_<pair>`` (and ``live_trades_<pair>``); data events
``{"data":{timestamp,microtimestamp,bids,asks},"channel":..,"event":"data"}``.
The protocol is current, so the recorded event bytes are sent unchanged.

Served on ``/``: ``bts:subscribe`` / ``bts:unsubscribe`` of
``diff_order_book_<pair>`` for a recorded pair ->
``{"event":"bts:subscription_succeeded","channel":..,"data":{}}`` (resp.
``bts:unsubscription_succeeded``); any other channel ->
``bts:error`` "Bad subscription string."; ``bts:heartbeat`` answered.
Trades and the recorded acks are not replayed. REST
``/api/v2/order_book/<pair>/`` (trailing slash optional): the recorded
snapshot; unknown pair -> 404. ``/api/v2/trading-pairs-info/``: the recorded
``BITSTAMP.0`` header body, when present.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.bitstamp import BAD_JSON as BAD_JSON
from dragonfly.sim.bitstamp import BAD_SUBSCRIPTION as BAD_SUBSCRIPTION
from dragonfly.sim.bitstamp import read_request, rest_error_reply
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

PREFIX = "diff_order_book_"
_BOOK_PATH = re.compile(r"^/api/v2/order_book/([a-z0-9]+)/?$")
HEARTBEAT = b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
RECONNECT = b'{"event":"bts:request_reconnect","channel":"","data":""}'
_MICROS = re.compile(rb'"microtimestamp": ?"(\d+)"')
_SECONDS = re.compile(rb'"timestamp": ?"(\d+)"')


def translate(records: Sequence[Record], report: Report) -> Track:
    """Keep the recorded diff_order_book data events; list the pairs subscribed."""
    pairs: dict[str, None] = {}
    frames: list[Frame] = []
    for record in records:
        if isinstance(record, Sent):
            request = loads(record.payload, report, record.line)
            if not isinstance(request, dict) or request.get("event") != "bts:subscribe":
                continue
            data = request.get("data")
            channel = data.get("channel") if isinstance(data, dict) else None
            if isinstance(channel, str) and channel.startswith(PREFIX):
                pairs[channel[len(PREFIX):]] = None
        elif isinstance(record, Received) and b'"diff_order_book_' in record.payload:
            event = loads(record.payload, report, record.line)
            if not isinstance(event, dict) or event.get("event") != "data":
                continue
            channel = event.get("channel")
            if isinstance(channel, str) and channel.startswith(PREFIX):
                pair = channel[len(PREFIX):]
                pairs.setdefault(pair, None)
                frames.append(Frame(record.ts, pair, record.payload))
    return Track(frames, list(pairs))


class BitstampReplay(ReplayConnection):
    """A recorded Bitstamp connection."""

    venue = "bitstamp"
    ws_path = "/"
    # Diff events carry a microtimestamp, no sequence number.
    capabilities = Capabilities("bitstamp", notice=True, rest_snapshots=True)

    translate = staticmethod(translate)

    def notice_frame(self, peer: Peer) -> bytes:
        """Return ``bts:request_reconnect``."""
        return RECONNECT

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the pair of an order book request for a recorded snapshot."""
        match = _BOOK_PATH.match(path)
        return match.group(1) if match and self.snapshots.get(match.group(1)) else None

    def restamp(self, body: bytes, ahead: int) -> bytes:
        """Move ``microtimestamp`` ``ahead`` microseconds on."""
        return _add(_MICROS, body, ahead)

    _last_frame: Frame | None = None
    _last_bytes = b""

    def encode(self, session: ReplaySession, frame: Frame) -> bytes:
        """Return the recorded event with its stamps moved to the replay's clock."""
        if frame is not self._last_frame:  # once per frame, whatever the number of clients
            self._last_frame = frame
            self._last_bytes = self._shifted(frame.data)
        return self._last_bytes

    def served_snapshot(self, ts: float, body: bytes) -> bytes:
        """Return the recorded snapshot with its stamps moved to the replay's clock."""
        return self._shifted(body)

    def _shifted(self, body: bytes) -> bytes:
        """Move the first ``microtimestamp`` of ``body`` to the replay's clock, and ``timestamp`` with it.

        ``timestamp`` (seconds) moves by as many whole seconds as the microsecond
        stamp's second changed, so a recorded ``timestamp == microtimestamp // 10**6``
        still holds.
        """
        match = _MICROS.search(body)
        if match is None:
            return body
        micros = int(match.group(1))
        shift = self.clock_shift_us(micros)
        if not shift:
            return body
        body = _add(_MICROS, body, shift)
        return _add(_SECONDS, body, (micros + shift) // 1_000_000 - micros // 1_000_000)

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error body for ``status``."""
        return rest_error_reply(status)

    @classmethod
    def snapshot_symbol(cls, url: str) -> str | None:
        """Return the pair of a recorded ``/api/v2/order_book/<pair>`` URL."""
        match = _BOOK_PATH.match(urlsplit(url).path)
        return match.group(1) if match else None

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Accept the root path only."""
        return ReplaySession(self) if path in ("", "/") else None

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer one client event."""
        request = read_request(
            payload, lambda c: c.startswith(PREFIX) and self.knows(c[len(PREFIX):]),
            HEARTBEAT, _error)
        if isinstance(request, bytes):
            session.send(request)
            return
        event, channel = request
        pair = channel[len(PREFIX):]
        if event == "bts:subscribe":
            self.subscribe(session, pair)
            reply = "bts:subscription_succeeded"
        else:
            self.unsubscribe(session, pair)
            reply = "bts:unsubscription_succeeded"
        session.send(compact({"event": reply, "channel": channel, "data": {}}))

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Serve the recorded order book snapshots and trading-pairs-info."""
        if path.rstrip("/") == "/api/v2/trading-pairs-info":
            for response in self.header:
                if urlsplit(response.url).path.rstrip("/") == "/api/v2/trading-pairs-info":
                    return HttpReply(200, response.body)
            return None
        match = _BOOK_PATH.match(path)
        if match is None:
            return None
        body = self.snapshot(match.group(1))
        if body is None:
            return json_reply({"status": "error", "reason": "Invalid currency pair."}, 404,
                              compact=False)
        return HttpReply(200, body)


def _add(stamp: re.Pattern[bytes], body: bytes, amount: int) -> bytes:
    """Add ``amount`` to the number of the first match of ``stamp``, keeping the rest byte for byte."""
    match = stamp.search(body)
    if match is None:
        return body
    start, end = match.span(1)
    return b"%s%d%s" % (body[:start], int(match.group(1)) + amount, body[end:])


def _error(message: str) -> bytes:
    return compact({"event": "bts:error", "channel": "", "data": {"code": None, "message": message}})
