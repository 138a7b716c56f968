"""The simulator: one synthetic market, one loopback server per venue."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from dragonfly.sim.binance import BinanceServer
from dragonfly.sim.bitstamp import BitstampServer
from dragonfly.sim.book import FloatLevel
from dragonfly.sim.bybit import BybitServer
from dragonfly.sim.coinbase import CoinbaseServer
from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.spec import Fault
from dragonfly.sim.instruments import DEFAULT_INSTRUMENTS, DEFAULT_VENUES
from dragonfly.sim.kraken import KrakenServer
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.okx import OkxServer
from dragonfly.sim.plumbing import authority
from dragonfly.sim.server import VenueConfig, VenueServer
from dragonfly.sim.truth import DEFAULT_DEPTH, TruthRecord, TruthState

#: Server class of each venue the simulator speaks.
SERVERS: dict[str, type[VenueServer[Any]]] = {
    "binance": BinanceServer,
    "bitstamp": BitstampServer,
    "kraken": KrakenServer,
    "okx": OkxServer,
    "coinbase": CoinbaseServer,
    "bybit": BybitServer,
}
#: Longest market step; the market also steps at least as often as any venue publishes.
MAX_TICK_S = 0.1


def venue_config(
    venue: str,
    base: VenueConfig | None = None,
    *,
    period_s: float | None = None,
    ping_interval_s: float | None = None,
    pong_timeout_s: float | None = None,
) -> VenueConfig:
    """Return ``venue``'s config (``base`` or the live defaults) with overrides applied.

    ``period_s`` sets every stream's cadence (slow streams included). The ping
    overrides apply only to a venue that PINGs in its base config.
    """
    config = base if base is not None else SERVERS[venue].default_config
    if period_s is not None:
        config = dataclasses.replace(config, period_s=period_s, slow_factor=1)
    if config.ping_interval_s is not None:
        if ping_interval_s is not None:
            config = dataclasses.replace(config, ping_interval_s=ping_interval_s)
        if pong_timeout_s is not None:
            config = dataclasses.replace(config, pong_timeout_s=pong_timeout_s)
    return config


class Simulator:
    """Loopback WebSocket+REST servers speaking each venue's public protocol, faults on demand."""

    def __init__(
        self,
        venues: Iterable[str] = DEFAULT_VENUES,
        instruments: Iterable[str] = DEFAULT_INSTRUMENTS,
        host: str = "127.0.0.1",
        seed: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        period_s: float | None = None,
        *,
        ports: Mapping[str, int] | None = None,
        rest_ports: Mapping[str, int] | None = None,
        ping_interval_s: float | None = None,
        pong_timeout_s: float | None = None,
        tick_s: float | None = None,
        configs: Mapping[str, VenueConfig] | None = None,
        truth_s: float | None = None,
        truth_depth: int = DEFAULT_DEPTH,
    ) -> None:
        """Build the market and one server per venue; nothing binds until start().

        ``ports`` and ``rest_ports`` fix a venue's WebSocket and REST ports
        (default: free ones). ``period_s`` overrides every venue's publish cadence; ``ping_interval_s``
        and ``pong_timeout_s`` override the PING timing of venues that PING;
        ``configs`` replaces a venue's whole config before those overrides.
        ``tick_s`` is the market step (default: the fastest cadence, at most
        0.1 s). ``truth_s`` turns on the truth record (:meth:`truth`): every
        state of every venue book, ``truth_depth`` levels a side, kept
        ``truth_s`` seconds after it was replaced (default: off). Raise
        ValueError for an unknown venue or a bad instrument name.
        """
        names = tuple(dict.fromkeys(venues))
        for venue in names:
            if venue not in SERVERS:
                raise ValueError(f"unknown venue {venue!r}: expected one of {', '.join(SERVERS)}")
        self.market = SyntheticMarket(instruments, names, seed)
        self.host = host
        self.ssl_context = ssl_context
        chosen = configs or {}
        ports = ports or {}
        rest_ports = rest_ports or {}
        self._servers: dict[str, VenueServer[Any]] = {}
        for venue in names:
            config = venue_config(venue, chosen.get(venue), period_s=period_s,
                                  ping_interval_s=ping_interval_s, pong_timeout_s=pong_timeout_s)
            self._servers[venue] = SERVERS[venue](
                self.market, config, host, ports.get(venue, 0), ssl_context, rest_ports.get(venue, 0)
            )
        fastest = min(s.config.period_s for s in self._servers.values())
        self.tick_s = tick_s if tick_s is not None else min(fastest, MAX_TICK_S)
        if self.tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self._ticker: asyncio.Task[None] | None = None
        #: While True the market does not step (books and update ids hold still).
        self.market_paused = False
        #: What every venue book was, by the venue's position (None: not recorded).
        self.truth_record: TruthRecord | None = None
        if truth_s is not None:
            self.truth_record = TruthRecord(
                {venue: server.book_seq for venue, server in self._servers.items()},
                keep_s=truth_s, depth=truth_depth,
            )
            self.truth_record.attach(self.market)

    @property
    def venues(self) -> tuple[str, ...]:
        """Return the served venues."""
        return tuple(self._servers)

    def server(self, venue: str) -> VenueServer[Any]:
        """Return ``venue``'s server; ValueError if not served."""
        try:
            return self._servers[venue]
        except KeyError:
            raise ValueError(f"venue {venue!r} is not served by this simulator") from None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Bind every venue's port and start the market."""
        try:
            for server in self._servers.values():
                await server.start()
        except BaseException:
            await self.stop()
            raise
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop the market and close every server and client promptly."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await asyncio.gather(*(s.stop() for s in self._servers.values()))

    async def __aenter__(self) -> Simulator:
        """Start; return self."""
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop."""
        await self.stop()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + self.tick_s, loop.time())
            await asyncio.sleep(next_at - loop.time())
            if not self.market_paused:
                self.market.step()

    # -- addresses ---------------------------------------------------------------

    def port(self, venue: str) -> int:
        """Return the bound port of ``venue`` (0 before start() unless given)."""
        return self.server(venue).port

    def _authority(self, venue: str) -> str:
        return authority(self.host, self.port(venue))

    def ws_url(self, venue: str) -> str:
        """Return the WebSocket URL a client of ``venue`` should use."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self._authority(venue)}{self.server(venue).ws_path}"

    def rest_url(self, venue: str) -> str:
        """Return the REST base URL of ``venue`` (no trailing slash): its own REST port.

        The same endpoints also answer on the WebSocket port (``rest_url_on_ws``),
        for clients that derive the REST address from the WebSocket one; REST
        faults apply on the REST port only.
        """
        return self.server(venue).rest.url

    def rest_url_on_ws(self, venue: str) -> str:
        """Return the REST base URL on ``venue``'s WebSocket port (never faulted)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self._authority(venue)}"

    def rest_port(self, venue: str) -> int:
        """Return the bound REST port of ``venue`` (0 before start() unless given)."""
        return self.server(venue).rest.port

    # -- observation -------------------------------------------------------------

    def last_sent(self, venue: str, instrument: str
                  ) -> tuple[list[FloatLevel], list[FloatLevel]] | None:
        """Return (bids, asks) of the last book frame sent for ``instrument``, or None.

        Levels are (price, amount) floats, best first, full depth as sent;
        they equal what a client parses from that frame's decimal strings.
        """
        sent = self.server(venue).last_sent.get(instrument.lower())
        return None if sent is None else (sent[0], sent[1])

    def book(self, venue: str, instrument: str) -> tuple[list[FloatLevel], list[FloatLevel]]:
        """Return ``venue``'s current full book of ``instrument`` as (bids, asks).

        Levels are (price, amount) floats, best first, equal to parsing the
        venue's decimal text. ValueError for a venue not served or an
        instrument not listed.
        """
        self.server(venue)
        try:
            book = self.market.book(venue, instrument.lower())
        except KeyError:
            raise ValueError(f"instrument {instrument!r} is not listed") from None
        bids, asks = book.sorted_levels()
        return book.float_side(bids), book.float_side(asks)

    def truth(self, venue: str, instrument: str, seq: int) -> TruthState | None:
        """Return what ``venue``'s book of ``instrument`` was at the position ``seq`` its frames carry.

        ``seq`` is Binance's update id (``lastUpdateId`` of a depth frame or
        REST snapshot, ``u`` of a diff event), Bitstamp's
        ``microtimestamp`` (book and diff frames, REST snapshots), OKX's
        ``seqId`` or Bybit's ``u``: what an engine shows as the venue's
        ``seq``. Kraken and Coinbase frames carry no position (an engine
        shows 0): theirs is the book's last change time in µs, the level
        ``ts`` (Kraken) or ``event_time`` (Coinbase) of their frames. None if the venue's book never
        stood at ``seq``, or that state was replaced longer ago than the
        record keeps. RuntimeError unless built with ``truth_s``; ValueError
        for a venue not served.
        """
        self.server(venue)
        if self.truth_record is None:
            raise RuntimeError("the truth record is off: build the Simulator with truth_s=SECONDS")
        return self.truth_record.state(venue, instrument, seq)

    def connections(self, venue: str) -> int:
        """Return how many WebSocket connections ``venue`` has accepted since start."""
        return self.server(venue).opened

    def last_sent_ns(self, venue: str, instrument: str) -> int | None:
        """Return the wall time (time.time_ns) just before that frame was sent."""
        sent = self.server(venue).last_sent.get(instrument.lower())
        return None if sent is None else sent[2]

    def sent_count(self, venue: str) -> int:
        """Return how many data frames ``venue`` has written, summed over clients."""
        return self.server(venue).sent_count

    def clients(self, venue: str) -> int:
        """Return how many WebSocket clients ``venue`` has connected."""
        return len(self.server(venue).sessions)

    # -- test hooks --------------------------------------------------------------

    def fault(self, venue: str, spec: str | Fault) -> ActiveFault:
        """Apply a fault (``"silence,for=30"``) to ``venue`` now; see ``docs/faults.md``.

        ValueError for a venue not served, a bad spec, or a fault the venue
        cannot show (``skip`` on Bitstamp or Kraken, ``checksum`` but on
        Kraken and OKX, ``notice`` on Binance, Bitstamp and OKX only).
        """
        return self.server(venue).fault(spec)

    def faults(self, venue: str) -> list[ActiveFault]:
        """Return the faults in force on ``venue``, oldest first."""
        return list(self.server(venue).faults.active)

    def clear_faults(self, venue: str) -> int:
        """End every fault in force on ``venue``; return how many."""
        return self.server(venue).clear_faults()

    async def drop_clients(self, venue: str) -> int:
        """Abort every client connection of ``venue``; return how many."""
        return await self.server(venue).drop_clients()

    def pause(self, venue: str) -> None:
        """Stop publishing data for ``venue`` (requests are still answered): a ``pause`` fault."""
        self.server(venue).fault(Fault("pause"))

    def resume(self, venue: str) -> None:
        """Resume publishing for ``venue``: end its ``pause`` faults."""
        for active in list(self.server(venue).faults.pauses):
            active.cancel()

    def pause_market(self) -> None:
        """Stop stepping the market: every book and update id holds still.

        Publishing goes on, so diff streams catch up with the frozen books.
        """
        self.market_paused = True

    def resume_market(self) -> None:
        """Resume stepping the market."""
        self.market_paused = False

    def skip_update(self, venue: str, instrument: str) -> int:
        """Make ``venue`` drop the next diff event of ``instrument``, as if lost in transit.

        The event after it starts past the dropped range (Binance: its ``U``
        jumps; OKX ``prevSeqId``, Bybit ``u``, Coinbase ``sequence_num``), so a
        client must resynchronise. Return how many diff streams were affected
        (0 if none is subscribed). ValueError for a venue whose diff events
        carry no update ids (Bitstamp, Kraken).
        """
        return self.server(venue).skip_update(instrument.lower())

    def inject(self, venue: str, raw: bytes | str, *, binary: bool = False) -> int:
        """Send ``raw`` as one frame to every subscribed client of ``venue``; return how many."""
        return self.server(venue).inject(raw, binary)

    def request_reconnect(self, venue: str = "bitstamp", grace_s: float | None = None) -> int:
        """Send the venue's reconnect request, close those clients after ``grace_s``.

        Raise ValueError for a venue without one (Binance).
        """
        return self.server(venue).request_reconnect(grace_s)
