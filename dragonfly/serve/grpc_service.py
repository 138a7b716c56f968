"""Serve ``orderbook.OrderbookAggregator/BookSummary`` from a FanOut of encoded Summaries.

With a :class:`~dragonfly.topology.source.Catalog` the same server also serves
the versioned API ``dragonfly.v1.MarketData`` (:mod:`dragonfly.serve.v1`),
under the same lock-down: both APIs stream through :meth:`GrpcService.stream`
and check calls with :meth:`GrpcService.refuse_call` /
:meth:`GrpcService.refuse_stream`, so the caps count the streams of both.

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

Lock-down (see docs/serving.md): optional TLS whose key pair can be replaced
while serving (:meth:`GrpcService.set_tls`), an optional bearer token checked
on every call (``UNAUTHENTICATED``), caps on concurrent streams in total and
per connection (``RESOURCE_EXHAUSTED``), a write timeout that ends a stream
whose client stopped reading (``DEADLINE_EXCEEDED``), and connection options
that drop dead, idle and never-handshaking connections. A client that goes
away, in any way, ends its stream quietly (debug log only).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import ipaddress
import logging
import re
import resource
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
import grpc.aio

from dragonfly.serve.encode import append_send_ns
from dragonfly.serve.errors import ServeError

if TYPE_CHECKING:
    from dragonfly.core.fanout import FanOut, Subscription
    from dragonfly.serve.probes import Probes
    from dragonfly.serve.v1 import MarketData
    from dragonfly.topology.source import Catalog

__all__ = [
    "DEFAULT_HOST",
    "METHOD",
    "SERVICE",
    "GrpcService",
    "Limits",
    "StreamStats",
    "TlsKeyPair",
    "Wakeup",
    "check_token",
    "is_loopback",
    "load_tls_key_pair",
    "raise_open_file_limit",
    "read_token_file",
]

log = logging.getLogger(__name__)

SERVICE = "orderbook.OrderbookAggregator"
METHOD = "BookSummary"

#: Listen on loopback unless told otherwise: a server without TLS and a
#: token must not be reachable from the network by accident.
DEFAULT_HOST = "127.0.0.1"

# HTTP/2 streams a connection may have open beyond its stream cap. grpc core
# refuses more (REFUSED_STREAM, no Python involved; a grpc client queues them
# until one ends), so a client that opens thousands of streams gets at most
# this many rejections in flight at once, however fast it asks.
_REJECT_HEADROOM = 8

#: Open files the server asks for at most when it raises its soft limit.
OPEN_FILE_TARGET = 65_536


@dataclass(frozen=True)
class Limits:
    """What a client may hold and how long it may wait; every time in seconds."""

    #: Open streams (BookSummary and dragonfly.v1 Subscribe), all connections together.
    max_streams: int = 256
    #: Open streams on one connection (one HTTP/2 connection, one client socket).
    #: grpc clients share one connection between the channels of a process that
    #: dial the same target with the same options (its subchannel pool), so one
    #: trading process with many streams is one connection: 128, as nginx's
    #: HTTP/2 default, holds such a process, and bounds what one socket can take.
    max_streams_per_connection: int = 128
    #: End a stream whose write has waited this long for the client to read.
    write_timeout: float = 10.0
    #: Close a connection that has not completed TLS and HTTP/2 setup within this.
    handshake_timeout: float = 5.0
    #: Close a connection that has had no open stream for this long.
    idle_timeout: float = 60.0
    #: Ping a connection after this long without hearing from it, and close it if the
    #: ping is not answered within ``keepalive_timeout``: finds peers that
    #: vanished without closing (host down, cable out, NAT state lost).
    keepalive_time: float = 30.0
    keepalive_timeout: float = 10.0

    def __post_init__(self) -> None:
        """Refuse caps below 1 and times that are not positive."""
        for name in ("max_streams", "max_streams_per_connection"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        times = ("write_timeout", "handshake_timeout", "idle_timeout", "keepalive_time", "keepalive_timeout")
        for name in times:
            if not getattr(self, name) > 0:  # also refuses nan
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")

    def server_options(self) -> tuple[tuple[str, Any], ...]:
        """Return the grpc server options that enforce these limits at the transport."""
        return (
            # grpc sets SO_REUSEPORT by default on Linux: a second server would then
            # bind the same port and silently share the clients. Fail instead.
            ("grpc.so_reuseport", 0),
            ("grpc.max_concurrent_streams", self.max_streams_per_connection + _REJECT_HEADROOM),
            # A socket that never completes TLS and the HTTP/2 preface holds a
            # file descriptor for grpc's default 120 s: bound it.
            ("grpc.server_handshake_timeout_ms", _ms(self.handshake_timeout)),
            ("grpc.max_connection_idle_ms", _ms(self.idle_timeout)),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout)),
            # grpc 1.85 gives up on an unanswered keepalive ping after this
            # (default one minute), whatever keepalive_timeout_ms says: without
            # it a vanished peer holds its connection for keepalive_time + 60 s.
            ("grpc.http2.ping_timeout_ms", _ms(self.keepalive_timeout)),
            # Let clients keep quiet streams alive with pings every >= 10 s
            # (dragonfly.client pings every 30 s); grpc's default is 5 minutes.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        )


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class TlsKeyPair(NamedTuple):
    """A server certificate chain and its private key, PEM."""

    cert_chain: bytes
    private_key: bytes

    @property
    def fingerprint(self) -> str:
        """Return the SHA-256 of the leaf certificate, hex, as ``openssl x509 -fingerprint`` shows it."""
        leaf = self.cert_chain.decode("ascii", "replace")
        begin = leaf.find("-----BEGIN CERTIFICATE-----")
        end = leaf.find("-----END CERTIFICATE-----", begin)
        der = ssl.PEM_cert_to_DER_cert(leaf[begin : end + len("-----END CERTIFICATE-----")])
        return hashlib.sha256(der).hexdigest().upper()


def load_tls_key_pair(cert_path: str, key_path: str) -> TlsKeyPair:
    """Read a PEM certificate chain and its key; raise ServeError unless they load and match."""
    pair = _read_pair(cert_path, key_path)
    if b"-----BEGIN CERTIFICATE-----" not in pair.cert_chain:
        raise ServeError(f"{cert_path} holds no PEM certificate")
    if b"PRIVATE KEY-----" not in pair.private_key:
        raise ServeError(f"{key_path} holds no PEM private key")
    # grpc checks the pair only at the first handshake, and then fails every
    # handshake: let OpenSSL check it now, with a reason fit to report.
    checker = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        checker.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:  # before OSError: it is one
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = "the key does not match the certificate"
        else:
            reason = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))
        raise ServeError(f"cannot use TLS certificate {cert_path} with key {key_path}: {reason}") from None
    except OSError as exc:
        raise ServeError(f"cannot read {exc.filename or cert_path}: {exc.strerror}") from None
    if _read_pair(cert_path, key_path) != pair:  # replaced meanwhile: what was checked is not what we hold
        raise ServeError(f"{cert_path} or {key_path} changed while being loaded; try again")
    return pair


def _read_pair(cert_path: str, key_path: str) -> TlsKeyPair:
    try:
        return TlsKeyPair(Path(cert_path).read_bytes(), Path(key_path).read_bytes())
    except OSError as exc:
        raise ServeError(f"cannot read {exc.filename}: {exc.strerror}") from None


def check_token(token: str, source: str) -> str:
    """Return ``token`` without surrounding whitespace; raise ServeError if it cannot be a bearer token.

    It travels as ``authorization: Bearer <token>`` metadata, an HTTP/2
    header: visible ASCII only, no spaces.
    """
    token = token.strip()
    if not token:
        raise ServeError(f"the token in {source} is empty")
    if not all("!" <= char <= "~" for char in token):
        raise ServeError(f"the token in {source} must be printable ASCII without spaces")
    return token


def read_token_file(path: str) -> str:
    """Return the token in the file at ``path`` (surrounding whitespace ignored); raise ServeError."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except OSError as exc:
        raise ServeError(f"cannot read token file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ServeError(f"the token in {path} must be printable ASCII without spaces") from None
    return check_token(text, path)


def is_loopback(host: str) -> bool:
    """Return whether every address ``host`` listens on is a loopback address.

    The wildcards (``0.0.0.0``, ``::``, empty) and names that resolve to any
    other address are not loopback; neither is a name that does not resolve.
    """
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).partition("%")[0]).is_loopback for info in infos
    )


def raise_open_file_limit(target: int = OPEN_FILE_TARGET) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards the hard limit, to ``target`` at most; return (old, new).

    Every connection holds a file descriptor, and the common default soft
    limit (1024, or less in containers) is far below what the hard limit
    allows. At the soft limit grpc cannot accept: new subscribers wait until
    some connection closes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, wanted, exc)
            return soft, soft
        return soft, wanted
    return soft, soft


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


class Wakeup:
    """Wake the one task that waits for any of several subscriptions to get an item.

    A stream of several subscriptions (a dragonfly.v1 subscription to several
    instruments) waits on one of these; whoever publishes to any of them calls
    :meth:`wake` after publishing. No task per subscription, and nothing per
    publish while the stream is busy writing (no future is pending then).
    """

    __slots__ = ("_future",)

    def __init__(self) -> None:
        """Make a wake-up nobody waits on yet."""
        self._future: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """Wake the waiting task, if any."""
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        """Wait for the next :meth:`wake` (check the subscriptions first: a past wake is not kept)."""
        future = self._future = asyncio.get_running_loop().create_future()
        try:
            await future
        finally:
            if self._future is future:
                self._future = None


class _Merged:
    """The items of several subscriptions as one stream: round robin, so a busy one starves none."""

    __slots__ = ("_next", "_subscriptions", "_wakeup")

    def __init__(self, subscriptions: tuple[Subscription[bytes], ...], wakeup: Wakeup) -> None:
        self._subscriptions = subscriptions
        self._wakeup = wakeup
        self._next = 0

    async def get(self) -> bytes | None:
        """Return the next item of the next subscription holding one; None once one closed and all drained."""
        subscriptions = self._subscriptions
        count = len(subscriptions)
        while True:
            start = self._next
            for offset in range(count):
                index = (start + offset) % count
                payload = subscriptions[index].get_nowait()
                if payload is not None:
                    self._next = index + 1
                    return payload
            # All empty, and no await since the check: nothing can be published in between.
            if any(subscription.closed for subscription in subscriptions):
                return None
            await self._wakeup.wait()


class _Stream:
    """One open stream (either API): what the write watchdog needs to end it."""

    __slots__ = ("context", "peer", "stalled", "subscriptions", "wakeup", "writing_since")

    def __init__(
        self,
        subscriptions: tuple[Subscription[bytes], ...],
        wakeup: Wakeup | None,
        peer: str,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        self.subscriptions = subscriptions
        self.wakeup = wakeup
        self.peer = peer
        self.context = context
        #: Event-loop time the pending write started, 0.0 while none is pending.
        self.writing_since = 0.0
        self.stalled = False

    def close(self) -> None:
        """Release the subscriptions; the stream's next read returns None."""
        for subscription in self.subscriptions:
            subscription.close()
        if self.wakeup is not None:
            self.wakeup.wake()


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

    With ``tls`` it serves TLS only; with ``token`` every call must carry
    ``authorization: Bearer <token>``. ``limits`` caps streams and bounds
    waits (see :class:`Limits`).

    With ``catalog`` it also serves ``dragonfly.v1.MarketData`` over that
    topology (:class:`~dragonfly.serve.v1.MarketData`, see :attr:`v1`), with
    the same queue, lag, stamping, token and limits.
    """

    def __init__(
        self,
        fanout: FanOut[bytes],
        host: str = DEFAULT_HOST,
        port: int = 50051,
        *,
        queue_len: int = 1,
        max_lag_ns: int | None = None,
        stamp_send_ns: bool = False,
        tls: TlsKeyPair | None = None,
        token: str | None = None,
        limits: Limits | None = None,
        catalog: Catalog | None = None,
        probes: Probes | None = None,
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
        self._limits = limits or Limits()
        self._server: grpc.aio.Server | None = None
        # Open streams (an insertion-ordered set), and how many each connection (peer) holds.
        self._streams: dict[_Stream, None] = {}
        self._per_peer: dict[str, int] = {}
        self._stopping = False
        self._tls = tls
        # The key pair grpc has yet to pick up: read, and cleared, by grpc's
        # handshake threads, hence the lock.
        self._tls_pending: TlsKeyPair | None = None
        self._tls_lock = threading.Lock()
        self._token: bytes | None = None
        if token is not None:
            self.set_token(token)
        self._watchdog: asyncio.Task[None] | None = None
        self._aborts: set[asyncio.Task[None]] = set()
        self._v1: MarketData | None = None
        #: Health checking and reflection (dragonfly.serve.probes), when given.
        self.probes = probes
        # Updates delivered and conflated by the streams that ended.
        self._ended = (0, 0)
        if catalog is not None:
            # Imported here: v1 builds on this module, and a server without a
            # catalog needs none of it.
            from dragonfly.serve.v1 import MarketData

            self._v1 = MarketData(catalog, self)

    @property
    def subscribers(self) -> int:
        """The number of open streams, both APIs."""
        return len(self._streams)

    @property
    def queue_len(self) -> int:
        """Updates a stream's subscription holds (per instrument), conflating to the newest."""
        return self._queue_len

    @property
    def max_lag_ns(self) -> int | None:
        """How long a superseded update may wait in a subscription, or None: no bound."""
        return self._max_lag_ns

    @property
    def v1(self) -> MarketData | None:
        """The ``dragonfly.v1`` service, or None when made without a catalog."""
        return self._v1

    @property
    def limits(self) -> Limits:
        """The caps and timeouts this service enforces."""
        return self._limits

    def update_totals(self) -> tuple[int, int]:
        """Updates delivered and conflated away since start, over every stream, ended or open."""
        delivered, dropped = self._ended
        for stats in self.stream_stats():
            delivered += stats.delivered
            dropped += stats.dropped
        return delivered, dropped

    def stream_stats(self) -> list[StreamStats]:
        """Return the counters of every open stream."""
        return [
            StreamStats(
                s.peer,
                sum(sub.delivered for sub in s.subscriptions),
                sum(sub.dropped for sub in s.subscriptions),
            )
            for s in self._streams
        ]

    @property
    def tls(self) -> TlsKeyPair | None:
        """The key pair presented to new connections, or None: plaintext."""
        return self._tls

    def set_token(self, token: str) -> bool:
        """Require ``token`` on every call from now on; return whether it differs from the last one.

        Open streams are not checked again. Raise ServeError for a token that
        cannot travel in a header (see :func:`check_token`).
        """
        new = check_token(token, "the token").encode("ascii")
        changed = new != self._token
        self._token = new
        return changed

    def set_tls(self, pair: TlsKeyPair) -> bool:
        """Present ``pair`` in TLS handshakes from now on; return whether it differs from the last one.

        Open connections keep the certificate they were made with. Raise
        RuntimeError if the service was not made with TLS: a listening socket
        cannot switch from plaintext to TLS.
        """
        if self._tls is None:
            raise RuntimeError("this GrpcService serves plaintext; TLS is chosen when it is made")
        if pair == self._tls:
            return False
        with self._tls_lock:
            self._tls = pair
            self._tls_pending = pair
        return True

    def _fetch_tls(self) -> grpc.ServerCertificateConfiguration | None:
        """Hand grpc the key pair set since its last handshake, or None to keep the current one.

        grpc calls this before every TLS handshake, from its own threads.
        """
        with self._tls_lock:
            pair, self._tls_pending = self._tls_pending, None
        if pair is None:
            return None
        return grpc.ssl_server_certificate_configuration([(pair.private_key, pair.cert_chain)])

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
        server = grpc.aio.server(options=self._limits.server_options())
        handler = grpc.unary_stream_rpc_method_handler(
            self._book_summary,
            # Both None: grpc passes bytes through untouched. The request (an
            # empty message) is never looked at, and responses are already
            # serialized Summaries.
            request_deserializer=None,
            response_serializer=None,
        )
        handlers = [grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler})]
        if self._v1 is not None:
            handlers.append(self._v1.handler())
        server.add_generic_rpc_handlers(handlers)
        if self.probes is not None:
            self.probes.register(server)
        try:
            if self._tls is None:
                port = server.add_insecure_port(address)
            else:
                first = self._tls
                credentials = grpc.dynamic_ssl_server_credentials(
                    grpc.ssl_server_certificate_configuration([(first.private_key, first.cert_chain)]),
                    self._fetch_tls,  # type: ignore[arg-type]  # grpc accepts None: "keep the current one"
                )
                port = server.add_secure_port(address, credentials)
        except RuntimeError:  # lost a race for the port since the probe
            port = 0
        if not port:
            problem = _bind_problem(self._host, self._port) or "bind failed"
            raise ServeError(f"cannot listen on {address}: {problem}")
        await server.start()
        self._server = server
        if self.probes is not None:
            await self.probes.start()
        self._stopping = False
        self._watchdog = asyncio.create_task(self._watch_writes(), name="dragonfly write watchdog")
        bound = _address(self._host, port)
        limits = self._limits
        log.info(
            "serving %s on %s (%s, %s; at most %d streams, %d per connection; write timeout %gs)",
            SERVICE if self._v1 is None else f"{SERVICE} and {self._v1.SERVICE}",
            bound,
            "TLS" if self._tls is not None else "plaintext",
            "bearer token required" if self._token is not None else "no token",
            limits.max_streams,
            limits.max_streams_per_connection,
            limits.write_timeout,
        )
        missing = [what for what, absent in (("TLS", self._tls), ("a token", self._token)) if absent is None]
        if missing and not is_loopback(self._host):
            log.warning(
                "%s is not a loopback address and is served without %s: anyone who can reach it can "
                "subscribe%s (see docs/serving.md)",
                bound,
                " and without ".join(missing),
                ", and read the token on the wire" if self._tls is None and self._token is not None else "",
            )
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
        if self.probes is not None:
            await self.probes.stop()  # NOT_SERVING from now on
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        for stream in tuple(self._streams):
            stream.close()
        await server.stop(grace)
        # Every call is over now, so every pending abort has finished or failed.
        if self._aborts:
            await asyncio.gather(*self._aborts, return_exceptions=True)

    def refuse_call(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[grpc.StatusCode, str] | None:
        """Return why a call may not be served (no or a wrong token: status and details), or None.

        For every call of every API, before anything else (a caller without
        the token learns nothing about what is served).
        """
        expected = self._token
        if expected is not None:
            presented = None
            for key, value in context.invocation_metadata() or ():
                if key == "authorization":
                    presented = value.encode("latin-1") if isinstance(value, str) else value
                    break
            if presented is None:
                return (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "this server requires a bearer token: send 'authorization: Bearer <token>' metadata",
                )
            scheme, _, credential = presented.partition(b" ")
            # The compare takes the same time however much of the token matches.
            if not (scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), expected)):
                return grpc.StatusCode.UNAUTHENTICATED, "invalid bearer token"
        return None

    def refuse_stream(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[grpc.StatusCode, str] | None:
        """Return why a new call may not stream (status and details), or None if it may.

        The token (:meth:`refuse_call`), then the caps on streams. Cheap and
        synchronous: a client that hammers the caps costs one dictionary
        look-up and one status per call. Nothing is held for the caller until
        :meth:`stream` starts, so call that with no await in between.
        """
        refusal = self.refuse_call(context)
        if refusal is not None:
            return refusal
        peer = context.peer()
        limits = self._limits
        if len(self._streams) >= limits.max_streams:
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {limits.max_streams} streams; try again later",
            )
        if self._per_peer.get(peer, 0) >= limits.max_streams_per_connection:
            return (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this connection already has {limits.max_streams_per_connection} streams open, "
                "the server's limit per connection",
            )
        return None

    async def _book_summary(self, _request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        """Write every update of a new subscription to the stream, as it comes."""
        refusal = self.refuse_stream(context)
        if refusal is not None:
            # Ends the call with this status and raises AbortError, which grpc
            # expects and handles quietly. Nothing was subscribed.
            await context.abort(*refusal)
        await self.stream(context, (self._fanout.subscribe(self._queue_len, self._max_lag_ns),))

    async def stream(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        subscriptions: Sequence[Subscription[bytes]],
        wakeup: Wakeup | None = None,
    ) -> None:
        """Write every item of ``subscriptions`` (encoded messages) to the call's stream, as it comes.

        Counts under the caps, stamps ``send_ns`` if asked, is watched by the
        write watchdog, and closes the subscriptions when it ends (the client
        went away, the watchdog ended it, a subscription closed, stop()).
        Several subscriptions are read round robin, and need ``wakeup``,
        woken by whoever publishes to any of them. Check :meth:`refuse_stream` first.
        """
        subs = tuple(subscriptions)
        get: Callable[[], Awaitable[bytes | None]]
        if len(subs) == 1:
            get, wakeup = subs[0].get, None
        elif wakeup is not None and subs:
            get = _Merged(subs, wakeup).get
        else:
            raise ValueError("a stream needs a subscription, and several need a Wakeup")
        # The client's address and port: one per connection.
        peer = context.peer()
        stream = _Stream(subs, wakeup, peer, context)
        if self._stopping:
            stream.close()
        self._streams[stream] = None
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        log.debug("stream opened by %s", peer)
        stamp = self._stamp_send_ns
        loop_time = asyncio.get_running_loop().time
        try:
            # Headers now, not with the first update: a client can tell that
            # the stream is up even while the market is quiet.
            await context.send_initial_metadata(())
            while (payload := await get()) is not None:
                if stamp:
                    payload = append_send_ns(payload, time.time_ns())
                # Returns once grpc took the message; with a client that does
                # not read, that waits for flow control, and meanwhile the
                # subscription conflates (and the watchdog keeps the time).
                stream.writing_since = loop_time()
                await context.write(payload)
                stream.writing_since = 0.0
        except asyncio.CancelledError:
            log.debug("stream of %s cancelled", peer)
            raise
        except grpc.aio.AbortError:
            raise  # the watchdog ended the stream; grpc expects its AbortError back
        except grpc.aio.BaseError as exc:
            # A write failed because the call is over: the client went away
            # (closed, cancelled, lost its connection) or the server stops.
            # grpc logs any other exception at ERROR with a traceback (and
            # this one too unless it saw the cancellation first, a race):
            # end the call as cancelled, which it logs at debug only.
            log.debug("stream of %s ended by grpc: %s", peer, type(exc).__name__)
            raise asyncio.CancelledError from None
        finally:
            stream.close()
            if stream in self._streams:
                del self._streams[stream]
                left = self._per_peer.pop(peer) - 1
                if left:
                    self._per_peer[peer] = left
            delivered = sum(sub.delivered for sub in subs)
            dropped = sum(sub.dropped for sub in subs)
            self._ended = (self._ended[0] + delivered, self._ended[1] + dropped)
            log.debug("stream of %s ended: %d delivered, %d conflated", peer, delivered, dropped)

    async def _watch_writes(self) -> None:
        """End every stream whose pending write has waited ``write_timeout`` for its client.

        One timer for all streams, checked a few times per timeout, instead
        of a timer per write on the hot path: a stream ends between the
        timeout and a quarter (at most a second) more.
        """
        timeout = self._limits.write_timeout
        tick = min(timeout / 4, 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for stream in tuple(self._streams):
                since = stream.writing_since
                if since and not stream.stalled and now - since >= timeout:
                    self._end_stalled(stream, timeout)

    def _end_stalled(self, stream: _Stream, timeout: float) -> None:
        """Release a stalled stream's subscription and end its call with DEADLINE_EXCEEDED.

        grpc.aio (1.85) cannot reset one stream from the server: its status
        goes out behind the bytes the client has not read, so the client
        sees it once it reads again, and the call (and its place under the
        caps) ends then, or when the connection goes (keepalive finds a
        vanished peer). The subscription is released at once.
        """
        stream.stalled = True
        stream.close()
        # Debug, like every per-stream event: a client must not be able to flood the log.
        log.debug("ending the stream of %s: client not reading for %gs", stream.peer, timeout)
        details = f"client not reading for {timeout:g} s"
        task = asyncio.create_task(self._abort(stream.context, grpc.StatusCode.DEADLINE_EXCEEDED, details))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)

    @staticmethod
    async def _abort(
        context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, details: str
    ) -> None:
        """Send ``code`` from outside the stream's handler; quiet if the call ended meanwhile."""
        with contextlib.suppress(grpc.aio.BaseError):  # AbortError, or a failed batch: the call is over
            await context.abort(code, details)
