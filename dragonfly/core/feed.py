"""Layer 2: subscribe one venue connection to its symbols and keep it subscribed.

A :class:`Feed` owns a :class:`~dragonfly.core.ws.WsConnection` (layer 1)
and the listener (layer 3) of its channel: a
:class:`~dragonfly.core.listener.TopNListener` for a snapshot channel (one
symbol), a :class:`~dragonfly.core.diff.DiffListener` for a diff channel (one
or more symbols, which it resynchronises through the feed). On every
(re)connect it sends the venue's subscribe frames, waits for the ack, sends
application heartbeats if the venue wants them, and reads control frames
(acks, rejections, reconnect requests). Book frames go straight to the
listener. It knows no venue by name: everything venue-specific comes from
the :class:`~dragonfly.core.venue.VenueSpec`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from dragonfly.core.backoff import Backoff
from dragonfly.core.diff import DiffChannel, DiffListener, SyncState
from dragonfly.core.errors import HttpError, ParseError
from dragonfly.core.http import HttpResponse, http_get
from dragonfly.core.listener import TopNListener
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotProducer
from dragonfly.core.types import VenueBook
from dragonfly.core.venue import ControlKind, VenueSpec
from dragonfly.core.ws import WsConnection


class FeedState(enum.Enum):
    """Where a feed is in its life."""

    STARTING = "starting"
    CONNECTING = "connecting"
    SUBSCRIBING = "subscribing"
    LIVE = "live"
    REJECTED = "rejected"
    STOPPED = "stopped"


@dataclass
class FeedStats:
    """Counters of one feed (the listener keeps the per-frame ones)."""

    connects: int = 0
    disconnects: int = 0
    connect_failures: int = 0
    control_frames: int = 0
    venue_errors: int = 0
    snapshots: int = 0


class FeedTap(Protocol):
    """Observer of a feed's raw traffic, e.g. a recorder (not on the hot path unless set)."""

    def opened(self, url: str) -> None:
        """A connection to ``url`` is up."""

    def sent(self, url: str, payload: bytes) -> None:
        """The client sent ``payload``."""

    def received(self, payload: bytes, recv_ns: int) -> None:
        """The client received ``payload``."""

    def rest(self, url: str, body: bytes) -> None:
        """A REST request to ``url`` answered 200 with ``body``."""


#: Seconds after the subscription ack before a diff symbol that has had no delta
#: gets its REST snapshot anyway (others ask on their first delta).
QUIET_SNAPSHOT_DELAY = 0.2


def rest_base_for(ws_url: str) -> str:
    """The REST base a simulator or proxy serves beside ``ws_url`` (same host:port)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


class Feed:
    """Keep one connection to ``spec`` subscribed to the symbols of ``outputs``.

    ``outputs`` maps each venue symbol to the slot its top ``depth`` levels are
    published to (``None``: keep the book unpublished, diff channel only).
    :attr:`outcome` resolves once: to ``None`` when the venue first accepts
    the subscription, or to a one-line reason when it rejects the instrument.
    Connection failures do not resolve it; they are retried with backoff and
    reported through the log and :attr:`last_error`.
    """

    def __init__(
        self,
        spec: VenueSpec,
        outputs: Mapping[str, SlotProducer[VenueBook] | None],
        *,
        depth: int = 10,
        channel: str | None = None,
        instrument: str | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        tap: FeedTap | None = None,
        book_depth: int | None = None,
    ) -> None:
        if not outputs:
            raise ValueError("a feed needs at least one symbol")
        self.spec = spec
        self.kind = spec.channel(channel)
        self.symbols = list(outputs)
        self.symbol = self.symbols[0]
        self.instrument = instrument or self.symbol
        self.listener: TopNListener | DiffListener
        #: The diff channel in use (``spec.diff``, or its variant at ``book_depth``).
        self.diff: DiffChannel
        if self.kind == "snapshot":
            assert spec.snapshot is not None
            if len(outputs) != 1:
                raise ValueError("a snapshot-channel feed carries exactly one symbol")
            out = outputs[self.symbol]
            if out is None:
                raise ValueError("a snapshot-channel feed needs an output slot")
            snap = spec.snapshot
            self.listener = TopNListener(spec.name, snap.make_decoder(depth), out, snap.is_book)
        else:
            assert spec.diff is not None
            self.diff = spec.diff
            if book_depth is not None:
                if spec.diff.at_depth is None:
                    raise ValueError(f"{spec.name}'s diff channel has one depth only")
                self.diff = spec.diff.at_depth(book_depth)
            self.listener = DiffListener(spec.name, self.diff, outputs, depth, self)
        self.ws_url = ws_url or spec.ws_url
        if rest_url is None:
            rest_url = rest_base_for(ws_url) if ws_url else spec.rest_url
        self.rest_url = rest_url
        self.ssl_context = ssl_context
        self.state = FeedState.STARTING
        self.stats = FeedStats()
        self.last_error = ""
        self.outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.conn = WsConnection(
            self.ws_url,
            self,
            ssl_context=ssl_context,
            backoff=backoff,
            connect_timeout=connect_timeout,
        )
        self._log = logging.getLogger(f"dragonfly.venue.{spec.name}")
        self._fail_log = RateLimitedLog(self._log, interval=30.0)
        self._on_book = self.listener.on_frame
        self._timers: list[asyncio.TimerHandle] = []
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self._snapshot_backoff: dict[str, Backoff] = {}
        self._stopped = False
        #: Observer of the raw traffic (a recorder), or ``None``.
        self.tap = tap

    @property
    def snapshot_pending(self) -> bool:
        """Whether a REST snapshot request is in flight."""
        return any(not task.done() for task in self._snapshot_tasks.values())

    @property
    def name(self) -> str:
        """The venue name."""
        return self.spec.name

    async def run(self) -> None:
        """Check the symbol where the venue needs it, then stay connected until stopped."""
        if self.spec.symbol_check is not None and not await self._symbol_listed():
            return
        self.state = FeedState.CONNECTING
        await self.conn.run()
        self.state = FeedState.STOPPED

    def stop(self) -> None:
        """Disconnect and stop reconnecting; the venue leaves the merge."""
        self._stopped = True
        self._cancel_timers()
        self.conn.close()
        for task in self._snapshot_tasks.values():
            task.cancel()
        self.listener.withdraw()
        if not self.outcome.done():
            self.outcome.set_result("stopped before the venue answered")

    # -- FrameHandler ------------------------------------------------------

    def on_open(self, conn: WsConnection) -> None:
        self.stats.connects += 1
        if self.tap is not None:
            self.tap.opened(self.ws_url)
        self.state = FeedState.SUBSCRIBING
        self._log.info(
            "%s: connected to %s, subscribing to %s (%s channel)",
            self.name,
            self.ws_url,
            ", ".join(self.symbols),
            self.kind,
        )
        for frame in self._subscribe_frames(self.symbols):
            self._send(frame)
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.spec.subscribe_timeout, self._ack_timeout))
        if self.spec.heartbeat is not None:
            self._timers.append(loop.call_later(self.spec.heartbeat_interval, self._heartbeat))

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        if self.tap is not None:
            self.tap.received(payload, recv_ns)
        if self._on_book(payload, recv_ns, last_in_buffer):
            if self.state is not FeedState.LIVE:
                self._subscribed()  # data before the ack counts as one
            return
        self._on_control(payload)
        if last_in_buffer:
            self.listener.end_burst()

    def on_close(self, reason: str) -> None:
        self._cancel_timers()
        self.stats.disconnects += 1
        self.listener.withdraw()
        if self._stopped or self.state is FeedState.REJECTED:
            return
        self.state = FeedState.CONNECTING
        self.last_error = reason
        self._log.warning("%s: disconnected (%s); reconnecting", self.name, reason)

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        self.stats.connect_failures += 1
        self.last_error = f"cannot connect to {self.ws_url}: {reason}"
        self._fail_log.warning("%s: %s; retrying in %.1fs", self.name, self.last_error, retry_in)

    # -- control path ------------------------------------------------------

    def _on_control(self, payload: bytes) -> None:
        self.stats.control_frames += 1
        ctl = self.spec.control(payload)
        kind = ctl.kind
        if kind is ControlKind.SUBSCRIBED:
            self._subscribed()
        elif kind is ControlKind.REJECTED:
            if ctl.symbol is not None and len(self.symbols) > 1 and ctl.symbol in self.symbols:
                self._log.error("%s rejected %s: %s", self.name, ctl.symbol, ctl.detail)
                self.symbols.remove(ctl.symbol)
                if isinstance(self.listener, DiffListener):
                    self.listener.drop_symbol(ctl.symbol)
            else:
                self._reject(ctl.detail)
        elif kind is ControlKind.RECONNECT:
            self._log.info("%s: venue asked to reconnect", self.name)
            self.conn.drop("venue requested reconnect")
        elif kind is ControlKind.ERROR:
            self.stats.venue_errors += 1
            self._fail_log.warning("%s: venue error: %s", self.name, ctl.detail)

    def _subscribed(self) -> None:
        if self.state is FeedState.LIVE:
            return
        if isinstance(self.listener, DiffListener):
            # Symbols whose first delta is slow to come still get their snapshot.
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(QUIET_SNAPSHOT_DELAY, self.listener.request_quiet))
        self.state = FeedState.LIVE
        self.conn.backoff.reset()
        self._log.info("%s: subscribed to %s", self.name, self.symbol)
        if not self.outcome.done():
            self.outcome.set_result(None)

    def _reject(self, detail: str) -> None:
        reason = f"{self.name} rejected instrument {self.instrument!r} ({', '.join(self.symbols)}): {detail}"
        self.state = FeedState.REJECTED
        self.last_error = reason
        self._log.error("%s", reason)
        if not self.outcome.done():
            self.outcome.set_result(reason)
        self.stop()
        self.state = FeedState.REJECTED

    def _ack_timeout(self) -> None:
        if self.state is FeedState.SUBSCRIBING:
            self._fail_log.warning(
                "%s: no subscription ack for %s within %gs; reconnecting",
                self.name,
                self.symbol,
                self.spec.subscribe_timeout,
            )
            self.conn.drop("subscription ack timed out")

    def _heartbeat(self) -> None:
        heartbeat = self.spec.heartbeat
        if heartbeat is None or self._stopped:
            return
        self._send(heartbeat)
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(loop.call_later(self.spec.heartbeat_interval, self._heartbeat))

    def _send(self, frame: bytes) -> None:
        self.conn.send(frame)
        if self.tap is not None:
            self.tap.sent(self.ws_url, frame)

    async def _http_get(self, url: str) -> HttpResponse:
        resp = await http_get(url, ssl_context=self.ssl_context)
        if self.tap is not None and resp.status == 200:
            self.tap.rest(url, resp.body)
        return resp

    def _subscribe_frames(self, symbols: Sequence[str]) -> Sequence[bytes]:
        if self.kind == "snapshot":
            assert self.spec.snapshot is not None
            return self.spec.snapshot.subscribe(symbols[0])
        return self.diff.subscribe(symbols)

    # -- FeedControl (resynchronisation of diff books) -----------------------

    def resubscribe(self, symbol: str) -> None:
        """Unsubscribe and subscribe ``symbol`` again, for a fresh in-band snapshot."""
        for frame in (*self.diff.unsubscribe([symbol]), *self.diff.subscribe([symbol])):
            self._send(frame)

    def request_snapshot(self, symbol: str) -> None:
        """Fetch ``symbol``'s REST snapshot in the background (one at a time, backed off)."""
        task = self._snapshot_tasks.get(symbol)
        if (task is not None and not task.done()) or self._stopped:
            return
        self._snapshot_tasks[symbol] = asyncio.get_running_loop().create_task(self._fetch_snapshot(symbol))

    async def _fetch_snapshot(self, symbol: str) -> None:
        diff = self.diff
        assert diff.rest_snapshot is not None and diff.parse_rest_snapshot is not None
        assert isinstance(self.listener, DiffListener)
        # The first request goes at once; after a failure, or a snapshot that
        # did not yield a synced book, requests back off (REST rate limits).
        backoff = self._snapshot_backoff.get(symbol)
        if backoff is not None:
            await asyncio.sleep(backoff.next_delay())
        url = (self.rest_url or "").rstrip("/") + diff.rest_snapshot.format(symbol=symbol)
        try:
            resp = await self._http_get(url)
            if resp.status != 200:
                raise HttpError(f"GET {url}: HTTP {resp.status} {resp.body[:200]!r}")
            snapshot = diff.parse_rest_snapshot(symbol, resp.body)
        except (HttpError, ParseError) as exc:
            self._fail_log.warning("%s: snapshot of %s failed: %s", self.name, symbol, exc)
            self._snapshot_backoff.setdefault(symbol, Backoff(base=0.2, cap=10.0))
            self.listener.snapshot_failed(symbol)
            return
        self.stats.snapshots += 1
        self.listener.on_snapshot(snapshot)
        sync = self.listener.syms.get(symbol)
        if sync is not None and sync.state is SyncState.SYNCED:
            self._snapshot_backoff.pop(symbol, None)
        else:
            self._snapshot_backoff.setdefault(symbol, Backoff(base=0.2, cap=10.0))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def _symbol_listed(self) -> bool:
        check = self.spec.symbol_check
        assert check is not None
        if not self.rest_url:
            return True
        url = self.rest_url.rstrip("/") + check.path.format(symbol=self.symbol)
        try:
            resp = await self._http_get(url)
        except HttpError as exc:
            self._log.warning(
                "%s: cannot verify symbol %s (%s); subscribing anyway", self.name, self.symbol, exc
            )
            return True
        reason = check.rejects(resp.status, resp.body)
        if reason is not None:
            self._reject(reason)
            return False
        if resp.status != 200:
            self._log.warning(
                "%s: symbol check %s answered HTTP %d; subscribing anyway: %.200s",
                self.name,
                url,
                resp.status,
                resp.body.decode("utf-8", "replace"),
            )
        return True

