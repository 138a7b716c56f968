"""Layer 3 for diff channels: exact books from snapshots plus incremental updates.

The shared sync machinery every diff venue uses: buffer, snapshot, stitch,
apply, validate, withdraw and resynchronise. A venue module only declares a
:class:`DiffChannel` (frames, a decoder, where snapshots come from, its
sequence and checksum rules).

Sequence rule (``continuity=True``): a delta carries the sequence range
``first..last`` it covers. A delta with ``last <= book.seq`` is stale and
dropped. The first delta after a REST snapshot may overlap it (``first <=
seq + 1``; Binance's ``U <= lastUpdateId + 1 <= u``); every other delta must
follow on exactly (``first == seq + 1``). Venues express their own numbering
in those terms: Binance ``U``/``u``; OKX ``prevSeqId + 1``/``seqId``; Bybit
``u``/``u``. With ``continuity=False`` (Bitstamp, Kraken) only deltas not
newer than the snapshot (``last <= snapshot seq``) are dropped.

A book that cannot be trusted (a gap, a checksum mismatch, a crossed book,
an unreadable book frame) is withdrawn from the merge at once, so it is never
published wrong, and resynchronised: a REST snapshot again (deltas are
buffered meanwhile) or, for venues whose snapshot comes in-band, an
unsubscribe and subscribe of that symbol (the feed paces both).

Freshness (:mod:`dragonfly.core.health`): each symbol's book is its own
health record. An applied delta, a loaded snapshot, a venue keep-alive for
the symbol (:class:`Alive`) or a venue heartbeat for the connection proves it
current. A book that nothing proved current within ``stale_after`` leaves the
merge (:meth:`DiffListener.check_stale`) and comes back with the next delta
that can prove nothing was missed meanwhile: one that follows on by sequence
number, or whose checksum verifies, or any delta on a channel whose decoder
reports every lost message (``gapless``). A channel that can prove none of
that (Bitstamp) resynchronises instead.

A REST snapshot that is ahead of the stream makes every later delta look
stale; if no delta has stitched onto it within :data:`STITCH_TIMEOUT`
seconds, the snapshot cannot be trusted and the book resynchronises (it used
to stay published, frozen, with every delta dropped).

Deep reads on demand (:meth:`DiffListener.set_deep`): a book holds more
levels than the listener forwards (its channel's depth against the top N of
the views that recompute on every change). When a view reads deeper on
demand (``liquidity``, through its :class:`~dragonfly.core.tee.BookTee`), a
change below the forwarded top N is still forwarded, as its levels unchanged
with the change's receipt time and sequence (``put_deep``), so that view
hears of it and reads the book itself (:meth:`DiffListener.reader`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, NamedTuple, Protocol, cast

import msgspec

from dragonfly.core import book as _book
from dragonfly.core.book import BIDS, BOTH, L2Book, Levels
from dragonfly.core.errors import ParseError
from dragonfly.core.health import DEFAULT_LIVENESS, Liveness, VenueStatus
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotProducer
from dragonfly.core.tee import BookTee
from dragonfly.core.types import Side, VenueBook, check_depth, new_venue_book


class Snapshot(NamedTuple):
    """A whole book (``seq``: the venue's position of it, if any).

    Levels are the venue's strings, or float pairs on a numeric channel.
    """

    symbol: str
    bids: Levels
    asks: Levels
    seq: int | None = None


class Delta(NamedTuple):
    """Changed levels (zero amount: remove), the range they cover, an optional checksum.

    Levels are the venue's strings, or float pairs on a numeric channel.
    """

    symbol: str
    bids: Levels
    asks: Levels
    first: int | None = None
    last: int | None = None
    checksum: int | None = None


#: Build a :class:`Delta` from all six fields in one C call, for decoders on
#: the hot path: the NamedTuple constructor is Python code (~330 ns here,
#: against ~130 ns).
new_delta: Callable[[tuple[str, Levels, Levels, int | None, int | None, int | None]], Delta] = partial(
    tuple.__new__, Delta
)


class Reset(NamedTuple):
    """The decoder saw the stream break (``symbol=None``: every symbol of the connection)."""

    symbol: str | None
    reason: str


class Alive(NamedTuple):
    """The venue says ``symbol``'s book is unchanged at ``seq`` (a keep-alive, e.g. OKX's)."""

    symbol: str
    seq: int | None = None


Event = Snapshot | Delta | Reset | Alive

#: Seconds a REST snapshot may wait for the first delta that stitches onto it
#: while later deltas are all dropped as older than it (see module doc).
STITCH_TIMEOUT = 5.0

#: A price or amount field for a numeric channel's msgspec decoder: a JSON
#: number, or a string holding one (lax decoding converts it in C), finite
#: and not negative; anything else fails to decode (a parse error, named).
Number = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
#: A price field of a numeric channel: as :data:`Number`, and above zero.
Price = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]
#: A ``(price, amount)`` level of a numeric channel, as decoded.
NumericLevel = tuple[Price, Number]
_NO_FLOOR = -math.inf
_NO_CEILING = math.inf
#: Hot-path decoder of a diff channel: payload -> events, or ``None`` for a non-book frame.
DiffDecoder = Callable[[bytes], "Sequence[Event] | None"]


@dataclass(frozen=True)
class DiffChannel:
    """What a venue declares about its diff channel (see module doc).

    Attributes:
        subscribe: venue symbols -> frames subscribing to their diff books.
        unsubscribe: venue symbols -> frames ending those subscriptions.
        make_decoder: a fresh :data:`DiffDecoder` for one connection (it may keep
            per-connection state, e.g. a connection-wide sequence number).
        rest_snapshot: REST path of a snapshot (``{symbol}`` replaced), or ``None``
            when the snapshot arrives in-band after subscribing.
        parse_rest_snapshot: ``(symbol, body) -> Snapshot`` for ``rest_snapshot``.
        continuity: whether deltas carry a sequence range to check.
        checksum: book -> the venue's checksum, if it sends one.
        truncate: the depth the venue maintains; the book is cut to it after
            every update (levels beyond it would go stale).
        max_buffer: deltas buffered per symbol while waiting for a snapshot.
        at_depth: book depth -> this channel subscribed at that depth, for venues
            that serve several (replay must subscribe at the recorded depth).
        verify_before_publish: publish a book only once a checksum has verified
            it since its snapshot (for venues whose snapshots carry none, so a
            corrupt snapshot is never published).
        numeric: the decoder and ``parse_rest_snapshot`` yield float ``(price,
            amount)`` levels, and books keep no venue strings (a numeric
            :class:`~dragonfly.core.book.L2Book`). Only for channels without a
            checksum, which is computed over the strings.
        liveness: what proves a book current, and for how long (see
            :mod:`dragonfly.core.health`).
        gapless: the decoder reports every lost message as a :class:`Reset`
            (a connection-wide sequence number, as Coinbase's), so any delta
            applied after a silence proves nothing was missed.
        seq_ns: ns per unit of a delta's ``last`` and a snapshot's ``seq``
            when they are the venue's clock (Bitstamp's microtimestamp: 1000),
            else 0 (see :mod:`dragonfly.core.health`).
    """

    subscribe: Callable[[Sequence[str]], Sequence[bytes]]
    unsubscribe: Callable[[Sequence[str]], Sequence[bytes]]
    make_decoder: Callable[[], DiffDecoder]
    rest_snapshot: str | None = None
    parse_rest_snapshot: Callable[[str, bytes], Snapshot] | None = None
    continuity: bool = False
    checksum: Callable[[L2Book], int] | None = None
    truncate: int | None = None
    max_buffer: int = 10_000
    at_depth: Callable[[int], DiffChannel] | None = None
    verify_before_publish: bool = False
    numeric: bool = False
    liveness: Liveness = DEFAULT_LIVENESS
    gapless: bool = False
    seq_ns: int = 0

    def __post_init__(self) -> None:
        if self.numeric and self.checksum is not None:
            raise ValueError("a checksum is computed over the venue's strings: a numeric channel has none")

    @property
    def provable(self) -> bool:
        """Whether a book that went silent can prove, when updates resume, that it missed nothing."""
        return self.continuity or self.checksum is not None or self.gapless


class FeedControl(Protocol):
    """What a diff listener asks of its feed subscriber to resynchronise a symbol."""

    def request_snapshot(self, symbol: str) -> None:
        """Fetch a REST snapshot and hand it to :meth:`DiffListener.on_snapshot`."""

    def resubscribe(self, symbol: str) -> None:
        """Unsubscribe and subscribe ``symbol`` again (in-band snapshot venues)."""


class SyncState(enum.Enum):
    """Where one symbol's book is."""

    WAITING = "waiting"  #: no trusted book: waiting for a snapshot (deltas buffered if REST)
    SYNCED = "synced"  #: the book is exact and published


_SYNCED = SyncState.SYNCED  # a global read, not an enum attribute lookup, per delta
#: SymbolSync.touched's bit for a change below the forwarded top N (BIDS, ASKS: within it).
DEEP = 4
_LIVE = VenueStatus.LIVE


@dataclass
class SyncStats:
    """Counters of one symbol's book."""

    snapshots: int = 0
    applied: int = 0
    stale: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksums_ok: int = 0
    checksums_bad: int = 0
    crossed: int = 0
    malformed: int = 0
    stales: int = 0


class SymbolSync:
    """One symbol's book and sync state (owned by a :class:`DiffListener`).

    It is also the book's :class:`~dragonfly.core.health.Health` record.
    """

    __slots__ = (
        "after_rest",
        "apply",
        "book",
        "buffer",
        "ceiling",
        "data_ns",
        "detail",
        "floor",
        "loaded_at",
        "newest",
        "out",
        "published",
        "requested",
        "snap_seq",
        "stale",
        "stale_after_ns",
        "state",
        "stats",
        "status",
        "stitched",
        "symbol",
        "touched",
        "venue",
        "verified",
        "withdrawn_as",
    )

    def __init__(
        self,
        symbol: str,
        out: SlotProducer[VenueBook] | None,
        *,
        numeric: bool = False,
        venue: str = "",
        stale_after: float = DEFAULT_LIVENESS.stale_after,
    ) -> None:
        self.symbol = symbol
        self.venue = venue
        #: Wall time of the newest proof that the book is current (0: none).
        self.data_ns = 0
        self.status = VenueStatus.SYNCING
        #: Why the book is not live, when it is not.
        self.detail = "subscribing"
        self.stale_after_ns = round(stale_after * 1e9)
        #: Withdrawn for silence; the next delta that proves continuity brings it back.
        self.stale = False
        #: Monotonic time the last snapshot was loaded, and whether a delta has followed on it since.
        self.loaded_at = 0.0
        self.stitched = True
        self.book = L2Book(numeric=numeric)
        #: The book's update for this channel's levels (strings or floats),
        #: chosen once here rather than per delta.
        self.apply: Callable[[Levels, Levels, float, float], int] = (
            self.book.numeric_updater() if numeric else self.book.update  # type: ignore[assignment]
        )
        self.state = SyncState.WAITING
        self.buffer: list[Delta] = []
        self.after_rest = False
        self.snap_seq: int | None = None
        self.stats = SyncStats()
        self.out = out
        self.published: tuple[Side, Side] | None = None
        #: Sides changed within the top N since the last burst: BIDS | ASKS bits
        #: (DEEP: a change below it, counted while the listener forwards those).
        self.touched = 0
        self.requested = False
        self.verified = False
        #: The newest sequence position any delta has shown (snapshots must reach it).
        self.newest: int | None = None
        #: N-th best bid and N-th best ask of the published top N: changes
        #: beyond them leave it as it is. Unbounded while fewer than N levels.
        #: Two attributes, not a pair: a tuple built per publish and unpacked per delta.
        self.floor = _NO_FLOOR
        self.ceiling = _NO_CEILING
        #: The status the book's slot was last withdrawn with (the one subscribers see while it is out).
        self.withdrawn_as = VenueStatus.SYNCING


class DiffListener:
    """Keep exact books for the symbols of one diff connection (see module doc).

    ``outputs`` maps each venue symbol to the slot its top ``depth`` is
    forwarded to (``None``: keep the book without publishing it, as replay
    does). The top N is recomputed once per read burst for the symbols that
    changed, and forwarded only when its levels changed.
    """

    def __init__(
        self,
        venue: str,
        channel: DiffChannel,
        outputs: Mapping[str, SlotProducer[VenueBook] | None],
        depth: int,
        control: FeedControl,
        *,
        stale_after: float | None = None,
    ) -> None:
        self.venue = venue
        self.channel = channel
        self.depth = depth
        self.control = control
        self.stale_after = channel.liveness.stale_after if stale_after is None else stale_after
        self.syms = {
            symbol: SymbolSync(
                symbol, out, numeric=channel.numeric, venue=venue, stale_after=self.stale_after
            )
            for symbol, out in outputs.items()
        }
        #: Symbols the venue refused: their health records, no longer kept.
        self.dropped: dict[str, SymbolSync] = {}
        self._decode = channel.make_decoder()
        # The channel is frozen: its rules read as plain attributes per delta.
        self._continuity = channel.continuity
        self._seq_ns = channel.seq_ns
        self._truncate = channel.truncate
        self._checksum = channel.checksum
        self._touched: list[SymbolSync] = []
        self.frames = 0
        self.bytes = 0  #: bytes of the frames seen
        self.malformed = 0
        self._log = logging.getLogger(f"dragonfly.venue.{venue}")
        self._warn = RateLimitedLog(self._log)
        self._last_recv = 0
        self._flush_pending = False
        #: Whether changes below the forwarded top N are forwarded too (module doc).
        self.deep = False

    # -- listener protocol (driven by the feed) ------------------------------

    @property
    def has_book(self) -> bool:
        """Whether any symbol's book is published (exact and fresh)."""
        return any(s.status is VenueStatus.LIVE for s in self.syms.values())

    def health(self, symbol: str) -> SymbolSync:
        """Return the health record of ``symbol``'s book (a dropped symbol's too)."""
        sync = self.syms.get(symbol)
        return sync if sync is not None else self.dropped[symbol]

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> bool:
        """Decode and apply one frame (hot path); ``False``: not a book frame."""
        self.frames += 1
        self.bytes += len(payload)
        try:
            events = self._decode(payload)
        except ParseError as exc:
            self._warn.warning("%s: unreadable book frame (%s): %.200r", self.venue, exc, payload)
            self.unreadable(f"unreadable book frame ({exc})")
            return True
        if events is None:
            return False
        self._last_recv = recv_ns
        for event in events:
            if type(event) is Delta:
                # Read by index: a NamedTuple field is an unspecialised
                # descriptor lookup (hot path).
                target = self.syms.get(event[0])
                if target is not None:
                    last = event[4]
                    if last is not None and (target.newest is None or last > target.newest):
                        target.newest = last
                    if target.state is _SYNCED:
                        self._apply(target, event)
                    else:
                        self._buffer(target, event)
            elif type(event) is Snapshot:
                target = self.syms.get(event.symbol)
                if target is not None:
                    self._load(target, event, from_rest=False)
            elif type(event) is Alive:
                self._on_alive(event)
            else:
                self._on_reset(event)  # type: ignore[arg-type]
        if last_in_buffer:
            self.end_burst()
        elif not self._flush_pending:
            # A read that ends in a partial frame marks no frame "last"; flush
            # at the end of this loop iteration so a flood cannot starve the
            # merge (see TopNListener).
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.end_burst)
        return True

    def set_depth(self, depth: int) -> None:
        """Forward ``depth`` levels a side from now on, starting with every book now.

        A topology sets this to what the views attached at the moment read
        (a view nobody reads must not make every frame cost a deeper top-N
        read); the books keep their channel's whole depth either way.
        """
        check_depth(depth)
        if depth == self.depth:
            return
        self.depth = depth
        for sync in self.syms.values():
            if not sync.touched:
                self._touched.append(sync)
            sync.touched = BOTH
        self.end_burst()

    def set_deep(self, on: bool) -> None:
        """Forward changes below the top N too (``put_deep`` on the outputs), or stop (module doc)."""
        if on and not all(s.out is None or hasattr(s.out, "put_deep") for s in self.syms.values()):
            raise TypeError("a deep change can only be forwarded to an output with put_deep (a BookTee)")
        self.deep = on

    def reader(self, symbol: str) -> Callable[[int], VenueBook | None]:
        """A reader of ``symbol``'s book now: ``read(depth)`` (``None`` while it is not published).

        What the listener would forward at that depth: the book's top
        ``depth`` levels with the latest receipt time, frame count and
        sequence. A book is published from its first forward until it is
        withdrawn (untrusted, stale or disconnected): every change it holds
        meanwhile was checked as it was applied.
        """
        sync = self.syms[symbol]
        venue = self.venue

        def read(depth: int) -> VenueBook | None:
            if sync.published is None:
                return None
            book = sync.book
            bids, asks = book.top(depth)
            return new_venue_book((venue, bids, asks, self._last_recv, self.frames, book.seq or 0))

        return read

    def end_burst(self) -> None:
        """Forward the top N of every symbol changed in this burst, once."""
        self._flush_pending = False
        touched = self._touched
        if not touched:
            return
        outs = []
        depth = self.depth
        read = _book._top_levels
        for sync in touched:
            sides = sync.touched
            sync.touched = 0
            if sync.state is not _SYNCED or not sync.verified or sync.stale:
                continue
            if sync.status is not _LIVE:
                sync.status = _LIVE
                sync.detail = ""
            out = sync.out
            if out is None:
                continue
            published = sync.published
            book = sync.book
            if sides == DEEP:
                # Only levels below the forwarded top N changed: no top-N read.
                if published is not None:
                    seq = book.seq
                    deep = new_venue_book(
                        (self.venue, published[0], published[1], self._last_recv, self.frames, seq or 0)
                    )
                    cast(BookTee, out).put_deep(deep)  # set_deep checked it has one
                    outs.append(out)
                continue
            sides &= BOTH
            # Re-read only the side(s) whose top N a change reached: the other
            # is the one published (a top-N read is ~1 µs a side).
            # With the C speedups the read is called here rather than through
            # the book's methods (no Python frame: hot path).
            if read is None:
                if published is None or sides == BOTH:
                    top = book.top(depth)
                elif sides == BIDS:
                    top = (book.top_bids(depth), published[1])
                else:
                    top = (published[0], book.top_asks(depth))
            elif published is None or sides == BOTH:
                top = (read(book.bids, depth), read(book.asks, depth))
            elif sides == BIDS:
                top = (read(book.bids, depth), published[1])
            else:
                top = (published[0], read(book.asks, depth))
            if top != published:
                sync.published = top
                bids, asks = top
                sync.floor = bids[-1][0] if len(bids) >= depth else _NO_FLOOR
                sync.ceiling = asks[-1][0] if len(asks) >= depth else _NO_CEILING
                seq = book.seq
                out.put(new_venue_book((self.venue, bids, asks, self._last_recv, self.frames, seq or 0)))
                outs.append(out)
            elif self.deep:
                # A change within the top N that left it as it was: news to a deep reader only.
                seq = book.seq
                deep = new_venue_book((self.venue, top[0], top[1], self._last_recv, self.frames, seq or 0))
                cast(BookTee, out).put_deep(deep)
                outs.append(out)
        touched.clear()
        for out in outs:
            out.end_burst()

    def withdraw(self, status: VenueStatus = VenueStatus.CONNECTING, detail: str = "") -> None:
        """The connection dropped: every book restarts from a new snapshot."""
        # The decoder may track per-connection state (a sequence number).
        self._decode = self.channel.make_decoder()
        for sync in self.syms.values():
            sync.status = status  # first: withdrawing publishes an update that says why
            sync.detail = detail
            self._unpublish(sync)
            sync.book.clear()
            sync.buffer.clear()
            sync.state = SyncState.WAITING
            sync.requested = False
            sync.stale = False

    def check_stale(self, now_ns: int) -> int:
        """Withdraw every published book that nothing proved current within ``stale_after``.

        Return how many were withdrawn. A channel that can prove, when
        updates resume, that nothing was missed keeps the book (unpublished)
        and republishes it then; any other resynchronises.
        """
        count = 0
        for sync in self.syms.values():
            if sync.status is not _LIVE or now_ns - sync.data_ns <= sync.stale_after_ns:
                continue
            count += 1
            age = (now_ns - sync.data_ns) / 1e9
            sync.stats.stales += 1
            self._warn.warning(
                "%s %s: book withdrawn: nothing proved it current for %.1f s (stale after %g s)",
                self.venue,
                sync.symbol,
                age,
                sync.stale_after_ns / 1e9,
            )
            detail = f"nothing proved it current for {age:.1f} s"
            if self.channel.provable:
                sync.status = VenueStatus.STALE
                sync.detail = detail
                sync.stale = True
                if not self.channel.continuity and not self.channel.gapless:
                    sync.verified = False  # only a verified checksum proves it again
                self._unpublish(sync)
            else:
                self._resync(sync, detail, VenueStatus.STALE, quiet=True)
        return count

    def unreadable(self, why: str) -> None:
        """A frame we cannot read arrived: it may have carried a change, so resync every book."""
        self.malformed += 1
        for sync in self.syms.values():
            if sync.state is SyncState.SYNCED:
                sync.stats.malformed += 1
                self._resync(sync, why, VenueStatus.BAD_DATA)

    def newest_proof_ns(self) -> int:
        """Wall time of the newest proof that any book of the connection is current (0: none)."""
        return max((sync.data_ns for sync in self.syms.values()), default=0)

    def prove_fresh(self, recv_ns: int) -> None:
        """A venue heartbeat says every book of the connection is current (nothing pending)."""
        for sync in self.syms.values():
            if sync.state is SyncState.SYNCED:
                sync.data_ns = recv_ns

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A REST snapshot arrived (from the feed's request)."""
        sync = self.syms.get(snapshot.symbol)
        if sync is None:
            return
        sync.requested = False
        self._load(sync, snapshot, from_rest=True)
        self.end_burst()

    def request_quiet(self) -> None:
        """Ask for the snapshots of symbols that have had no delta yet (a quiet market)."""
        if self.channel.rest_snapshot is None:
            return
        for sync in self.syms.values():
            if sync.state is SyncState.WAITING and not sync.requested:
                sync.requested = True
                self.control.request_snapshot(sync.symbol)

    def snapshot_failed(self, symbol: str) -> None:
        """A REST snapshot request failed; the feed will ask again on the next delta."""
        sync = self.syms.get(symbol)
        if sync is not None:
            sync.requested = False

    def drop_symbol(self, symbol: str, detail: str = "the venue does not list it") -> None:
        """Stop keeping ``symbol`` (the venue rejected it); its health record stays, ``REJECTED``."""
        sync = self.syms.pop(symbol, None)
        if sync is not None:
            self.dropped[symbol] = sync
            sync.status = VenueStatus.REJECTED
            sync.detail = detail
            self._unpublish(sync)

    # -- sync rules ------------------------------------------------------------

    def _buffer(self, sync: SymbolSync, delta: Delta) -> None:
        """Keep a delta that arrived before the book's snapshot (REST venues)."""
        if self.channel.rest_snapshot is None:
            return  # in-band venues: deltas before the snapshot belong to no book
        if len(sync.buffer) >= self.channel.max_buffer:
            sync.buffer.clear()  # the snapshot is not coming: start over
            sync.requested = False
        sync.buffer.append(delta)
        if not sync.requested:
            sync.requested = True
            if sync.status is VenueStatus.STALE:
                sync.status = VenueStatus.SYNCING
                sync.detail = "updates resumed: resynchronising"
            self.control.request_snapshot(sync.symbol)

    def _apply(self, sync: SymbolSync, delta: Delta) -> bool:
        """Apply one delta to a synced book; ``False`` if the book was resynced."""
        book = sync.book
        # One unpacking, not an attribute lookup a field (a NamedTuple field
        # is an unspecialised descriptor call: hot path).
        _symbol, bids, asks, first, last, checksum = delta
        if last is not None:
            if self._continuity:
                seq = book.seq
                if seq is not None:
                    if last <= seq:
                        return self._older(sync)
                    if first is None:
                        first = last
                    # In sequence (the common case) is one test: a gap is a
                    # first past seq + 1, or any other first but after a REST snapshot.
                    if first != seq + 1 and (first > seq + 1 or not sync.after_rest):
                        sync.stats.gaps += 1
                        self._resync(sync, f"sequence gap: expected {seq + 1}, got {first}..{last}")
                        return False
            elif sync.snap_seq is not None and last <= sync.snap_seq:
                return self._older(sync)
        elif self._continuity and sync.stale:
            # A silent book of a sequenced channel that gets a delta without
            # sequence numbers cannot prove it missed nothing.
            self._resync(sync, "update without a sequence number after a silence")
            return False
        # Whether a change reaches the published top N: a change beyond the
        # N-th level cannot move the top N (or cross the book), so the burst
        # then skips the top-N read and the publish (the incremental top N).
        try:
            hit = sync.apply(bids, asks, sync.floor, sync.ceiling)
        except (ValueError, TypeError) as exc:
            sync.stats.malformed += 1
            self._resync(sync, f"bad level in update ({exc})", VenueStatus.BAD_DATA)
            return False
        sync.after_rest = False
        sync.stitched = True
        if last is not None:
            book.seq = last
        sync.stats.applied += 1
        # The proof's time: when the venue made the change, where its seq is
        # its clock and that is older (a delay in transit); else the receipt.
        recv_ns = self._last_recv
        if self._seq_ns and last is not None:
            sent_ns = last * self._seq_ns
            sync.data_ns = sent_ns if 0 < sent_ns < recv_ns else recv_ns
        else:
            sync.data_ns = recv_ns
        if sync.stale and (self._continuity or self.channel.gapless):
            # It followed on by sequence (or the decoder would have reset it):
            # nothing was missed while it was silent. Publish it again.
            sync.stale = False
            hit = BOTH
        return self._validate(sync, checksum, hit)

    def _older(self, sync: SymbolSync) -> bool:
        """Drop a delta the book already holds; resync a snapshot no delta stitches onto."""
        sync.stats.stale += 1
        if not sync.stitched and time.monotonic() - sync.loaded_at > STITCH_TIMEOUT:
            sync.stats.gaps += 1
            self._resync(
                sync,
                f"snapshot at {sync.snap_seq} is ahead of the stream: no update followed on it "
                f"within {STITCH_TIMEOUT:g} s",
            )
            return False
        return True

    def _validate(self, sync: SymbolSync, checksum: int | None, hit: int = BOTH) -> bool:
        book = sync.book
        depth = self._truncate
        # Mostly nothing is cut: the sizes are tested here, without a call.
        if depth is not None and (len(book.bids) > depth or len(book.asks) > depth):
            book.truncate(depth)
        if checksum is not None and self._checksum is not None:
            if self._checksum(book) != checksum:
                sync.stats.checksums_bad += 1
                self._resync(sync, "checksum mismatch")
                return False
            sync.stats.checksums_ok += 1
            if not sync.verified:
                sync.verified = True
                sync.stale = False
                hit = BOTH
        if not hit:
            if self.deep:
                # Below the forwarded top N: it cannot cross the book or move that top.
                if not sync.touched:
                    self._touched.append(sync)
                sync.touched |= DEEP
            return True
        # L2Book.crossed inline, the first key of each side's first sublist
        # (hot path: a frame less a delta, ~0.5k of ~44k instructions on Bybit).
        bids = book.bids._list._lists
        asks = book.asks._list._lists
        if bids and asks and -bids[0][0] >= asks[0][0]:
            sync.stats.crossed += 1
            self._resync(sync, "book crossed")
            return False
        if not sync.touched:
            self._touched.append(sync)
        sync.touched |= hit
        return True

    def _load(self, sync: SymbolSync, snapshot: Snapshot, *, from_rest: bool) -> None:
        try:
            sync.book.load(snapshot.bids, snapshot.asks, snapshot.seq)
        except (ValueError, TypeError) as exc:
            sync.stats.malformed += 1
            self._resync(sync, f"bad level in snapshot ({exc})", VenueStatus.BAD_DATA)
            return
        sync.stats.snapshots += 1
        sync.verified = not self.channel.verify_before_publish
        sync.snap_seq = snapshot.seq
        sync.state = SyncState.SYNCED
        sync.stale = False
        received = time.time_ns() if from_rest else self._last_recv
        sent_ns = snapshot.seq * self._seq_ns if snapshot.seq is not None else 0
        sync.data_ns = sent_ns if 0 < sent_ns < received else received
        sync.after_rest = from_rest and self.channel.continuity
        # A REST snapshot must be followed on by a delta (see module doc);
        # an in-band one is in the stream's own order.
        sync.stitched = not from_rest
        sync.loaded_at = time.monotonic()
        buffered, sync.buffer = sync.buffer, []
        if from_rest and not self.channel.continuity and buffered and snapshot.seq is not None:
            first = buffered[0].first
            if first is not None and snapshot.seq < first:
                # Without sequence numbers nothing shows what changed between
                # this snapshot and the first update of this subscription: it
                # must be at least as new as that update.
                sync.stats.gaps += 1
                self._resync(sync, f"snapshot at {snapshot.seq} is older than the first update, {first}")
                return
        if not self._validate(sync, None):
            return
        for delta in buffered:
            if not self._apply(sync, delta):
                return
        newest = sync.newest
        if from_rest and newest is not None and (sync.book.seq is None or sync.book.seq < newest):
            # Deltas newer than this book were seen and are not in it (they
            # were dropped with a broken book): the snapshot is too old.
            sync.stats.gaps += 1
            self._resync(sync, f"snapshot at {snapshot.seq} is older than update {newest} already seen")

    def _on_alive(self, alive: Alive) -> None:
        sync = self.syms.get(alive.symbol)
        if sync is None or sync.state is not SyncState.SYNCED:
            return
        if alive.seq is not None and sync.book.seq is not None and alive.seq != sync.book.seq:
            sync.stats.gaps += 1
            self._resync(sync, f"keep-alive at {alive.seq}, book at {sync.book.seq}")
            return
        sync.data_ns = self._last_recv
        if sync.stale and (self._continuity or self.channel.gapless):
            sync.stale = False
            if not sync.touched:
                self._touched.append(sync)
            sync.touched = BOTH

    def _on_reset(self, reset: Reset) -> None:
        targets = self.syms.values() if reset.symbol is None else [self.syms.get(reset.symbol)]
        for sync in targets:
            if sync is not None and sync.state is SyncState.SYNCED:
                sync.stats.gaps += 1
                self._resync(sync, reset.reason)

    def _resync(
        self, sync: SymbolSync, reason: str, status: VenueStatus = VenueStatus.SYNCING, *, quiet: bool = False
    ) -> None:
        sync.stats.resyncs += 1
        # The status first: withdrawing publishes an update that says why.
        sync.status = status
        sync.detail = reason
        self._unpublish(sync)
        sync.book.clear()
        sync.state = SyncState.WAITING
        sync.buffer.clear()
        sync.stale = False
        if not quiet:
            self._warn.warning(
                "%s %s: book withdrawn and resynchronising: %s", self.venue, sync.symbol, reason
            )
        if self.channel.rest_snapshot is None:
            self.control.resubscribe(sync.symbol)
        # REST venues: the next delta requests a snapshot (and is buffered).
        sync.requested = False

    def _unpublish(self, sync: SymbolSync) -> None:
        # A book already out is withdrawn again when its status changed
        # (stale, then disconnected): the new status is news to subscribers.
        if sync.out is not None and (sync.published is not None or sync.status is not sync.withdrawn_as):
            sync.out.withdraw()
        sync.withdrawn_as = sync.status
        sync.published = None
        sync.floor = _NO_FLOOR
        sync.ceiling = _NO_CEILING
