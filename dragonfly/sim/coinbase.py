"""Coinbase Advanced Trade ``level2`` on the synthetic market.

Protocol: :mod:`dragonfly.sim.protocols.coinbase`.

WebSocket on ``/``; products spelled ``ETH-BTC``. A ``snapshot`` event of
the whole book after the subscribe, then an ``update`` event per round in
which the book changed; ``heartbeats`` once a second to a connection
subscribed to them. Every message a connection gets, of any channel, carries
that connection's next ``sequence_num``; a lost message (``skip``) uses up its
number, so the client sees the gap. No REST, no server PINGs, no notice.

Position (``Simulator.truth``): Coinbase's messages carry no per-product
sequence and the client shows ``seq`` 0; the position of a book here is its
last change time in microseconds, the ``event_time`` of its levels.
"""

from __future__ import annotations

import time
from typing import Any

from dragonfly.sim.book import SimBook
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.inband import Channel, InbandServer, InbandSession, Out
from dragonfly.sim.protocols import coinbase
from dragonfly.sim.server import VenueConfig, VenueServer
from dragonfly.sim.topview import Diff


class CoinbaseSession(InbandSession):
    """An Advanced Trade client: its message numbering and heartbeat subscription."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind to ``server``."""
        super().__init__(server)
        self.numbering = coinbase.Numbering()


class CoinbaseServer(InbandServer[CoinbaseSession]):
    """The Advanced Trade market-data endpoint on one port."""

    name = "coinbase"
    ws_path = "/"
    default_config = VenueConfig(period_s=0.05, slow_factor=1)
    # sequence_num counts every message of a connection.
    capabilities = Capabilities("coinbase", sequenced=True)
    heartbeat_s = 1.0

    def open_session(self, path: str, query: dict[str, str]) -> CoinbaseSession | None:
        """Accept the root path only."""
        return CoinbaseSession(self) if path in ("", "/") else None

    def on_message(self, session: CoinbaseSession, payload: bytes) -> None:
        """Answer (un)subscribe requests for ``level2`` and ``heartbeats``."""

        def on_product(kind: str, product: str) -> None:
            if kind == "subscribe":
                instrument = self.instrument_of(product)
                assert instrument is not None
                self.join(session, product, instrument, None)
            else:
                self.unsubscribe(session, product)

        for reply in coinbase.answer(payload, session.numbering, lambda p: p in self.symbols,
                                     on_product, lambda: list(session.subs)):
            session.send(reply)

    def heartbeat(self, session: CoinbaseSession, now: float) -> None:
        """Send a ``heartbeats`` message to a client subscribed to them."""
        message = session.numbering.heartbeat()
        if message is not None:
            session.send(message)

    def book_seq(self, book: SimBook) -> int:
        """Return the book's last change time in µs (the ``event_time`` of its levels)."""
        return book.micros

    # -- frames ----------------------------------------------------------------------

    def _message(self, kind: str, feed: Channel, bids: list[tuple[str, str]],
                 asks: list[tuple[str, str]]) -> Out:
        events = coinbase.l2_events(kind, feed.symbol, bids, asks,
                                    coinbase.iso_micros(feed.view.book.micros))
        return Out(*coinbase.raw_parts("l2_data", time.time(), events))

    def snapshot_frame(self, feed: Channel) -> Out:
        """Return the whole book as a ``snapshot`` event, split around ``sequence_num``."""
        book = feed.view.book
        bids, asks = feed.view.levels()
        return self._message("snapshot", feed, book.text_side(bids), book.text_side(asks))

    def update_frame(self, feed: Channel, diff: Diff) -> Out:
        """Return ``diff`` as an ``update`` event, split around ``sequence_num``."""
        book = feed.view.book
        return self._message("update", feed, book.text_side(diff[0]), book.text_side(diff[1]))

    def send_out(self, session: CoinbaseSession, out: Out) -> bool:
        """Send the message numbered with the client's next ``sequence_num``."""
        assert out.tail is not None
        return session.send_book(session.numbering.number(out.data, out.tail))

    def lose(self, session: CoinbaseSession, out: Out) -> None:
        """Use up the client's number for a lost message."""
        session.numbering.seq += 1
