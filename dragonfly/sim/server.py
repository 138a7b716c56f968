"""What every simulated venue shares: listening, routing, clients, pings, publishing, faults.

A venue module subclasses ``VenueServer`` and declares only what differs: the
WebSocket paths it accepts, how it answers client frames, its REST endpoints
(snapshots included), its notice, and how it encodes a publish. REST is served
on the WebSocket port and on a port of its own (:mod:`dragonfly.sim.restport`,
where REST faults apply). Everything here runs on one event loop; no locking
is needed because no callback awaits while touching shared state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from picows import (
    WSCloseCode,
    WSFrame,
    WSMsgType,
    WSUpgradeRequest,
    WSUpgradeResponseWithListener,
)

from dragonfly.sim.book import FloatLevel, SimBook, UnitLevel
from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.faultset import FaultSet
from dragonfly.sim.faults.rest import Streamer, answer
from dragonfly.sim.faults.spec import Fault
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.http import HttpReply, json_reply, phrase
from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.peer import Peer
from dragonfly.sim.plumbing import CLOSE_WAIT_S as CLOSE_WAIT_S
from dragonfly.sim.plumbing import MAX_MESSAGE as MAX_MESSAGE
from dragonfly.sim.plumbing import (
    await_closed,
    cancel_tasks,
    leave,
    listen,
    rest_reply,
    route,
    wait_server_closed,
)
from dragonfly.sim.restport import RestPort

log = logging.getLogger("dragonfly.sim")

#: How far back ``rest-stale`` can reach, and how finely (book states kept per instrument).
HISTORY_S = 30.0
HISTORY_STEP_S = 0.25


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


class Session(Peer):
    """One WebSocket client of a venue: subscriptions, ping and incoming-rate state."""

    def __init__(self, server: VenueServer[Any]) -> None:
        """Bind the session to the venue server that accepted it."""
        super().__init__(server.faults)
        self.server = server
        # Unanswered PINGs, oldest first: (payload, monotonic send time).
        self.pings: deque[tuple[bytes, float]] = deque()
        self.next_ping = 0.0
        self._window = 0  # current whole second of the incoming-rate window
        self._window_count = 0

    def attached(self) -> None:
        """Register with the server."""
        self.server.attach(self)

    def detached(self) -> None:
        """Forget the session everywhere."""
        self.server.detach(self)

    def on_frame(self, frame: WSFrame) -> None:
        """Count the frame against the rate limit; note PONGs, reassemble messages."""
        if not self._count_incoming():
            return
        if frame.msg_type == WSMsgType.PONG:
            self._on_pong(frame.get_payload_as_bytes())
        else:
            super().on_frame(frame)

    def on_message(self, payload: bytes) -> None:
        """Hand a complete client message to the server."""
        self.server.on_message(self, payload)

    # -- helpers used by the server ----------------------------------------

    def send(self, data: bytes) -> bool:
        """Send a TEXT frame; drop the client instead if it stopped reading."""
        return not self._stopped_reading() and super().send(data)

    def send_book(self, data: bytes) -> bool:
        """Send a book frame; drop the client instead if it stopped reading."""
        return not self._stopped_reading() and super().send_book(data)

    def _stopped_reading(self) -> bool:
        transport = self.transport
        if self.paused and transport is not None and not self.closing:
            buffered = transport.underlying_transport.get_write_buffer_size()
            if buffered > self.server.config.max_write_buffer:
                log.info("%s: dropping a client that stopped reading", self.server.name)
                self.abort()
                return True
        return False

    def check_ping(self, now: float, interval: float, timeout: float) -> None:
        """Drop the client if a PING went unanswered too long, else PING when due."""
        if self.stalled:
            return
        if self.pings and now - self.pings[0][1] > timeout:
            self.close(WSCloseCode.POLICY_VIOLATION, "pong timeout")
            return
        if now >= self.next_ping and self.transport is not None:
            payload = str(time.time_ns() // 1_000_000).encode()
            self.next_ping = now + interval
            if self.ping(payload):
                self.pings.append((payload, now))

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


@dataclass(frozen=True)
class BookState:
    """A venue book as a REST snapshot shows it: stamps and levels best first."""

    update_id: int
    micros: int
    bids: list[UnitLevel]
    asks: list[UnitLevel]


class VenueServer(Generic[S]):
    """One venue's listening sockets (WebSocket, REST), clients, publish cadence and faults."""

    #: Venue name, as used by the Simulator API.
    name: ClassVar[str]
    #: Path a client connects to for the plain WebSocket endpoint.
    ws_path: ClassVar[str]
    #: Timing and limits of the live venue.
    default_config: ClassVar[VenueConfig]
    #: What the venue's protocol has that some faults need.
    capabilities: ClassVar[Capabilities]

    def __init__(
        self,
        market: SyntheticMarket,
        config: VenueConfig,
        host: str,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        rest_port: int = 0,
    ) -> None:
        """Prepare to serve ``market`` on ``host:port`` and REST on ``host:rest_port`` (0: free)."""
        self.market = market
        self.config = config
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.sessions: dict[S, None] = {}
        #: Channel key -> subscribed sessions (ordered sets).
        self.channels: dict[str, dict[S, None]] = {}
        self.sent_count = 0
        #: WebSocket connections accepted since start (stalled ones included).
        self.opened = 0
        #: instrument -> (bids, asks, wall ns) of the last book frame sent.
        self.last_sent: dict[str, tuple[list[FloatLevel], list[FloatLevel], int]] = {}
        #: The faults in force on this venue.
        self.faults = FaultSet(self)
        self.rest = RestPort(self._rest_answer, host, rest_port, ssl_context, f"sim.{self.name}")
        # instrument -> (monotonic time, book state), oldest first, for rest-stale.
        self._history: dict[str, deque[tuple[float, BookState]]] = {}
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

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

    def book_seq(self, book: SimBook) -> int:
        """Return the venue's position of ``book`` as its frames carry it (a client's ``seq``)."""
        raise NotImplementedError

    def notice_frame(self, peer: Peer) -> bytes | None:
        """Return the venue's notice that the connection will close (default: its reconnect request)."""
        return self.reconnect_frame()

    def skip_update(self, instrument: str) -> int:
        """Drop the next diff event of ``instrument``'s streams; return how many streams.

        Raise ValueError for a venue whose diff events carry no update ids.
        """
        raise ValueError(f"{self.name} has no update ids to skip")

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the instrument a GET asks a book snapshot of, or None if it is none."""
        return None

    def encode_snapshot(self, state: BookState, query: dict[str, str]) -> HttpReply:
        """Return the REST snapshot answer showing ``state``."""
        raise NotImplementedError

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error answer with ``status``."""
        return json_reply({"error": phrase(status)}, status)

    # -- fault target --------------------------------------------------------

    @property
    def notice_grace_s(self) -> float:
        """Return the delay between a reconnect notice and the close."""
        return self.config.reconnect_grace_s

    def history(self, symbol: str) -> Sequence[bytes]:
        """Return no frames: a synthetic book needs no replayed history."""
        return ()

    def book_state(self, instrument: str, age_s: float = 0.0) -> BookState:
        """Return ``instrument``'s book now, or as sampled ``age_s`` seconds ago (the oldest kept)."""
        samples = self._history.get(instrument)
        if age_s > 0 and samples:
            cutoff = time.monotonic() - age_s
            older = [state for at, state in samples if at <= cutoff]
            return older[-1] if older else samples[0][1]
        book = self.market.book(self.name, instrument)
        bids, asks = book.sorted_levels()
        return BookState(book.update_id, book.micros, bids, asks)

    def snapshot_reply(self, key: str, query: dict[str, str], age: float, ahead: int) -> HttpReply:
        """Answer a snapshot request with the book ``age`` seconds old, stamped ``ahead`` on."""
        state = self.book_state(key, age)
        if ahead:
            state = dataclasses.replace(state, update_id=state.update_id + ahead,
                                        micros=state.micros + ahead)
        return self.encode_snapshot(state, query)

    def fault(self, spec: str | Fault) -> ActiveFault:
        """Apply a fault to this venue now; ValueError for a bad spec or one it cannot show."""
        return self.faults.add(spec)

    def clear_faults(self) -> int:
        """End every fault in force; return how many."""
        return self.faults.clear()

    @property
    def paused(self) -> bool:
        """Return True while data is held back (a ``pause`` fault is in force)."""
        return self.faults.pausing

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Bind the sockets and start the publish, ping and history loops."""
        self._server, self.port = await listen(self._route, self.host, self.port,
                                               self.ssl_context, f"sim.{self.name}")
        await self.rest.start()
        self._tasks.append(asyncio.create_task(self._publish_loop()))
        self._tasks.append(asyncio.create_task(self._history_loop()))
        if self.config.ping_interval_s is not None:
            self._tasks.append(asyncio.create_task(self._ping_loop()))

    async def stop(self) -> None:
        """Stop the loops and faults, close every client and the sockets."""
        self.faults.clear()
        await cancel_tasks(self._tasks)
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close(WSCloseCode.GOING_AWAY, "server shutdown")
        await await_closed(list(self.sessions))
        await self.rest.stop()
        await wait_server_closed(self._server)
        self._server = None

    # -- client registry ---------------------------------------------------

    def attach(self, session: S) -> None:
        """Register a connected session (called by the session)."""
        self.sessions[session] = None
        self.opened += 1
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
        self.faults.subscribed(session)
        return True

    def unsubscribe(self, session: S, key: str) -> bool:
        """Remove ``session`` from channel ``key``; return False if it was not in it."""
        return leave(self.channels, session, session.subs, key)

    def deliver(self, sessions: dict[S, None] | list[S], data: bytes) -> int:
        """Send the same book frame to every session; return how many got it."""
        sent = 0
        for session in sessions:
            sent += session.send_book(data)
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
        return sum(session.send_raw(kind, data) for session in list(self.sessions) if session.subs)

    async def drop_clients(self) -> int:
        """Abort every client connection without a CLOSE frame; return how many."""
        sessions = list(self.sessions)
        self.fault(Fault("drop"))
        await await_closed(sessions)
        return len(sessions)

    def request_reconnect(self, grace_s: float | None = None) -> int:
        """Ask every client to reconnect, then close them after the grace period."""
        if self.reconnect_frame() is None:
            raise ValueError(f"{self.name} has no reconnect request")
        return self.fault(Fault("notice", {} if grace_s is None else {"grace": grace_s})).applied

    # -- routing and loops -------------------------------------------------

    def _route(self, request: WSUpgradeRequest) -> Peer | WSUpgradeResponseWithListener | None:
        return route(request, self.open_session, self.handle_rest, log, self.name, self.faults)

    async def _rest_answer(self, path: str, query: dict[str, str]) -> HttpReply | Streamer:
        return await answer(self.faults, path, query, self._plain_rest)

    def _plain_rest(self, path: str, query: dict[str, str]) -> HttpReply:
        return rest_reply(self.handle_rest, path, query, log, self.name)

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
            if self.channels and self.faults.pausing:
                self.faults.paused_round()
            elif self.channels:
                try:
                    self.publish(tick)
                except Exception:
                    log.exception("%s: publish failed", self.name)
            tick += 1

    async def _history_loop(self) -> None:
        # Book states sampled for rest-stale: cheap, since a state shares the book's
        # cached sorted lists (a new pair is built at every change, never mutated).
        keep = int(HISTORY_S / HISTORY_STEP_S)
        while True:
            now = time.monotonic()
            for instrument in self.market.instruments:
                samples = self._history.setdefault(instrument, deque(maxlen=keep))
                samples.append((now, self.book_state(instrument)))
            await asyncio.sleep(HISTORY_STEP_S)

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
