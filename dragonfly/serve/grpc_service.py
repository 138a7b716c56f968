"""Serve ``orderbook.OrderbookAggregator/BookSummary`` from a FanOut of encoded Summaries.

The aggregator's updates are serialized once (dragonfly.serve.encode) and
published as bytes; every stream writes those bytes unchanged: the method is
registered with a generic handler whose response serializer is the identity,
so no subscriber costs a re-serialization.

Buffering per stream is bounded twice: grpc's HTTP/2 flow control stops a
write to a client that does not read (the handler then waits in
``context.write`` and takes nothing more from its subscription), and the
subscription holds at most ``queue_len`` updates, dropping the oldest (and,
with ``max_lag_ns``, those that waited longer than that). So a
stalled client holds ``queue_len`` updates plus its flow-control window of
bytes and costs the event loop nothing; the others are unaffected. The client
chooses that window: grpc's default is 64 KiB, widened to MiBs by its
bandwidth probing, i.e. seconds of stale updates for a slow reader;
``dragonfly.client`` offers 2 KiB (see ``dragonfly.client.stream``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
import grpc.aio

from dragonfly.serve.encode import append_send_ns
from dragonfly.serve.errors import ServeError

if TYPE_CHECKING:
    from dragonfly.core.fanout import FanOut, Subscription

__all__ = ["METHOD", "SERVICE", "GrpcService", "StreamStats"]

log = logging.getLogger(__name__)

SERVICE = "orderbook.OrderbookAggregator"
METHOD = "BookSummary"

_SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    # grpc sets SO_REUSEPORT by default on Linux: a second server would then
    # bind the same port and silently share the clients. Fail instead.
    ("grpc.so_reuseport", 0),
    # Detect clients that vanished without closing (host down, cable out).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # Let clients keep quiet streams alive with pings every >= 10 s.
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)


def _address(host: str, port: int) -> str:
    """Return ``host:port``, with brackets around an IPv6 host."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _bind_problem(host: str, port: int) -> str | None:
    """Return why ``host:port`` cannot be listened on, or None if it can.

    grpc only says "failed to bind" (and logs the reason to stderr), so probe
    with plain sockets first, set up like grpc's (SO_REUSEADDR, no
    SO_REUSEPORT), to report the operating system's reason. Like grpc, accept
    a host whose addresses bind only in part (``localhost`` without IPv6),
    but refuse a port in use on any of them.
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve host ({exc.strerror})"
    problems = []
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "address already in use"
                problems.append((exc.strerror or str(exc)).lower())
    if problems and len(problems) == len(infos):
        return problems[0]
    return None


class StreamStats(NamedTuple):
    """The counters of one open stream."""

    peer: str
    #: Updates written to the stream.
    delivered: int
    #: Updates conflated away because the client read slower than they came.
    dropped: int


class GrpcService:
    """The gRPC server of the merged book: one conflating subscription per stream.

    ``fanout`` carries encoded ``orderbook.Summary`` messages (bytes). Each
    BookSummary call subscribes with a queue of ``queue_len`` updates that
    keeps the newest, and with ``max_lag_ns`` skips queued updates that
    waited longer than that while a newer one is queued (see
    :class:`~dragonfly.core.fanout.Subscription`); a new stream starts with
    the latest update. With
    ``stamp_send_ns`` each message gets ``send_ns`` (field 8) appended just
    before it is written, at the cost of one bytes concatenation per write.
    """

    def __init__(
        self,
        fanout: FanOut[bytes],
        host: str = "0.0.0.0",
        port: int = 50051,
        *,
        queue_len: int = 1,
        max_lag_ns: int | None = None,
        stamp_send_ns: bool = False,
    ) -> None:
        """Prepare the service; nothing listens before start()."""
        if queue_len < 1:
            raise ValueError(f"queue_len must be >= 1, not {queue_len}")
        if max_lag_ns is not None and max_lag_ns < 0:
            raise ValueError(f"max_lag_ns must be >= 0, not {max_lag_ns}")
        self._max_lag_ns = max_lag_ns
        self._fanout = fanout
        self._host = host
        self._port = port
        self._queue_len = queue_len
        self._stamp_send_ns = stamp_send_ns
        self._server: grpc.aio.Server | None = None
        # Open streams: their subscription and the client's address.
        self._streams: dict[Subscription[bytes], str] = {}
        self._stopping = False

    @property
    def subscribers(self) -> int:
        """The number of open BookSummary streams."""
        return len(self._streams)

    def stream_stats(self) -> list[StreamStats]:
        """Return the counters of every open stream."""
        return [StreamStats(peer, sub.delivered, sub.dropped) for sub, peer in self._streams.items()]

    async def start(self) -> int:
        """Listen and serve; return the bound port (useful with port 0).

        Raise ServeError if the address cannot be listened on.
        """
        if self._server is not None:
            raise RuntimeError("GrpcService already started")
        address = _address(self._host, self._port)
        problem = _bind_problem(self._host, self._port) if self._port else None
        if problem:
            raise ServeError(f"cannot listen on {address}: {problem}")
        server = grpc.aio.server(options=_SERVER_OPTIONS)
        handler = grpc.unary_stream_rpc_method_handler(
            self._book_summary,
            # Both None: grpc passes bytes through untouched. The request (an
            # empty message) is never looked at, and responses are already
            # serialized Summaries.
            request_deserializer=None,
            response_serializer=None,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),))
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:  # lost a race for the port since the probe
            port = 0
        if not port:
            problem = _bind_problem(self._host, self._port) or "bind failed"
            raise ServeError(f"cannot listen on {address}: {problem}")
        await server.start()
        self._server = server
        self._stopping = False
        log.info("serving %s on %s", SERVICE, _address(self._host, port))
        return port

    async def stop(self, grace: float = 1.0) -> None:
        """End every stream with status OK, then stop the server.

        Streams blocked on a client that does not read are cancelled after
        ``grace`` seconds.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping = True  # streams that start from now on end at once
        for subscription in tuple(self._streams):
            subscription.close()
        await server.stop(grace)

    async def _book_summary(self, _request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        """Write every update of a new subscription to the stream, as it comes."""
        subscription = self._fanout.subscribe(self._queue_len, self._max_lag_ns)
        if self._stopping:
            subscription.close()
        peer = context.peer()
        self._streams[subscription] = peer

        def client_gone(_: object) -> None:
            # Runs when the RPC ends for any reason, even with the handler
            # stuck in a write: release the subscription right away.
            subscription.close()
            self._streams.pop(subscription, None)

        context.add_done_callback(client_gone)  # type: ignore[arg-type]  # stubs want a DoneCallback instance
        log.debug("stream opened by %s", peer)
        stamp = self._stamp_send_ns
        try:
            # Headers now, not with the first update: a client can tell that
            # the stream is up even while the market is quiet.
            await context.send_initial_metadata(())
            while (payload := await subscription.get()) is not None:
                if stamp:
                    payload = append_send_ns(payload, time.time_ns())
                # Returns once grpc took the message; with a client that does
                # not read, that waits for flow control, and meanwhile the
                # subscription conflates.
                await context.write(payload)
        except asyncio.CancelledError:
            log.debug("stream of %s cancelled", peer)
            raise
        finally:
            client_gone(None)
            log.debug(
                "stream of %s ended: %d delivered, %d conflated",
                peer,
                subscription.delivered,
                subscription.dropped,
            )
