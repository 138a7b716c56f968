"""A small HTTP/1.1 GET client for venue REST endpoints (symbol checks, snapshots).

REST calls are rare and off the hot path; this exists so the engine needs no
second networking stack. It speaks plain HTTP/1.1 over asyncio streams, with
TLS for ``https://``, and understands ``Content-Length``, chunked bodies and
close-delimited bodies.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import NamedTuple
from urllib.parse import urlsplit

from dragonfly.core.errors import HttpError

#: Refuse bodies larger than this: a REST snapshot of 5000 levels is ~300 KB.
MAX_BODY = 64 * 1024 * 1024


class HttpResponse(NamedTuple):
    """Status code and body of one response."""

    status: int
    body: bytes


async def http_get(
    url: str,
    *,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpResponse:
    """GET ``url`` and return its status and body.

    Raises :class:`HttpError` with a one-line reason when the server cannot be
    reached, the TLS handshake fails, the response is not HTTP, or ``timeout``
    seconds pass.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}")
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        return await asyncio.wait_for(
            _get(parts.hostname, port, target, secure, ssl_context), timeout
        )
    except TimeoutError:
        raise HttpError(f"GET {url}: no answer within {timeout:g}s") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
        raise HttpError(f"GET {url}: {exc or type(exc).__name__}") from None


async def _get(
    host: str, port: int, target: str, secure: bool, ctx: ssl.SSLContext | None
) -> HttpResponse:
    tls: ssl.SSLContext | None = None
    if secure:
        tls = ctx or ssl.create_default_context()
    reader, writer = await asyncio.open_connection(host, port, ssl=tls)
    try:
        host_header = host if port in (80, 443) else f"{host}:{port}"
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {host_header}\r\n"
            "User-Agent: dragonfly\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        await writer.drain()
        status_line = await reader.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise ValueError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(fields[1])
        headers: dict[bytes, bytes] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await _read_chunked(reader)
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            if length > MAX_BODY:
                raise ValueError(f"response body of {length} bytes is too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY)
        return HttpResponse(status, body)
    finally:
        writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers end with an empty line.
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_BODY:
            raise ValueError("chunked response body is too large")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
