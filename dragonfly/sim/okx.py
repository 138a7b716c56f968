"""OKX v5 public ``books`` on the synthetic market (protocol: :mod:`dragonfly.sim.protocols.okx`).

WebSocket on ``/ws/v5/public``; instruments spelled ``ETH-BTC``; only the
``books`` channel is served (another book channel of a listed instrument is
refused with ``60018``, a simplification). A snapshot of the whole book (OKX
keeps 400 levels a side, more than a simulated book holds) after the ack,
then an update per round in which the book changed, each with the CRC32 of
the top 25 over the strings as sent (OKX prints no trailing zeros).

Position: ``seqId`` is the book's update id (it grows at every change); an
update's ``prevSeqId`` is the ``seqId`` of the channel's previous message,
sent or lost, so a lost one (``skip``) shows as a gap; a snapshot's is -1.
The client shows ``seqId`` as ``seq``, and ``Simulator.truth`` takes it.
The ``64008`` notice comes ``reconnect_grace_s`` (30 s) before the close.
No keep-alive message (OKX sends one after 60 s without a change; a
simulated book changes more often), no REST, no server PINGs.
"""

from __future__ import annotations

import secrets
from typing import Any

from dragonfly.sim.book import SimBook
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.inband import Channel, InbandServer, InbandSession, Out
from dragonfly.sim.peer import Peer
from dragonfly.sim.protocols import okx
from dragonfly.sim.server import VenueConfig, VenueServer


class OkxSession(InbandSession):
    """An OKX client: its connection id."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind to ``server``."""
        super().__init__(server)
        self.conn_id = secrets.token_hex(4)


class OkxServer(InbandServer[OkxSession]):
    """The OKX v5 public endpoint on one port."""

    name = "okx"
    ws_path = "/ws/v5/public"
    # ``books`` pushes changes every 100 ms at most.
    default_config = VenueConfig(period_s=0.1, slow_factor=1, reconnect_grace_s=okx.NOTICE_GRACE_S)
    capabilities = Capabilities("okx", sequenced=True, checksum_depth=okx.CHECKSUM_LEVELS, notice=True)

    def open_session(self, path: str, query: dict[str, str]) -> OkxSession | None:
        """Accept the public endpoint only."""
        return OkxSession(self) if path.rstrip("/") == self.ws_path else None

    def on_message(self, session: OkxSession, payload: bytes) -> None:
        """Answer ``ping`` and (un)subscribe requests."""

        def knows(channel: str, inst_id: str) -> bool:
            return channel == okx.CHANNEL and inst_id in self.symbols

        def on_arg(op: str, channel: str, inst_id: str) -> None:
            if op == "subscribe":
                instrument = self.instrument_of(inst_id)
                assert instrument is not None
                self.join(session, inst_id, instrument, None)
            else:
                self.unsubscribe(session, inst_id)

        for reply in okx.answer(payload, session.conn_id, knows, on_arg):
            session.send(reply)

    def reconnect_frame(self) -> bytes:
        """Return the service-upgrade notice (each client's carries its connection id)."""
        return okx.notice("")

    def notice_frame(self, peer: Peer) -> bytes:
        """Return the service-upgrade notice (code 64008) with the client's connection id."""
        return okx.notice(peer.conn_id if isinstance(peer, OkxSession) else "")

    def book_seq(self, book: SimBook) -> int:
        """Return ``seqId``: the book's update id."""
        return book.update_id

    def history(self, symbol: str) -> tuple[bytes, ...]:
        """Return a snapshot of ``symbol``'s book now: all the ``checksum`` fault needs to rank a level."""
        feed = self.feeds.get(symbol)
        return () if feed is None else (self.snapshot_frame(feed).data,)

    # -- frames ----------------------------------------------------------------------

    def updates(self, feed: Channel) -> list[Out]:
        """Return the round's update, ``prevSeqId`` the channel's previous position."""
        prev = feed.view.update_id
        diff = feed.view.advance()
        if diff is None:
            return []
        book = feed.view.book
        return [Out(okx.push("update", feed.symbol, book.text_side(diff[0]), book.text_side(diff[1]),
                             book.micros // 1000, self._checksum(feed), prev, feed.view.update_id))]

    def snapshot_frame(self, feed: Channel) -> Out:
        """Return the whole book as a snapshot (``prevSeqId`` -1)."""
        book = feed.view.book
        bids, asks = feed.view.levels()
        return Out(okx.push("snapshot", feed.symbol, book.text_side(bids), book.text_side(asks),
                            book.micros // 1000, self._checksum(feed), -1, feed.view.update_id))

    @staticmethod
    def _checksum(feed: Channel) -> int:
        book = feed.view.book
        bids, asks = feed.view.levels()
        top = okx.CHECKSUM_LEVELS
        return okx.checksum(book.text_side(bids[:top]), book.text_side(asks[:top]))
