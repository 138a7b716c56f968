"""A venue's REST endpoints on a port of their own: a small asyncio HTTP/1.1 server.

picows answers a plain GET synchronously from its upgrade router, so on the
WebSocket port an answer can be neither late nor endless. This server can:
each request is a coroutine that may wait (``rest-slow``) or stream
(``rest-headers``) without holding anyone else up. One request per
connection (``Connection: close``), GET and HEAD only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from dragonfly.sim.faults.rest import Streamer
from dragonfly.sim.http import HttpReply, encode_reply, split_target
from dragonfly.sim.plumbing import CLOSE_WAIT_S, authority

log = logging.getLogger("dragonfly.sim.rest")

#: Answers one GET: (path, query) -> a reply, or a streamer that writes the answer itself.
Answer = Callable[[str, dict[str, str]], Awaitable[HttpReply | Streamer]]
#: How long a client may take to send its request head.
REQUEST_TIMEOUT_S = 10.0
_TEXT = "text/plain; charset=utf-8"


class RestPort:
    """HTTP/1.1 GETs on their own port, answered by ``answer``."""

    def __init__(self, answer: Answer, host: str, port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, name: str = "rest") -> None:
        """Prepare to serve on ``host:port`` (0 picks a free port); nothing binds until start()."""
        self._answer = answer
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.name = name
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        """Return the base URL (no trailing slash)."""
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{authority(self.host, self.port)}"

    async def start(self) -> None:
        """Bind the port."""
        self._server = await asyncio.start_server(self._client, self.host, self.port,
                                                  ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the port and every open request."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        if clients:
            await asyncio.wait(clients, timeout=CLOSE_WAIT_S)
        if server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_WAIT_S)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass  # the client left
        finally:
            self._clients.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        except (TimeoutError, asyncio.LimitOverrunError):
            writer.write(encode_reply(HttpReply(400, b"Bad Request", _TEXT)))
            return
        fields = head.split(b"\r\n", 1)[0].split()
        if len(fields) != 3 or not fields[2].startswith(b"HTTP/1."):
            writer.write(encode_reply(HttpReply(400, b"Bad Request", _TEXT)))
            return
        method = fields[0]
        if method not in (b"GET", b"HEAD"):
            reply = HttpReply(405, b"Method Not Allowed", _TEXT, (("Allow", "GET, HEAD"),))
            writer.write(encode_reply(reply))
            return
        path, query = split_target(fields[1])
        try:
            answer = await self._answer(path, query)
        except Exception:
            log.exception("%s: REST handler failed for %s", self.name, path)
            answer = HttpReply(500, b"Internal Server Error", _TEXT)
        if isinstance(answer, HttpReply):
            writer.write(encode_reply(answer, head_only=method == b"HEAD"))
            await writer.drain()
        else:
            await answer(reader, writer)
