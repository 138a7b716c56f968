"""What every replayed connection shares: ports, clients, per-symbol cursors, pacing, faults.

A recorded WebSocket connection is translated once, at load, into
:class:`Frame` s: the book frames of its symbols, in recorded order, already
encoded in the venue's current protocol. A :class:`ReplayConnection` serves
them on its own loopback port; a venue module subclasses it and declares only
what differs (accepted paths, how it answers client frames, its REST
endpoints, how a frame is encoded for one client).

Streaming model (one task per connection):

* every recorded symbol has a cursor into its own frames, kept by the
  connection, not by the client. The streamer sends, among the symbols that
  have at least one subscriber, the unsent frame recorded earliest, to every
  client subscribed to its symbol, then advances that symbol's cursor;
* so frames of one symbol always go out in recorded order, and a symbol
  subscribed later first catches up on its backlog (in recorded order);
* an unsubscribed symbol's cursor stands still. Resubscribing (on the same or
  a new client: a reconnect) continues from where it stood. A recording has
  no later in-band snapshot, so a reconnecting client of a venue whose
  snapshot is in-band (Kraken, OKX, Coinbase, Bybit) gets no new snapshot;
* with ``pace`` set, a frame is due ``ts / pace`` after the clock origin,
  which is reset whenever the streamer resumes after having had nothing to
  send, so the first frame after subscribing (or after every subscriber
  left) goes out at once and recorded gaps follow, scaled; an unsubscribe and
  resubscribe within a recorded gap keep the gap.
  With ``pace=None`` frames go out back to back, yielding to the event loop
  every ``YIELD_EVERY`` frames so clients and REST requests get served;
* flow control instead of drops: while a subscribed client's socket buffer is
  full the streamer waits for it (a replay never loses frames), so a client
  that stops reading stalls its connection's replay.

Everything runs on one event loop; no callback awaits while touching state.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import ssl
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from picows import WSCloseCode, WSUpgradeRequest, WSUpgradeResponseWithListener

from dragonfly.recording import Record, Rest
from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.faultset import FaultSet
from dragonfly.sim.faults.rest import Streamer, answer
from dragonfly.sim.faults.spec import Fault
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.http import HttpReply, json_reply, phrase
from dragonfly.sim.peer import Peer
from dragonfly.sim.plumbing import CLOSE_WAIT_S as CLOSE_WAIT_S
from dragonfly.sim.plumbing import MAX_MESSAGE as MAX_MESSAGE
from dragonfly.sim.plumbing import (
    authority,
    await_closed,
    cancel_tasks,
    leave,
    listen,
    rest_reply,
    route,
    wait_server_closed,
)
from dragonfly.sim.protocols import compact as compact
from dragonfly.sim.restport import RestPort

log = logging.getLogger("dragonfly.sim.replay")

#: Frames sent back to back before yielding to the event loop (pace=None).
YIELD_EVERY = 256

#: Report a translation problem: (recorded line number, reason).
Report = Callable[[int, str], None]
#: symbol -> [(recorded time, response body)], sorted by time.
Snapshots = Mapping[str, Sequence[tuple[float, bytes]]]


def loads(payload: bytes, report: Report, line: int) -> Any:
    """Parse a recorded payload as JSON; report it and return None if it is not."""
    try:
        return json.loads(payload)
    except ValueError as exc:
        report(line, f"not JSON: {exc}")
        return None


@dataclass(slots=True)
class Frame:
    """One recorded book frame of ``symbol``, encoded in the current protocol.

    ``data`` is what a plain client receives. ``alt`` is a venue-specific
    second part: Binance, the combined-stream (``/stream``) wrapping;
    Coinbase, the bytes after the per-client ``sequence_num`` (``data`` then
    ends just before the number).
    """

    ts: float
    symbol: str
    data: bytes
    alt: bytes | None = None


@dataclass
class Track:
    """A translated connection: frames in recorded order and the book symbols subscribed."""

    frames: list[Frame]
    symbols: list[str]


class ReplaySession(Peer):
    """One WebSocket client of a replayed connection."""

    def __init__(self, conn: ReplayConnection) -> None:
        """Bind the session to the connection that accepted it."""
        super().__init__(conn.faults)
        self.conn = conn
        #: ``time.time_ns()`` just before each TEXT frame sent, at the index the
        #: client counts it by (frame 1 first; index 0 unused): a latency
        #: harness matches a client's ``source_frame`` to its send time.
        self.send_log = array("q", [0])

    def attached(self) -> None:
        """Register with the connection."""
        self.conn.attach(self)

    def detached(self) -> None:
        """Forget the session."""
        self.conn.detach(self)

    def on_message(self, payload: bytes) -> None:
        """Hand a complete client message to the connection."""
        self.conn.on_message(self, payload)

    def text_sent(self) -> None:
        """Log the send time of the TEXT frame about to go out."""
        self.send_log.append(time.time_ns())


class ReplayConnection:
    """One recorded WebSocket connection, served on its own loopback port."""

    #: Venue name (``binance``).
    venue: ClassVar[str]
    #: Path of the live endpoint a client connects to (``/ws``).
    ws_path: ClassVar[str]
    #: Cadence of ``heartbeat()``, or None for a venue without server heartbeats.
    heartbeat_s: ClassVar[float | None] = None
    #: What the venue's protocol has that some faults need.
    capabilities: ClassVar[Capabilities]
    #: Delay between the venue's notice (``notice_frame``) and the close.
    notice_grace_s: ClassVar[float] = 5.0

    def __init__(self, name: str, track: Track, *, snapshots: Snapshots | None = None,
                 header: Sequence[Rest] = (), host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, pace: float | None = None,
                 rest_port: int = 0, recorded_clock: bool = False) -> None:
        """Prepare to serve ``track``; nothing binds until start().

        ``snapshots`` are the venue's recorded REST snapshots by symbol,
        ``header`` the venue's recorded session header responses. REST is
        served on ``rest_port`` (0: a free one) and on the WebSocket port.
        ``recorded_clock`` keeps the venue's own stamps as recorded (see
        :meth:`clock_shift_us`).
        """
        if pace is not None and not pace > 0:
            raise ValueError("pace must be positive or None")
        self.name = name
        self.frames = track.frames
        self.symbols = list(track.symbols)
        self.snapshots: Snapshots = snapshots or {}
        self.header = header
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.pace = pace
        self.recorded_clock = recorded_clock
        #: Set once every recorded frame of every subscribed symbol has been sent.
        self.done = asyncio.Event()
        #: Recorded frames sent so far (each counted once, whatever the number of clients).
        self.frames_sent = 0
        #: The book depth the recording subscribed at, where the venue lets a client choose
        #: it (Kraken); subscribing at it keeps the client's book as deep as the frames.
        self.book_depth: int | None = None
        self.sessions: dict[ReplaySession, None] = {}
        #: Streaming waits while this is clear (set from the start): a harness
        #: can let clients subscribe and sync first, then release the frames.
        self.gate = asyncio.Event()
        self.gate.set()
        self._index: dict[str, list[int]] = {s: [] for s in self.symbols}
        for i, frame in enumerate(self.frames):
            self._index.setdefault(frame.symbol, []).append(i)
        for symbol in self._index:
            if symbol not in self.symbols:
                self.symbols.append(symbol)
        self._pos = dict.fromkeys(self._index, 0)
        self._last_ts: dict[str, float] = {}
        self._clock_shift_us: int | None = None
        self._subscribers: dict[str, dict[ReplaySession, None]] = {}
        # (frame index, symbol) of subscribed symbols' next frames; stale entries are skipped.
        self._heap: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: The faults in force on this connection.
        self.faults = FaultSet(self)
        self.rest = RestPort(self._rest_answer, host, rest_port, ssl_context, f"replay.{name}")

    @staticmethod
    def translate(records: Sequence[Record], report: Report) -> Track:
        """Translate a recorded connection's records (the venue module's ``translate``)."""
        raise NotImplementedError

    @classmethod
    def from_records(cls, name: str, records: Sequence[Record], report: Report,
                     **kwargs: Any) -> Self:
        """Translate a recorded connection's records and build its server."""
        return cls(name, cls.translate(records, report), **kwargs)

    @classmethod
    def snapshot_symbol(cls, url: str) -> str | None:
        """Return the symbol a recorded REST snapshot URL is for, or None if it is not one."""
        return None

    # -- venue hooks -----------------------------------------------------------

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Return a session for a WebSocket upgrade to ``path``, or None for 404."""
        return ReplaySession(self) if path == self.ws_path else None

    def on_open(self, session: ReplaySession) -> None:
        """Act on a freshly connected session."""

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer one complete client message."""
        raise NotImplementedError

    def encode(self, session: ReplaySession, frame: Frame) -> bytes:
        """Return the bytes of ``frame`` for ``session``."""
        return frame.data

    def handle_rest(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Answer a plain GET, or return None for 404."""
        return None

    def heartbeat(self, session: ReplaySession) -> None:
        """Send ``session`` its periodic heartbeat, if it wants one."""

    def notice_frame(self, peer: Peer) -> bytes | None:
        """Return the venue's notice that the connection will close, or None."""
        return None

    def rest_error(self, status: int) -> HttpReply:
        """Return the venue's error answer with ``status``."""
        return json_reply({"error": phrase(status)}, status)

    def restamp(self, body: bytes, ahead: int) -> bytes:
        """Return a recorded snapshot body stamped ``ahead`` updates later."""
        return body

    def snapshot_key(self, path: str, query: dict[str, str]) -> str | None:
        """Return the symbol a GET asks a recorded snapshot of, or None if it is none."""
        return None

    def snapshot_reply(self, key: str, query: dict[str, str], age: float, ahead: int) -> HttpReply:
        """Answer a snapshot request: the recorded one ``age`` seconds (recorded time) older.

        With ``ahead`` the body is restamped (:meth:`restamp`).
        """
        body = self.snapshot(key, age)
        if body is None:
            return self.rest_error(404)
        return HttpReply(200, self.restamp(body, ahead) if ahead else body)

    # -- faults ------------------------------------------------------------------

    def fault(self, spec: str | Fault) -> ActiveFault:
        """Apply a fault to this connection now; ValueError for a bad or unsupported spec."""
        return self.faults.add(spec)

    def clear_faults(self) -> int:
        """End every fault in force; return how many."""
        return self.faults.clear()

    def history(self, symbol: str) -> Sequence[bytes]:
        """Return the frames of ``symbol`` sent so far, oldest first (as plain clients get them)."""
        indices = self._index.get(symbol, [])[: self._pos.get(symbol, 0)]
        return [self.frames[i].data for i in indices]

    # -- addresses -------------------------------------------------------------

    def _authority(self) -> str:
        return authority(self.host, self.port)

    @property
    def ws_url(self) -> str:
        """Return the WebSocket URL a client should use (the live endpoint's path)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{self._authority()}{self.ws_path}"

    @property
    def rest_url(self) -> str:
        """Return the REST base URL (no trailing slash): the connection's own REST port.

        The same answers come from the WebSocket port (``rest_url_on_ws``), for
        clients that derive their REST address from it; REST faults apply on the
        REST port only.
        """
        return self.rest.url

    @property
    def rest_url_on_ws(self) -> str:
        """Return the REST base URL on the WebSocket port (never faulted)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self._authority()}"

    @property
    def rest_port(self) -> int:
        """Return the bound REST port (0 before start() unless given)."""
        return self.rest.port

    def frame_count(self, symbol: str) -> int:
        """Return how many frames were recorded for ``symbol``."""
        return len(self._index.get(symbol, ()))

    def position(self, symbol: str) -> int:
        """Return how many of ``symbol``'s frames have been sent."""
        return self._pos.get(symbol, 0)

    # -- subscriptions ---------------------------------------------------------

    def knows(self, symbol: str) -> bool:
        """Return True if ``symbol`` was recorded on this connection."""
        return symbol in self._index

    def subscribe(self, session: ReplaySession, symbol: str) -> bool:
        """Stream ``symbol`` to ``session``; return False if it was not recorded."""
        if symbol not in self._index:
            return False
        members = self._subscribers.get(symbol)
        if members is None:
            members = self._subscribers[symbol] = {}
        if session in members:
            return True
        members[session] = None
        session.subs[symbol] = None
        self.faults.subscribed(session)
        if len(members) == 1:
            pos, indices = self._pos[symbol], self._index[symbol]
            if pos < len(indices):
                heapq.heappush(self._heap, (indices[pos], symbol))
                self.done.clear()
                self._wake.set()
            else:
                self._check_done()
        return True

    def subscribers(self, symbol: str) -> int:
        """Return how many clients ``symbol`` is streamed to."""
        return len(self._subscribers.get(symbol, ()))

    def unsubscribe(self, session: ReplaySession, symbol: str) -> bool:
        """Stop streaming ``symbol`` to ``session``; return False if it was not subscribed."""
        return leave(self._subscribers, session, session.subs, symbol)

    def attach(self, session: ReplaySession) -> None:
        """Register a connected session (called by the session)."""
        self.sessions[session] = None
        self.on_open(session)

    def detach(self, session: ReplaySession) -> None:
        """Forget a disconnected session and its subscriptions."""
        self.sessions.pop(session, None)
        for symbol in list(session.subs):
            self.unsubscribe(session, symbol)

    def _check_done(self) -> None:
        subs = self._subscribers
        if subs and all(self._pos[s] >= len(self._index[s]) for s in subs):
            self.done.set()

    # -- REST snapshots ----------------------------------------------------------

    def snapshot(self, symbol: str, age: float = 0.0) -> bytes | None:
        """Return the recorded snapshot body to serve for ``symbol`` now, or None.

        The earliest recorded at or after the replay position (the recorded
        time of the last frame of ``symbol`` sent), else the last recorded.
        With ``age`` (``rest-stale``): the last recorded at least ``age``
        seconds before that position, else the earliest recorded.
        """
        recorded = self.snapshots.get(symbol)
        if not recorded:
            return None
        position = self._last_ts.get(symbol)
        if age > 0:
            cutoff = (recorded[0][0] if position is None else position) - age
            older = [entry for entry in recorded if entry[0] <= cutoff]
            return self.served_snapshot(*(older[-1] if older else recorded[0]))
        if position is not None:
            for ts, body in recorded:
                if ts >= position:
                    return self.served_snapshot(ts, body)
            return self.served_snapshot(*recorded[-1])
        return self.served_snapshot(*recorded[0])

    def served_snapshot(self, ts: float, body: bytes) -> bytes:
        """Return the bytes to serve of the snapshot recorded at ``ts`` (the venue's hook)."""
        return body

    def clock_shift_us(self, stamp_us: int) -> int:
        """Return the microseconds that move the venue's recorded clock to now.

        For a venue that stamps its frames and snapshots with its own clock
        (Bitstamp's ``microtimestamp``), which a client may read to date its
        data. Fixed at the first frame or snapshot served (its stamp
        ``stamp_us`` made now) and the same for every later one, so the stamps
        keep their recorded order and spacing: a replay at its recorded pace
        reads as live, one faster than recorded as stamped ahead of its
        receipt, one slower, or stalled by a fault, as late as it is. With
        ``recorded_clock`` it is 0: the recorded bytes are served unchanged.
        """
        if self._clock_shift_us is None:
            self._clock_shift_us = 0 if self.recorded_clock else time.time_ns() // 1000 - stamp_us
        return self._clock_shift_us

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Bind the ports and start streaming (once subscribed)."""
        self._server, self.port = await listen(self._route, self.host, self.port,
                                               self.ssl_context, f"replay.{self.venue}")
        await self.rest.start()
        self._tasks.append(asyncio.create_task(self._stream()))
        if self.heartbeat_s is not None:
            self._tasks.append(asyncio.create_task(self._heartbeats(self.heartbeat_s)))

    async def stop(self) -> None:
        """Stop streaming and faults, close every client and the sockets."""
        self.faults.clear()
        await cancel_tasks(self._tasks)
        if self._server is not None:
            self._server.close()
        sessions = list(self.sessions)
        for session in sessions:
            session.close(WSCloseCode.GOING_AWAY, "server shutdown")
        await await_closed(sessions)
        await self.rest.stop()
        await wait_server_closed(self._server)
        self._server = None

    def _route(self, request: WSUpgradeRequest) -> Peer | WSUpgradeResponseWithListener | None:
        return route(request, self.open_session, self.handle_rest, log, self.name, self.faults)

    async def _rest_answer(self, path: str, query: dict[str, str]) -> HttpReply | Streamer:
        return await answer(self.faults, path, query, self._plain_rest)

    def _plain_rest(self, path: str, query: dict[str, str]) -> HttpReply:
        return rest_reply(self.handle_rest, path, query, log, self.name)

    # -- streaming ------------------------------------------------------------------

    def _peek(self) -> tuple[int, str] | None:
        """Return the next frame to send (index, symbol), dropping stale heap entries."""
        heap = self._heap
        while heap:
            index, symbol = heap[0]
            pos = self._pos[symbol]
            indices = self._index[symbol]
            if symbol in self._subscribers and pos < len(indices) and indices[pos] == index:
                return index, symbol
            heapq.heappop(heap)
        return None

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        pace = self.pace
        origin = 0.0  # loop time at recorded time 0, scaled by pace
        idle = True
        burst = 0
        while True:
            top = self._peek()
            if top is None:
                self._check_done()
                self._wake.clear()
                await self._wake.wait()
                idle = True
                continue
            if not self.gate.is_set():
                await self.gate.wait()
                idle = True
                continue
            if self.faults.pausing:
                self.faults.paused_round()
                await self.faults.unpaused.wait()
                idle = True
                continue
            index, symbol = top
            frame = self.frames[index]
            if pace is not None:
                if idle:
                    origin = loop.time() - frame.ts / pace
                delay = origin + frame.ts / pace - loop.time()
                idle = False
                if delay > 0:
                    # Sleep, but wake early for a subscription change (it may reorder).
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), delay)
                    continue
            idle = False
            members = self._subscribers[symbol]
            for session in members:
                if session.paused:
                    await session.writable()
                    break
            else:
                self._send(frame, members)
                burst += 1
                if burst >= YIELD_EVERY:
                    burst = 0
                    await asyncio.sleep(0)

    def _send(self, frame: Frame, members: dict[ReplaySession, None]) -> None:
        symbol = frame.symbol
        if self.faults.skips and self.faults.skip(symbol):
            # Lost in transit: encoded (a per-client sequence number is used up), never sent.
            for session in tuple(members):
                self.encode(session, frame)
        else:
            for session in tuple(members):
                session.send_book(self.encode(session, frame))
        self._last_ts[symbol] = frame.ts
        self.frames_sent += 1
        pos = self._pos[symbol] + 1
        self._pos[symbol] = pos
        indices = self._index[symbol]
        if pos < len(indices):
            heapq.heapreplace(self._heap, (indices[pos], symbol))
        else:
            heapq.heappop(self._heap)
            self._check_done()

    async def _heartbeats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for session in list(self.sessions):
                self.heartbeat(session)
