"""Layer 2: subscribe one venue connection to its symbols and keep it subscribed.

A :class:`Feed` owns a connection (layer 1: a
:class:`~dragonfly.core.ws.WsConnection`, or whatever the spec's
``connection`` makes: :mod:`dragonfly.core.transport`) and the listener (layer 3) of its channel: a
:class:`~dragonfly.core.listener.TopNListener` for a snapshot channel of one
symbol, a :class:`~dragonfly.core.listener.SnapshotRouter` (one TopNListener
per symbol) for a snapshot channel of several, a
:class:`~dragonfly.core.diff.DiffListener` for a diff channel (one or more
symbols, which it resynchronises through the feed). A feed carries at most
the venue's ``Limits.symbols_per_connection`` symbols; a topology makes one
feed per group. On every
(re)connect it sends the venue's subscribe frames, waits for the ack, sends
application heartbeats if the venue wants them, and reads control frames
(acks, rejections, reconnect requests). Book frames go straight to the
listener. It knows no venue by name: everything venue-specific comes from
the :class:`~dragonfly.core.venue.VenueSpec`.

It also keeps the venue within bounds and its books honest:

* a watchdog withdraws a book that nothing proved current within its
  channel's ``stale_after`` (:mod:`dragonfly.core.health`), and venue
  heartbeats prove books current where the channel says they do;
* reconnects back off (full jitter, capped) and the backoff resets only once
  a connection has carried a published book for :data:`HEALTHY_AFTER`
  seconds, never at the ack (a venue that acks and drops was reconnected 156
  times a minute); connection attempts keep to the venue's documented limit;
* resyncs are paced the same way: a REST snapshot or a resubscribe of one
  symbol backs off while it keeps failing, every frame sent keeps to the
  venue's message limit, REST requests to its REST limit, and a
  ``Retry-After`` holds every REST request of the venue off until then;
* a connection on which nothing has proved any book current for twice its
  channel's ``stale_after`` (10 s at least) is wedged, whatever it answers to
  pings: it is ended and made again;
* what can repeat (disconnects, failures) is logged at a bounded rate.

Each symbol is accepted or refused on its own (:attr:`Feed.outcomes`): a
venue refusing one symbol withdraws that book as ``REJECTED`` (its detail the
reason, logged once) and the connection carries on with the others; the
symbol is never subscribed again by this feed. A refusal is pinned on a
symbol by the venue's control parser (``Control.symbol``); one that names
none goes to the only symbol left, or, where the venue answers each
subscribe frame in order (``VenueSpec.answers_in_order``), to the oldest
symbol not answered yet, and otherwise to every symbol not yet accepted on
this connection (the venue refused the request as a whole). An ack that names
no symbol accepts every symbol not answered yet (the oldest only, where the
venue answers in order). Where the venue sends no ack at all
(``VenueSpec.acked_by_book``: FIX market data), a symbol's first book on a
connection is its ack.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from dragonfly.core.backoff import Backoff, RateLimit, RetryPacer
from dragonfly.core.diff import DiffChannel, DiffListener
from dragonfly.core.errors import HttpError, ParseError
from dragonfly.core.health import Health, LivenessKind, VenueStatus
from dragonfly.core.http import HttpResponse, http_get, retry_after
from dragonfly.core.listener import SnapshotRouter, TopNListener
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotProducer
from dragonfly.core.transport import Connection
from dragonfly.core.types import VenueBook, check_depth
from dragonfly.core.venue import ControlKind, Rate, VenueSpec
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
    resubscribes: int = 0
    rest_throttled: int = 0
    rest_failures: int = 0


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
#: Seconds a connection must carry a published book before its reconnect
#: backoff starts again from the base delay. (A symbol's resync pace starts
#: again after a minute without a resync: :class:`~dragonfly.core.backoff.RetryPacer`.)
HEALTHY_AFTER = 30.0
#: Seconds after the ack without any published book before a warning says so.
NO_DATA_WARNING = 10.0
#: How long REST requests hold off after a 429 or 418 that names no Retry-After.
DEFAULT_RETRY_AFTER = 30.0
#: A connection on which nothing has proved any book current for this many
#: times its channel's stale_after (and at least WEDGED_MIN seconds) is ended
#: and made again: its books are stale already, and a stream that stalls
#: while the socket answers pings does not come back by itself.
WEDGED_AFTER = 2.0
WEDGED_MIN = 10.0


def _limit(rate: Rate | None) -> RateLimit | None:
    return None if rate is None else RateLimit(rate.events, rate.per)


def rest_base_for(ws_url: str) -> str:
    """The REST base a simulator or proxy serves beside ``ws_url`` (same host:port)."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


class Feed:
    """Keep one connection to ``spec`` subscribed to the symbols of ``outputs``.

    ``outputs`` maps each venue symbol to the slot its top ``depth`` levels are
    published to (``None``: keep the book unpublished, diff channel only).
    :attr:`outcomes` holds one future per symbol, resolved once: to ``None``
    when the venue accepts the symbol, or to a one-line reason when it refuses
    it. :attr:`outcome` is the answer for the feed as a whole: ``None`` once
    any symbol is accepted, a reason only when every symbol was refused.
    Connection failures resolve neither; they are retried with backoff and
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
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
        tap: FeedTap | None = None,
        book_depth: int | None = None,
        stale_after: float | None = None,
        connect_limit: RateLimit | None = None,
        rest_limit: RateLimit | None = None,
    ) -> None:
        if not outputs:
            raise ValueError("a feed needs at least one symbol")
        most = spec.limits.symbols_per_connection
        if most is not None and len(outputs) > most:
            raise ValueError(
                f"{spec.name} allows {most} symbols a connection, not {len(outputs)}: "
                "split them over several feeds"
            )
        check_depth(depth)
        if book_depth is not None:
            check_depth(book_depth, "book_depth")
        self.spec = spec
        self.kind = spec.channel(channel)
        self.symbols = list(outputs)
        self.symbol = self.symbols[0]
        self.instrument = instrument or self.symbol
        self.liveness = spec.liveness(self.kind)
        if stale_after is not None:
            self.liveness = self.liveness.with_stale_after(stale_after)
        self.listener: TopNListener | SnapshotRouter | DiffListener
        #: The diff channel in use (``spec.diff``, or its variant at ``book_depth``).
        self.diff: DiffChannel
        if self.kind == "snapshot":
            assert spec.snapshot is not None
            snap = spec.snapshot
            if len(outputs) > 1 and (snap.route is None or snap.route_key is None):
                raise ValueError(f"{spec.name}'s snapshot channel carries one symbol a connection")
            books: dict[str, TopNListener] = {}
            for symbol, out in outputs.items():
                if out is None:
                    raise ValueError("a snapshot-channel feed needs an output slot for every symbol")
                books[symbol] = TopNListener(
                    spec.name,
                    snap.make_decoder(depth),
                    out,
                    snap.is_book,
                    make_decoder=functools.partial(snap.make_decoder, depth),
                    stale_after=self.liveness.stale_after,
                    seq_ns=snap.seq_ns,
                    symbol=symbol if len(outputs) > 1 else "",
                )
            if len(books) == 1:
                # One symbol: the listener takes the frames itself, no routing on the hot path.
                self.listener = books[self.symbol]
            else:
                assert snap.route is not None and snap.route_key is not None
                self.listener = SnapshotRouter(spec.name, books, snap.route, snap.route_key)
        else:
            assert spec.diff is not None
            self.diff = spec.diff
            if book_depth is not None:
                if spec.diff.at_depth is None:
                    raise ValueError(f"{spec.name}'s diff channel has one depth only")
                self.diff = spec.diff.at_depth(book_depth)
            self.listener = DiffListener(
                spec.name, self.diff, outputs, depth, self, stale_after=self.liveness.stale_after
            )
        self.ws_url = ws_url or spec.ws_url
        if rest_url is None:
            rest_url = rest_base_for(ws_url) if ws_url else spec.rest_url
        self.rest_url = rest_url
        self.ssl_context = ssl_context
        self.state = FeedState.STARTING
        self.stats = FeedStats()
        self.last_error = ""
        loop = asyncio.get_running_loop()
        self.outcome: asyncio.Future[str | None] = loop.create_future()
        #: Per symbol: ``None`` once the venue accepted it, or why it refused it.
        self.outcomes: dict[str, asyncio.Future[str | None]] = {s: loop.create_future() for s in self.symbols}
        #: Symbols the venue refused -> the reason (they are out of :attr:`symbols`).
        self.rejected: dict[str, str] = {}
        # Symbols subscribed on this connection that the venue has not answered yet, in order.
        self._unanswered: list[str] = []
        connect = spec.connection or WsConnection
        self.conn: Connection = connect(
            self.ws_url,
            self,
            ssl_context=ssl_context,
            backoff=backoff,
            connect_timeout=connect_timeout,
            ping_idle=ping_idle,
            ping_reply=ping_reply,
            max_message=spec.max_message,
            connect_limit=connect_limit or _limit(spec.limits.connects),
        )
        #: REST requests to the venue keep to this (shared by the venue's feeds when given).
        self.rest_limit = rest_limit or _limit(spec.limits.rest)
        self._log = logging.getLogger(f"dragonfly.venue.{spec.name}")
        self._fail_log = RateLimitedLog(self._log, interval=30.0)
        self._drop_log = RateLimitedLog(self._log, interval=10.0)
        self._on_book = self.listener.on_frame
        # Callbacks pending until the connection ends: (loop time due, handle).
        self._timers: list[tuple[float, asyncio.Handle]] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        # Per symbol: the pace of its REST snapshots and of its resubscribes.
        self._snapshot_pace: dict[str, RetryPacer] = {}
        self._resub_pace: dict[str, RetryPacer] = {}
        # Frames waiting for the connection's message budget, and that budget.
        self._outbox: deque[bytes] = deque()
        self._send_limit: RateLimit | None = None
        self._drain: asyncio.TimerHandle | None = None
        self._stopped = False
        self._acked_by_book = spec.acked_by_book
        self._opened_ns = 0  # wall time the current connection opened
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

    def health(self, symbol: str) -> Health:
        """Return the health record of ``symbol``'s book (what the aggregator reads)."""
        return self.listener.health(symbol)

    async def run(self) -> None:
        """Check the symbols where the venue needs it, then stay connected until stopped."""
        if self.spec.symbol_check is not None and not await self._symbols_listed():
            return
        self.state = FeedState.CONNECTING
        self.listener.withdraw(VenueStatus.CONNECTING, "connecting")
        self._arm_watchdog()
        try:
            await self.conn.run()
        finally:
            if self.state is not FeedState.REJECTED:
                self.state = FeedState.STOPPED

    def stop(self) -> None:
        """Disconnect and stop reconnecting; the venue leaves the merge."""
        self._stopped = True
        self._cancel_timers()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.conn.close()
        for task in self._snapshot_tasks.values():
            task.cancel()
        if self.state is FeedState.REJECTED:
            self.listener.withdraw(VenueStatus.REJECTED, self.last_error)
        else:
            self.listener.withdraw(VenueStatus.STOPPED, "stopped")
        for fut in (*self.outcomes.values(), self.outcome):
            if not fut.done():
                fut.set_result("stopped before the venue answered")

    # -- freshness -----------------------------------------------------------

    def _arm_watchdog(self) -> None:
        # Check a few times per stale_after (within [50 ms, 1 s]); the
        # aggregator also refuses, at publish time, a book older than its limit.
        period = min(max(self.liveness.stale_after / 4, 0.05), 1.0)
        self._watchdog = asyncio.get_running_loop().call_later(period, self._watch)

    def _watch(self) -> None:
        self._watchdog = None
        if self._stopped:
            return
        now = time.time_ns()
        self.listener.check_stale(now)
        if self._acked_by_book and self._unanswered:
            self._accept_booked()  # a first book held past its read (end_burst) was decoded since
        if self.conn.connected and self.state is FeedState.LIVE:
            # A connection that proves nothing for long is wedged, however well
            # it answers pings (a message that never ends, a stream the venue
            # forgot): end it, and the reconnect resubscribes.
            since = max(self.listener.newest_proof_ns(), self._opened_ns)
            limit = max(WEDGED_AFTER * self.liveness.stale_after, WEDGED_MIN)
            if now - since > limit * 1e9:
                self.conn.drop(f"nothing proved a book current for {(now - since) / 1e9:.0f} s")
        self._arm_watchdog()

    # -- FrameHandler ------------------------------------------------------

    def on_open(self, conn: Connection) -> None:
        self.stats.connects += 1
        if self.tap is not None:
            self.tap.opened(self.ws_url)
        self.state = FeedState.SUBSCRIBING
        self._opened_ns = time.time_ns()
        self.listener.withdraw(VenueStatus.SYNCING, "subscribing")
        self._unanswered = list(self.symbols)
        messages = self.spec.limits.messages
        self._send_limit = _limit(messages)
        self._log.info(
            "%s: connected to %s, subscribing to %s (%s channel)",
            self.name,
            self.ws_url,
            ", ".join(self.symbols),
            self.kind,
        )
        for frame in self._subscribe_frames(self.symbols):
            self._send(frame)
        self._later(self.spec.subscribe_timeout, self._ack_timeout)
        if self.spec.heartbeat is not None:
            self._later(self.spec.heartbeat_interval, self._heartbeat)

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        if self.tap is not None:
            self.tap.received(payload, recv_ns)
        if self._on_book(payload, recv_ns, last_in_buffer):
            if self.state is not FeedState.LIVE:
                self._subscribed()  # data before the ack counts as one
            if self._acked_by_book and self._unanswered:
                self._accept_booked()
            return
        self._on_control(payload, recv_ns)
        if last_in_buffer:
            self.listener.end_burst()

    def on_close(self, reason: str) -> None:
        self._cancel_timers()
        self._outbox.clear()
        # A snapshot in flight belongs to this connection's stream: loaded into
        # the next one's book it would miss every update between the two.
        for task in self._snapshot_tasks.values():
            task.cancel()
        self._snapshot_tasks.clear()
        self.stats.disconnects += 1
        if self._stopped or self.state is FeedState.REJECTED:
            return
        self.listener.withdraw(VenueStatus.CONNECTING, reason)
        self.state = FeedState.CONNECTING
        self.last_error = reason
        self._drop_log.warning(
            "%s: disconnected (%s); book withdrawn, reconnecting within %.1f s",
            self.name,
            reason,
            self.conn.backoff.ceiling(),
        )

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        self.stats.connect_failures += 1
        self.last_error = f"cannot connect to {self.ws_url}: {reason}"
        self._fail_log.warning("%s: %s; retrying in %.1fs", self.name, self.last_error, retry_in)

    # -- control path ------------------------------------------------------

    def _on_control(self, payload: bytes, recv_ns: int) -> None:
        self.stats.control_frames += 1
        ctl = self.spec.control(payload)
        kind = ctl.kind
        if kind is ControlKind.HEARTBEAT:
            if self.liveness.kind is LivenessKind.HEARTBEAT:
                self.listener.prove_fresh(recv_ns)
        elif kind is ControlKind.SUBSCRIBED:
            self._accepted(ctl.symbol)
            self._subscribed()
        elif kind is ControlKind.REJECTED:
            if ctl.symbol is not None and ctl.symbol in self.rejected:
                return  # refused already: one line, one withdrawal
            named = ctl.symbol if ctl.symbol in self.symbols else None
            targets = [named] if named is not None else self._unattributed()
            if not targets:
                self.stats.venue_errors += 1
                self._fail_log.warning(
                    "%s: venue refused a subscription naming no symbol, after all were accepted: %s",
                    self.name,
                    ctl.detail,
                )
            for symbol in targets:
                self._reject_symbol(symbol, ctl.detail)
        elif kind is ControlKind.RECONNECT:
            self._log.info("%s: venue asked to reconnect (%s)", self.name, ctl.detail or "no reason given")
            self.conn.drop(f"venue asked to reconnect ({ctl.detail or 'no reason given'})")
        elif kind is ControlKind.ERROR:
            self.stats.venue_errors += 1
            self._fail_log.warning("%s: venue error: %s", self.name, ctl.detail)
        elif kind is ControlKind.UNREADABLE:
            # Garbage where the venue sends JSON may have been a book frame:
            # no book of the connection can be trusted until the next good one.
            self.listener.unreadable(ctl.detail)

    def _subscribed(self) -> None:
        if self.state is FeedState.LIVE:
            return
        if isinstance(self.listener, DiffListener):
            # Symbols whose first delta is slow to come still get their snapshot.
            self._later(QUIET_SNAPSHOT_DELAY, self.listener.request_quiet)
        self.state = FeedState.LIVE
        # Not a reset of the reconnect backoff: only a connection that carries
        # books for a while earns that (see module doc).
        self._later(HEALTHY_AFTER, self._healthy_check, self.conn.connects)
        self._later(NO_DATA_WARNING, self._data_check, self.conn.connects)
        self._log.info("%s: subscribed to %s", self.name, ", ".join(self.symbols))
        if not self.outcome.done():
            self.outcome.set_result(None)

    def _accepted(self, named: str | None) -> None:
        """Resolve the symbols an ack accepts (see the module doc)."""
        if named is not None and named in self.outcomes:
            symbols = [named]
        elif self.spec.answers_in_order:
            symbols = self._unanswered[:1]
        else:
            symbols = list(self._unanswered)
        for symbol in symbols:
            if symbol in self._unanswered:
                self._unanswered.remove(symbol)
            fut = self.outcomes[symbol]
            if not fut.done():
                fut.set_result(None)

    def _accept_booked(self) -> None:
        """Accept each unanswered symbol with a book from this connection (``acked_by_book``)."""
        for symbol in [s for s in self._unanswered if self.listener.health(s).data_ns >= self._opened_ns]:
            self._accepted(symbol)

    def _unattributed(self) -> list[str]:
        """The symbols a refusal that names none is about (see the module doc)."""
        if len(self.symbols) == 1:
            return list(self.symbols)
        if self.spec.answers_in_order:
            return self._unanswered[:1]
        return list(self._unanswered)

    def _reject_symbol(self, symbol: str, detail: str) -> None:
        """The venue refused ``symbol``: withdraw its book as REJECTED; the others carry on."""
        if symbol not in self.symbols:
            return
        if len(self.outcomes) == 1:
            reason = f"{self.name} rejected instrument {self.instrument!r} ({symbol}): {detail}"
        else:
            reason = f"{self.name} rejected {symbol}: {detail}"
        self.symbols.remove(symbol)
        if symbol in self._unanswered:
            self._unanswered.remove(symbol)
        self.rejected[symbol] = reason
        self._log.error("%s", reason)
        self.listener.drop_symbol(symbol, reason)
        fut = self.outcomes[symbol]
        if not fut.done():
            fut.set_result(reason)
        if not self.symbols:
            self._reject("; ".join(self.rejected.values()))

    def _healthy_check(self, connection: int) -> None:
        if connection != self.conn.connects or not self.conn.connected:
            return
        if self.listener.has_book:
            self.conn.backoff.reset()
        else:
            self._later(HEALTHY_AFTER, self._healthy_check, connection)

    def _data_check(self, connection: int) -> None:
        # Only a connection that never had a book: one whose book went stale says so itself.
        had_data = self.listener.newest_proof_ns() >= self._opened_ns
        if connection == self.conn.connects and self.conn.connected and not had_data:
            self._fail_log.warning(
                "%s: subscribed to %s %.0f s ago, but no book is in the merge yet (%s)",
                self.name,
                ", ".join(self.symbols),
                NO_DATA_WARNING,
                ", ".join(
                    f"{s}: {self.listener.health(s).status.name.lower()}"
                    + (f" ({d})" if (d := self.listener.health(s).detail) else "")
                    for s in self.symbols
                ),
            )

    def _reject(self, reason: str) -> None:
        """Every symbol was refused: the feed stops."""
        self.state = FeedState.REJECTED
        self.last_error = reason
        if len(self.outcomes) > 1:
            self._log.error("%s: every symbol of the connection was refused; feed stopped", self.name)
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
        self._later(self.spec.heartbeat_interval, self._heartbeat)

    def _send(self, frame: bytes) -> None:
        """Send ``frame`` now if the connection's message budget allows, else queue it."""
        if self._outbox or (self._send_limit is not None and not self._send_limit.try_acquire()):
            self._outbox.append(frame)
            self._schedule_drain()
            return
        self._write(frame)

    def _write(self, frame: bytes) -> None:
        self.conn.send(frame)
        if self.tap is not None:
            self.tap.sent(self.ws_url, frame)

    def _schedule_drain(self) -> None:
        if self._drain is None and self._send_limit is not None:
            delay = self._send_limit.delay()
            self._drain = asyncio.get_running_loop().call_later(delay, self._drain_outbox)

    def _drain_outbox(self) -> None:
        self._drain = None
        limit = self._send_limit
        while self._outbox and (limit is None or limit.try_acquire()):
            self._write(self._outbox.popleft())
        if self._outbox:
            self._schedule_drain()

    async def _http_get(self, url: str) -> HttpResponse:
        limit = self.rest_limit
        if limit is not None:
            await limit.acquire()
        resp = await http_get(url, ssl_context=self.ssl_context)
        if resp.status in (429, 418, 503):
            wait = retry_after(resp)
            if wait is None and resp.status != 503:
                wait = DEFAULT_RETRY_AFTER
            if wait is not None and limit is not None:
                self.stats.rest_throttled += 1
                limit.hold_until(time.monotonic() + wait)
                self._fail_log.warning(
                    "%s: REST answered %d; no REST request for %.0f s", self.name, resp.status, wait
                )
        if self.tap is not None and resp.status == 200:
            self.tap.rest(url, resp.body)
        return resp

    def _subscribe_frames(self, symbols: Sequence[str]) -> Sequence[bytes]:
        if self.kind == "snapshot":
            assert self.spec.snapshot is not None
            frames = self.spec.snapshot.subscribe(symbols)
            if isinstance(self.listener, SnapshotRouter):
                return (*self.spec.snapshot.route_setup, *frames)
            return frames
        return self.diff.subscribe(symbols)

    # -- FeedControl (resynchronisation of diff books) -----------------------

    def resubscribe(self, symbol: str) -> None:
        """Unsubscribe and subscribe ``symbol`` again, for a fresh in-band snapshot.

        Paced: the first of a run goes at once, each further one while the
        book keeps failing waits longer (full jitter, up to 30 s), and a
        minute without one starts a new run; the frames keep to the
        connection's message budget.
        """
        pace = self._resub_pace.setdefault(symbol, RetryPacer(base=0.2, cap=30.0, forgive=60.0))
        self._later(pace.next_delay(), self._resubscribe_now, symbol, self.conn.connects)

    def _resubscribe_now(self, symbol: str, connection: int) -> None:
        # A reconnect since the resync was asked for subscribes afresh anyway.
        if self._stopped or connection != self.conn.connects or symbol not in self.symbols:
            return
        sync = self.listener.health(symbol)
        if sync.status is VenueStatus.LIVE:
            return  # it recovered meanwhile
        self.stats.resubscribes += 1
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
        connection = self.conn.connects
        # The first request of a run goes at once; while the book keeps
        # needing new ones (failed requests, snapshots that do not stitch),
        # they back off (REST rate limits); see RetryPacer.
        pace = self._snapshot_pace.setdefault(symbol, RetryPacer(base=0.2, cap=10.0, forgive=30.0))
        delay = pace.next_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        url = (self.rest_url or "").rstrip("/") + diff.rest_snapshot.format(symbol=symbol)
        try:
            resp = await self._http_get(url)
            if resp.status != 200:
                raise HttpError(f"GET {url}: HTTP {resp.status} {resp.body[:200]!r}")
            snapshot = diff.parse_rest_snapshot(symbol, resp.body)
        except (HttpError, ParseError) as exc:
            self.stats.rest_failures += 1
            self._fail_log.warning("%s: snapshot of %s failed: %s", self.name, symbol, exc)
            self.listener.snapshot_failed(symbol)
            return
        if connection != self.conn.connects or not self.conn.connected:
            return  # for a connection that has ended (on_close cancels, this is the belt to it)
        self.stats.snapshots += 1
        self.listener.on_snapshot(snapshot)

    def _later(self, delay: float, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` in ``delay`` s unless the connection ends first."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Forget timers that have fired, so the list stays as short as what is pending.
        # (uvloop's call_later(0) returns a plain Handle, without when(): keep our own.)
        self._timers = [(due, t) for due, t in self._timers if due >= now and not t.cancelled()]
        self._timers.append((now + delay, loop.call_later(delay, callback, *args)))

    def _cancel_timers(self) -> None:
        for _, timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._drain is not None:
            self._drain.cancel()
            self._drain = None

    async def _symbols_listed(self) -> bool:
        """Check every symbol with the venue's REST probe; ``False`` if none is left."""
        for symbol in list(self.symbols):
            await self._symbol_listed(symbol)
            if self._stopped:
                return False
        return bool(self.symbols)

    async def _symbol_listed(self, symbol: str) -> None:
        check = self.spec.symbol_check
        assert check is not None
        if not self.rest_url:
            return
        url = self.rest_url.rstrip("/") + check.path.format(symbol=symbol)
        try:
            resp = await self._http_get(url)
        except HttpError as exc:
            self._log.warning("%s: cannot verify symbol %s (%s); subscribing anyway", self.name, symbol, exc)
            return
        reason = check.rejects(resp.status, resp.body)
        if reason is not None:
            self._reject_symbol(symbol, reason)
            return
        if resp.status != 200:
            self._log.warning(
                "%s: symbol check %s answered HTTP %d; subscribing anyway: %.200s",
                self.name,
                url,
                resp.status,
                resp.body.decode("utf-8", "replace"),
            )

