"""Minimal clients for poking the simulator: a recording WebSocket and an HTTP GET.

For tests, smoke checks and harnesses; not a feed client. The WebSocket probe
keeps every frame it receives, answers PINGs itself (or not, on request) and
records them, so ping behaviour can be asserted.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


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
