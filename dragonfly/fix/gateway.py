"""The FIX 4.4 market-data gateway: one more service over a topology's views.

A :class:`FixGateway` listens for FIX clients (acceptor sessions of
:mod:`dragonfly.fix.session`) and serves MarketDataRequests (V) from a
:class:`~dragonfly.topology.source.Catalog`, exactly as the gRPC service
does: it never touches feeds, listeners or aggregators.

Encode once, patch per session. A subscription names (instrument, view kind,
depth, entry types); per such key there is one :class:`MdFeed`, which attaches
ONE sink to the view source and encodes each view it publishes once into the
shared part of a W (:mod:`dragonfly.fix.mdcodec`) with its byte sum. Each
session then writes only its header (49, 56, 34, 52), its MDReqID and Symbol,
and the CheckSum, summing only those few bytes (``FixSession.send_body``). The
last reader of a feed detaches its sink (and the aggregator may detach from
its venues).

Slow consumers: each (subscription, instrument) of a session is one
conflating slot that holds at most the newest unsent W part. A W is written
at once while the session's transport is below its write-buffer high-water
mark; otherwise the slot keeps only the newest (the one it replaces is
counted in ``conflated``) and is drained when the transport asks for more
(``resume_writing``). So a session that cannot keep up gets the newest book
of each instrument, never a backlog, and never delays the event loop or
another session; a peer that stops reading altogether is cut off by the
session's write limit.

Requests (docs/fix.md): SubscriptionRequestType 0 answers one W per
instrument made from the venues' current books; 1 answers the newest view
at once (when there is one) and every later one; 2 ends the subscription of
that MDReqID. A request is checked whole before anything is attached; a
refusal is a MarketDataRequestReject (Y) with MDReqRejReason and Text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from dragonfly.core.errors import ConfigError, NotFoundError
from dragonfly.fix.codec import FixMessage, field
from dragonfly.fix.mdcodec import (
    REJ_BANDWIDTH,
    REJ_DUPLICATE_ID,
    REJ_MARKET_DEPTH,
    REJ_UNKNOWN_SYMBOL,
    Encoder,
    MdRejectError,
    MdRequest,
    MdUpdate,
    encoder_for,
    parse_request,
)
from dragonfly.fix.session import FixSession, SessionConfig
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import is_loopback
from dragonfly.topology.source import Catalog, ViewSource

__all__ = ["DEFAULT_COMP_ID", "DEFAULT_FIX_PORT", "FixGateway", "FixGatewayConfig", "MdFeed"]

log = logging.getLogger(__name__)

DEFAULT_COMP_ID: Final = "DRAGONFLY"
DEFAULT_FIX_PORT: Final = 9878


@dataclass(frozen=True)
class FixGatewayConfig:
    """One FIX service: where it listens, who may log on, what it exposes.

    ``accept_comp_ids`` empty: any client CompID. ``username``/``password``:
    required in Logon when set. ``inputs``: the aggregators exposed (empty:
    all), as a gRPC service's. ``max_sessions``: sessions logged on at once;
    ``max_subscriptions``: MDReqIDs open per session.
    """

    name: str = "fix"
    host: str = "127.0.0.1"
    port: int = DEFAULT_FIX_PORT
    comp_id: str = DEFAULT_COMP_ID
    accept_comp_ids: tuple[str, ...] = ()
    heartbeat_min: int = 1
    heartbeat_max: int = 300
    username: str | None = None
    password: str | None = None
    inputs: tuple[str, ...] = ()
    max_sessions: int = 256
    max_subscriptions: int = 100
    #: Snapshots (263=0) a session may ask for, instruments a second (bursts up to as many).
    snapshot_rate: int = 20

    def session_config(self) -> SessionConfig:
        """The acceptor session settings of this service."""
        return SessionConfig(
            sender_comp_id=self.comp_id,
            accept_comp_ids=frozenset(self.accept_comp_ids),
            heartbeat_min_s=self.heartbeat_min,
            heartbeat_max_s=self.heartbeat_max,
            username=self.username,
            password=self.password,
        )


class _Slot:
    """One (subscription, instrument) of a session: its W prefix and at most one pending update."""

    __slots__ = ("client", "feed", "pending", "prefix", "sent_seq")

    def __init__(self, client: _Client, feed: MdFeed, prefix: bytes) -> None:
        self.client = client
        self.feed = feed
        self.prefix = prefix
        self.pending: MdUpdate | None = None
        self.sent_seq = -1


class MdFeed:
    """One (source, view, depth, entry types): one sink on the source, each view encoded once.

    ``encoded`` counts views encoded, ``suppressed`` those unchanged at this
    depth (not sent), ``latest`` is the newest encoded update.
    """

    __slots__ = ("encode", "encoded", "failed", "key", "latest", "sink", "slots", "source", "suppressed")

    def __init__(self, key: tuple[Any, ...], source: ViewSource, encode: Encoder) -> None:
        self.key = key
        self.source = source
        self.encode = encode
        self.latest: MdUpdate | None = None
        # Copy-on-write: publish iterates a tuple that a session closing meanwhile cannot change.
        self.slots: tuple[_Slot, ...] = ()
        self.encoded = 0
        self.suppressed = 0
        #: Views that could not be encoded (logged once).
        self.failed = 0
        self.sink: Callable[[Any], None] = self.publish

    def publish(self, view: Any) -> None:
        """Encode ``view`` once and offer it to every slot (the source's sink: synchronous)."""
        self.encoded += 1
        try:
            update = self.encode(view)
        except ValueError as exc:  # a figure with no FIX form (NaN): never raise into the aggregator
            self.failed += 1
            if self.failed == 1:
                log.error(
                    "FIX feed %s %s: view %s not encoded: %s",
                    self.source.instrument,
                    self.key[1],
                    getattr(view, "sequence", "?"),
                    exc,
                )
            return
        if update is None:
            self.suppressed += 1
            return
        self.latest = update
        for slot in self.slots:
            slot.client.offer(slot, update)


class _Client:
    """The SessionHandler of one client session: its subscriptions and their slots."""

    __slots__ = ("dirty", "gateway", "session", "snapshot_at", "snapshot_tokens", "subscriptions")

    def __init__(self, gateway: FixGateway) -> None:
        self.gateway = gateway
        #: Snapshot budget (a token bucket of instruments): each is a view made now, not shared.
        self.snapshot_tokens = float(gateway.config.snapshot_rate)
        self.snapshot_at = 0.0
        self.session: FixSession | None = None
        #: MDReqID -> that subscription's slots (one per instrument).
        self.subscriptions: dict[str, list[_Slot]] = {}
        #: Slots holding an unsent update, in the order they became pending.
        self.dirty: dict[_Slot, None] = {}

    # -- SessionHandler

    def on_logon(self, session: FixSession) -> None:
        self.session = session
        self.gateway._logged_on(self)

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type != b"V":
            session.reject(
                msg.seq_num,
                11,
                f"MsgType {msg.msg_type.decode('ascii', 'replace')} is not served here: "
                "send MarketDataRequest (V)",
                35,
                msg.msg_type,
            )
            return
        try:
            request = parse_request(msg)
        except MdRejectError as exc:
            self._refuse(msg.get_str(262) or "", exc)
            return
        try:
            self.gateway._serve(self, request)
        except MdRejectError as exc:
            self._refuse(request.md_req_id, exc)

    def on_writable(self, session: FixSession) -> None:
        self.drain()

    def on_close(self, session: FixSession, reason: str) -> None:
        self.gateway._closed(self)

    # -- market data

    def _refuse(self, md_req_id: str, exc: MdRejectError) -> None:
        session = self.session
        if session is None:
            return
        fields: list[tuple[int, str]] = [(262, md_req_id)]
        if exc.reason is not None:
            fields.append((281, exc.reason))
        # Text may quote what the client sent: ASCII only, no SOH, bounded.
        fields.append((58, exc.text.encode("ascii", "replace").decode().replace("\x01", " ")[:200]))
        self.gateway.rejected += 1
        session.send(b"Y", fields)

    def offer(self, slot: _Slot, update: MdUpdate) -> None:
        """Write ``update`` now if the transport takes it, else keep it as the slot's newest."""
        session = self.session
        if session is None:
            return
        if session.writable and not self.dirty:
            self._write(session, slot, update)
            return
        if slot.pending is not None:
            self.gateway.conflated += 1
        slot.pending = update
        self.dirty[slot] = None
        if session.writable:
            self.drain()

    def _write(self, session: FixSession, slot: _Slot, update: MdUpdate) -> None:
        session.send_body(b"W", slot.prefix, update.tail, update.tail_sum)
        slot.sent_seq = update.sequence
        self.gateway.sent += 1

    def drain(self) -> None:
        """Write pending updates, oldest pending first, while the transport takes them."""
        session = self.session
        if session is None:
            return
        dirty = self.dirty
        while dirty and session.writable and not session.closed:
            slot = next(iter(dirty))
            del dirty[slot]
            update = slot.pending
            slot.pending = None
            if update is not None:
                self._write(session, slot, update)


class FixGateway:
    """A FIX 4.4 acceptor serving market data from ``catalog`` (module doc).

    Counters: ``sessions`` (logged on now), ``sent`` (W written),
    ``conflated`` (W replaced by a newer one before it could be written),
    ``rejected`` (MarketDataRequestRejects).
    """

    def __init__(self, catalog: Catalog, config: FixGatewayConfig | None = None) -> None:
        self.catalog = catalog
        self.config = config or FixGatewayConfig()
        self._session_config = self.config.session_config()
        self._server: asyncio.Server | None = None
        self._clients: dict[_Client, None] = {}
        self._feeds: dict[tuple[Any, ...], MdFeed] = {}
        self.sessions_total = 0
        self.sent = 0
        self.conflated = 0
        self.rejected = 0
        self.port = 0

    @property
    def sessions(self) -> int:
        """Sessions logged on now."""
        return len(self._clients)

    @property
    def feeds(self) -> tuple[MdFeed, ...]:
        """The feeds attached now."""
        return tuple(self._feeds.values())

    @property
    def address(self) -> str:
        """``host:port`` it listens on."""
        return f"{self.config.host}:{self.port}"

    async def start(self) -> int:
        """Listen; return the port (useful with port 0). ``ServeError`` if it cannot be bound."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            self._server = await loop.create_server(self._protocol, cfg.host, cfg.port)
        except OSError as exc:
            raise ServeError(
                f"cannot listen for FIX on {cfg.host}:{cfg.port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FIX gateway %s on %s:%d (CompID %s)", cfg.name, cfg.host, self.port, cfg.comp_id)
        if not is_loopback(cfg.host):
            log.warning(
                "FIX gateway %s listens on %s, beyond loopback: FIX 4.4 has no encryption of its own and "
                "Logon passwords travel in clear; keep it on a trusted network or behind a TLS terminator",
                cfg.name,
                cfg.host,
            )
        return self.port

    async def stop(self) -> None:
        """Log every session out, stop listening, detach every feed."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client in list(self._clients):
            if client.session is not None:
                client.session.logout("gateway shutting down")
        if self._clients:
            deadline = asyncio.get_running_loop().time() + 1.0
            while self._clients and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
        for client in list(self._clients):
            if client.session is not None:
                client.session.close("gateway shutting down")
        for feed in list(self._feeds.values()):
            feed.source.remove_sink(feed.sink)
        self._feeds.clear()
        if server is not None:
            await server.wait_closed()

    def _protocol(self) -> FixSession:
        return FixSession(self._session_config, _Client(self), "acceptor")

    # -- sessions

    def _logged_on(self, client: _Client) -> None:
        session = client.session
        assert session is not None
        if len(self._clients) >= self.config.max_sessions:
            log.warning(
                "FIX %s: refusing %s: %d sessions open",
                self.config.name,
                session.peer_comp_id,
                len(self._clients),
            )
            session.logout(f"gateway full: {self.config.max_sessions} sessions open, try later")
            session.close("gateway full")  # the Logout is flushed first; no answer awaited
            return
        self._clients[client] = None
        self.sessions_total += 1

    def _closed(self, client: _Client) -> None:
        self._clients.pop(client, None)
        for md_req_id in list(client.subscriptions):
            self._unsubscribe(client, md_req_id)
        client.dirty.clear()
        client.session = None

    # -- requests

    def _serve(self, client: _Client, request: MdRequest) -> None:
        session = client.session
        assert session is not None
        if request.subscription == 2:
            if request.md_req_id not in client.subscriptions:
                raise MdRejectError(None, f"no subscription with MDReqID {request.md_req_id!r} to end")
            self._unsubscribe(client, request.md_req_id)
            return
        if request.subscription == 1:
            if request.md_req_id in client.subscriptions:
                raise MdRejectError(REJ_DUPLICATE_ID, f"MDReqID {request.md_req_id!r} is already subscribed")
            if len(client.subscriptions) >= self.config.max_subscriptions:
                raise MdRejectError(
                    None, f"at most {self.config.max_subscriptions} subscriptions a session: end one first"
                )
        targets = [(spelling, self._source(instrument, request)) for spelling, instrument in request.symbols]
        for _, source in targets:
            if request.view == "book" and request.depth > source.depth:
                raise MdRejectError(
                    REJ_MARKET_DEPTH,
                    f"MarketDepth {request.depth} is deeper than the {source.depth} levels a side served for "
                    f"{source.instrument}: ask for 2 to {source.depth}, 1 (top of book) or 0 (all)",
                )
        if request.subscription == 0:
            now = asyncio.get_running_loop().time()
            rate = self.config.snapshot_rate
            client.snapshot_tokens = min(rate, client.snapshot_tokens + (now - client.snapshot_at) * rate)
            client.snapshot_at = now
            if client.snapshot_tokens < len(targets):
                raise MdRejectError(
                    REJ_BANDWIDTH,
                    f"too many snapshots: at most {rate} instruments a second a session; "
                    "subscribe (263=1) to follow a book",
                )
            client.snapshot_tokens -= len(targets)
            for spelling, source in targets:
                encode = encoder_for(request.view, request.depth, 0, request.entry_types)
                update = encode(source.current())
                assert update is not None  # a fresh encoder never suppresses
                prefix = field(262, request.md_req_id) + field(55, spelling)
                session.send_body(b"W", prefix, update.tail, update.tail_sum)
                self.sent += 1
            return
        slots: list[_Slot] = []
        for spelling, source in targets:
            feed = self._acquire(source, request)
            slot = _Slot(client, feed, field(262, request.md_req_id) + field(55, spelling))
            feed.slots = (*feed.slots, slot)
            slots.append(slot)
        client.subscriptions[request.md_req_id] = slots
        for slot in slots:
            if slot.feed.latest is not None:
                client.offer(slot, slot.feed.latest)

    def _source(self, instrument: str, request: MdRequest) -> ViewSource:
        try:
            return self.catalog.source(instrument, request.view)
        except NotFoundError as exc:
            raise MdRejectError(REJ_UNKNOWN_SYMBOL, str(exc)) from None
        except ConfigError as exc:
            reason = REJ_MARKET_DEPTH if request.view == "bbo" else None
            raise MdRejectError(reason, str(exc)) from None

    def _acquire(self, source: ViewSource, request: MdRequest) -> MdFeed:
        # The source's full depth asked by number is the same feed as 0.
        depth = request.depth if request.view == "book" and request.depth < source.depth else 0
        key = (id(source), request.view, depth, request.entry_types)
        feed = self._feeds.get(key)
        if feed is None:
            feed = MdFeed(key, source, encoder_for(request.view, depth, source.depth, request.entry_types))
            self._feeds[key] = feed
            latest = source.latest
            if latest is not None:
                feed.publish(latest)
            source.add_sink(feed.sink)
            log.debug("FIX feed attached: %s %s depth %d", source.instrument, request.view, depth)
        return feed

    def _unsubscribe(self, client: _Client, md_req_id: str) -> None:
        for slot in client.subscriptions.pop(md_req_id, []):
            client.dirty.pop(slot, None)
            feed = slot.feed
            feed.slots = tuple(s for s in feed.slots if s is not slot)
            if not feed.slots:
                del self._feeds[feed.key]
                feed.source.remove_sink(feed.sink)
                log.debug("FIX feed detached: %s", feed.key[1:])
