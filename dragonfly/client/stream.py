"""Subscribe to a dragonfly (or original aggregator) server's merged book.

``stream_summaries`` is the whole client: connect, retrying until a timeout,
then yield every ``orderbook.Summary`` of the BookSummary stream. Failures
come out as ClientError subclasses whose ``str()`` is one readable line.

Freshness: how far behind a slow reader falls is set here, in the client, by
the HTTP/2 flow-control window it offers the server (``window_bytes``). The
server never writes more than the window ahead of what the reader has read,
and conflates to the newest update meanwhile. grpc's own default window
starts at 64 KiB and is widened by its bandwidth probing to MiBs: a reader
that takes 20 ms per update then reads books seconds old (measured: 2.4-3.9 s
at 1000 updates/s). The default here, 2 KiB, holds about three top-10
updates, so such a reader is a few reads behind at most, while a reader that
keeps up receives each update as soon as with grpc's window (no round trip
per update; a burst faster than the round trip is conflated by the server).

A locked-down server (docs/serving.md) needs ``tls=True`` (with ``ca_file``
for a private CA) and ``token``: the bearer token, sent on the call as
``authorization: Bearer <token>`` (in clear without TLS). :func:`load_token`
reads it the way ``python -m dragonfly.client`` does.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc

__all__ = [
    "DEFAULT_WINDOW_BYTES",
    "TOKEN_ENV",
    "ClientError",
    "CredentialsError",
    "ResourceExhaustedError",
    "ServerUnreachableError",
    "StreamError",
    "TlsError",
    "UnauthenticatedError",
    "channel_options",
    "load_token",
    "stream_summaries",
]

DEFAULT_TARGET = "127.0.0.1:50051"
#: The environment variable that holds the bearer token (a token file wins over it).
TOKEN_ENV = "DRAGONFLY_TOKEN"

_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Reconnect quickly while waiting for a server that is starting: grpc's
    # default first back-off is a full second.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Notice a dead server during a quiet market: the stream carries no data
    # then, so only pings can tell. (dragonfly accepts pings every >= 10 s.)
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
)
_RETRY_PAUSE = 0.1

#: The default flow-control window, bytes: about three top-10 updates (~620 bytes each).
DEFAULT_WINDOW_BYTES = 2048
_MAX_WINDOW_BYTES = 2**31 - 1  # HTTP/2's largest window


def channel_options(window_bytes: int | None = DEFAULT_WINDOW_BYTES) -> tuple[tuple[str, Any], ...]:
    """Return grpc channel options that fix the stream window at ``window_bytes``.

    ``None`` keeps grpc's auto-tuned window (64 KiB, growing to MiBs). A
    fixed window turns grpc's bandwidth probing off, which would widen it.
    ``0`` lets one update through per read: the freshest, but every update
    then waits a round trip for the read that asks for it. Raise ValueError
    for anything but ``None`` or an int in ``0..2**31-1``.
    """
    if window_bytes is None:
        return _CHANNEL_OPTIONS
    if isinstance(window_bytes, bool) or not isinstance(window_bytes, int):
        raise ValueError(f"window_bytes must be an int or None, not {window_bytes!r}")
    if not 0 <= window_bytes <= _MAX_WINDOW_BYTES:
        raise ValueError(f"window_bytes must be in 0..{_MAX_WINDOW_BYTES}, not {window_bytes}")
    return (
        *_CHANNEL_OPTIONS,
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", window_bytes),
    )


class ClientError(Exception):
    """The stream could not be had; ``str()`` is one line fit for a user."""


class ServerUnreachableError(ClientError):
    """No connection to the server within the timeout."""

    def __init__(self, target: str, reason: str) -> None:
        """Record the target and the last reason the connection failed."""
        super().__init__(f"cannot reach dragonfly server at {target} ({reason})")
        self.target = target
        self.reason = reason


class StreamError(ClientError):
    """The server answered, but the stream ended with an error."""


class UnauthenticatedError(StreamError):
    """The server wants a bearer token, or another one (UNAUTHENTICATED)."""


class ResourceExhaustedError(StreamError):
    """The server has no room for another stream (RESOURCE_EXHAUSTED): a stream cap."""


class TlsError(ClientError):
    """The TLS handshake with the server failed: not retried, it would fail again."""


class CredentialsError(ClientError):
    """A CA file or token cannot be used (unreadable, empty, not fit for a header)."""


def _check_token(token: str, source: str) -> str:
    """Return ``token`` stripped; raise CredentialsError if it cannot travel in a header."""
    token = token.strip()
    if not token:
        raise CredentialsError(f"the token in {source} is empty")
    if not all("!" <= char <= "~" for char in token):
        raise CredentialsError(f"the token in {source} must be printable ASCII without spaces")
    return token


def load_token(token_file: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the bearer token of ``token_file``, else of DRAGONFLY_TOKEN, else None.

    The file wins when both are given (as on the server). Surrounding
    whitespace is ignored. Raise CredentialsError for an unreadable file or
    an empty token. ``environ`` defaults to the process environment.
    """
    if token_file is not None:
        try:
            text = Path(token_file).read_text(encoding="ascii")
        except OSError as exc:
            raise CredentialsError(f"cannot read token file {token_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CredentialsError(
                f"the token in {token_file} must be printable ASCII without spaces"
            ) from None
        return _check_token(text, token_file)
    value = (os.environ if environ is None else environ).get(TOKEN_ENV)
    return None if value is None else _check_token(value, TOKEN_ENV)


def _tls_problem(details: str) -> str | None:
    """Return why grpc's connection error is a failed TLS handshake, readably, or None if it is not.

    grpc reports e.g. ``...: Tls handshake failed (TSI_PROTOCOL_FAILURE):
    SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:
    CERTIFICATE_VERIFY_FAILED: self signed certificate: OK``.
    """
    lowered = details.lower()
    if "hostname verification check failed" in lowered:
        return "the server's certificate does not name the host connected to"
    if "handshake failed" not in lowered:
        return None
    match = re.search(r"OPENSSL_internal:([A-Z0-9_]+)(?::\s*(.*?))?(?::\s*OK)?\s*$", details)
    if match is None:
        return details[lowered.index("handshake failed") :].strip()
    code, text = match[1], (match[2] or "").strip()
    if code == "WRONG_VERSION_NUMBER":
        return "the server does not speak TLS (wrong version number)"
    reason = code.lower().replace("_", " ")
    return f"{reason}: {text}" if text else reason


def _reason(details: str | None) -> str:
    """Shorten grpc's connection error to its cause, e.g. "connection refused".

    grpc's details end with the operating system's message after the last
    ": " (``...: Failed to connect to remote host: Connection refused``).
    """
    if not details:
        return "unavailable"
    return details.rstrip("] ").rsplit(": ", 1)[-1].strip().lower() or "unavailable"


def _failure(target: str, code: grpc.StatusCode, details: str | None) -> StreamError:
    name = code.name.lower()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return StreamError(
            f"server at {target} does not serve orderbook.OrderbookAggregator/BookSummary ({name})"
        )
    refused = f"server at {target} refused the stream: {name}: {details or 'no details'}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return UnauthenticatedError(refused)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhaustedError(refused)
    return StreamError(f"stream from {target} failed: {name}: {details or 'no details'}")


async def _open(
    channel: grpc.aio.Channel, target: str, timeout: float, token: str | None, tls: bool
) -> grpc.aio.UnaryStreamCall[orderbook_pb2.Empty, orderbook_pb2.Summary]:
    """Start BookSummary, retrying while the server is unreachable (not after a failed TLS handshake)."""
    stub = orderbook_pb2_grpc.OrderbookAggregatorStub(channel)
    metadata = None if token is None else (("authorization", f"Bearer {token}"),)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reason = "timed out"
    while True:
        # Fail fast (no wait_for_ready): an unreachable server then ends the
        # call at once with the reason in its details, which we report.
        call = stub.BookSummary(orderbook_pb2.Empty(), metadata=metadata)
        try:
            # dragonfly sends headers when the stream opens; a server that
            # holds them back until its first update is still "reached" once
            # the channel is READY (the timeout is not a market-quiet limit).
            await asyncio.wait_for(call.initial_metadata(), max(deadline - loop.time(), 0.0))
        except TimeoutError:
            if channel.get_state() == grpc.ChannelConnectivity.READY:
                return call
            call.cancel()
            raise ServerUnreachableError(target, reason) from None
        if not call.done():
            return call
        code = await call.code()
        if code != grpc.StatusCode.UNAVAILABLE:
            return call  # let the caller see the end: OK with no updates, or an error
        details = await call.details()
        problem = _tls_problem(details or "")
        if problem is not None:
            raise TlsError(f"TLS handshake with {target} failed: {problem}")
        reason = _reason(details)
        if reason == "socket closed" and not tls:
            # What a plaintext client sees of a TLS server: it hangs up.
            reason = "socket closed; does the server require TLS?"
        pause = min(_RETRY_PAUSE, deadline - loop.time())
        if pause <= 0:
            raise ServerUnreachableError(target, reason)
        await asyncio.sleep(pause)


def _channel(
    target: str,
    options: tuple[tuple[str, Any], ...],
    tls: bool,
    ca_file: str | None,
    server_name: str | None,
) -> grpc.aio.Channel:
    """Return a plaintext channel, or a TLS one trusting ``ca_file`` (else the system's CAs)."""
    if not tls:
        return grpc.aio.insecure_channel(target, options=options)
    roots = None
    if ca_file is not None:
        try:
            roots = Path(ca_file).read_bytes()
        except OSError as exc:
            raise CredentialsError(f"cannot read CA file {ca_file}: {exc.strerror}") from None
        if b"-----BEGIN CERTIFICATE-----" not in roots:
            raise CredentialsError(f"CA file {ca_file} holds no PEM certificate")
    if server_name is not None:
        options = (*options, ("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)


async def stream_summaries(
    target: str = DEFAULT_TARGET,
    *,
    timeout: float = 5.0,
    window_bytes: int | None = DEFAULT_WINDOW_BYTES,
    tls: bool = False,
    ca_file: str | None = None,
    server_name: str | None = None,
    token: str | None = None,
) -> AsyncGenerator[orderbook_pb2.Summary, None]:
    """Yield every update of the server's BookSummary stream at ``target`` ("host:port").

    Retry connecting for ``timeout`` seconds, then raise ServerUnreachableError.
    End when the server ends the stream; raise StreamError if it fails
    (UnauthenticatedError, ResourceExhaustedError: the server refused it).
    Close the generator (``contextlib.aclosing``) to close the connection.

    ``window_bytes`` bounds what waits unread in this process (see the module
    doc and :func:`channel_options`, which raises ValueError for a bad value
    before anything connects). On a long-distance link, where at most one
    window travels per round trip, raise it to the bytes of updates per
    round trip you want; ``None`` is grpc's auto-tuned window.

    ``tls`` connects with TLS, verifying the server against the system's CAs
    or, with ``ca_file``, against that PEM file only; ``server_name`` is the
    name expected in the server's certificate when it is not the target's
    host. ``ca_file`` and ``server_name`` imply ``tls``. A failed handshake
    raises TlsError at once; an unusable CA file, CredentialsError.
    ``token`` is sent as ``authorization: Bearer <token>`` (see
    :func:`load_token`).
    """
    options = channel_options(window_bytes)
    if token is not None:
        token = _check_token(token, "the token")
    tls = tls or ca_file is not None or server_name is not None
    async with _channel(target, options, tls, ca_file, server_name) as channel:
        call = await _open(channel, target, timeout, token, tls)
        try:
            # Ends on status OK; raises AioRpcError on any other status.
            async for summary in call:
                yield summary
        except grpc.aio.AioRpcError as exc:
            raise _failure(target, exc.code(), exc.details()) from None
        finally:
            call.cancel()
