"""The REST client refuses answers over its bounds at once, and reads Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dragonfly.core.errors import HttpError
from dragonfly.core.http import MAX_HEADERS, HttpResponse, http_get, retry_after

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[str]:
    """Serve ``answer`` to every request; yield the URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer)
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/depth"
    finally:
        srv.close()


async def test_a_normal_answer_with_its_headers() -> None:
    async def ok(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-MBX-Used-Weight-1m: 50\r\n\r\n{}")

    async with server(ok) as url:
        resp = await http_get(url)
    assert resp.status == 200 and resp.body == b"{}" and resp.headers["x-mbx-used-weight-1m"] == "50"


async def test_header_lines_without_end_fail_at_once() -> None:
    """A venue that sent header lines forever made the client hold ~1 GB until its timeout."""
    sent = 0

    async def endless(w: asyncio.StreamWriter) -> None:
        nonlocal sent
        w.write(b"HTTP/1.1 200 OK\r\n")
        while not w.is_closing():
            w.write(b"X-Filler: " + b"x" * 100 + b"\r\n")
            sent += 1
            await w.drain()
            await asyncio.sleep(0)

    async with server(endless) as url:
        start = time.monotonic()
        with pytest.raises(HttpError, match="header lines"):
            await http_get(url, timeout=10)
    assert time.monotonic() - start < 2.0 and sent < MAX_HEADERS * 50


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"y" * 20_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"FFFFFFFF\r\n",
        b"SSH-2.0-OpenSSH\r\n",
    ],
)
async def test_answers_over_a_bound_or_not_http_are_errors(head: bytes) -> None:
    async def answer(w: asyncio.StreamWriter) -> None:
        w.write(head)
        await w.drain()

    async with server(answer) as url:
        with pytest.raises(HttpError):
            await http_get(url, timeout=5)


async def test_a_close_delimited_body_is_bounded() -> None:
    async def big(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n\r\n")
        for _ in range(40):
            w.write(b"z" * 65536)
            await w.drain()

    async with server(big) as url:
        with pytest.raises(HttpError, match="limit"):
            await http_get(url, max_body=1 << 20)


def test_retry_after_seconds_date_or_nothing() -> None:
    def resp(value: str | None) -> HttpResponse:
        return HttpResponse(429, b"", {} if value is None else {"retry-after": value})

    assert retry_after(resp("7")) == 7.0
    assert retry_after(resp(None)) is None and retry_after(resp("soon")) is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after(resp(date), now=now) == pytest.approx(30, abs=1.5)
    assert retry_after(resp(email.utils.formatdate(now - 30, usegmt=True)), now=now) == 0.0
