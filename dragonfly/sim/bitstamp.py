"""Bitstamp WebSocket API v2 and public REST, as the live venue speaks them.

WebSocket on ``/``: events ``bts:subscribe``, ``bts:unsubscribe`` and
``bts:heartbeat``; channels ``order_book_<pair>`` (top 100 per side, sent
when the book changed) and ``diff_order_book_<pair>`` (changed levels with
their new amounts, 0 for a removed level). The server may send
``bts:request_reconnect`` and close after a grace period. REST:
``/api/v2/order_book/<pair>/`` and ``/api/v2/trading-pairs-info/``. JSON is
printed with a space after every ``,`` and ``:``, like the venue's.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable

from dragonfly.sim.book import SimBook, UnitLevel
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.http import HttpReply, json_reply, phrase
from dragonfly.sim.instruments import Instrument
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.server import BookState, Session, VenueConfig, VenueServer

_CHANNEL = re.compile(r"^(order_book|diff_order_book)_([a-z0-9]+)$")
_BOOK_PATH = re.compile(r"^/api/v2/order_book/([a-z0-9]+)/?$")
#: Levels per side in an order_book snapshot.
SNAPSHOT_DEPTH = 100
BAD_SUBSCRIPTION = "Bad subscription string."
BAD_JSON = "Incorrect JSON format."
# Smallest order value per quote currency, as the venue lists it.
_MIN_NOTIONAL = {"USD": 10.0, "USDT": 10.0, "USDC": 10.0, "EUR": 10.0, "GBP": 10.0,
                 "BTC": 0.0002, "ETH": 0.002}
RECONNECT = b'{"event": "bts:request_reconnect", "channel": "", "data": ""}'
HEARTBEAT = b'{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}'


def dumps(obj: object) -> bytes:
    """Encode like the venue: ``, `` and ``: `` separators."""
    return json.dumps(obj).encode()


def encode_side(levels: list[tuple[str, str]]) -> str:
    """Encode levels as a JSON array of [price, amount] strings."""
    return "[" + ", ".join(f'["{p}", "{a}"]' for p, a in levels) + "]"


def encode_book(micros: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> str:
    """Encode a book body: timestamps, bids best first, asks best first."""
    return (
        f'{{"timestamp": "{micros // 1_000_000}", "microtimestamp": "{micros}", '
        f'"bids": {encode_side(bids)}, "asks": {encode_side(asks)}}}'
    )


def encode_event(channel: str, body: str) -> bytes:
    """Wrap a data body as the venue's data event."""
    return f'{{"data": {body}, "channel": "{channel}", "event": "data"}}'.encode()


def error_frame(message: str) -> bytes:
    """Return a ``bts:error`` event with ``message``."""
    return dumps({"event": "bts:error", "channel": "", "data": {"code": None, "message": message}})


def read_request(payload: bytes, accepts: Callable[[str], bool], heartbeat: bytes,
                 error: Callable[[str], bytes]) -> tuple[str, str] | bytes:
    """Return (event, channel) of a subscribe or unsubscribe, else the bytes to answer.

    ``accepts`` tells whether a channel may be subscribed; a heartbeat is answered
    with ``heartbeat``, a bad request with ``error(reason)``.
    """
    try:
        message = json.loads(payload)
    except ValueError:
        return error(BAD_JSON)
    event = message.get("event") if isinstance(message, dict) else None
    if event == "bts:heartbeat":
        return heartbeat
    if event not in ("bts:subscribe", "bts:unsubscribe"):
        return error(BAD_JSON)
    data = message.get("data")
    channel = data.get("channel") if isinstance(data, dict) else None
    if not isinstance(channel, str) or not accepts(channel):
        return error(BAD_SUBSCRIPTION)
    return event, channel


def rest_error_reply(status: int) -> HttpReply:
    """Return the venue's error answer with ``status``: ``{"status": "error", "reason": ..}``."""
    return json_reply({"status": "error", "reason": phrase(status)}, status, compact=False)


def diff_side(old: dict[int, int], new: dict[int, int], descending: bool) -> list[UnitLevel]:
    """Return levels that differ from ``old`` to ``new`` (0 amount: removed), sorted."""
    changed = [(p, a) for p, a in new.items() if old.get(p) != a]
    changed += [(p, 0) for p in old if p not in new]
    changed.sort(reverse=descending)
    return changed


class BitstampServer(VenueServer[Session]):
    """The Bitstamp WebSocket and public REST endpoint on one port."""

    name = "bitstamp"
    ws_path = "/"
    # The live venue sends no PINGs of its own; clients use bts:heartbeat.
    default_config = VenueConfig(period_s=0.1, slow_factor=1, reconnect_grace_s=5.0)
    # Diff events carry a microtimestamp, no sequence number.
    capabilities = Capabilities("bitstamp", notice=True, rest_snapshots=True)

    def __init__(self, market: SyntheticMarket, config: VenueConfig, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, rest_port: int = 0) -> None:
        """Prepare the server; see VenueServer."""
        super().__init__(market, config, host, port, ssl_context, rest_port)
        # order_book channel -> book update id it last published.
        self._published: dict[str, int] = {}
        # diff_order_book channel -> (bids, asks) as of its last publish.
        self._diff_base: dict[str, tuple[dict[int, int], dict[int, int]]] = {}

    # -- WebSocket -----------------------------------------------------------

    def open_session(self, path: str, query: dict[str, str]) -> Session | None:
        """Accept the root path only."""
        return Session(self) if path in ("", "/") else None

    def reconnect_frame(self) -> bytes:
        """Return ``bts:request_reconnect``."""
        return RECONNECT

    def book_seq(self, book: SimBook) -> int:
        """Return the ``microtimestamp`` every book frame, diff event and snapshot carries."""
        return book.micros

    def _parse_channel(self, channel: object) -> tuple[str, str] | None:
        """Return (kind, pair) of a supported channel of a listed pair, or None."""
        if not isinstance(channel, str):
            return None
        match = _CHANNEL.match(channel)
        if match is None or self.market.instrument(match.group(2)) is None:
            return None
        return match.group(1), match.group(2)

    def on_message(self, session: Session, payload: bytes) -> None:
        """Answer one client event."""
        request = read_request(payload, lambda c: self._parse_channel(c) is not None,
                               HEARTBEAT, error_frame)
        if isinstance(request, bytes):
            session.send(request)
            return
        event, channel = request
        if event == "bts:subscribe":
            parsed = self._parse_channel(channel)
            if parsed is not None and parsed[0] == "diff_order_book" and channel not in self.channels:
                book = self.market.book(self.name, parsed[1])
                self._diff_base[channel] = (dict(book.bids), dict(book.asks))
            self.subscribe(session, channel)
            reply = "bts:subscription_succeeded"
        else:
            self.unsubscribe(session, channel)
            reply = "bts:unsubscription_succeeded"
        session.send(dumps({"event": reply, "channel": channel, "data": {}}))

    def publish(self, tick: int) -> None:
        """Send each subscribed channel whose book changed, encoded once."""
        sent_ns = time.time_ns()
        for channel, sessions in list(self.channels.items()):
            parsed = self._parse_channel(channel)
            if parsed is None:
                continue
            kind, pair = parsed
            book = self.market.book(self.name, pair)
            if kind == "order_book":
                self._publish_snapshot(channel, pair, book, sessions, sent_ns)
            else:
                self._publish_diff(channel, book, sessions)

    def _publish_snapshot(self, channel: str, pair: str, book: SimBook,
                          sessions: dict[Session, None], sent_ns: int) -> None:
        if self._published.get(channel) == book.update_id:
            return
        self._published[channel] = book.update_id
        bids, asks = book.sorted_levels()
        bids, asks = bids[:SNAPSHOT_DEPTH], asks[:SNAPSHOT_DEPTH]
        body = encode_book(book.micros, book.text_side(bids), book.text_side(asks))
        if self.deliver(list(sessions), encode_event(channel, body)):
            self.record(pair, book.float_side(bids), book.float_side(asks), sent_ns)

    def _publish_diff(self, channel: str, book: SimBook, sessions: dict[Session, None]) -> None:
        old_bids, old_asks = self._diff_base.get(channel, ({}, {}))
        bids = diff_side(old_bids, book.bids, descending=True)
        asks = diff_side(old_asks, book.asks, descending=False)
        if not bids and not asks:
            return
        self._diff_base[channel] = (dict(book.bids), dict(book.asks))
        body = encode_book(book.micros, book.text_side(bids), book.text_side(asks))
        self.deliver(list(sessions), encode_event(channel, body))

    # -- REST --------------------------------------------------------------------

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Serve /api/v2/order_book/<pair>/ and /api/v2/trading-pairs-info/."""
        if path.rstrip("/") == "/api/v2/trading-pairs-info":
            infos = [self._pair_info(i) for i in self.market.instruments.values()]
            return json_reply(infos, compact=False)
        match = _BOOK_PATH.match(path)
        if match is None:
            return None
        instrument = self.market.instrument(match.group(1))
        if instrument is None:
            return json_reply({"status": "error", "reason": "Invalid currency pair."}, 404,
                              compact=False)
        return self.encode_snapshot(self.book_state(instrument.name), {"pair": instrument.name})

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the pair of an ``/api/v2/order_book/<pair>/`` request of a listed pair."""
        match = _BOOK_PATH.match(path)
        instrument = self.market.instrument(match.group(1)) if match else None
        return None if instrument is None else instrument.name

    def snapshot_reply(self, key: str, query: dict[str, str], age: float, ahead: int) -> HttpReply:
        """Answer a snapshot request (see VenueServer); the pair comes from the path."""
        return super().snapshot_reply(key, {**query, "pair": key}, age, ahead)

    def encode_snapshot(self, state: BookState, query: dict[str, str]) -> HttpReply:
        """Return the order book body of ``state`` (every level)."""
        book = self.market.book(self.name, query["pair"])
        body = encode_book(state.micros, book.text_side(state.bids), book.text_side(state.asks))
        return HttpReply(200, body.encode())

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error body for ``status``."""
        return rest_error_reply(status)

    def _pair_info(self, instrument: Instrument) -> dict[str, object]:
        spec = instrument.specs[self.name]
        return {
            "name": f"{instrument.base}/{instrument.quote}",
            "url_symbol": instrument.name,
            "base_decimals": spec.amount_decimals,
            "counter_decimals": spec.price_decimals,
            "instant_order_counter_decimals": spec.price_decimals,
            "minimum_order": f"{_MIN_NOTIONAL.get(instrument.quote, 1.0):.8f} {instrument.quote}",
            "trading": "Enabled",
            "instant_and_market_orders": "Enabled",
            "description": f"{instrument.base} / {instrument.quote}",
        }
