"""Layer 4: merge the venues' top-N books into one cross-venue top-N book.

Order: bids by price descending, asks by price ascending; at an equal price
the larger amount first, then the venue name alphabetically, so the merged
book is a pure function of the venue books (deterministic ties).

How the merge stays cheap (it runs on the hot path): each venue's side is
already sorted best first, so the merged side is a K-way merge of sorted
runs, taken in venue-name order. With the C speedups (:mod:`dragonfly.accel`)
``merge_side`` walks the runs and builds only the N :class:`MergedLevel`
tuples it keeps: ~0.8 µs a side for 2 venues x 10 levels, against ~7 µs for
the pure-Python version below.

The pure-Python :func:`merge_side_py` builds every level through
``tuple.__new__`` (a C call; a NamedTuple's own constructor is Python code),
concatenates the runs and sorts twice with C key functions and no per-level
key tuples: first by amount (descending), then by price (descending for
bids, ascending for asks). Python's sort is stable, also with
``reverse=True``, so equal prices keep the amount order and equal amounts
keep the name order: exactly the merge order above. The runs are already
sorted, so timsort merges them in linear time (~14-16 µs a recompute here
against ~19-29 µs for one sort over ``(price, amount, rank, level)`` keys).

What may be merged (:mod:`dragonfly.core.health`): a venue's book is in the
merge while its slot holds one (its listener withdraws it the moment it
cannot be trusted) and, checked again at every recompute, while its proof of
freshness is younger than its channel's ``stale_after``: so no update is ever
published with a book older than its limit, even between two runs of the
feed's watchdog.

The cross-venue sanity rule (``max_deviation``, default 10%): a venue whose
mid price is further than that from the median mid of the venues in the
merge is flagged ``OUTLIER`` and logged. When at least two venues are within
the bound (they agree on the price), the flagged ones are also left out of
the merge: a majority says their books are wrong (a price 1000x off, a wrong
instrument). With two venues there is no majority: both stay in, flagged,
and a client sees the flags. Real crossed or locked markets across venues
are a few basis points, far inside the bound, and are published as they are.
Every published update lists every venue's state (:class:`VenueState`), and
an update is published whenever a venue enters or leaves the merge, even if
the top N did not change, and when a venue already out changes its status
(stale, then disconnected: its listener withdraws its slot again).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from typing import ClassVar, Generic, TypeVar, cast

from dragonfly.accel import speedups
from dragonfly.core.health import Health, VenueStatus
from dragonfly.core.logs import RateLimitedLog
from dragonfly.core.slots import SlotQueue
from dragonfly.core.timing import Histogram
from dragonfly.core.types import MergedBook, MergedLevel, Side, VenueBook, VenueState, check_depth

#: A consumer of merged books, called synchronously on the hot path.
MergedSink = Callable[[MergedBook], None]
#: What an aggregator kind publishes.
V = TypeVar("V")

_NAN = float("nan")
_merged_book = partial(tuple.__new__, MergedBook)
_LIVE = int(VenueStatus.LIVE)
_STALE = int(VenueStatus.STALE)
_OUTLIER = int(VenueStatus.OUTLIER)
_UNKNOWN = int(VenueStatus.UNKNOWN)
#: Default of the cross-venue sanity rule (see module doc): 10% from the others' median mid.
MAX_DEVIATION = 0.10
_by_price = attrgetter("price")
_by_amount = attrgetter("amount")
#: One venue's side as a merge input: ``(venue name, levels best first)``.
Run = tuple[str, Side]
#: merge_side_py's last side per venue name: (name, level type) -> (side, its levels).
_levelled: dict[tuple[str, type], tuple[Side, list[MergedLevel]]] = {}
_new_level = partial(tuple.__new__, MergedLevel)


def merge_side_py(
    runs: Sequence[Run], depth: int, descending: bool, level_type: type[MergedLevel] = MergedLevel
) -> tuple[MergedLevel, ...]:
    """The best ``depth`` levels across ``runs`` (pure Python; see module doc).

    ``runs`` are in venue-name order, each side sorted best first with
    distinct prices (what a :class:`VenueBook` holds). Order: price
    (descending if ``descending``), then larger amount, then earlier run.
    """
    levels: list[MergedLevel] = []
    level = _new_level if level_type is MergedLevel else partial(tuple.__new__, level_type)
    for name, side in runs:
        # A venue's side is levelled once, when it arrives: the runs that did
        # not change reuse the levels of their last side (the very object).
        hit = _levelled.get((name, level_type))
        if hit is None or hit[0] is not side:
            hit = _levelled[name, level_type] = (side, [level((name, p, a)) for p, a in side])
        levels += hit[1]
    levels.sort(key=_by_amount, reverse=True)
    levels.sort(key=_by_price, reverse=descending)
    return tuple(levels[:depth])


#: The merge the aggregator runs: the C speedups' ``merge_side`` (same
#: contract) when built, else :func:`merge_side_py`.
merge_side: Callable[[Sequence[Run], int, bool, type[MergedLevel]], tuple[MergedLevel, ...]] = (
    speedups.merge_side if speedups is not None else merge_side_py
)

#: The statuses the aggregator writes itself: (live, stale, outlier, unknown).
STATUS_CODES = (_LIVE, _STALE, _OUTLIER, _UNKNOWN)


def venue_states_py(
    state_type: type[VenueState],
    names: Sequence[str],
    books: Sequence[VenueBook | None],
    healths: Sequence[Health | None],
    members: int,
    now: int,
    codes: tuple[int, int, int, int] = STATUS_CODES,
) -> tuple[VenueState, ...]:
    """Every venue's state in an update, in name order (pure Python; the C twin is ``venue_states``).

    ``names``, ``books`` (``None``: withdrawn) and ``healths`` (``None``: no
    record, the book counts as fresh) hold one item per venue, by rank;
    ``members`` has bit ``r`` set for a venue in the merge and bit
    ``len(names) + r`` for one the sanity rule flags. A live venue out of the
    merge with a book and no flag is past its limit (``STALE``: the watchdog
    withdraws it next); a flagged one is ``OUTLIER``. A book's ``recv_ns`` and
    ``seq`` are read by index (``[3]``, ``[5]``), as the C twin reads them.
    """
    if not (isinstance(state_type, type) and issubclass(state_type, tuple)):
        raise TypeError("state_type must be a tuple subclass")
    if not isinstance(codes, tuple) or len(codes) != 4:
        raise TypeError("codes must be a (live, stale, outlier, unknown) tuple")
    live, stale, outlier, unknown = codes
    names, books, healths = tuple(names), tuple(books), tuple(healths)
    count = len(names)
    if len(books) != count or len(healths) != count:
        raise ValueError("names, books and healths must have one item per venue")
    states = []
    for rank in range(count):
        in_merge = bool(members >> rank & 1)
        flagged = bool(members >> (count + rank) & 1)
        book = books[rank]
        health = healths[rank]
        if health is None:
            data_ns = book[3] if book is not None else 0
            status = live if book is not None else unknown
        else:
            data_ns = health.data_ns
            status = health.status  # an IntEnum: an int on the wire
            if status == live and not in_merge and book is not None and not flagged:
                status = stale
        if flagged:
            status = outlier
        age = now - data_ns if data_ns else 0
        seq = book[5] if book is not None else 0
        states.append(tuple.__new__(state_type, (names[rank], in_merge, status, data_ns, age, seq)))
    return tuple(states)


#: The venues' states: the C speedups' ``venue_states`` when built (it returns ``None``
#: where :func:`venue_states_py` must decide: more than 32 venues, say), else the twin.
venue_states: Callable[..., tuple[VenueState, ...] | None] = (
    speedups.venue_states if speedups is not None else venue_states_py
)


class BaseAggregator(Generic[V]):
    """Consume venue books from a :class:`SlotQueue`, publish a view of them to sinks.

    What every aggregator kind shares: the venues' slots, which books may be
    published (module doc: a venue whose slot is withdrawn leaves at once and
    re-enters with its next fresh book; so does one whose freshness has run
    out, or that the sanity rule leaves out), the venues' states, and the
    sinks. A kind (:class:`Aggregator` for the merged book,
    :class:`~dragonfly.core.bbo.BboAggregator`,
    :class:`~dragonfly.core.liquidity_agg.LiquidityAggregator`) says in
    ``_view`` what it makes of the runs of the venues in the merge, and
    returns ``None`` when nothing it publishes changed.
    """

    #: The kind's name in a topology (``book``, ``bbo``, ``liquidity``).
    kind: ClassVar[str] = ""
    #: Whether it reads its venues' books on demand when it recomputes, as
    #: deep as its ``depth``, rather than what each listener forwards
    #: (:mod:`dragonfly.core.tee`): a kind that recomputes seldom and reads deep.
    on_demand: ClassVar[bool] = False

    __slots__ = (
        "_ask_runs",
        "_bid_runs",
        "_books",
        "_empty_runs",
        "_flags",
        "_health",
        "_held",
        "_last_members",
        "_mids",
        "_names",
        "_next_at",
        "_outlier_log",
        "_rank",
        "_sequence",
        "_sink_errors",
        "_sinks",
        "_timer",
        "_watched",
        "depth",
        "instrument",
        "last",
        "max_deviation",
        "min_interval",
        "producers",
        "queue",
        "timing",
    )

    def __init__(
        self,
        instrument: str,
        venues: Sequence[str],
        depth: int = 10,
        *,
        max_deviation: float = MAX_DEVIATION,
        deferred: bool = False,
        min_interval: float = 0.0,
    ) -> None:
        check_depth(depth)
        if not 0.0 <= min_interval <= 60.0:
            raise ValueError(f"min_interval must be from 0 to 60 seconds, got {min_interval!r}")
        if not max_deviation >= 0:
            raise ValueError(f"max_deviation must be >= 0 (0: off), got {max_deviation!r}")
        self.instrument = instrument
        self.depth = depth
        #: The sanity rule's bound, a fraction (0.1 = 10%); 0 turns the rule off.
        self.max_deviation = max_deviation
        # deferred: once per event-loop iteration, conflating bursts of every socket (one hop).
        # min_interval: at most one recompute per that many seconds (see _paced).
        self.min_interval = min_interval
        self._next_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        on_ready = self._paced if min_interval > 0 else self.recompute
        self.queue: SlotQueue[VenueBook] = SlotQueue(on_ready, deferred=deferred)
        #: The producer handle of each venue's slot, for its feed listener.
        self.producers = {name: self.queue.producer(name) for name in venues}
        # The merge's runs in venue-name order (the order that breaks ties);
        # _rank[slot] is a slot's place among them.
        order = sorted(range(len(venues)), key=lambda slot: venues[slot])
        self._rank = [order.index(slot) for slot in range(len(venues))]
        self._names = [venues[slot] for slot in order]
        # Per rank, the run of a venue out of the merge (one object for both sides).
        self._empty_runs: list[Run] = [(venues[slot], ()) for slot in order]
        self._bid_runs: list[Run] = list(self._empty_runs)
        self._ask_runs: list[Run] = list(self._empty_runs)
        # Per rank: the venue's last book (None: withdrawn), its mid (None:
        # no book or a side empty) and its health record (None: none
        # registered, the book counts as fresh). Bit masks by rank: the
        # venues holding a book, and those the sanity rule flags.
        self._books: list[VenueBook | None] = [None] * len(venues)
        self._mids: list[float | None] = [None] * len(venues)
        self._health: list[Health | None] = [None] * len(venues)
        self._watched: list[tuple[int, Health]] = []
        self._held = 0
        self._flags = 0
        self._sinks: list[Callable[[V], None]] = []
        self._last_members = 0
        self._sequence = 0
        log = logging.getLogger("dragonfly.aggregator")
        self._sink_errors = RateLimitedLog(log)
        self._outlier_log = RateLimitedLog(log, interval=30.0)
        #: The last view published, or ``None``.
        self.last: V | None = None
        #: Tick-to-queue of every view published, when metrics are on (``None``: not observed).
        self.timing: Histogram | None = None

    def watch(self, venue: str, health: Health) -> None:
        """Read ``venue``'s freshness and status from ``health`` (its listener's record)."""
        rank = self._names.index(venue)
        self._health[rank] = health
        self._watched = [(r, h) for r, h in enumerate(self._health) if h is not None]

    def read_with(self, venue: str, reader: Callable[[int], VenueBook | None]) -> None:
        """Read ``venue``'s book with ``reader(depth)`` when it changed: only a kind that reads on demand."""
        raise TypeError(f"a {self.kind or type(self).__name__} view reads what its listeners forward")

    def add_sink(self, sink: Callable[[V], None]) -> None:
        """Call ``sink`` with every view published from now on."""
        self._sinks.append(sink)

    def remove_sink(self, sink: Callable[[V], None]) -> None:
        """Stop calling ``sink``."""
        self._sinks.remove(sink)

    @property
    def sinks(self) -> int:
        """Return how many sinks are attached."""
        return len(self._sinks)

    @property
    def sequence(self) -> int:
        """Views published since it was made (never reset: a view's ``sequence`` only grows)."""
        return self._sequence

    @property
    def venue_names(self) -> tuple[str, ...]:
        """The venues read, in name order (the order of the runs and of ``venues`` in a view)."""
        return tuple(self._names)

    def reset(self) -> None:
        """Forget every venue's book and the last view (the aggregator was detached).

        Attached again, it starts from the books its inputs hand it then, so
        nothing a venue withdrew while it was detached is published.
        """
        queue = self.queue
        for producer in self.producers.values():
            queue._items[producer.slot] = None
        queue._dirty.clear()
        for rank in range(len(self._names)):
            self._bid_runs[rank] = self._ask_runs[rank] = self._empty_runs[rank]
            self._books[rank] = None
            self._mids[rank] = None
        self._held = 0
        self._flags = 0
        self._last_members = 0
        self.last = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        queue.held = False
        self._reset_view()

    def _reset_view(self) -> None:
        """Forget what the kind compares the next view with."""

    def _paced(self) -> None:
        """Recompute now, or once ``min_interval`` after the last recompute, books conflating meanwhile.

        A withdrawn book is never held back: a venue that left is out of
        the next view at once, whatever the pace.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        queue = self.queue
        withdrawn = any(queue._items[slot] is None for slot in queue._dirty)
        if now >= self._next_at or withdrawn:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                queue.held = False
            self._next_at = now + self.min_interval
            self.recompute()
        elif self._timer is None:
            self._timer = loop.call_at(self._next_at, self._paced_fire)
            # Until it fires, a change need not wake this (SlotQueue.held).
            queue.held = True

    def _paced_fire(self) -> None:
        self._timer = None
        self.queue.held = False
        if self.queue._dirty:
            self._next_at = asyncio.get_running_loop().time() + self.min_interval
            self.recompute()

    def refresh(self) -> None:
        """Recompute and publish now, even if nothing changed (a view asked for on demand)."""
        self._last_members = -1
        self.recompute()

    def recompute(self) -> None:
        """Fold the changed venue slots into the merge; publish if the top N, members or a status changed."""
        recv_ns = 0
        source: VenueBook | None = None
        bid_runs = self._bid_runs
        ask_runs = self._ask_runs
        books = self._books
        mids = self._mids
        ranks = self._rank
        held = self._held
        queue = self.queue
        items = queue._items
        dirty = queue._dirty
        # The slots are read in place and then marked clean (SlotQueue.drain
        # without its list): nothing below runs code that could put to them.
        # A book is read by index, as venue_states reads it (no descriptor call).
        for slot in dirty:
            rank = ranks[slot]
            book = items[slot]
            books[rank] = book
            if book is None:
                bid_runs[rank] = ask_runs[rank] = self._empty_runs[rank]
                mids[rank] = None
                held &= ~(1 << rank)
                # Published even when the venue was out already (stale, now
                # reconnecting): its new status is news to subscribers once
                # they have had a view (before, the first book says it all).
                if self.last is not None:
                    self._last_members = -1
                continue
            if book[3] > recv_ns:
                recv_ns = book[3]
                source = book
            best_bids = book[1]
            best_asks = book[2]
            name = self._names[rank]
            bid_runs[rank] = (name, best_bids)
            ask_runs[rank] = (name, best_asks)
            mids[rank] = (best_bids[0][0] + best_asks[0][0]) * 0.5 if best_bids and best_asks else None
            held |= 1 << rank
        dirty.clear()
        self._held = held
        now = time.time_ns()
        # Bit masks by rank: the books left out (too old, or the sanity rule's).
        excluded = 0
        for rank, health in self._watched:
            if now - health.data_ns > health.stale_after_ns:
                excluded |= 1 << rank
        excluded &= self._held
        if self.max_deviation:
            excluded = self._sanity(excluded)
        members = (self._held & ~excluded) | self._flags << len(books)
        if excluded:
            # The rare path: merge without the books that may not be published.
            bid_runs = [(run[0], ()) if excluded >> r & 1 else run for r, run in enumerate(bid_runs)]
            ask_runs = [(run[0], ()) if excluded >> r & 1 else run for r, run in enumerate(ask_runs)]
        view = self._view(bid_runs, ask_runs, members, now, recv_ns, source)
        if view is None:
            return
        self.last = view
        timing = self.timing
        if timing is not None:
            timing.observe_ns(now - (recv_ns or now))
        for sink in self._sinks:
            try:
                sink(view)
            except Exception:  # a consumer's bug must not stop the feeds
                self._sink_errors.warning("%s sink %r failed", self.kind, sink, exc_info=True)

    def _view(
        self,
        bid_runs: list[Run],
        ask_runs: list[Run],
        members: int,
        now: int,
        recv_ns: int,
        source: VenueBook | None,
    ) -> V | None:
        """The kind's view of the runs in the merge, or ``None`` when it did not change."""
        raise NotImplementedError

    def _sanity(self, excluded: int) -> int:
        """Flag venues whose mid is far from the others' (module doc); return the exclusions mask."""
        mids = self._mids
        if not excluded:
            # The common case, in C calls only: every mid is within the bound
            # of any reference between the lowest and the highest.
            # (Every venue has a mid, the usual case: no list built.)
            values = cast(list[float], mids) if None not in mids else [m for m in mids if m is not None]
            if len(values) < 2:
                self._flags = 0
                return excluded
            low = min(values)
            if max(values) - low <= self.max_deviation * low:
                self._flags = 0
                return excluded
        live = [(r, m) for r, m in enumerate(mids) if m is not None and not excluded >> r & 1]
        bound = self.max_deviation
        if len(live) < 2:
            self._flags = 0
            return excluded
        ref = statistics.median(m for _, m in live)
        flags = 0
        offs: dict[int, float] = {}
        for rank, mid in live:
            off = abs(mid - ref) / ref if ref > 0 else 0.0
            if off > bound:
                flags |= 1 << rank
                offs[rank] = off
        # Left out only when two venues at least agree on the price (unflagged).
        majority = len(live) - len(offs) >= 2
        for rank, off in offs.items():
            if majority:
                excluded |= 1 << rank
            if not self._flags >> rank & 1:
                self._outlier_log.warning(
                    "%s: %s's mid %.10g is %.1f%% from the venues' median %.10g: %s",
                    self.instrument,
                    self._names[rank],
                    mids[rank],
                    off * 100,
                    ref,
                    "left out of the merge" if majority else "flagged (no majority says which is wrong)",
                )
        self._flags = flags
        return excluded

    def _states(self, now: int, members: int) -> tuple[VenueState, ...]:
        """Every venue's state in this update, in name order (:func:`venue_states_py`)."""
        args = (VenueState, self._names, self._books, self._health, members, now, STATUS_CODES)
        states = venue_states(*args)
        return states if states is not None else venue_states_py(*args)


class Aggregator(BaseAggregator[MergedBook]):
    """The merged top N across venues (the ``book`` kind).

    A merged book is published when its top N differs from the last one
    published, or when a venue entered or left the merge.
    """

    kind = "book"
    __slots__ = ("_last_asks", "_last_bids")

    def __init__(
        self,
        instrument: str,
        venues: Sequence[str],
        depth: int = 10,
        *,
        max_deviation: float = MAX_DEVIATION,
        min_interval: float = 0.0,
    ) -> None:
        super().__init__(instrument, venues, depth, max_deviation=max_deviation, min_interval=min_interval)
        self._last_bids: tuple[MergedLevel, ...] = ()
        self._last_asks: tuple[MergedLevel, ...] = ()

    def _reset_view(self) -> None:
        self._last_bids = ()
        self._last_asks = ()

    def _view(
        self,
        bid_runs: list[Run],
        ask_runs: list[Run],
        members: int,
        now: int,
        recv_ns: int,
        source: VenueBook | None,
    ) -> MergedBook | None:
        """The merged top N, or ``None`` when neither it nor the members changed (the book kind)."""
        depth = self.depth
        bids = merge_side(bid_runs, depth, True, MergedLevel)
        asks = merge_side(ask_runs, depth, False, MergedLevel)
        if bids == self._last_bids and asks == self._last_asks and members == self._last_members:
            return None
        self._last_bids = bids
        self._last_asks = asks
        self._last_members = members
        self._sequence += 1
        spread = asks[0][1] - bids[0][1] if bids and asks else _NAN
        return _merged_book(
            (
                self.instrument,
                spread,
                bids,
                asks,
                self._sequence,
                recv_ns or now,
                now,
                source.venue if source is not None else "",
                source.frame if source is not None else 0,
                self._states(now, members),
            )
        )
