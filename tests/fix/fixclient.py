"""A raw FIX test client over real TCP: our codec for framing, hand-written bytes when needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from dragonfly.fix.codec import FieldValue, FixMessage, FixReader, encode, sending_time

#: Seconds a test waits for one message before failing (never a hang).
WAIT = 5.0


class FixClient:
    """One TCP connection speaking FIX with explicit sequence numbers."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sender: str = "CLIENT",
        target: str = "DRAGONFLY",
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.sender = sender
        self.target = target
        self.seq = 1
        self.fix = FixReader()
        self.received: list[FixMessage] = []

    @classmethod
    async def connect(cls, port: int, sender: str = "CLIENT", target: str = "DRAGONFLY") -> FixClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, sender, target)

    def build(
        self,
        msg_type: str,
        fields: Sequence[tuple[int, FieldValue]] = (),
        seq: int | None = None,
        header: Sequence[tuple[int, FieldValue]] | None = None,
    ) -> bytes:
        """Return a message with the standard header; the sequence number advances unless given."""
        if seq is None:
            seq = self.seq
            self.seq += 1
        head: list[tuple[int, FieldValue]] = (
            list(header)
            if header is not None
            else [(49, self.sender), (56, self.target), (34, seq), (52, sending_time())]
        )
        return encode(msg_type, [*head, *fields])

    async def send(
        self, msg_type: str, fields: Sequence[tuple[int, FieldValue]] = (), seq: int | None = None
    ) -> None:
        self.writer.write(self.build(msg_type, fields, seq))
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def logon(self, heartbeat: int = 30, extra: Sequence[tuple[int, FieldValue]] = ()) -> FixMessage:
        await self.send("A", [(98, 0), (108, heartbeat), *extra])
        reply = await self.expect("A")
        return reply

    async def recv(self, timeout: float = WAIT) -> FixMessage | None:
        """Return the next message, or ``None`` when the connection closed."""
        async with asyncio.timeout(timeout):
            while True:
                msg = self.fix.next()
                if msg is not None:
                    self.received.append(msg)
                    return msg
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.fix.feed(data)

    async def expect(self, msg_type: str, timeout: float = WAIT, skip: Sequence[str] = ("0",)) -> FixMessage:
        """Return the next message of ``msg_type``, skipping the types in ``skip``; fail on anything else."""
        while True:
            msg = await self.recv(timeout)
            assert msg is not None, f"connection closed while waiting for {msg_type}"
            if msg.msg_type == msg_type.encode():
                return msg
            assert msg.msg_type.decode() in skip, f"expected {msg_type}, got {msg!r}"

    async def expect_closed(self, timeout: float = WAIT) -> list[FixMessage]:
        """Read until the server closes the connection; return what came meanwhile."""
        got: list[FixMessage] = []
        while True:
            msg = await self.recv(timeout)
            if msg is None:
                return got
            got.append(msg)

    async def close(self) -> None:
        """Close; drop what is still unsent (a peer that stopped reading) instead of waiting."""
        if self.writer.transport.get_write_buffer_size():
            self.writer.transport.abort()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
