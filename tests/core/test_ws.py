"""A WebSocket connection survives whatever a venue sends: every end is reported and followed by a reconnect.

The venue here is a raw TCP server that answers the upgrade by hand and then
writes exact bytes, so it can send what no WebSocket library would: close
frames without a reason or without a code, masked or reserved-opcode frames,
oversized pings, fragments that never end.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Awaitable, Callable

import pytest

from dragonfly.core.backoff import Backoff, RateLimit
from dragonfly.core.ws import WsConnection, describe_close

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = False) -> bytes:
    """One WebSocket frame, as a server would write it (or not)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", size)
    if masked:
        key = b"\x01\x02\x03\x04"
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        head += key
    return head + payload


def text(payload: bytes, *, fin: bool = True) -> bytes:
    return frame(0x1, payload, fin=fin)


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(0x8, (b"" if code is None else struct.pack(">H", code)) + reason)


Script = Callable[[int, asyncio.StreamWriter], Awaitable[None]]


class RawVenue:
    """A TCP server that upgrades every connection, then runs ``script(connection number, writer)``."""

    def __init__(self, script: Script, *, echo_close: bool = False) -> None:
        self.script = script
        self.echo_close = echo_close  # answer a client's close frame with one (and ignore pings)
        self.echoed = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawVenue:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.connections += 1
        try:
            await self.script(self.connections, writer)
            # Hold the connection until the client ends it.
            while data := await reader.read(65536):
                # Client frames are small and masked: opcode 8 is a close.
                if self.echo_close and data[0] & 0x0F == 0x8:
                    self.echoed += 1
                    writer.write(close(1000))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class Recorder:
    """The FrameHandler side: what the connection reported."""

    def __init__(self) -> None:
        self.opened = 0
        self.frames: list[bytes] = []
        self.closes: list[str] = []
        self.failures: list[str] = []
        self.raise_on_frame = False

    def on_open(self, conn: WsConnection) -> None:
        self.opened += 1

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        if self.raise_on_frame:
            raise RuntimeError("a bug in a frame handler")
        self.frames.append(payload)

    def on_close(self, reason: str) -> None:
        self.closes.append(reason)

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        self.failures.append(reason)


async def run_until(
    venue: RawVenue,
    done: Callable[[Recorder], bool],
    *,
    max_message: int = 1 << 20,
    recorder: Recorder | None = None,
) -> tuple[WsConnection, Recorder]:
    rec = recorder or Recorder()
    conn = WsConnection(venue.url, rec, backoff=Backoff(base=0.01, cap=0.05), max_message=max_message)
    task = asyncio.create_task(conn.run())
    try:
        async with asyncio.timeout(10):
            while not done(rec):
                assert not task.done(), f"the connection loop ended: {task}"
                await asyncio.sleep(0.01)
    finally:
        conn.close()
        async with asyncio.timeout(5):
            await task  # never raises: nothing but cancellation leaves run()
    return conn, rec


def first_connection(payload: bytes) -> Script:
    """Send ``payload`` on the first connection; stay quiet on the rest."""

    async def script(number: int, writer: asyncio.StreamWriter) -> None:
        if number == 1:
            writer.write(payload)

    return script


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (close(1000), "closed by venue (1000)"),  # a routine close: a code and no reason text
        (close(1001, b"going away"), "closed by venue (1001 'going away')"),
        (close(), "closed by venue (no code)"),  # an empty close payload
        (close(4000, b"\xff\xfe"), "protocol error"),  # a reason that is not UTF-8
        (frame(0x8, b"\x03"), "protocol error"),  # a one-byte close payload
        (close(999), "protocol error"),  # a code no peer may send
    ],
)
async def test_every_close_frame_ends_the_connection_and_a_reconnect_follows(
    sent: bytes, reason: str
) -> None:
    async with RawVenue(first_connection(text(b"hello") + sent)) as venue:
        _, rec = await run_until(venue, lambda r: r.opened >= 2)
    assert rec.frames[0] == b"hello"
    assert rec.closes and rec.closes[0].startswith(reason), rec.closes


@pytest.mark.parametrize(
    "sent",
    [
        frame(0x1, b"masked", masked=True),  # servers must not mask
        frame(0x3, b"x"),  # a reserved opcode
        frame(0x1, b"x", rsv=4),  # RSV1 without an extension
        frame(0x9, b"p" * 126),  # a ping over 125 bytes
        frame(0x0, b"nothing begun"),  # a continuation with no message started
        text(b"a", fin=False) + text(b"b"),  # a new message inside a fragmented one
    ],
)
async def test_a_protocol_violation_ends_the_connection_and_a_reconnect_follows(sent: bytes) -> None:
    async with RawVenue(first_connection(sent)) as venue:
        _, rec = await run_until(venue, lambda r: r.opened >= 2)
    assert rec.closes[0].startswith("protocol error"), rec.closes
    assert rec.frames == []


async def test_a_frame_over_the_limit_ends_the_connection() -> None:
    async with RawVenue(first_connection(text(b"x" * 5000))) as venue:
        _, rec = await run_until(venue, lambda r: r.opened >= 2, max_message=4096)
    assert rec.closes[0].startswith("protocol error") and "4096" in rec.closes[0]
    assert rec.frames == []


async def test_fragments_that_never_end_are_cut_at_the_limit() -> None:
    """A fragmented message that never finished grew a server from 47 MB to 3 GB in 9 s."""
    sent = 0

    async def endless(number: int, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        if number != 1:
            return
        writer.write(text(b"{", fin=False))
        while not writer.is_closing() and sent < 64 << 20:
            writer.write(frame(0x0, b"x" * 65536, fin=False))
            sent += 65536
            await writer.drain()

    async with RawVenue(endless) as venue:
        conn, rec = await run_until(venue, lambda r: r.opened >= 2, max_message=1 << 20)
    assert rec.closes[0] == f"message over {1 << 20} bytes"
    assert conn.oversized == 1 and rec.frames == []
    assert sent < 16 << 20  # cut near the limit, not when the venue gave up


async def test_a_failing_frame_handler_is_reported_and_the_connection_reconnects() -> None:
    async def script(number: int, writer: asyncio.StreamWriter) -> None:
        writer.write(text(b"boom"))

    rec = Recorder()
    rec.raise_on_frame = True
    async with RawVenue(script) as venue:
        await run_until(venue, lambda r: r.opened >= 2, recorder=rec)
    assert rec.closes[0].startswith("handler error: RuntimeError")


async def test_a_dropped_tcp_connection_is_reported() -> None:
    async def script(number: int, writer: asyncio.StreamWriter) -> None:
        if number == 1:
            writer.transport.abort()

    async with RawVenue(script) as venue:
        _, rec = await run_until(venue, lambda r: r.opened >= 2)
    assert rec.closes[0] == "connection lost"


async def test_connection_attempts_keep_to_the_venues_limit() -> None:
    async def drop(number: int, writer: asyncio.StreamWriter) -> None:
        writer.write(close(1000))

    async with RawVenue(drop) as venue:
        rec = Recorder()
        conn = WsConnection(
            venue.url, rec, backoff=Backoff(base=0.001, cap=0.002), connect_limit=RateLimit(3, 0.5)
        )
        task = asyncio.create_task(conn.run())
        await asyncio.sleep(0.4)
        assert venue.connections == 3  # the backoff alone would allow many more
        await asyncio.sleep(0.4)
        assert venue.connections == 6
        conn.close()
        await task


def test_describe_close() -> None:
    assert describe_close(1000, b"") == "closed by venue (1000)"
    assert describe_close(None, None) == "closed by venue (no code)"
    assert describe_close(1008, b"too many requests") == "closed by venue (1008 'too many requests')"


async def test_a_venue_that_stops_answering_pings_but_echoes_the_close_is_reconnected() -> None:
    async def deaf(number: int, writer: asyncio.StreamWriter) -> None:
        if number == 1:
            writer.write(text(b"one frame, then only an echo of our close"))

    rec = Recorder()
    async with RawVenue(deaf, echo_close=True) as venue:
        conn = WsConnection(
            venue.url, rec, backoff=Backoff(base=0.01, cap=0.05), ping_idle=0.2, ping_reply=0.2
        )
        task = asyncio.create_task(conn.run())
        async with asyncio.timeout(10):
            while rec.opened < 2:
                await asyncio.sleep(0.01)
        conn.close()
        await task
    assert venue.echoed >= 1
    assert rec.closes[0].startswith("closed by us (peer has not replied to ping"), rec.closes
