"""Coinbase replay: the retired Pro ``level2`` feed served as Advanced Trade ``l2_data``.

Recorded (``wss://ws-feed.pro.coinbase.com``, retired): ``subscribe`` with
``"channels":["level2"]``; ``{"type":"snapshot","product_id":P,"bids":[[p,q]],"asks":[[p,q]]}``
then ``{"type":"l2update","product_id":P,"changes":[["buy"|"sell",p,q]],"time":T}``;
no sequence numbers. Ticker, match and the recorded acks are not replayed.

Translation, one message per recorded message:

* ``{"channel":"l2_data","client_id":"","timestamp":RECV,"sequence_num":N,
  "events":[{"type":"snapshot"|"update","product_id":P,"updates":[..]}]}``;
* each level ``{"side":"bid"|"offer","event_time":E,"price_level":p,"new_quantity":q}``
  with ``buy`` -> ``bid``, ``sell`` -> ``offer``; a snapshot lists its bids
  then its asks; prices and quantities are the recorded strings;
* ``E`` is the l2update's ``time`` (for a snapshot, which has none, the
  recorded receive time); ``RECV`` is the recorded receive time, ISO 8601 UTC;
* ``sequence_num`` counts every message the server sends on that WebSocket
  connection, from 0, acks and heartbeats included: each client has its own
  count, spliced into the pre-encoded message when it is sent. Error replies
  (``{"type":"error","message":..}``) carry none, as on the live venue.

Served on ``/``: ``{"type":"subscribe"|"unsubscribe","channel":"level2","product_ids":[..]}``
-> a ``subscriptions`` message listing the client's subscriptions; an
unknown product -> an error and nothing subscribed; channel ``heartbeats``
-> a heartbeat every second.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.protocols import coinbase
from dragonfly.sim.protocols.coinbase import CHANNEL, Numbering, iso, message_parts
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    loads,
)

SIDES = {"buy": "bid", "sell": "offer"}


def _subscribed(request: object) -> list[str]:
    """Return the product ids a recorded Pro ``subscribe`` asked ``level2`` for."""
    if not isinstance(request, dict) or request.get("type") != "subscribe":
        return []
    products = [p for p in request.get("product_ids") or () if isinstance(p, str)]
    found: list[str] = []
    for channel in request.get("channels") or ():
        if channel == CHANNEL:
            found += products
        elif isinstance(channel, dict) and channel.get("name") == CHANNEL:
            found += [p for p in channel.get("product_ids") or products if isinstance(p, str)]
    return found


def _levels(levels: object, side: str, event_time: str) -> list[dict[str, Any]]:
    if not isinstance(levels, list):
        return []
    return [{"side": side, "event_time": event_time, "price_level": level[0],
             "new_quantity": level[1]} for level in levels
            if isinstance(level, list) and len(level) >= 2]


def translate_message(message: dict[str, Any], ts: float) -> Frame | None:
    """Translate one recorded snapshot / l2update, or return None for other messages."""
    kind = message.get("type")
    product = message.get("product_id")
    if kind not in ("snapshot", "l2update") or not isinstance(product, str):
        return None
    updates: list[dict[str, Any]]
    if kind == "snapshot":
        when = iso(ts)
        updates = [*_levels(message.get("bids"), "bid", when),
                   *_levels(message.get("asks"), "offer", when)]
        kind = "snapshot"
    else:
        time = message.get("time")
        when = time if isinstance(time, str) else iso(ts)
        updates = [{"side": SIDES.get(c[0], c[0]), "event_time": when, "price_level": c[1],
                    "new_quantity": c[2]}
                   for c in message.get("changes") or () if isinstance(c, list) and len(c) >= 3]
        kind = "update"
    event = {"type": kind, "product_id": product, "updates": updates}
    head, tail = message_parts("l2_data", ts, [event])
    return Frame(ts, product, head, tail)


def translate(records: Sequence[Record], report: Report) -> Track:
    """Translate the recorded level2 messages; list the products subscribed."""
    products: dict[str, None] = {}
    frames: list[Frame] = []
    for record in records:
        if isinstance(record, Sent):
            for product in _subscribed(loads(record.payload, report, record.line)):
                products[product] = None
        elif isinstance(record, Received) and (b'"snapshot"' in record.payload
                                               or b'"l2update"' in record.payload):
            message = loads(record.payload, report, record.line)
            frame = translate_message(message, record.ts) if isinstance(message, dict) else None
            if frame is not None:
                products.setdefault(frame.symbol, None)
                frames.append(frame)
    return Track(frames, list(products))


class CoinbaseSession(ReplaySession):
    """An Advanced Trade client: its message numbering and heartbeat subscription."""

    def __init__(self, conn: ReplayConnection) -> None:
        """Bind to ``conn``."""
        super().__init__(conn)
        self.numbering = Numbering()


class CoinbaseReplay(ReplayConnection):
    """A recorded Coinbase connection, served as Advanced Trade."""

    venue = "coinbase"
    # sequence_num counts every message of a connection.
    capabilities = Capabilities("coinbase", sequenced=True)
    ws_path = "/"
    heartbeat_s = 1.0

    translate = staticmethod(translate)

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Accept the root path only."""
        return CoinbaseSession(self) if path in ("", "/") else None

    def encode(self, session: ReplaySession, frame: Frame) -> bytes:
        """Splice the client's next ``sequence_num`` into the pre-encoded message."""
        assert isinstance(session, CoinbaseSession) and frame.alt is not None
        return session.numbering.number(frame.data, frame.alt)

    def heartbeat(self, session: ReplaySession) -> None:
        """Send a heartbeats message to a client subscribed to them."""
        assert isinstance(session, CoinbaseSession)
        message = session.numbering.heartbeat()
        if message is not None:
            session.send(message)

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer (un)subscribe requests (:func:`dragonfly.sim.protocols.coinbase.answer`)."""
        assert isinstance(session, CoinbaseSession)

        def on_product(kind: str, product: str) -> None:
            if kind == "subscribe":
                self.subscribe(session, product)
            else:
                self.unsubscribe(session, product)

        for reply in coinbase.answer(payload, session.numbering, self.knows, on_product,
                                     lambda: list(session.subs)):
            session.send(reply)
