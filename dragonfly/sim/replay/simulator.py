"""The replay simulator: every recorded connection of a directory on its own loopback port."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from dragonfly.recording import (
    RecordedConnection,
    RecordedRest,
    RecordingError,
    Rest,
    discover,
    read_recording,
)
from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.spec import Fault, as_fault
from dragonfly.sim.faults.target import check_supported
from dragonfly.sim.replay.base import ReplayConnection
from dragonfly.sim.replay.binance import BinanceReplay
from dragonfly.sim.replay.bitstamp import BitstampReplay
from dragonfly.sim.replay.bybit import BybitReplay
from dragonfly.sim.replay.coinbase import CoinbaseReplay
from dragonfly.sim.replay.kraken import KrakenReplay
from dragonfly.sim.replay.okx import OkxReplay

#: Problems found in the recordings are logged here (and kept in ReplaySimulator.errors).
log = logging.getLogger("dragonfly.sim.replay.recording")

#: Replay server of each venue.
CONNECTIONS: dict[str, type[ReplayConnection]] = {
    "binance": BinanceReplay,
    "bitstamp": BitstampReplay,
    "kraken": KrakenReplay,
    "okx": OkxReplay,
    "coinbase": CoinbaseReplay,
    "bybit": BybitReplay,
}


class ReplaySimulator:
    """Serve a directory of recordings over loopback in each venue's current protocol.

    One port per recorded WebSocket connection file (``BYBIT.ws.25.0`` and
    ``BYBIT.ws.26.0`` are two), REST snapshots of the venue on a REST port of its own
    (``rest_url``) and on the WebSocket port.

        async with ReplaySimulator(directory, venues=["binance"]) as replay:
            conn = replay.connections[0]
            conn.ws_url, conn.rest_url, conn.symbols   # ws://127.0.0.1:P/ws, ...
            await conn.done.wait()

    ``pace=None`` replays as fast as possible, ``pace=1.0`` at the recorded
    pace, ``pace=k`` k times faster. A venue that stamps its data with its
    own clock (Bitstamp) has its stamps moved on to the replay's present, as
    a client that dates data by them expects of a live feed; with
    ``recorded_clock=True`` every byte is served as recorded. Problems in the recordings (malformed
    lines, unknown venues, untranslatable frames) are collected in
    ``errors`` (and logged); the rest of the replay goes on. See
    ``dragonfly.sim.replay.base`` for the streaming model (per-connection
    cursors: a reconnecting client continues where the replay is).
    """

    def __init__(self, directory: str | Path, *, venues: Iterable[str] | None = None,
                 pace: float | None = None, host: str = "127.0.0.1",
                 ssl_context: ssl.SSLContext | None = None, recorded_clock: bool = False) -> None:
        """Check the arguments; nothing is read or bound until load() / start()."""
        chosen = tuple(dict.fromkeys(v.lower() for v in venues)) if venues is not None else tuple(CONNECTIONS)
        for venue in chosen:
            if venue not in CONNECTIONS:
                raise ValueError(f"unknown venue {venue!r}: expected one of {', '.join(CONNECTIONS)}")
        if pace is not None and not pace > 0:
            raise ValueError("pace must be positive or None")
        self.directory = Path(directory)
        self.venues = chosen
        self.pace = pace
        self.recorded_clock = recorded_clock
        self.host = host
        self.ssl_context = ssl_context
        #: Problems found in the recordings; each also logged as a warning.
        self.errors: list[RecordingError] = []
        self._connections: list[ReplayConnection] = []
        self._loaded = False
        self._started: list[ReplayConnection] = []
        self._headers: dict[Path, list[Rest]] = {}

    @property
    def connections(self) -> list[ReplayConnection]:
        """Return the replayed connections, by venue then file (empty before load)."""
        return list(self._connections)

    def connection(self, key: str) -> ReplayConnection:
        """Return the connection of a file name (``BYBIT.ws.25.0``) or the first of a venue."""
        for conn in self._connections:
            if conn.name == key or conn.venue == key:
                return conn
        raise KeyError(f"no replayed connection {key!r}")

    # -- faults --------------------------------------------------------------------

    def connections_of(self, key: str) -> list[ReplayConnection]:
        """Return the connections of a venue (``okx``), or the one of a file (``OKX.ws.1.0``).

        ValueError if none is replayed.
        """
        found = [c for c in self._connections if key in (c.venue, c.name)]
        if not found:
            raise ValueError(f"no replayed connection of {key!r}")
        return found

    def fault(self, venue: str, spec: str | Fault) -> ActiveFault:
        """Apply a fault to every replayed connection of ``venue`` (or one file's) now.

        One connection: its fault; several: a group whose ``applied`` sums them
        and whose ``cancel()`` ends them all. ValueError for an unknown venue, a
        bad spec, or a fault the venue cannot show (nothing is applied then).
        """
        fault = as_fault(spec)
        conns = self.connections_of(venue)
        for conn in conns:
            check_supported(fault, conn.capabilities)
        parts = [conn.fault(fault) for conn in conns]
        return parts[0] if len(parts) == 1 else ActiveFault(fault, parts)

    def faults(self, venue: str) -> list[ActiveFault]:
        """Return the faults in force on ``venue``'s connections, oldest first per connection."""
        return [a for conn in self.connections_of(venue) for a in conn.faults.active]

    def clear_faults(self, venue: str) -> int:
        """End every fault in force on ``venue``'s connections; return how many."""
        return sum(conn.clear_faults() for conn in self.connections_of(venue))

    def _report(self, error: RecordingError) -> None:
        self.errors.append(error)
        log.warning("%s", error)

    def load(self) -> None:
        """Read and translate the recordings, synchronously (start() does it if not done).

        Raise RecordingError if the directory cannot be read or holds no
        recorded connection of the chosen venues.
        """
        if self._loaded:
            return
        files = discover(self.directory, self._report)
        snapshots: dict[str, dict[str, list[tuple[float, bytes]]]] = {}
        for file in files:
            if isinstance(file, RecordedRest) and file.venue in self.venues:
                found = snapshots.setdefault(file.venue, {})
                for response in self._read_rest(file.path):
                    symbol = CONNECTIONS[file.venue].snapshot_symbol(response.url)
                    if symbol is not None:
                        found.setdefault(symbol, []).append((response.ts, response.body))
        for found in snapshots.values():
            for recorded in found.values():
                recorded.sort(key=lambda tb: tb[0])  # stable: file order among equal times
        connections = []
        for file in files:
            if isinstance(file, RecordedConnection) and file.venue in self.venues:
                conn = self._build(file, snapshots.get(file.venue, {}))
                if conn is not None:
                    connections.append(conn)
        if not connections:
            wanted = ", ".join(v.upper() for v in self.venues)
            raise RecordingError(self.directory, None,
                                 f"no recorded WebSocket connection (VENUE.ws.N.M) of {wanted}")
        self._connections = connections
        self._loaded = True

    def _read_rest(self, path: Path) -> list[Rest]:
        try:
            return [r for r in read_recording(path, self._report) if isinstance(r, Rest)]
        except RecordingError as error:
            self._report(error)
            return []

    def _build(self, file: RecordedConnection, snapshots: dict[str, list[tuple[float, bytes]]]
               ) -> ReplayConnection | None:
        try:
            records = list(read_recording(file.path, self._report))
        except RecordingError as error:
            self._report(error)
            return None
        header = self._headers.get(file.header)
        if header is None:
            header = self._read_rest(file.header) if file.header.is_file() else []
            self._headers[file.header] = header

        def report(line: int, reason: str) -> None:
            self._report(RecordingError(file.path, line, reason))

        return CONNECTIONS[file.venue].from_records(
            file.name, records, report, snapshots=snapshots, header=header, host=self.host,
            ssl_context=self.ssl_context, pace=self.pace, recorded_clock=self.recorded_clock)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Load (if needed, in a worker thread) and bind every connection's port."""
        if not self._loaded:
            await asyncio.to_thread(self.load)
        try:
            for conn in self._connections:
                await conn.start()
                self._started.append(conn)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every connection and its clients."""
        started, self._started = self._started, []
        await asyncio.gather(*(conn.stop() for conn in started))

    async def __aenter__(self) -> ReplaySimulator:
        """Start; return self."""
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop."""
        await self.stop()
