"""One WebSocket client of a simulated or replayed venue, and the one path its frames leave by.

Every frame the server sends a client goes through :class:`Peer`: replies and
acks (:meth:`Peer.send`), book data (:meth:`Peer.send_book`), PINGs, PONGs
and the CLOSE. With no fault in force that path is one flag test and
``transport.send``. Faults hook in here, once for every venue: a stalled or
silenced client gets nothing, a book frame may be replaced by whatever a fault
makes of it, and a delay queues frames in order. PINGs are answered here
rather than by picows, so a silenced or stalled client's PINGs go unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from dragonfly.sim.faults import wire
from dragonfly.sim.plumbing import Reassembler

if TYPE_CHECKING:
    from dragonfly.sim.faults.faultset import FaultSet

OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_RAW, OP_CLOSE = range(6)
#: Continuation frame size of the ``fragments`` fault.
FRAGMENT = 64 * 1024
#: Pause between two continuation frames, so one client cannot hog the loop.
FRAGMENT_PAUSE_S = 0.001


class Write(NamedTuple):
    """One frame to write: what it is (an ``OP_*``) and its payload (raw bytes for OP_RAW)."""

    op: int
    payload: bytes


class Peer(WSListener):
    """A connected client: its transport, subscriptions and the fault-aware write path."""

    def __init__(self, faults: FaultSet) -> None:
        """Bind the client to its server's faults."""
        super().__init__()
        self.faults = faults
        self.transport: WSTransport | None = None
        #: Subscribed keys (channels or symbols), in subscription order (an ordered set).
        self.subs: dict[str, None] = {}
        #: The socket buffer is above its high-water mark.
        self.paused = False
        #: Set by the ``stall`` fault at the upgrade: never read from, never written to.
        self.stalled = False
        #: An unfinished fragmented message is out: no other data frame may follow.
        self.wedged = False
        #: A CLOSE is queued or sent: nothing else goes out.
        self.closing = False
        #: Seconds after the first subscription to close the client (``flap``).
        self.flap_after: float | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._fragments = Reassembler()
        self._outbox: deque[tuple[float, Write]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- for the server ------------------------------------------------------------

    def attached(self) -> None:
        """Register with the server (called once connected)."""

    def detached(self) -> None:
        """Forget the client everywhere (called once disconnected)."""

    def on_message(self, payload: bytes) -> None:
        """Handle one complete client message."""

    def on_frame(self, frame: WSFrame) -> None:
        """Handle a client frame other than CLOSE and PING: reassemble messages."""
        self._fragments.feed(frame, self.on_message, self.close)

    def text_sent(self) -> None:
        """Note that a TEXT frame is about to be written (a hook for send logs)."""

    # -- picows callbacks ------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Keep the transport, stop reading a stalled client, register, apply open faults."""
        self.transport = transport
        if self.stalled:
            transport.underlying_transport.pause_reading()
        self.attached()
        self.faults.opened(self)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Drop queued frames, release waiters, unregister."""
        self._writable.set()
        self._outbox.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks:
            task.cancel()
        self.detached()

    def pause_writing(self) -> None:
        """Note that the socket buffer is full."""
        self.paused = True
        self._writable.clear()

    def resume_writing(self) -> None:
        """Note that the socket buffer drained."""
        self.paused = False
        self._writable.set()

    async def writable(self) -> None:
        """Wait until the socket buffer drained or the client left."""
        await self._writable.wait()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Answer CLOSE and PING; pass anything else on."""
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            self.close(WSCloseCode.OK)
        elif kind == WSMsgType.PING:
            self._out(Write(OP_PONG, frame.get_payload_as_bytes()), book=False)
        else:
            self.on_frame(frame)

    # -- sending -------------------------------------------------------------------------

    def send(self, data: bytes) -> bool:
        """Send a reply, ack or heartbeat (TEXT); return False if it did not go out."""
        transport = self.transport
        if transport is None or self.closing:
            return False
        if self.faults.egress or self.stalled or self.wedged or self._outbox:
            return self._out(Write(OP_TEXT, data), book=False)
        self.text_sent()
        transport.send(WSMsgType.TEXT, data)
        return True

    def send_book(self, data: bytes) -> bool:
        """Send a book data frame (TEXT), the frames faults change; False if it did not go out."""
        transport = self.transport
        if transport is None or self.closing:
            return False
        if self.faults.egress or self.stalled or self.wedged or self._outbox:
            return self._out(Write(OP_TEXT, data), book=True)
        self.text_sent()
        transport.send(WSMsgType.TEXT, data)
        return True

    def send_raw(self, kind: WSMsgType, data: bytes) -> bool:
        """Send one TEXT or BINARY frame past the frame faults (test injection)."""
        if self.transport is None or self.closing:
            return False
        op = OP_BINARY if kind == WSMsgType.BINARY else OP_TEXT
        self._emit(Write(op, data))
        return True

    def ping(self, payload: bytes) -> bool:
        """Send a PING; return False if it did not go out (stalled, silenced, closing)."""
        if self.transport is None or self.closing:
            return False
        return self._out(Write(OP_PING, payload), book=False)

    def close(self, code: WSCloseCode | int | None, reason: str = "") -> None:
        """Send a CLOSE (``code`` None: an empty payload), after any queued frames; disconnect."""
        if self.transport is None or self.closing:
            return
        self.closing = True
        value = code.value if isinstance(code, WSCloseCode) else code
        self._emit(Write(OP_CLOSE, wire.close_payload(value, reason.encode())))

    def abort(self) -> None:
        """Drop the TCP connection at once, no CLOSE frame."""
        if self.transport is not None:
            self.closing = True
            self.transport.disconnect(graceful=False)

    def start_fragments(self, first: bytes, limit: int | None) -> None:
        """Start a fragmented TEXT message that never finishes (``fragments``)."""
        self.wedged = True
        self._tasks.append(asyncio.get_running_loop().create_task(self._fragment(first, limit)))

    # -- the write path -----------------------------------------------------------------

    def _out(self, write: Write, book: bool) -> bool:
        if self.stalled or (self.wedged and write.op in (OP_TEXT, OP_BINARY, OP_RAW)):
            return False
        faults = self.faults
        writes = [write]
        if faults.egress:
            if faults.silenced(self):
                return False
            if book and faults.framers:
                reframed = faults.reframe(self, write.payload)
                if reframed is not None:
                    writes = reframed
        for item in writes:
            self._emit(item)
        return bool(writes)

    def _emit(self, write: Write) -> None:
        delay = self.faults.delay_s() if self.faults.delays else 0.0
        if delay <= 0 and not self._outbox:
            self._write(write)
            return
        # Queued frames keep their order: none is due before the one ahead of it.
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if self._outbox:
            due = max(due, self._outbox[-1][0])
        self._outbox.append((due, write))
        if self._timer is None:
            self._timer = loop.call_at(self._outbox[0][0], self._flush)

    def _flush(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._outbox and self._outbox[0][0] <= now:
            self._write(self._outbox.popleft()[1])
        if self._outbox:
            self._timer = loop.call_at(self._outbox[0][0], self._flush)

    def _write(self, write: Write) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        op, payload = write
        if op == OP_TEXT:
            self.text_sent()
            transport.send(WSMsgType.TEXT, payload)
        elif op == OP_BINARY:
            transport.send(WSMsgType.BINARY, payload)
        elif op == OP_PING:
            transport.send_ping(payload)
        elif op == OP_PONG:
            transport.send_pong(payload)
        elif op == OP_RAW:
            transport.underlying_transport.write(payload)
        else:
            self._write_close(transport, payload)

    @staticmethod
    def _write_close(transport: WSTransport, payload: bytes) -> None:
        code: WSCloseCode | None = None
        if len(payload) >= 2:
            with contextlib.suppress(ValueError):
                code = WSCloseCode(int.from_bytes(payload[:2], "big"))
        if code is not None:
            transport.send_close(code, payload[2:])
        else:
            # An empty or non-standard code: picows only writes the codes it names.
            transport.underlying_transport.write(wire.frame(wire.CLOSE, payload))
        transport.disconnect()

    async def _fragment(self, first: bytes, limit: int | None) -> None:
        transport = self.transport
        if transport is None:
            return
        head = first if limit is None else first[:limit]
        transport.send(WSMsgType.TEXT, head, fin=False)
        sent = len(head)
        filler = b" " * FRAGMENT  # JSON whitespace: only the missing end is wrong
        while not transport.is_disconnected and (limit is None or sent < limit):
            await self._writable.wait()
            await asyncio.sleep(FRAGMENT_PAUSE_S)
            size = FRAGMENT if limit is None else min(FRAGMENT, limit - sent)
            transport.send(WSMsgType.CONTINUATION, filler[:size], fin=False)
            sent += size
