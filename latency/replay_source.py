"""Recorded feeds as a harness source: one venue's recording, replayed through its real protocol.

The replay server (:mod:`dragonfly.sim.replay`) serves a recording directory
in each venue's current protocol, at the recorded pace, a multiple of it or
as fast as possible. For a cell it replays one venue: the recorded book
symbol with the most frames (over all of the venue's recorded connections),
to which dragonfly subscribes on the venue's diff channel (the recordings are
diff streams), and the relay with the same subscribe frames.

Stamps: the replay session logs the send time of every TEXT frame it writes,
numbered as the client counts them, so a subscriber's ``source_frame`` finds
its send time as with the synthetic generator. Frames are held back (the
connection's ``gate``) until the harness has connected everything, so a
short recording is not spent before anyone listens.
"""

from __future__ import annotations

import asyncio
from array import array
from dataclasses import dataclass
from pathlib import Path

from dragonfly.core.errors import ConfigError
from dragonfly.core.symbols import normalise_instrument
from dragonfly.sim.replay import ReplaySimulator
from dragonfly.sim.replay.base import ReplayConnection
from dragonfly.venues import get_venue


@dataclass(frozen=True)
class ReplaySpec:
    """Which recording to replay: a directory, one venue, a pace (``None``: as fast as possible)."""

    directory: str
    venue: str
    pace: float | None = 1.0


def instrument_of(venue: str, symbol: str) -> str | None:
    """The normalised instrument whose ``venue`` symbol is ``symbol``, or ``None``."""
    spec = get_venue(venue)
    name = normalise_instrument(symbol)
    for candidate in (name.replace("xbt", "btc"), name):  # dragonfly spells bitcoin btc
        if spec.venue_symbol(candidate) == symbol:
            return candidate
    return None


class ReplaySource:
    """A :class:`ReplaySimulator` of one venue, driven like :class:`latency.generator.LoadGenerator`."""

    def __init__(self, spec: ReplaySpec) -> None:
        self.spec = spec
        self.venues = (spec.venue,)
        self.sim = ReplaySimulator(Path(spec.directory), venues=[spec.venue], pace=spec.pace)
        self.conn: ReplayConnection | None = None
        self.symbol = ""
        self.instrument = ""

    async def start(self) -> None:
        """Load the recording, pick the symbol, bind the server with its frames held back."""
        await asyncio.to_thread(self.sim.load)
        best: tuple[int, ReplayConnection, str] | None = None
        for conn in self.sim.connections:
            for symbol in conn.symbols:
                count = conn.frame_count(symbol)
                if instrument_of(self.spec.venue, symbol) and (best is None or count > best[0]):
                    best = (count, conn, symbol)
        if best is None:
            raise ConfigError(f"no recorded {self.spec.venue} book symbol maps to an instrument")
        _, self.conn, self.symbol = best
        self.instrument = instrument_of(self.spec.venue, self.symbol) or ""
        for conn in self.sim.connections:
            conn.gate.clear()
        await self.sim.start()

    @property
    def frames(self) -> int:
        """Recorded frames of the chosen symbol."""
        return self.conn.frame_count(self.symbol) if self.conn else 0

    @property
    def done(self) -> asyncio.Event:
        """Set once every recorded frame of the symbol has been sent."""
        assert self.conn is not None, "start() first"
        return self.conn.done

    def ws_urls(self) -> dict[str, str]:
        """The venue's WebSocket URL."""
        assert self.conn is not None, "start() first"
        return {self.spec.venue: self.conn.ws_url}

    def subscribed(self) -> int:
        """1 once a client subscribed to the chosen symbol, else 0."""
        return int(self.conn is not None and self.conn.subscribers(self.symbol) > 0)

    def go(self) -> None:
        """Release the frames."""
        for conn in self.sim.connections:
            conn.gate.set()

    def send_log(self, venue: str) -> array[int]:
        """Send times by frame number of the client connection to ``venue``."""
        sessions = list(self.conn.sessions) if self.conn is not None and venue == self.spec.venue else []
        if len(sessions) != 1:
            raise RuntimeError(f"{venue}: expected one client connection to the replay, not {len(sessions)}")
        return sessions[0].send_log

    def server_args(self, system: str) -> list[str]:
        """Arguments of ``system``'s server for this source (after the port)."""
        assert self.conn is not None, "start() first"
        venue, ws = self.spec.venue, self.conn.ws_url
        if system == "dragonfly":
            return [
                self.instrument, "--venues", venue, "--channel", "diff",
                "--endpoint", f"{venue}={ws}", "--rest-endpoint", f"{venue}={self.conn.rest_url}",
            ]  # fmt: skip
        channel = get_venue(venue).diff
        assert channel is not None, f"{venue} has no diff channel"
        frames = channel.subscribe([get_venue(venue).venue_symbol(self.instrument)])
        subscribe = [a for f in frames for a in ("--subscribe", f"{venue}={f.decode()}")]
        return ["--endpoint", f"{venue}={ws}", *subscribe]

    async def stop(self) -> None:
        """Stop the replay server."""
        await self.sim.stop()
