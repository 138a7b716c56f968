"""A hand-written FIX 4.4 market-data acceptor for venue tests: real TCP, scripted misbehaviour.

It answers Logon, answers each MarketDataRequest (V) with a full refresh (W)
of the book it holds for the symbol, or a MarketDataRequestReject (Y) for a
symbol it does not list, answers TestRequests, and publishes a W to every
subscriber whenever a test sets a book. Tests reach into a live connection
(:attr:`FakeVenue.conns`) to send whatever bytes they like: a bad checksum,
a sequence number out of line, a Logout.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from dragonfly.fix.codec import FieldValue, FixReader, encode, sending_time

Levels = Sequence[tuple[str, str]]


@dataclass
class Conn:
    """One accepted connection."""

    writer: asyncio.StreamWriter
    client: str = ""
    seq: int = 1
    subscribed: dict[str, str] = field(default_factory=dict)  # MDReqID -> symbol
    received: list[bytes] = field(default_factory=list)  # MsgTypes received

    def build(self, msg_type: str, fields: Sequence[tuple[int, FieldValue]], seq: int | None = None) -> bytes:
        if seq is None:
            seq = self.seq
            self.seq += 1
        head: list[tuple[int, FieldValue]] = [
            (49, "DRAGONFLY"),
            (56, self.client),
            (34, seq),
            (52, sending_time()),
        ]
        return encode(msg_type, [*head, *fields])

    def send(self, msg_type: str, fields: Sequence[tuple[int, FieldValue]], seq: int | None = None) -> None:
        self.writer.write(self.build(msg_type, fields, seq))

    def raw(self, data: bytes) -> None:
        self.writer.write(data)


class FakeVenue:
    """The acceptor (module doc); ``books`` maps a symbol it lists to ``(bids, asks)`` as decimal strings."""

    def __init__(self, books: dict[str, tuple[Levels, Levels]], *, heartbeat_echo: bool = True) -> None:
        self.books = dict(books)
        self.heartbeat_echo = heartbeat_echo
        self.sessions = 0  #: Logons answered
        self.conns: list[Conn] = []
        self.seq_view = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the listening socket and every connection."""
        if self._server is not None:
            self._server.close()
            for conn in self.conns:
                conn.writer.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def w(self, conn: Conn, req: str, symbol: str) -> bytes:
        bids, asks = self.books[symbol]
        self.seq_view += 1
        entries: list[tuple[int, FieldValue]] = []
        for side, levels in (("0", bids), ("1", asks)):
            for i, (px, qty) in enumerate(levels):
                entries += [(269, side), (270, px), (271, qty), (282, "fake"), (290, i + 1)]
        return conn.build(
            "W", [(262, req), (55, symbol), (268, len(entries) // 5), *entries, (20001, self.seq_view)]
        )

    def publish(self, symbol: str, bids: Levels, asks: Levels) -> None:
        """Set ``symbol``'s book and send it to every connection subscribed to it."""
        self.books[symbol] = (bids, asks)
        for conn in self.conns:
            for req, sym in conn.subscribed.items():
                if sym == symbol:
                    conn.raw(self.w(conn, req, symbol))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(writer)
        self.conns.append(conn)
        fix = FixReader(1 << 20)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                fix.feed(data)
                while (msg := fix.next()) is not None:
                    conn.received.append(msg.msg_type)
                    kind = msg.msg_type
                    if kind == b"A":
                        conn.client = (msg.get(49) or b"").decode()
                        self.sessions += 1
                        conn.send("A", [(98, 0), (108, int(msg.get(108) or 30)), (141, "Y")])
                    elif kind == b"1" and self.heartbeat_echo:
                        conn.send("0", [(112, msg.get(112) or b"")])
                    elif kind == b"V":
                        req = (msg.get(262) or b"").decode()
                        symbol = (msg.get(55) or b"").decode()
                        if symbol in self.books:
                            conn.subscribed[req] = symbol
                            conn.raw(self.w(conn, req, symbol))
                        else:
                            conn.send("Y", [(262, req), (281, "0"), (58, f"unknown symbol {symbol}")])
                    elif kind == b"5":
                        conn.send("5", [])
                        writer.close()
                        return
        except (ConnectionError, OSError):
            return
        finally:
            with contextlib.suppress(ValueError):
                self.conns.remove(conn)
            writer.close()
