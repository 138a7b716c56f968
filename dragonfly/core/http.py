"""A small HTTP/1.1 GET client for venue REST endpoints (symbol checks, snapshots).

REST calls are rare and off the hot path; this exists so the engine needs no
second networking stack. It speaks plain HTTP/1.1 over asyncio streams, with
TLS for ``https://``, and understands ``Content-Length``, chunked bodies and
close-delimited bodies.

A REST answer is hostile input like any venue frame: the status line, every
header line, the number of header lines, their total size and the body are
all bounded (:data:`MAX_LINE`, :data:`MAX_HEADERS`, :data:`MAX_HEADER_BYTES`,
``max_body``), and the whole exchange by ``timeout``. An answer over a bound
fails at once with :class:`~dragonfly.core.errors.HttpError` naming it (a venue
that sent header lines without end made the old client hold ~1 GB until its
timeout, on every retry).
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from dragonfly.core.errors import HttpError

#: Refuse bodies larger than this by default: a REST snapshot of 5000 levels a side is ~300 KB.
MAX_BODY = 16 * 1024 * 1024
#: Longest status or header line (bytes, with its line end).
MAX_LINE = 8 * 1024
#: Most header lines in one answer (venues send 10-30).
MAX_HEADERS = 100
#: Most bytes of header lines in one answer.
MAX_HEADER_BYTES = 64 * 1024


class HttpResponse(NamedTuple):
    """Status code, body and headers (names in lower case; the last of a repeated one) of a response."""

    status: int
    body: bytes
    headers: Mapping[str, str] = {}


def retry_after(resp: HttpResponse, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or ``None`` without a usable one.

    The header is either a number of seconds or an HTTP date; a value that
    is neither, or in the past, gives ``None`` and ``0.0`` respectively.
    """
    value = resp.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


async def http_get(
    url: str,
    *,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    max_body: int = MAX_BODY,
) -> HttpResponse:
    """GET ``url`` and return its status, body and headers.

    Raises :class:`HttpError` with a one-line reason when the server cannot be
    reached, the TLS handshake fails, the response is not HTTP or crosses a
    size bound (module doc), or ``timeout`` seconds pass.
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
            _get(parts.hostname, port, target, secure, ssl_context, max_body), timeout
        )
    except TimeoutError:
        raise HttpError(f"GET {url}: no answer within {timeout:g}s") from None
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ValueError) as exc:
        raise HttpError(f"GET {url}: {exc or type(exc).__name__}") from None


async def _get(
    host: str, port: int, target: str, secure: bool, ctx: ssl.SSLContext | None, max_body: int
) -> HttpResponse:
    tls: ssl.SSLContext | None = None
    if secure:
        tls = ctx or ssl.create_default_context()
    # ``limit`` bounds what one readline may buffer: a line without an end
    # fails with ValueError (LimitOverrunError) at MAX_LINE bytes.
    reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=MAX_LINE)
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
        headers = await _read_headers(reader)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader, max_body)
        elif "content-length" in headers:
            length_text = headers["content-length"]
            if not length_text.isdigit():
                raise ValueError(f"bad Content-Length {length_text[:40]!r}")
            length = int(length_text)
            if length > max_body:
                raise ValueError(f"response body of {length} bytes is over the {max_body}-byte limit")
            body = await reader.readexactly(length)
        else:
            body = await _read_to_close(reader, max_body)
        return HttpResponse(status, body, headers)
    finally:
        writer.close()


async def _read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    count = size = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        count += 1
        size += len(line)
        if count > MAX_HEADERS or size > MAX_HEADER_BYTES:
            raise ValueError(f"more than {MAX_HEADERS} header lines or {MAX_HEADER_BYTES} bytes of headers")
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")


async def _read_to_close(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = await reader.read(max_body + 1)
    chunks = [body]
    total = len(body)
    while body and total <= max_body:
        body = await reader.read(max_body + 1 - total)
        chunks.append(body)
        total += len(body)
    if total > max_body:
        raise ValueError(f"response body is over the {max_body}-byte limit")
    return b"".join(chunks)


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size < 0:
            raise ValueError("negative chunk size")
        if size == 0:
            # Trailers end with an empty line; they are bounded like headers.
            await _read_headers(reader)
            return b"".join(chunks)
        total += size
        if total > max_body:
            raise ValueError(f"chunked response body is over the {max_body}-byte limit")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
