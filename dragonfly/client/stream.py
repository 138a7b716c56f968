"""Subscribe to a dragonfly (or original aggregator) server's merged book.

``stream_summaries`` is the whole client: connect, retrying until a timeout,
then yield every ``orderbook.Summary`` of the BookSummary stream. Failures
come out as ClientError subclasses whose ``str()`` is one readable line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import grpc
import grpc.aio

from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc

__all__ = ["ClientError", "ServerUnreachableError", "StreamError", "stream_summaries"]

DEFAULT_TARGET = "127.0.0.1:50051"

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
    return StreamError(f"stream from {target} failed: {name}: {details or 'no details'}")


async def _open(
    channel: grpc.aio.Channel, target: str, timeout: float
) -> grpc.aio.UnaryStreamCall[orderbook_pb2.Empty, orderbook_pb2.Summary]:
    """Start BookSummary, retrying while the server is unreachable."""
    stub = orderbook_pb2_grpc.OrderbookAggregatorStub(channel)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reason = "timed out"
    while True:
        # Fail fast (no wait_for_ready): an unreachable server then ends the
        # call at once with the reason in its details, which we report.
        call = stub.BookSummary(orderbook_pb2.Empty())
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
        reason = _reason(await call.details())
        pause = min(_RETRY_PAUSE, deadline - loop.time())
        if pause <= 0:
            raise ServerUnreachableError(target, reason)
        await asyncio.sleep(pause)


async def stream_summaries(
    target: str = DEFAULT_TARGET, *, timeout: float = 5.0
) -> AsyncGenerator[orderbook_pb2.Summary, None]:
    """Yield every update of the server's BookSummary stream at ``target`` ("host:port").

    Retry connecting for ``timeout`` seconds, then raise ServerUnreachableError.
    End when the server ends the stream; raise StreamError if it fails.
    Close the generator (``contextlib.aclosing``) to close the connection.
    """
    async with grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS) as channel:
        call = await _open(channel, target, timeout)
        try:
            # Ends on status OK; raises AioRpcError on any other status.
            async for summary in call:
                yield summary
        except grpc.aio.AioRpcError as exc:
            raise _failure(target, exc.code(), exc.details()) from None
        finally:
            call.cancel()
