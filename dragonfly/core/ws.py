"""Layer 1: one WebSocket connection kept open, with reconnects (picows client).

The data path is picows' synchronous ``on_ws_frame`` callback: each text or
binary frame is handed to the :class:`FrameHandler` with its receive time and
picows' ``last_in_buffer`` flag (the end of a read burst). Everything async
(connect, TLS, backoff sleeps) stays here, off the data path.

A venue is hostile input. Whatever ends a connection (a close frame with or
without a code or reason, a protocol violation picows detects, a frame or a
reassembled message over :data:`MAX_MESSAGE`, a fragment sequence that breaks
the rules, a ping timeout, an exception in a handler) ends it the same way:
the handler's ``on_close`` runs with the reason, then a reconnect follows
after a backoff. Nothing escapes :meth:`WsConnection.run` but cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time

from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)
from picows.common import WSError

from dragonfly.core.backoff import Backoff, RateLimit
from dragonfly.core.logs import RateLimitedLog, RateLimitFilter
from dragonfly.core.transport import FrameHandler

log = logging.getLogger("dragonfly.ws")
#: picows' own log lines (one per protocol error, per connection): rate-limited,
#: since every such event also reaches the feed as a close reason.
_picows_log = logging.getLogger("dragonfly.ws.picows")
_picows_log.addFilter(RateLimitFilter(30.0))
#: Unexpected exceptions out of a connection (a bug, not a venue): with a traceback, rate-limited.
_bug_log = RateLimitedLog(log, interval=30.0)

#: Largest message (one frame, or a fragmented message reassembled) accepted
#: from a venue, unless its spec says otherwise: the largest book message we
#: read (an OKX or Kraken snapshot of 400-1000 levels a side) is ~100-200 KB.
MAX_MESSAGE = 4 * 1024 * 1024

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONT = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_time_ns = time.time_ns


def describe_error(exc: BaseException) -> str:
    """Say in one line why a connection attempt failed."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected ({exc.verify_message})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe_close(code: int | None, reason: bytes | None) -> str:
    """Say in one line how a venue closed the connection (code and reason both optional)."""
    parts = [str(code)] if code is not None else []
    text = (reason or b"").decode("utf-8", "replace").strip()
    if text:
        parts.append(repr(text[:120]))
    return f"closed by venue ({' '.join(parts) or 'no code'})"


def _our_close(transport: WSTransport) -> str:
    """Say why our side closed (picows gives its reason, e.g. a ping that got no pong)."""
    handshake = transport.close_handshake
    sent = handshake.sent if handshake is not None else None
    reason = (sent.reason or "").strip() if sent is not None else ""
    return f"closed by us ({reason or 'no reason given'})"


class _Listener(WSListener):
    """picows listener: forwards frames, reassembles the rare fragmented message, bounded."""

    __slots__ = ("_conn", "_fragments", "_handler", "_max")

    def __init__(self, conn: WsConnection) -> None:
        self._conn = conn
        self._handler = conn.handler
        self._max = conn.max_message
        self._fragments: bytearray | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        # Counted here, not when ws_connect returns: frames (the ack) may be
        # handled before the connecting coroutine resumes.
        self._conn.connects += 1
        self._conn._transport = transport
        self._handler.on_open(self._conn)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mtype = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            # No extension is negotiated, so a set RSV bit must fail the
            # connection (RFC 6455 5.2): a compressed frame, say, is not text
            # we can read. ~50 ns a frame, measured.
            self._conn._fail("protocol error: a frame with RSV bits set, and no extension negotiated")
        elif (mtype is _TEXT or mtype is _BINARY) and frame.fin and self._fragments is None:
            self._handler.on_frame(
                frame.get_payload_as_bytes(), _time_ns(), frame.last_in_buffer
            )
        elif mtype is _CLOSE:
            if transport.is_close_frame_sent:
                # The venue answers a close we sent (picows' ping timeout, say): ours says why.
                self._conn._fail(_our_close(transport))
                return
            payload = frame.get_payload_as_bytes()
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            self._conn._fail(describe_close(code, payload[2:]), WSCloseCode.OK)
        elif mtype is _TEXT or mtype is _BINARY:
            if self._fragments is not None:
                self._conn._fail("protocol error: a new message began inside a fragmented one")
                return
            self._fragments = bytearray(frame.get_payload_as_memoryview())
            self._check_size()
        elif mtype is _CONT:
            fragments = self._fragments
            if fragments is None:
                self._conn._fail("protocol error: a continuation frame with no message begun")
                return
            fragments += frame.get_payload_as_memoryview()
            if self._check_size() and frame.fin:
                payload = bytes(fragments)
                self._fragments = None
                self._handler.on_frame(payload, _time_ns(), frame.last_in_buffer)

    def _check_size(self) -> bool:
        # A message that never ends must not grow without bound (a venue that
        # sends fragments forever grew a server from 47 MB to 3 GB in 9 s).
        fragments = self._fragments
        if fragments is not None and len(fragments) > self._max:
            self._fragments = None
            self._conn.oversized += 1
            self._conn._fail(f"message over {self._max} bytes", WSCloseCode.MESSAGE_TOO_BIG)
            return False
        return True

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._fragments = None
        self._conn._transport = None


class WsConnection:
    """Keep a WebSocket connection to ``url`` open until :meth:`close`.

    After a drop it reconnects with :class:`Backoff` delays; the handler's
    ``on_open`` runs after every (re)connect, so subscriptions are restored.
    WebSocket pings detect a silent peer (``ping_idle`` seconds without
    traffic, then ``ping_reply`` seconds to answer); the venue's own pings
    are answered automatically.
    """

    def __init__(
        self,
        url: str,
        handler: FrameHandler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
        max_message: int = MAX_MESSAGE,
        connect_limit: RateLimit | None = None,
    ) -> None:
        if max_message < 1:
            raise ValueError("max_message must be positive")
        self.url = url
        self.handler = handler
        self.ssl_context = ssl_context
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.ping_idle = ping_idle
        self.ping_reply = ping_reply
        #: Largest frame or reassembled message accepted; a bigger one ends the connection.
        self.max_message = max_message
        #: The venue's connection-attempt budget (shared by its connections), or ``None``.
        self.connect_limit = connect_limit
        self.connects = 0  #: successful connections so far
        self.oversized = 0  #: connections ended by a message over ``max_message``
        self._transport: WSTransport | None = None
        self._close_reason = ""
        self._closing = asyncio.Event()

    @property
    def connected(self) -> bool:
        """Whether a connection is up right now."""
        return self._transport is not None

    def send(self, payload: bytes) -> None:
        """Send a text frame if connected (dropped otherwise: resent on reconnect)."""
        if self._transport is not None:
            self._transport.send(_TEXT, payload)

    def drop(self, reason: str) -> None:
        """Close the current connection; :meth:`run` reconnects after a backoff."""
        self._fail(reason, WSCloseCode.GOING_AWAY)

    def _fail(self, reason: str, code: WSCloseCode = WSCloseCode.PROTOCOL_ERROR) -> None:
        """End the current connection for ``reason`` (the first reason given wins)."""
        transport = self._transport
        if transport is None:
            return
        if not self._close_reason:
            self._close_reason = reason
        if not transport.is_close_frame_sent:
            transport.send_close(code)
        transport.disconnect()

    def close(self) -> None:
        """Stop for good: disconnect now and do not reconnect."""
        self._closing.set()
        if self._transport is not None:
            self._close_reason = "closed"
            self._transport.send_close(WSCloseCode.OK)
            self._transport.disconnect()

    async def run(self) -> None:
        """Connect, wait for the drop, back off, repeat, until :meth:`close`.

        Every connection that was up ends with the handler's ``on_close``,
        whatever ended it; only cancellation leaves this loop early.
        """
        while not self._closing.is_set():
            if self.connect_limit is not None:
                wait = self.connect_limit.delay()
                if wait > 0:
                    await self._sleep(wait)
                    continue
                self.connect_limit.record()
            self._close_reason = ""
            try:
                transport, _ = await asyncio.wait_for(
                    ws_connect(
                        lambda: _Listener(self),
                        self.url,
                        ssl_context=self.ssl_context,
                        enable_auto_ping=True,
                        auto_ping_idle_timeout=self.ping_idle,
                        auto_ping_reply_timeout=self.ping_reply,
                        auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
                        max_frame_size=self.max_message,
                        logger_name=_picows_log,
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError, WSError, ssl.SSLError, ValueError) as exc:
                await self._retry(describe_error(exc))
                continue
            except Exception as exc:  # a bug, not the venue: say so, and keep trying
                _bug_log.warning("%s: connecting failed unexpectedly", self.url, exc_info=True)
                await self._retry(f"unexpected error: {type(exc).__name__}: {exc}")
                continue
            reason = await self._until_disconnected(transport)
            if self._closing.is_set():
                self.handler.on_close("closed")
                break
            self.handler.on_close(reason)
            await self._sleep(self.backoff.next_delay())

    async def _until_disconnected(self, transport: WSTransport) -> str:
        """Wait for the connection to end; return why it ended."""
        try:
            await transport.wait_disconnected()
        except WSError as exc:  # picows found a protocol violation (an oversized frame, ...)
            self._close_reason = self._close_reason or f"protocol error: {exc}"
        except Exception as exc:  # a handler raised: a bug on our side, logged with its traceback
            _bug_log.warning("%s: a frame handler failed; reconnecting", self.url, exc_info=exc)
            self._close_reason = self._close_reason or f"handler error: {type(exc).__name__}: {exc}"
        finally:
            self._transport = None
        handshake = transport.close_handshake
        if not self._close_reason and handshake is not None:
            if handshake.sent is not None and (handshake.recv is None or not handshake.recv_then_sent):
                self._close_reason = _our_close(transport)  # picows closed it (a ping timeout)
            elif handshake.recv is not None:
                # A close frame picows answered itself (it never reached the listener).
                recv = handshake.recv
                self._close_reason = describe_close(recv.code.value, (recv.reason or "").encode())
        return self._close_reason or "connection lost"

    async def _retry(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.handler.on_connect_failed(reason, delay)
        await self._sleep(delay)

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)
