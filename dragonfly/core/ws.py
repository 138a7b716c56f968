"""Layer 1: one WebSocket connection kept open, with reconnects (picows client).

The data path is picows' synchronous ``on_ws_frame`` callback: each text or
binary frame is handed to the :class:`FrameHandler` with its receive time and
picows' ``last_in_buffer`` flag (the end of a read burst). Everything async
(connect, TLS, backoff sleeps) stays here, off the data path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from typing import Protocol

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

from dragonfly.core.backoff import Backoff

log = logging.getLogger("dragonfly.ws")

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONT = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_time_ns = time.time_ns


class FrameHandler(Protocol):
    """What a connection drives: the feed subscriber above it."""

    def on_open(self, conn: WsConnection) -> None:
        """The connection is up (handshake done); subscribe now."""

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        """A complete text or binary message arrived (hot path)."""

    def on_close(self, reason: str) -> None:
        """The connection went down; a reconnect follows unless closed."""

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        """A connection attempt failed; the next one starts in ``retry_in`` s."""


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


class _Listener(WSListener):
    """picows listener: forwards frames, reassembles the rare fragmented message."""

    __slots__ = ("_conn", "_fragments", "_handler")

    def __init__(self, conn: WsConnection) -> None:
        self._conn = conn
        self._handler = conn.handler
        self._fragments: bytearray | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._conn._transport = transport
        self._handler.on_open(self._conn)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mtype = frame.msg_type
        if (mtype is _TEXT or mtype is _BINARY) and frame.fin:
            self._handler.on_frame(
                frame.get_payload_as_bytes(), _time_ns(), frame.last_in_buffer
            )
        elif mtype is _CLOSE:
            self._conn._close_reason = (
                f"closed by venue ({frame.get_close_code().value}"
                f" {frame.get_close_message().decode('utf-8', 'replace')})".rstrip()
            )
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif mtype is _TEXT or mtype is _BINARY:
            self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif mtype is _CONT and self._fragments is not None:
            self._fragments += frame.get_payload_as_memoryview()
            if frame.fin:
                payload = bytes(self._fragments)
                self._fragments = None
                self._handler.on_frame(payload, _time_ns(), frame.last_in_buffer)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
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
    ) -> None:
        self.url = url
        self.handler = handler
        self.ssl_context = ssl_context
        self.backoff = backoff or Backoff()
        self.connect_timeout = connect_timeout
        self.ping_idle = ping_idle
        self.ping_reply = ping_reply
        self.connects = 0  #: successful connections so far
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
        if self._transport is not None:
            self._close_reason = reason
            self._transport.send_close(WSCloseCode.GOING_AWAY)
            self._transport.disconnect()

    def close(self) -> None:
        """Stop for good: disconnect now and do not reconnect."""
        self._closing.set()
        if self._transport is not None:
            self._close_reason = "closed"
            self._transport.send_close(WSCloseCode.OK)
            self._transport.disconnect()

    async def run(self) -> None:
        """Connect, wait for the drop, back off, repeat, until :meth:`close`."""
        while not self._closing.is_set():
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
                        logger_name=log,
                    ),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError, WSError, ssl.SSLError, ValueError) as exc:
                delay = self.backoff.next_delay()
                self.handler.on_connect_failed(describe_error(exc), delay)
                await self._sleep(delay)
                continue
            self.connects += 1
            self._close_reason = ""
            await transport.wait_disconnected()
            self._transport = None
            if self._closing.is_set():
                self.handler.on_close("closed")
                break
            self.handler.on_close(self._close_reason or "connection lost")
            await self._sleep(self.backoff.next_delay())

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)
