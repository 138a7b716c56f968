"""Layer 3: turn a venue's book frames into its top-N book; forward only changes.

This is the hot path: one synchronous call per frame, no awaits, no logging
per message (bad frames are counted and logged at a bounded rate).

Trust rules (see :mod:`dragonfly.core.health`): every book frame that decodes
and passes the check proves the book current (``data_ns``); a frame that does
not (unreadable, unsound, older than the one before) withdraws the book from
the merge at once, since the venue's current book is then unknown, and the
next good frame brings it back; so does the feed's watchdog when no proof
came within the channel's ``stale_after``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping

from dragonfly.accel import speedups
from dragonfly.core.errors import ParseError
from dragonfly.core.health import VenueStatus
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotProducer
from dragonfly.core.types import Side, VenueBook, new_venue_book
from dragonfly.core.venue import Decoder, Router

_LIVE = VenueStatus.LIVE


def check_book_py(bids: Side, asks: Side) -> str | None:
    """Return why a top-N book cannot be trusted, or ``None`` if it is sound.

    Sound means: prices strictly ordered (bids descending, asks ascending),
    every price and amount finite and positive, and the venue's own book not
    crossed or locked (best bid below best ask). A venue's own book is never
    crossed; a crossed one is a corrupt frame, not a market state (unlike a
    crossed merged book across venues, which is real and is published).
    """
    prev = math.inf
    for price, amount in bids:
        if not (0.0 < price < prev) or not (0.0 < amount < math.inf):
            return "bids out of order or not positive finite"
        prev = price
    prev = 0.0
    for price, amount in asks:
        if not (prev < price < math.inf) or not (0.0 < amount < math.inf):
            return "asks out of order or not positive finite"
        prev = price
    if bids and asks and bids[0][0] >= asks[0][0]:
        return "venue book is crossed"
    return None


#: The check the listeners run: the C speedups' twin (same checks and
#: messages, ~0.2 µs against ~2 µs for 10+10 levels) when built.
check_book: Callable[[Side, Side], str | None] = (
    speedups.check_book if speedups is not None else check_book_py
)


class TopNListener:
    """Keep one venue's top N from its snapshot frames and forward changes.

    ``on_frame`` returns ``True`` when the frame was a book (consumed, or
    rejected as malformed and counted) and ``False`` when it is not a book
    frame, so the feed subscriber can read it as a control frame.
    Change detection compares levels (tuples of floats), not raw bytes: a
    venue resending the same top N with a new update id forwards nothing,
    but still proves the book current.

    The listener is the book's :class:`~dragonfly.core.health.Health` record
    (``data_ns``, ``status``, ``stale_after_ns``). ``make_decoder`` makes a
    fresh decoder for each connection (a decoder remembers the last update
    id it saw, to refuse frames that go back in time).
    """

    __slots__ = (
        "_asks",
        "_bad_log",
        "_bids",
        "_decode",
        "_flush_pending",
        "_held",
        "_held_frame",
        "_held_ns",
        "_is_book",
        "_make_decoder",
        "_out",
        "_seq_ns",
        "books",
        "bytes",
        "changes",
        "conflated",
        "data_ns",
        "detail",
        "frames",
        "label",
        "malformed",
        "seq",
        "stale_after_ns",
        "stales",
        "status",
        "venue",
    )

    def __init__(
        self,
        venue: str,
        decode: Decoder,
        out: SlotProducer[VenueBook],
        is_book: Callable[[bytes], bool] | None = None,
        *,
        make_decoder: Callable[[], Decoder] | None = None,
        stale_after: float = 60.0,
        seq_ns: int = 0,
        symbol: str = "",
    ) -> None:
        self.venue = venue
        #: How logs name this book: the venue, and the symbol where a connection carries several.
        self.label = f"{venue} {symbol}" if symbol else venue
        # ns per unit of the frames' seq when it is the venue's clock, else 0.
        self._seq_ns = seq_ns
        self._decode = decode
        self._make_decoder = make_decoder
        self._out = out
        self._is_book = is_book
        #: Wall time of the newest frame that proved the book current (0: none).
        self.data_ns = 0
        #: The venue's position (update id) of the book held.
        self.seq = 0
        self.status = VenueStatus.SYNCING
        #: Why the book is not live, when it is not (for logs and status()).
        self.detail = ""
        self.stale_after_ns = round(stale_after * 1e9)
        self.stales = 0  #: times the book was withdrawn as stale
        self._held: bytes | None = None
        self._held_ns = 0
        self._held_frame = 0
        self.conflated = 0  #: book frames never decoded: a newer one followed in the same read
        self._bids: Side | None = None
        self._asks: Side | None = None
        self.frames = 0  #: frames seen
        self.bytes = 0  #: bytes of those frames
        self.books = 0  #: book frames decoded
        self.changes = 0  #: top-N changes forwarded
        self.malformed = 0  #: frames rejected as unreadable or unsound
        self._bad_log = RateLimitedLog(logging.getLogger(f"dragonfly.venue.{venue}"))
        self._flush_pending = False

    @property
    def has_book(self) -> bool:
        """Whether a book is currently held (and so in the merge)."""
        return self._bids is not None

    def health(self, symbol: str) -> TopNListener:
        """Return the health record of ``symbol``'s book: this listener (one symbol)."""
        return self

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> bool:
        """Handle one frame (hot path); see the class doc for the return value."""
        self.frames += 1
        self.bytes += len(payload)
        is_book = self._is_book
        if is_book is not None:
            if not last_in_buffer and is_book(payload):
                # Every snapshot frame replaces the last one whole, and a newer
                # frame of this read follows: hold this one undecoded. Under a
                # flood this is what keeps the cost per frame near zero.
                if self._held is not None:
                    self.conflated += 1
                self._held = payload
                self._held_ns = recv_ns
                self._held_frame = self.frames
                if not self._flush_pending:
                    self._defer_flush()
                return True
            held = self._held
            if held is not None:
                self._held = None
                if is_book(payload):
                    self.conflated += 1  # superseded by this frame
                else:
                    self._consume(held, self._held_ns, self._held_frame)
        consumed = self._consume(payload, recv_ns, self.frames)
        if last_in_buffer:
            self._out.end_burst()
        elif not self._flush_pending:
            self._defer_flush()
        return consumed

    def _consume(self, payload: bytes, recv_ns: int, frame: int) -> bool:
        try:
            book = self._decode(payload)
        except ParseError as exc:
            self._reject(payload, str(exc))
            return True
        if book is None:
            return False
        self.books += 1
        bids, asks, seq = book
        if bids != self._bids or asks != self._asks:
            problem = check_book(bids, asks)
            if problem is not None:
                self._reject(payload, problem)
                return True
            self._bids = bids
            self._asks = asks
            self.changes += 1
            self._out.put(new_venue_book((self.venue, bids, asks, recv_ns, frame, seq)))
            if self.status is not _LIVE:
                self.status = _LIVE
                self.detail = ""
        # Changed or not, a sound frame proves the book current: as of when
        # the venue sent it, where its seq is the venue's clock and older than
        # the receipt (a delay in transit must not pass for fresh data).
        sent_ns = seq * self._seq_ns
        self.data_ns = sent_ns if 0 < sent_ns < recv_ns else recv_ns
        self.seq = seq
        return True

    def _defer_flush(self) -> None:
        # picows marks the last frame of a read with last_in_buffer, but not
        # when the read ends in a partial frame: under a steady flood no frame
        # is ever "last", and without this the merge would starve. The flush
        # then runs at the end of this event-loop iteration instead.
        self._flush_pending = True
        asyncio.get_running_loop().call_soon(self.end_burst)

    def end_burst(self) -> None:
        """Let the consumer run (end of a read burst), decoding a held frame first."""
        self._flush_pending = False
        held = self._held
        if held is not None:
            self._held = None
            self._consume(held, self._held_ns, self._held_frame)
        self._out.end_burst()

    def withdraw(self, status: VenueStatus = VenueStatus.CONNECTING, detail: str = "") -> None:
        """Drop the book (the connection ended): the venue leaves the merge now.

        The next connection starts with a fresh decoder.
        """
        self._held = None
        self._drop(status, detail)
        if self._make_decoder is not None:
            self._decode = self._make_decoder()

    def check_stale(self, now_ns: int) -> bool:
        """Withdraw a live book that nothing proved current within ``stale_after``; say if it was."""
        if self.status is not _LIVE or now_ns - self.data_ns <= self.stale_after_ns:
            return False
        age = (now_ns - self.data_ns) / 1e9
        self.stales += 1
        self._drop(VenueStatus.STALE, f"no book for {age:.1f} s")
        self._bad_log.warning(
            "%s: book withdrawn: no book frame for %.1f s (stale after %g s); it returns with the next one",
            self.label,
            age,
            self.stale_after_ns / 1e9,
        )
        return True

    def unreadable(self, why: str) -> None:
        """A frame that is not the venue's protocol at all arrived: it may have been a book."""
        self._reject(b"", why)

    def prove_fresh(self, recv_ns: int) -> None:
        """A venue heartbeat says the book is current (nothing pending on the connection)."""
        if self.status is _LIVE:
            self.data_ns = recv_ns

    def newest_proof_ns(self) -> int:
        """Wall time of the newest proof that the book is current (0: none yet)."""
        return self.data_ns

    def drop_symbol(self, symbol: str, detail: str) -> None:
        """The venue refused the symbol: withdraw the book as ``REJECTED`` for good."""
        self.withdraw(VenueStatus.REJECTED, detail)

    def _drop(self, status: VenueStatus, detail: str) -> None:
        # A book already out is withdrawn again only when its status changed
        # (stale, then disconnected): the new status is news to subscribers.
        news = self._bids is not None or status is not self.status
        self._bids = None
        self._asks = None
        self.status = status
        self.detail = detail
        if news:
            self._out.withdraw()

    def _reject(self, payload: bytes, why: str) -> None:
        # The venue sent a book we cannot use: its current book is unknown, so
        # the last good one is not published any longer. The next good frame
        # brings the venue back.
        self.malformed += 1
        if self._bids is not None:
            self._drop(VenueStatus.BAD_DATA, why)
        else:
            self.status = VenueStatus.BAD_DATA
            self.detail = why
        self._bad_log.warning(
            "%s: dropped a malformed frame, book withdrawn until a good one (%s; %d so far)%s",
            self.label,
            why,
            self.malformed,
            f": {payload[:200]!r}" if payload else "",
        )


class SnapshotRouter:
    """Keep the top N of several symbols that share one snapshot-channel connection.

    Each symbol has its own :class:`TopNListener` (its own decoder, health
    record, held frame and counters); ``route`` tells a frame's symbol from
    its bytes (the channel's :attr:`~dragonfly.core.venue.SnapshotChannel.route`)
    and the frame goes to that symbol's listener. A frame whose key is no
    symbol of the connection (one the venue refused, say) is counted in
    :attr:`unrouted` and dropped. The listener protocol the feed drives
    (``withdraw``, ``check_stale``, ``unreadable``, ``prove_fresh``,
    ``newest_proof_ns``, ``end_burst``) covers every symbol still carried;
    a refused symbol (:meth:`drop_symbol`) keeps its health record, as
    ``REJECTED``, and nothing the connection does later changes it.

    A one-symbol connection does not use this: its feed drives a
    :class:`TopNListener` directly, so its hot path pays no routing.
    """

    __slots__ = ("_burst", "_route", "_routes", "books", "bytes", "frames", "unrouted", "venue")

    def __init__(
        self,
        venue: str,
        listeners: Mapping[str, TopNListener],
        route: Router,
        route_key: Callable[[str], bytes],
    ) -> None:
        self.venue = venue
        #: Every symbol's listener, refused ones included (their health records).
        self.books = dict(listeners)
        # Key -> listener, for the symbols still carried.
        self._routes = {route_key(symbol): lst for symbol, lst in listeners.items()}
        self._route = route
        # Listeners given a frame in this read that was not its last.
        self._burst: list[TopNListener] = []
        self.frames = 0  #: frames seen
        self.bytes = 0  #: bytes of those frames
        self.unrouted = 0  #: book frames of no symbol of the connection

    @property
    def listeners(self) -> list[TopNListener]:
        """The listeners of the symbols still carried."""
        return list(self._routes.values())

    @property
    def has_book(self) -> bool:
        """Whether any symbol's book is held (and so in the merge)."""
        return any(lst.has_book for lst in self._routes.values())

    @property
    def malformed(self) -> int:
        """Frames rejected as unreadable or unsound, over every symbol."""
        return sum(lst.malformed for lst in self.books.values())

    @property
    def stales(self) -> int:
        """Times a book was withdrawn as stale, over every symbol."""
        return sum(lst.stales for lst in self.books.values())

    def health(self, symbol: str) -> TopNListener:
        """Return the health record of ``symbol``'s book."""
        return self.books[symbol]

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> bool:
        """Route one frame to its symbol's listener (hot path); ``False``: not a book frame."""
        self.frames += 1
        self.bytes += len(payload)
        routed = self._route(payload)
        if routed is None:
            # A control frame: books held from earlier in this read go first,
            # so the control (an error, a reconnect) sees them in order.
            if self._burst:
                self.end_burst()
            return False
        lst = self._routes.get(routed[0])
        if lst is None:
            self.unrouted += 1
            if last_in_buffer and self._burst:
                self.end_burst()
            return True
        consumed = lst.on_frame(routed[1], recv_ns, last_in_buffer)
        burst = self._burst
        if not last_in_buffer:
            if lst not in burst:
                burst.append(lst)
        elif burst:
            # The read ended: every symbol with a frame held in it publishes now.
            for other in burst:
                if other is not lst:
                    other.end_burst()
            burst.clear()
        return consumed

    def end_burst(self) -> None:
        """Let the consumers run, decoding every held frame first."""
        burst = self._burst
        for lst in burst:
            lst.end_burst()
        burst.clear()

    def withdraw(self, status: VenueStatus = VenueStatus.CONNECTING, detail: str = "") -> None:
        """Drop every book carried (the connection ended); each restarts with a fresh decoder."""
        self._burst.clear()
        for lst in self._routes.values():
            lst.withdraw(status, detail)

    def check_stale(self, now_ns: int) -> int:
        """Withdraw every live book nothing proved current within ``stale_after``; return how many."""
        return sum(lst.check_stale(now_ns) for lst in self._routes.values())

    def unreadable(self, why: str) -> None:
        """A frame that is not the venue's protocol arrived: it may have been any symbol's book."""
        for lst in self._routes.values():
            lst.unreadable(why)

    def prove_fresh(self, recv_ns: int) -> None:
        """A venue heartbeat says every book of the connection is current."""
        for lst in self._routes.values():
            lst.prove_fresh(recv_ns)

    def newest_proof_ns(self) -> int:
        """Wall time of the newest proof that any book of the connection is current (0: none)."""
        return max((lst.data_ns for lst in self._routes.values()), default=0)

    def drop_symbol(self, symbol: str, detail: str) -> None:
        """The venue refused ``symbol``: withdraw its book as ``REJECTED`` and stop routing to it."""
        lst = self.books.get(symbol)
        if lst is None:
            return
        for key, routed in list(self._routes.items()):
            if routed is lst:
                del self._routes[key]
        if lst in self._burst:
            self._burst.remove(lst)
        lst.drop_symbol(symbol, detail)
