"""The load generator: loopback venues that send pre-encoded book frames at a fixed rate.

One picows server per venue speaks just enough of the venue's protocol for a
client to subscribe (Binance ``/ws``: ``SUBSCRIBE`` -> ``{"result":null,"id":1}``;
Bitstamp ``/``: ``bts:subscribe`` -> ``bts:subscription_succeeded``; Binance's
``exchangeInfo`` symbol check over plain HTTP), then streams a cycle of
pre-encoded frames whose top of book changes every frame.

Every frame sent on a connection is numbered as the client counts it (frame 1
is the subscription ack) and its send time (``time.time_ns()``, taken just
before ``transport.send``) is logged, so ``send_log[frame]`` is the send time
of the frame a subscriber's ``source_frame`` names.

Pacing: a timer every ``tick_s`` (1 ms) sends the frames due since the start
(``rate * elapsed - sent``), so at rates above one frame per tick frames leave
in small bursts, as they do from a real venue's gateway. Streaming starts only
after :meth:`LoadGenerator.go`, so the harness can connect everything first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Sequence

from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from latency.frames import binance_depth20, bitstamp_order_book

#: The instrument the generated frames are books of (as the relay subscribes it too).
INSTRUMENT = "ethbtc"

__all__ = ["ACKS", "VENUES", "LoadGenerator", "VenueStream"]

#: Venues the generator speaks.
VENUES = ("binance", "bitstamp")
#: The subscription ack each venue answers with (frame 1 of a connection).
ACKS = {
    "binance": b'{"result":null,"id":1}',
    "bitstamp": b'{"event":"bts:subscription_succeeded","channel":"order_book_ethbtc","data":{}}',
}
_EXCHANGE_INFO = b'{"symbols":[{"symbol":"ETHBTC","status":"TRADING"}]}'
_time_ns = time.time_ns
_TEXT = WSMsgType.TEXT


def make_frames(venue: str, count: int) -> list[bytes]:
    """Return ``count`` frames of ``venue`` whose top of book changes every frame."""
    if venue == "binance":
        return binance_depth20(count)
    if venue == "bitstamp":
        return bitstamp_order_book(count)
    raise ValueError(f"unknown venue {venue!r}: expected one of {', '.join(VENUES)}")


def restamp_bitstamp(frame: bytes, now_ns: int) -> bytes:
    """``frame`` with its ``timestamp`` and ``microtimestamp`` set to ``now_ns``.

    A Bitstamp book's age is read from its ``microtimestamp`` (the trust rules
    withdraw a book whose data is older than its venue's ``stale_after``), so a
    recycled frame keeping the time it was generated at would never be let into
    the merge: every figure would be a one-venue merge's. Both fields are
    fixed-width numbers in :func:`latency.frames.bitstamp_order_book`'s frames;
    the time only goes forward, so no frame reads as older than the last.
    """
    i = frame.index(b'"timestamp":"') + 13
    j = frame.index(b'"microtimestamp":"', i) + 18
    seconds, micros = now_ns // 1_000_000_000, now_ns // 1000
    return b"%s%010d%s%016d%s" % (frame[:i], seconds, frame[i + 10 : j], micros, frame[j + 16 :])


class VenueStream(WSListener):
    """One client connection: answers the subscribe, then streams when told to."""

    def __init__(self, gen: VenueServer) -> None:
        self.gen = gen
        self.transport: WSTransport | None = None
        #: Send time of every frame sent, by frame number (index 0 unused).
        self.send_log = array("q", [0])
        self.subscribed = False

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.gen.streams.append(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.transport = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT or self.subscribed:
            return
        payload = frame.get_payload_as_bytes()
        if b"subscribe" in payload.lower() and b"unsubscribe" not in payload.lower():
            self.subscribed = True
            self.send(self.gen.ack)

    def send(self, payload: bytes) -> None:
        """Send one frame and log its send time."""
        transport = self.transport
        if transport is not None:
            self.send_log.append(_time_ns())
            transport.send(_TEXT, payload)


class VenueServer:
    """A loopback server of one venue (see module doc)."""

    def __init__(self, venue: str, frames: Sequence[bytes]) -> None:
        self.venue = venue
        self.frames = frames
        self.ack = ACKS[venue]
        self.streams: list[VenueStream] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._next = 0

    @property
    def path(self) -> str:
        """The WebSocket path clients connect to."""
        return "/ws" if self.venue == "binance" else "/"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL of this venue."""
        return f"ws://127.0.0.1:{self.port}{self.path}"

    def _route(self, request: WSUpgradeRequest) -> VenueStream | WSUpgradeResponseWithListener:
        if "websocket" in request.headers.get("Upgrade", "").lower():
            return VenueStream(self)
        path = request.path.decode("latin-1")
        if path.startswith("/api/v3/exchangeInfo"):
            headers = {"Content-Type": "application/json"}
            response = WSUpgradeResponse.create_ok_response(_EXCHANGE_INFO, headers)
        else:
            response = WSUpgradeResponse.create_error_response(404, b"Not Found", {})
        return WSUpgradeResponseWithListener(response, None)

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await ws_create_server(self._route, "127.0.0.1", 0, logger_name="latency.gen")
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Disconnect every client and close the socket."""
        for stream in self.streams:
            if stream.transport is not None:
                stream.transport.disconnect(graceful=False)
        if self._server is not None:
            self._server.close()
            self._server = None

    def send_next(self) -> int:
        """Send the next frame of the cycle to every subscribed stream; return how many sends."""
        frame = self.frames[self._next]
        self._next = (self._next + 1) % len(self.frames)
        if self.venue == "bitstamp":
            frame = restamp_bitstamp(frame, _time_ns())
        n = 0
        for stream in self.streams:
            if stream.subscribed and stream.transport is not None:
                stream.send(frame)
                n += 1
        return n


class LoadGenerator:
    """Venue servers streaming ``rate`` frames per second in total, taking turns."""

    def __init__(
        self, venues: Sequence[str], rate: float, *, frames: int = 1000, tick_s: float = 0.001
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.venues = tuple(venues)
        self.servers = {v: VenueServer(v, make_frames(v, frames)) for v in venues}
        self.rate = rate
        self.tick_s = tick_s
        self.sent = 0  #: data frames sent (all venues, one connection each counted)
        self._task: asyncio.Task[None] | None = None
        #: Wall-clock ns when streaming started, or 0.
        self.started_ns = 0

    async def start(self) -> None:
        """Bind every venue server."""
        for server in self.servers.values():
            await server.start()

    def ws_urls(self) -> dict[str, str]:
        """Each venue's WebSocket URL."""
        return {v: srv.ws_url for v, srv in self.servers.items()}

    def server_args(self, system: str) -> list[str]:
        """Arguments of ``system``'s server for these venues (after the port)."""
        endpoints = [a for venue, url in self.ws_urls().items() for a in ("--endpoint", f"{venue}={url}")]
        if system == "dragonfly":
            return [INSTRUMENT, "--venues", ",".join(self.servers), *endpoints]
        return endpoints

    def subscribed(self) -> int:
        """The number of subscribed client connections."""
        return sum(s.subscribed for srv in self.servers.values() for s in srv.streams)

    def send_log(self, venue: str) -> array[int]:
        """Send times by frame number of the (last) connection to ``venue``."""
        streams = self.servers[venue].streams
        return streams[-1].send_log if streams else array("q", [0])

    def go(self) -> None:
        """Start streaming at the configured rate."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pace())

    async def stop(self) -> None:
        """Stop streaming and close every server."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for server in self.servers.values():
            await server.stop()

    async def _pace(self) -> None:
        # Frame j of the whole schedule goes to venue j % n at j / rate: the
        # venues take turns, so at low rates no two frames leave together.
        servers = list(self.servers.values())
        n = len(servers)
        rate = self.rate
        t0 = time.perf_counter()
        self.started_ns = _time_ns()
        done = 0
        tick = self.tick_s
        perf = time.perf_counter
        while True:
            target = int((perf() - t0) * rate) + 1
            while done < target:
                self.sent += servers[done % n].send_next()
                done += 1
            await asyncio.sleep(tick)
