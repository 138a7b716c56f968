"""Bybit v5 public spot ``orderbook.50`` on the synthetic market.

Protocol: :mod:`dragonfly.sim.protocols.bybit`.

WebSocket on ``/v5/public/spot`` (also ``/linear``, ``/inverse``); symbols
spelled ``ETHBTC``. A snapshot of the top 50 after the ack, then a delta per
change of the top 50.

``u`` grows by exactly one per message of a symbol (the client requires a
delta's ``u`` to be the previous one + 1), and it is a position of the book
itself so that ``Simulator.truth`` can take the ``u`` a client shows: each
symbol's top 50 is followed at every market step (an observer of the market,
and again whenever a position is asked for, so the order of observers does
not matter); every step that changes the top 50 makes one delta, with the
next ``u``, kept until the next publish round sends it (several deltas may
go out in one round). ``seq`` is the book's update id. A lost delta
(``skip``) uses up its ``u``. No REST, no server PINGs, no notice.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

from dragonfly.sim.book import SimBook
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.inband import Channel, InbandServer, InbandSession, Out
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.protocols import bybit
from dragonfly.sim.server import VenueConfig, VenueServer
from dragonfly.sim.topview import Diff, TopView


class BybitSession(InbandSession):
    """A v5 client: its connection id."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind to ``server``."""
        super().__init__(server)
        self.conn_id = str(uuid.uuid4())


class _Track:
    """One symbol's top 50 at every step, its ``u``, and the deltas not yet published."""

    __slots__ = ("pending", "u", "view")

    def __init__(self, book: SimBook) -> None:
        self.view = TopView(book, bybit.DEPTH)
        self.u = book.update_id
        #: (u, diff, change time µs, book update id) of each top-50 change since the last round.
        self.pending: list[tuple[int, Diff, int, int]] = []


class BybitServer(InbandServer[BybitSession]):
    """The Bybit v5 public endpoint on one port."""

    name = "bybit"
    ws_path = "/v5/public/spot"
    # orderbook.50 pushes every 20 ms at most.
    default_config = VenueConfig(period_s=0.02, slow_factor=1)
    # ``u`` grows by one per message of a symbol.
    capabilities = Capabilities("bybit", sequenced=True)

    def __init__(self, market: SyntheticMarket, config: VenueConfig, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, rest_port: int = 0) -> None:
        """Prepare the server; start following every symbol's top 50 at every market step."""
        super().__init__(market, config, host, port, ssl_context, rest_port)
        self._tracks = {name: _Track(market.book(self.name, name)) for name in market.instruments}
        self._names = {market.book(self.name, name): name for name in market.instruments}
        market.observers.append(self._on_step)

    def _on_step(self, now_ns: int) -> None:
        for name in self._tracks:
            self._follow(name)

    def _follow(self, name: str) -> _Track:
        """Bring ``name``'s track to the book now; a top-50 change takes the next ``u``."""
        track = self._tracks[name]
        diff = track.view.advance()
        if diff is not None:
            track.u += 1
            if name in self.channels:
                book = track.view.book
                track.pending.append((track.u, diff, book.micros, book.update_id))
        return track

    def open_session(self, path: str, query: dict[str, str]) -> BybitSession | None:
        """Accept the v5 public spot, linear and inverse endpoints."""
        return BybitSession(self) if path.rstrip("/") in bybit.PATHS else None

    def on_message(self, session: BybitSession, payload: bytes) -> None:
        """Answer ping and (un)subscribe requests."""

        def on_symbol(op: str, symbol: str) -> None:
            instrument = self.instrument_of(symbol)
            assert instrument is not None
            if op == "subscribe":
                self.join(session, instrument, instrument, bybit.DEPTH)
            else:
                self.unsubscribe(session, instrument)

        session.send(bybit.answer(payload, session.conn_id, lambda s: s in self.symbols, on_symbol))

    def book_seq(self, book: SimBook) -> int:
        """Return ``u`` of the book now (see module doc)."""
        return self._follow(self._names[book]).u

    # -- frames ----------------------------------------------------------------------

    def updates(self, feed: Channel) -> list[Out]:
        """Return one delta per top-50 change since the last round, in ``u`` order."""
        track = self._follow(feed.instrument)
        feed.view.advance()  # keep the channel's own window (last_sent) current
        book = track.view.book
        out = [Out(bybit.message("delta", feed.symbol, book.text_side(diff[0]), book.text_side(diff[1]),
                                 u, seq, micros // 1000))
               for u, diff, micros, seq in track.pending]
        track.pending.clear()
        return out

    def snapshot_frame(self, feed: Channel) -> Out:
        """Return the top 50 now at the current ``u``."""
        track = self._follow(feed.instrument)
        book = track.view.book
        bids, asks = track.view.levels()
        return Out(bybit.message("snapshot", feed.symbol, book.text_side(bids), book.text_side(asks),
                                 track.u, book.update_id, book.micros // 1000))
