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
unsubscribe and subscribe of that symbol.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, NamedTuple, Protocol

import msgspec

from dragonfly.core.book import BIDS, BOTH, L2Book, Levels
from dragonfly.core.errors import ParseError
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotProducer
from dragonfly.core.types import Side, VenueBook, new_venue_book


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


Event = Snapshot | Delta | Reset

#: A price or amount field for a numeric channel's msgspec decoder: a JSON
#: number, or a string holding one (lax decoding converts it in C), finite
#: and not negative; anything else fails to decode (a parse error, named).
Number = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
#: A ``(price, amount)`` level of a numeric channel, as decoded.
NumericLevel = tuple[Number, Number]
_UNBOUNDED = (-math.inf, math.inf)
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

    def __post_init__(self) -> None:
        if self.numeric and self.checksum is not None:
            raise ValueError("a checksum is computed over the venue's strings: a numeric channel has none")


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


class SymbolSync:
    """One symbol's book and sync state (owned by a :class:`DiffListener`)."""

    __slots__ = (
        "after_rest",
        "apply",
        "book",
        "bounds",
        "buffer",
        "newest",
        "out",
        "published",
        "requested",
        "snap_seq",
        "state",
        "stats",
        "symbol",
        "touched",
        "verified",
    )

    def __init__(self, symbol: str, out: SlotProducer[VenueBook] | None, *, numeric: bool = False) -> None:
        self.symbol = symbol
        self.book = L2Book(numeric=numeric)
        #: The book's update for this channel's levels (strings or floats),
        #: chosen once here rather than per delta.
        self.apply: Callable[[Levels, Levels, float, float], int] = (
            self.book.update_numeric if numeric else self.book.update  # type: ignore[assignment]
        )
        self.state = SyncState.WAITING
        self.buffer: list[Delta] = []
        self.after_rest = False
        self.snap_seq: int | None = None
        self.stats = SyncStats()
        self.out = out
        self.published: tuple[Side, Side] | None = None
        #: Sides changed within the top N since the last burst: BIDS | ASKS bits.
        self.touched = 0
        self.requested = False
        self.verified = False
        #: The newest sequence position any delta has shown (snapshots must reach it).
        self.newest: int | None = None
        #: (N-th best bid, N-th best ask) of the published top N: changes
        #: beyond them leave it as it is. Unbounded while fewer than N levels.
        self.bounds = _UNBOUNDED


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
    ) -> None:
        self.venue = venue
        self.channel = channel
        self.depth = depth
        self.control = control
        self.syms = {
            symbol: SymbolSync(symbol, out, numeric=channel.numeric) for symbol, out in outputs.items()
        }
        self._decode = channel.make_decoder()
        # The channel is frozen: its rules read as plain attributes per delta.
        self._continuity = channel.continuity
        self._truncate = channel.truncate
        self._checksum = channel.checksum
        self._touched: list[SymbolSync] = []
        self.frames = 0
        self.malformed = 0
        self._log = logging.getLogger(f"dragonfly.venue.{venue}")
        self._warn = RateLimitedLog(self._log)
        self._last_recv = 0
        self._flush_pending = False

    # -- listener protocol (driven by the feed) ------------------------------

    @property
    def has_book(self) -> bool:
        """Whether any symbol holds a trusted book."""
        return any(s.state is SyncState.SYNCED for s in self.syms.values())

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> bool:
        """Decode and apply one frame (hot path); ``False``: not a book frame."""
        self.frames += 1
        try:
            events = self._decode(payload)
        except ParseError as exc:
            self.malformed += 1
            self._warn.warning("%s: unreadable book frame (%s): %.200r", self.venue, exc, payload)
            # An unreadable book frame may have carried a change: no book of
            # this connection can be trusted until it is resynchronised.
            for sync in self.syms.values():
                if sync.state is SyncState.SYNCED:
                    sync.stats.malformed += 1
                    self._resync(sync, f"unreadable book frame ({exc})")
            return True
        if events is None:
            return False
        self._last_recv = recv_ns
        for event in events:
            if type(event) is Delta:
                target = self.syms.get(event.symbol)
                if target is not None:
                    last = event.last
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

    def end_burst(self) -> None:
        """Forward the top N of every symbol changed in this burst, once."""
        self._flush_pending = False
        touched = self._touched
        if not touched:
            return
        outs = []
        depth = self.depth
        for sync in touched:
            sides = sync.touched
            sync.touched = 0
            out = sync.out
            if out is None or sync.state is not SyncState.SYNCED or not sync.verified:
                continue
            # Re-read only the side(s) whose top N a change reached: the other
            # is the one published (a top-N read is ~1 µs a side).
            published = sync.published
            if published is None or sides == BOTH:
                top = sync.book.top(depth)
            elif sides == BIDS:
                top = (sync.book.top_bids(depth), published[1])
            else:
                top = (published[0], sync.book.top_asks(depth))
            if top != published:
                sync.published = top
                bids, asks = top
                sync.bounds = (
                    bids[-1][0] if len(bids) >= depth else -math.inf,
                    asks[-1][0] if len(asks) >= depth else math.inf,
                )
                out.put(new_venue_book((self.venue, top[0], top[1], self._last_recv, self.frames)))
                outs.append(out)
        touched.clear()
        for out in outs:
            out.end_burst()

    def withdraw(self) -> None:
        """The connection dropped: every book restarts from a new snapshot."""
        # The decoder may track per-connection state (a sequence number).
        self._decode = self.channel.make_decoder()
        for sync in self.syms.values():
            self._unpublish(sync)
            sync.book.clear()
            sync.buffer.clear()
            sync.state = SyncState.WAITING
            sync.requested = False

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

    def drop_symbol(self, symbol: str) -> None:
        """Stop keeping ``symbol`` (the venue rejected it)."""
        sync = self.syms.pop(symbol, None)
        if sync is not None:
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
            self.control.request_snapshot(sync.symbol)

    def _apply(self, sync: SymbolSync, delta: Delta) -> bool:
        """Apply one delta to a synced book; ``False`` if the book was resynced."""
        book = sync.book
        last = delta.last
        if last is not None:
            if self._continuity:
                seq = book.seq
                if seq is not None:
                    if last <= seq:
                        sync.stats.stale += 1
                        return True
                    first = delta.first if delta.first is not None else last
                    if first > seq + 1 or (not sync.after_rest and first != seq + 1):
                        sync.stats.gaps += 1
                        self._resync(sync, f"sequence gap: expected {seq + 1}, got {first}..{last}")
                        return False
            elif sync.snap_seq is not None and last <= sync.snap_seq:
                sync.stats.stale += 1
                return True
        # Whether a change reaches the published top N: a change beyond the
        # N-th level cannot move the top N (or cross the book), so the burst
        # then skips the top-N read and the publish (the incremental top N).
        try:
            hit = sync.apply(delta.bids, delta.asks, *sync.bounds)
        except (ValueError, TypeError) as exc:
            sync.stats.malformed += 1
            self._resync(sync, f"bad level in update ({exc})")
            return False
        sync.after_rest = False
        if last is not None:
            book.seq = last
        sync.stats.applied += 1
        return self._validate(sync, delta.checksum, hit)

    def _validate(self, sync: SymbolSync, checksum: int | None, hit: int = BOTH) -> bool:
        book = sync.book
        if self._truncate is not None:
            book.truncate(self._truncate)
        if checksum is not None and self._checksum is not None:
            if self._checksum(book) != checksum:
                sync.stats.checksums_bad += 1
                self._resync(sync, "checksum mismatch")
                return False
            sync.stats.checksums_ok += 1
            if not sync.verified:
                sync.verified = True
                hit = BOTH
        if not hit:
            return True
        if book.crossed():
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
            self._resync(sync, f"bad level in snapshot ({exc})")
            return
        sync.stats.snapshots += 1
        sync.verified = not self.channel.verify_before_publish
        sync.snap_seq = snapshot.seq
        sync.state = SyncState.SYNCED
        sync.after_rest = from_rest and self.channel.continuity
        buffered, sync.buffer = sync.buffer, []
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

    def _on_reset(self, reset: Reset) -> None:
        targets = self.syms.values() if reset.symbol is None else [self.syms.get(reset.symbol)]
        for sync in targets:
            if sync is not None and sync.state is SyncState.SYNCED:
                sync.stats.gaps += 1
                self._resync(sync, reset.reason)

    def _resync(self, sync: SymbolSync, reason: str) -> None:
        sync.stats.resyncs += 1
        self._unpublish(sync)
        sync.book.clear()
        sync.state = SyncState.WAITING
        sync.buffer.clear()
        self._warn.warning("%s %s: book withdrawn and resynchronising: %s", self.venue, sync.symbol, reason)
        if self.channel.rest_snapshot is None:
            self.control.resubscribe(sync.symbol)
        # REST venues: the next delta requests a snapshot (and is buffered).
        sync.requested = False

    def _unpublish(self, sync: SymbolSync) -> None:
        if sync.published is not None and sync.out is not None:
            sync.out.withdraw()
        sync.published = None
        sync.bounds = _UNBOUNDED
