"""Minimal clients for poking the simulator: a recording WebSocket, a raw one, an HTTP GET.

For tests, smoke checks and harnesses; not a feed client. The WebSocket probe
keeps every frame it receives, answers PINGs itself (or not, on request) and
records them, so ping behaviour can be asserted. The raw probe reads frames
off a plain socket exactly as written, protocol violations included.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from dragonfly.sim.faults import wire


class Probe(WSListener):
    """A WebSocket client that queues each received data frame."""

    def __init__(self, auto_pong: bool = True) -> None:
        """Answer PINGs with PONGs unless ``auto_pong`` is False."""
        super().__init__()
        self.auto_pong = auto_pong
        self.transport: WSTransport | None = None
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        #: (monotonic receive time, payload) of every PING received.
        self.pings: list[tuple[float, bytes]] = []
        self.close_code: WSCloseCode | None = None
        self.disconnected = asyncio.Event()

    def on_ws_connected(self, transport: WSTransport) -> None:
        """Keep the transport."""
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Queue TEXT/BINARY payloads; record PINGs and CLOSE."""
        kind = frame.msg_type
        if kind == WSMsgType.PING:
            payload = frame.get_payload_as_bytes()
            self.pings.append((time.monotonic(), payload))
            if self.auto_pong:
                transport.send_pong(payload)
        elif kind == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        elif kind in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.messages.put_nowait(frame.get_payload_as_bytes())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """Flag the disconnect."""
        self.disconnected.set()

    def send(self, data: str | bytes | dict[str, Any]) -> None:
        """Send a TEXT frame; a dict is JSON-encoded."""
        assert self.transport is not None, "not connected"
        payload = json.dumps(data) if isinstance(data, dict) else data
        self.transport.send(WSMsgType.TEXT, payload.encode() if isinstance(payload, str) else payload)

    async def recv(self, timeout: float = 2.0) -> bytes:
        """Return the next data frame; TimeoutError if none arrives in time."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def recv_json(self, timeout: float = 2.0) -> Any:
        """Return the next data frame parsed as JSON."""
        return json.loads(await self.recv(timeout))

    async def wait_json(self, match: dict[str, Any], timeout: float = 2.0) -> Any:
        """Return the first JSON object whose items include ``match``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.recv_json(max(deadline - time.monotonic(), 0.0))
            if isinstance(message, dict) and all(message.get(k) == v for k, v in match.items()):
                return message

    def drain(self) -> list[bytes]:
        """Return and forget every frame queued so far."""
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    async def close(self) -> None:
        """Close the connection and wait for the disconnect."""
        if self.transport is not None and not self.disconnected.is_set():
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()
            await asyncio.wait_for(self.disconnected.wait(), 2.0)


async def connect(url: str, *, ssl_context: ssl.SSLContext | None = None,
                  auto_pong: bool = True) -> Probe:
    """Open a probe WebSocket to ``url``."""
    def factory() -> Probe:
        return Probe(auto_pong)

    _, listener = await ws_connect(factory, url, ssl_context=ssl_context, enable_auto_pong=False)
    assert isinstance(listener, Probe)
    return listener


@dataclass(frozen=True)
class HttpResult:
    """A received HTTP response."""

    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes

    def json(self) -> Any:
        """Return the body parsed as JSON."""
        return json.loads(self.body)


async def http_get(url: str, *, ssl_context: ssl.SSLContext | None = None,
                   timeout: float = 5.0) -> HttpResult:
    """GET ``url`` over HTTP/1.1 with ``Connection: close`` and read the whole reply."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = ssl_context if ssl_context is not None else (ssl.create_default_context() if secure else None)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context), timeout
    )
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return HttpResult(status, headers, body if length is None else body[: int(length)])


@dataclass(frozen=True)
class RawFrame:
    """One frame as the server wrote it."""

    opcode: int
    fin: bool
    rsv1: bool
    masked: bool
    payload: bytes  # unmasked


class RawProbe:
    """A WebSocket client on a plain socket: sends masked TEXT frames, reads frames verbatim."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Wrap an open connection whose upgrade request was sent."""
        self.reader = reader
        self.writer = writer

    async def response_head(self, timeout: float = 2.0) -> bytes:
        """Return the upgrade response head (status line and headers)."""
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)

    def send_text(self, data: str | bytes | dict[str, Any]) -> None:
        """Send one masked TEXT frame; a dict is JSON-encoded."""
        payload = json.dumps(data) if isinstance(data, dict) else data
        raw = payload.encode() if isinstance(payload, str) else payload
        self.writer.write(wire.frame(wire.TEXT, raw, mask=os.urandom(4)))

    async def frame(self, timeout: float = 2.0) -> RawFrame:
        """Return the next frame; IncompleteReadError at EOF, TimeoutError if none comes."""
        return await asyncio.wait_for(self._frame(), timeout)

    async def _frame(self) -> RawFrame:
        data = await self.reader.readexactly(2)
        while (header := wire.parse_header(data)) is None:
            data += await self.reader.readexactly(1)
        opcode, fin, rsv1, masked, size, length = header
        data += await self.reader.readexactly(size - len(data))
        payload = await self.reader.readexactly(length)
        if masked:
            payload = wire.apply_mask(payload, data[size - 4:size])
        return RawFrame(opcode, fin, rsv1, masked, payload)

    async def eof(self, timeout: float = 2.0) -> bool:
        """Read until the server closes the connection; return True if it did within ``timeout``."""
        try:
            await asyncio.wait_for(self.reader.read(), timeout)
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        """Close the socket (no CLOSE frame)."""
        self.writer.close()


async def connect_raw(url: str, *, upgrade: bool = True, timeout: float = 2.0) -> RawProbe:
    """Open a raw WebSocket to ``ws://`` ``url``; with ``upgrade`` wait for the 101 answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80), timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    probe = RawProbe(reader, writer)
    if upgrade:
        head = await probe.response_head(timeout)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            status = head.partition(b"\r\n")[0].decode("latin-1")
            raise ConnectionError(f"upgrade refused: {status}")
    return probe
