"""What every simulated venue shares: listening, routing, clients, pings, publishing.

A venue module subclasses ``VenueServer`` and declares only what differs: the
WebSocket paths it accepts, how it answers client frames, its REST endpoints
and how it encodes a publish. Everything here runs on one event loop; no
locking is needed because no callback awaits while touching shared state.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
)

from dragonfly.sim.book import FloatLevel
from dragonfly.sim.http import HttpReply
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.plumbing import CLOSE_WAIT_S as CLOSE_WAIT_S
from dragonfly.sim.plumbing import MAX_MESSAGE as MAX_MESSAGE
from dragonfly.sim.plumbing import (
    Reassembler,
    await_closed,
    cancel_tasks,
    leave,
    listen,
    route,
    wait_server_closed,
)

log = logging.getLogger("dragonfly.sim")



@dataclass(frozen=True)
class VenueConfig:
    """Timing and limits of one simulated venue; None disables a feature."""

    period_s: float = 0.1  # base publish cadence
    slow_factor: int = 10  # slow streams publish every slow_factor base periods
    ping_interval_s: float | None = None  # server PING cadence
    pong_timeout_s: float | None = None  # drop a client whose oldest unanswered PING is older
    max_msgs_per_s: int | None = None  # incoming frames per second before a drop
    reconnect_grace_s: float = 5.0  # between a reconnect request and the close
    max_write_buffer: int = 4 * 1024 * 1024  # bytes queued to a stalled client before a drop

    def __post_init__(self) -> None:
        """Reject values that cannot run."""
        if self.period_s <= 0:
            raise ValueError("period_s must be positive")
        if self.slow_factor < 1:
            raise ValueError("slow_factor must be at least 1")
        for name in ("ping_interval_s", "pong_timeout_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")


class Session(WSListener):
    """One WebSocket client of a venue: transport, subscriptions, ping and rate state."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind the session to the venue server that accepted it."""
        super().__init__()
        self.server = server
        self.transport: WSTransport | None = None
        #: Subscribed channel keys in subscription order (an ordered set).
        self.subs: dict[str, None] = {}
        # Unanswered PINGs, oldest first: (payload, monotonic send time).
        self.pings: deque[tuple[bytes, float]] = deque()
        self.next_ping = 0.0
        self._window = 0  # current whole second of the incoming-rate window
        self._window_count = 0
        self._fragments = Reassembler()
        self.paused = False

    # -- picows callbacks ------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Register with the server."""
        self.transport = transport
        self.server.attach(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Forget the session everywhere."""
        self.server.detach(self)

    def pause_writing(self) -> None:
        """Note that the socket buffer is full."""
        self.paused = True

    def resume_writing(self) -> None:
        """Note that the socket buffer drained."""
        self.paused = False

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Dispatch a client frame; PINGs are answered by picows itself."""
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            return
        if not self._count_incoming():
            return
        if kind == WSMsgType.PONG:
            self._on_pong(frame.get_payload_as_bytes())
        else:
            self._fragments.feed(frame, self._deliver, self.close)

    def _deliver(self, message: bytes) -> None:
        self.server.on_message(self, message)

    # -- helpers used by the server ----------------------------------------

    def send(self, data: bytes) -> bool:
        """Send a TEXT frame; drop the client instead if it stopped reading."""
        transport = self.transport
        if transport is None or transport.is_close_frame_sent:
            return False
        if self.paused:
            buffered = transport.underlying_transport.get_write_buffer_size()
            if buffered > self.server.config.max_write_buffer:
                log.info("%s: dropping a client that stopped reading", self.server.name)
                transport.disconnect(graceful=False)
                return False
        transport.send(WSMsgType.TEXT, data)
        return True

    def close(self, code: WSCloseCode, reason: str) -> None:
        """Send a CLOSE frame and disconnect."""
        if self.transport is not None:
            self.transport.send_close(code, reason.encode())
            self.transport.disconnect()

    def check_ping(self, now: float, interval: float, timeout: float) -> None:
        """Drop the client if a PING went unanswered too long, else PING when due."""
        if self.pings and now - self.pings[0][1] > timeout:
            self.close(WSCloseCode.POLICY_VIOLATION, "pong timeout")
            return
        if now >= self.next_ping and self.transport is not None:
            payload = str(time.time_ns() // 1_000_000).encode()
            self.pings.append((payload, now))
            self.next_ping = now + interval
            self.transport.send_ping(payload)

    def _on_pong(self, payload: bytes) -> None:
        # Only a PONG that echoes an outstanding PING answers it (and all older ones);
        # an unsolicited PONG does not keep the connection alive.
        for index, (sent, _) in enumerate(self.pings):
            if sent == payload:
                for _ in range(index + 1):
                    self.pings.popleft()
                return

    def _count_incoming(self) -> bool:
        limit = self.server.config.max_msgs_per_s
        if limit is None:
            return True
        second = int(time.monotonic())
        if second != self._window:
            self._window, self._window_count = second, 0
        self._window_count += 1
        if self._window_count > limit:
            self.close(WSCloseCode.POLICY_VIOLATION, "too many requests")
            return False
        return True


S = TypeVar("S", bound=Session)


class VenueServer(Generic[S]):
    """One venue's listening socket, clients and publish cadence."""

    #: Venue name, as used by the Simulator API.
    name: ClassVar[str]
    #: Path a client connects to for the plain WebSocket endpoint.
    ws_path: ClassVar[str]
    #: Timing and limits of the live venue.
    default_config: ClassVar[VenueConfig]

    def __init__(
        self,
        market: SyntheticMarket,
        config: VenueConfig,
        host: str,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare to serve ``market`` on ``host:port`` (0 picks a free port)."""
        self.market = market
        self.config = config
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.sessions: dict[S, None] = {}
        #: Channel key -> subscribed sessions (ordered sets).
        self.channels: dict[str, dict[S, None]] = {}
        self.paused = False
        self.sent_count = 0
        #: instrument -> (bids, asks, wall ns) of the last book frame sent.
        self.last_sent: dict[str, tuple[list[FloatLevel], list[FloatLevel], int]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: list[asyncio.TimerHandle] = []

    # -- venue hooks -------------------------------------------------------

    def open_session(self, path: str, query: dict[str, str]) -> S | None:
        """Return a session for a WebSocket upgrade to ``path``, or None for 404."""
        raise NotImplementedError

    def on_open(self, session: S) -> None:
        """Act on a freshly connected session (e.g. streams named in the path)."""

    def on_message(self, session: S, payload: bytes) -> None:
        """Answer one complete client message."""
        raise NotImplementedError

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Answer a plain GET, or return None for 404."""
        return None

    def publish(self, tick: int) -> None:
        """Send this period's frames; ``tick`` counts base periods since start."""
        raise NotImplementedError

    def reconnect_frame(self) -> bytes | None:
        """Return the venue's "please reconnect" message, or None if it has none."""
        return None

    def skip_update(self, instrument: str) -> int:
        """Drop the next diff event of ``instrument``'s streams; return how many streams.

        Raise ValueError for a venue whose diff events carry no update ids.
        """
        raise ValueError(f"{self.name} has no update ids to skip")

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start the publish and ping loops."""
        self._server, self.port = await listen(self._route, self.host, self.port,
                                               self.ssl_context, f"sim.{self.name}")
        self._tasks.append(asyncio.create_task(self._publish_loop()))
        if self.config.ping_interval_s is not None:
            self._tasks.append(asyncio.create_task(self._ping_loop()))

    async def stop(self) -> None:
        """Stop the loops, close every client and the socket."""
        for timer in self._timers:
            timer.cancel()
        await cancel_tasks(self._tasks)
        self._timers.clear()
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close(WSCloseCode.GOING_AWAY, "server shutdown")
        await await_closed(list(self.sessions))
        await wait_server_closed(self._server)
        self._server = None

    # -- client registry ---------------------------------------------------

    def attach(self, session: S) -> None:
        """Register a connected session (called by the session)."""
        self.sessions[session] = None
        interval = self.config.ping_interval_s
        if interval is not None:
            session.next_ping = time.monotonic() + interval
        self.on_open(session)

    def detach(self, session: S) -> None:
        """Forget a disconnected session and its subscriptions."""
        self.sessions.pop(session, None)
        for key in list(session.subs):
            self.unsubscribe(session, key)

    def subscribe(self, session: S, key: str) -> bool:
        """Add ``session`` to channel ``key``; return False if it already was."""
        if key in session.subs:
            return False
        session.subs[key] = None
        self.channels.setdefault(key, {})[session] = None
        return True

    def unsubscribe(self, session: S, key: str) -> bool:
        """Remove ``session`` from channel ``key``; return False if it was not in it."""
        return leave(self.channels, session, session.subs, key)

    def deliver(self, sessions: dict[S, None] | list[S], data: bytes) -> int:
        """Send the same bytes to every session; return how many got them."""
        sent = 0
        for session in sessions:
            sent += session.send(data)
        self.sent_count += sent
        return sent

    def record(self, instrument: str, bids: list[FloatLevel], asks: list[FloatLevel],
               sent_ns: int) -> None:
        """Remember the book frame last sent for ``instrument``."""
        self.last_sent[instrument] = (bids, asks, sent_ns)

    # -- test hooks --------------------------------------------------------

    def inject(self, raw: bytes | str, binary: bool = False) -> int:
        """Send ``raw`` as one frame to every subscribed client; return how many."""
        data = raw.encode() if isinstance(raw, str) else raw
        kind = WSMsgType.BINARY if binary else WSMsgType.TEXT
        sent = 0
        for session in list(self.sessions):
            transport = session.transport
            if session.subs and transport is not None and not transport.is_close_frame_sent:
                transport.send(kind, data)
                sent += 1
        return sent

    async def drop_clients(self) -> int:
        """Abort every client connection without a CLOSE frame; return how many."""
        sessions = list(self.sessions)
        for session in sessions:
            if session.transport is not None:
                session.transport.disconnect(graceful=False)
        await await_closed(sessions)
        return len(sessions)

    def request_reconnect(self, grace_s: float | None = None) -> int:
        """Ask every client to reconnect, then close them after the grace period."""
        frame = self.reconnect_frame()
        if frame is None:
            raise ValueError(f"{self.name} has no reconnect request")
        sessions = list(self.sessions)
        for session in sessions:
            session.send(frame)
        grace = self.config.reconnect_grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(grace, self._close_sessions, sessions))
        return len(sessions)

    def _close_sessions(self, sessions: list[S]) -> None:
        for session in sessions:
            if session in self.sessions:
                session.close(WSCloseCode.SERVICE_RESTART, "reconnect")

    # -- routing and loops -------------------------------------------------

    def _route(self, request: WSUpgradeRequest) -> S | WSUpgradeResponseWithListener | None:
        return route(request, self.open_session, self.handle_rest, log, self.name)

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.config.period_s
        next_at = loop.time()
        tick = 0
        while True:
            next_at += period
            delay = next_at - loop.time()
            if delay < 0:
                # Fell behind (e.g. a paused debugger): skip missed periods, keep phase.
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)
            if not self.paused and self.channels:
                try:
                    self.publish(tick)
                except Exception:
                    log.exception("%s: publish failed", self.name)
            tick += 1

    async def _ping_loop(self) -> None:
        interval = self.config.ping_interval_s
        assert interval is not None
        timeout = self.config.pong_timeout_s
        limit = float("inf") if timeout is None else timeout
        check = min(interval, limit) / 4
        while True:
            await asyncio.sleep(check)
            now = time.monotonic()
            for session in list(self.sessions):
                session.check_ping(now, interval, limit)
