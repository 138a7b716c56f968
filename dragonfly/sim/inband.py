"""What the venues with an in-band snapshot share: a snapshot on subscribe, then diffs.

Kraken, OKX, Coinbase and Bybit send no REST snapshot to stitch: after a
subscribe the server sends the book, then every change. A venue module
subclasses :class:`InbandServer` and declares its protocol (answers through
``dragonfly.sim.protocols.<venue>``) and how a snapshot and an update print.

Publishing model, per book channel (:class:`Channel`, one per instrument and
depth, shared by every client subscribed to it):

* a client that subscribes waits for the next publish round; in it, the
  channel's update (the diff of its window since the last round, see
  :mod:`dragonfly.sim.topview`) goes to the clients already served, then a
  snapshot of the window now to the waiting ones. So every client sees a
  snapshot and then every diff after it: its book (cut to the window) equals
  the venue's window after each frame;
* a round in which the window did not change sends no update;
* ``skip`` (a lost message) drops an update after it was printed: its
  position is used up, so the next one shows the gap (OKX ``prevSeqId``,
  Bybit ``u``, Coinbase ``sequence_num``).

Heartbeats, where the venue sends them, come from one loop per server
(:meth:`InbandServer.heartbeat`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any, ClassVar, NamedTuple, TypeVar

from dragonfly.sim.book import SimBook
from dragonfly.sim.instruments import venue_symbol
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.server import Session, VenueConfig, VenueServer
from dragonfly.sim.topview import Diff, TopView


class Out(NamedTuple):
    """A frame to send: ``data``, or with ``tail`` a message numbered per client between them."""

    data: bytes
    tail: bytes | None = None


class InbandSession(Session):
    """A client of an in-band venue: when it was last sent data (for idle heartbeats)."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind to ``server``."""
        super().__init__(server)
        #: Monotonic time of the last book frame or heartbeat sent.
        self.last_data = time.monotonic()


S = TypeVar("S", bound=InbandSession)


class Channel:
    """One book channel: an instrument's window at one depth, and the clients awaiting a snapshot."""

    __slots__ = ("depth", "instrument", "key", "skip_next", "symbol", "view", "waiting")

    def __init__(self, key: str, instrument: str, symbol: str, book: SimBook, depth: int | None) -> None:
        """Start at ``book``'s window now."""
        self.key = key
        self.instrument = instrument
        self.symbol = symbol
        self.depth = depth
        self.view = TopView(book, depth)
        #: Clients subscribed since the last round: they get a snapshot next.
        self.waiting: dict[InbandSession, None] = {}
        #: Drop the next update (``Simulator.skip_update``).
        self.skip_next = False


class InbandServer(VenueServer[S]):
    """A venue server whose book channels send a snapshot in-band, then diffs (see module doc)."""

    #: Seconds between heartbeat checks, or None for a venue without server heartbeats.
    heartbeat_s: ClassVar[float | None] = None

    def __init__(self, market: SyntheticMarket, config: VenueConfig, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, rest_port: int = 0) -> None:
        """Prepare the server (see VenueServer); index the instruments by the venue's symbol."""
        super().__init__(market, config, host, port, ssl_context, rest_port)
        #: The venue's symbol -> instrument name.
        self.symbols: dict[str, str] = {
            venue_symbol(self.name, instrument): name for name, instrument in self.market.instruments.items()
        }
        #: Channel key -> its state, while it has subscribers.
        self.feeds: dict[str, Channel] = {}

    def instrument_of(self, symbol: str) -> str | None:
        """Return the instrument the venue's ``symbol`` names, or None if not listed."""
        return self.symbols.get(symbol)

    def symbol_of(self, instrument: str) -> str:
        """Return the venue's symbol of a listed instrument."""
        return venue_symbol(self.name, self.market.instruments[instrument])

    # -- subscriptions -----------------------------------------------------------

    def join(self, session: S, key: str, instrument: str, depth: int | None) -> None:
        """Subscribe ``session`` to channel ``key``; it gets a snapshot in the next round."""
        feed = self.feeds.get(key)
        if feed is None:
            book = self.market.book(self.name, instrument)
            feed = self.feeds[key] = Channel(key, instrument, self.symbol_of(instrument), book, depth)
        if self.subscribe(session, key):
            feed.waiting[session] = None

    def unsubscribe(self, session: S, key: str) -> bool:
        """Remove ``session`` from channel ``key``; forget a channel nobody follows."""
        removed = super().unsubscribe(session, key)
        feed = self.feeds.get(key)
        if feed is not None:
            feed.waiting.pop(session, None)
            if key not in self.channels:
                del self.feeds[key]
        return removed

    def skip_update(self, instrument: str) -> int:
        """Drop the next update of every channel of ``instrument``; return how many.

        ValueError for a venue whose messages carry no position a lost one breaks.
        """
        if not self.capabilities.sequenced:
            return super().skip_update(instrument)
        count = 0
        for feed in self.feeds.values():
            if feed.instrument == instrument:
                feed.skip_next = True
                count += 1
        return count

    # -- venue hooks -------------------------------------------------------------

    def updates(self, feed: Channel) -> list[Out]:
        """Return this round's update frames of ``feed`` (default: one, if its window changed)."""
        diff = feed.view.advance()
        return [] if diff is None else [self.update_frame(feed, diff)]

    def update_frame(self, feed: Channel, diff: Diff) -> Out:
        """Return the update printing ``diff`` (the window has already moved)."""
        raise NotImplementedError

    def snapshot_frame(self, feed: Channel) -> Out:
        """Return the snapshot of ``feed``'s window now."""
        raise NotImplementedError

    def send_out(self, session: S, out: Out) -> bool:
        """Send one frame to ``session`` (default: ``out.data`` as is)."""
        return session.send_book(out.data)

    def lose(self, session: S, out: Out) -> None:
        """Account for a frame ``session`` should have got and did not (a skipped update)."""

    def heartbeat(self, session: S, now: float) -> None:
        """Send ``session`` a heartbeat if one is due (monotonic ``now``)."""

    # -- publishing --------------------------------------------------------------

    def publish(self, tick: int) -> None:
        """Send each channel's update to its served clients, then snapshots to the waiting ones."""
        sent_ns = time.time_ns()
        now = time.monotonic()
        for key, sessions in list(self.channels.items()):
            feed = self.feeds.get(key)
            if feed is None:
                continue
            served = [s for s in sessions if s not in feed.waiting]
            sent = False
            for out in self.updates(feed):
                if self._skip(feed):
                    for session in served:
                        self.lose(session, out)
                    continue
                sent = self._send_all(served, out, now) or sent
            if feed.waiting:
                waiting = [s for s in feed.waiting if s in sessions]
                feed.waiting.clear()
                sent = self._send_all(waiting, self.snapshot_frame(feed), now) or sent
            if sent:
                book = feed.view.book
                bids, asks = feed.view.levels()
                self.record(feed.instrument, book.float_side(bids), book.float_side(asks), sent_ns)

    def _skip(self, feed: Channel) -> bool:
        if feed.skip_next:
            feed.skip_next = False
            return True
        return bool(self.faults.skips) and self.faults.skip(feed.symbol)

    def _send_all(self, sessions: list[S], out: Out, now: float) -> bool:
        sent = 0
        for session in sessions:
            if self.send_out(session, out):
                sent += 1
                session.last_data = now
        self.sent_count += sent
        return sent > 0

    # -- heartbeats ----------------------------------------------------------------

    async def start(self) -> None:
        """Start as any venue, plus the heartbeat loop where the venue has one."""
        await super().start()
        if self.heartbeat_s is not None:
            self._tasks.append(asyncio.create_task(self._heartbeat_loop(self.heartbeat_s)))

    async def _heartbeat_loop(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.faults.pausing:
                continue  # a paused venue sends nothing, heartbeats included
            now = time.monotonic()
            for session in list(self.sessions):
                self.heartbeat(session, now)
