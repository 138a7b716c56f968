"""Kraken WebSocket v1 ``book`` on the synthetic market (protocol: :mod:`dragonfly.sim.protocols.kraken`).

WebSocket on ``/``; pairs spelled ``ETH/XBT``. Each (pair, depth) is one
channel with its own channel id: a snapshot of ``depth`` levels a side after
the ack, then updates of the window (see :mod:`dragonfly.sim.inband`) with
the CRC32 of the top 10, every level stamped with the book's last change
(``seconds.micros``). A connection with no book frame for a second gets a
``heartbeat``. No REST, no server PINGs, no reconnect notice in v1.

Position (``Simulator.truth``): Kraken's frames carry no sequence, and the
client shows ``seq`` 0; the position of a book here is its last change time
in microseconds, the ``ts`` every level of a frame carries.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from dragonfly.sim.book import SimBook
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.inband import Channel, InbandServer, InbandSession, Out
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.protocols import kraken
from dragonfly.sim.server import VenueConfig
from dragonfly.sim.topview import Diff

#: Seconds without a book frame before a heartbeat.
IDLE_S = 1.0
#: First channel id handed out.
FIRST_CHANNEL_ID = 100


class KrakenServer(InbandServer[InbandSession]):
    """The Kraken v1 public endpoint on one port."""

    name = "kraken"
    ws_path = "/"
    # Book updates go out as they happen; batching them per 100 ms is close enough.
    default_config = VenueConfig(period_s=0.1, slow_factor=1)
    # No sequence numbers; a CRC32 of the top 10 levels per side on every update.
    capabilities = Capabilities("kraken", checksum_depth=kraken.CHECKSUM_LEVELS)
    heartbeat_s = 0.25

    def __init__(self, market: SyntheticMarket, config: VenueConfig, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, rest_port: int = 0) -> None:
        """Prepare the server; see VenueServer."""
        super().__init__(market, config, host, port, ssl_context, rest_port)
        self._channel_ids: dict[str, int] = {}

    def open_session(self, path: str, query: dict[str, str]) -> InbandSession | None:
        """Accept the root path only."""
        return InbandSession(self) if path in ("", "/") else None

    def on_open(self, session: InbandSession) -> None:
        """Send the ``systemStatus`` a connection starts with."""
        session.send(kraken.system_status())

    def on_message(self, session: InbandSession, payload: bytes) -> None:
        """Answer one client request."""

        def on_pair(event: str, pair: str, depth: int) -> tuple[int, int] | str:
            key = f"{pair}@{depth}"
            if event == "subscribe":
                if key in session.subs:
                    return "Already subscribed"
                instrument = self.instrument_of(pair)
                assert instrument is not None
                self.join(session, key, instrument, depth)
            elif not self.unsubscribe(session, key):
                return "Subscription Not Found"
            return self._channel_id(key), depth

        for reply in kraken.answer(payload, lambda pair: pair in self.symbols, on_pair):
            session.send(reply)

    def _channel_id(self, key: str) -> int:
        chan = self._channel_ids.get(key)
        if chan is None:
            chan = self._channel_ids[key] = FIRST_CHANNEL_ID + len(self._channel_ids)
        return chan

    def heartbeat(self, session: InbandSession, now: float) -> None:
        """Heartbeat a subscribed client that had no book frame for a second."""
        if session.subs and now - session.last_data >= IDLE_S:
            session.send(kraken.HEARTBEAT)
            session.last_data = now

    def book_seq(self, book: SimBook) -> int:
        """Return the book's last change time in µs (the ``ts`` of every level of its frames)."""
        return book.micros

    def history(self, symbol: str) -> Sequence[bytes]:
        """Return a snapshot of ``symbol``'s window now: all the ``checksum`` fault needs to rank a level."""
        feed = next((f for f in self.feeds.values() if f.symbol == symbol), None)
        return () if feed is None else (self.snapshot_frame(feed).data,)

    # -- frames ----------------------------------------------------------------------

    def snapshot_frame(self, feed: Channel) -> Out:
        """Return ``feed``'s window as a book snapshot."""
        book = feed.view.book
        bids, asks = feed.view.levels()
        depth = feed.depth or kraken.DEFAULT_DEPTH
        return Out(kraken.snapshot_frame(self._channel_id(feed.key), depth, feed.symbol,
                                         book.text_side(bids), book.text_side(asks),
                                         kraken.stamp(book.micros)))

    def update_frame(self, feed: Channel, diff: Diff) -> Out:
        """Return ``diff`` as a book update with the checksum of the window now."""
        book = feed.view.book
        bids, asks = feed.view.levels()
        top = kraken.CHECKSUM_LEVELS
        crc = kraken.checksum(book.text_side(bids[:top]), book.text_side(asks[:top]))
        depth = feed.depth or kraken.DEFAULT_DEPTH
        return Out(kraken.update_frame(self._channel_id(feed.key), depth, feed.symbol,
                                       book.text_side(diff[0]), book.text_side(diff[1]),
                                       kraken.stamp(book.micros), crc))
