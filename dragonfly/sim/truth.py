"""What each venue's book really was: a bounded record of its states, keyed by the venue's position.

A feed client (the engine) shows a venue's book together with the venue's
own position of it (``VenueState.seq`` on the wire): Binance's update id
(``lastUpdateId`` of a ``depth20`` frame or a REST snapshot, ``u`` of a diff
event), Bitstamp's ``microtimestamp`` (``order_book`` and ``diff_order_book``
frames, REST snapshots). Every one of those frames is printed from the book
as it stands, and the book changes only in a market step, so each position a
client can show is one state the book had between two steps. The record
keeps, per venue and instrument, every such state: its top levels as floats
(equal, bit for bit, to parsing the venue's decimal text, as a client does),
the wall time (``time.time_ns``) of the step that made it the venue's book,
and that of the step that replaced it. With it, any book a client publishes
can be checked: is it what the venue's book was at the position it names,
and how long before had that stopped being true.

The record is off unless asked for (``Simulator(truth_s=...)``), and bounded:
states that stopped being current more than ``keep_s`` ago are dropped.
Level tuples are shared between consecutive states, so a state costs about
two small tuples of references.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from dragonfly.sim.book import FloatLevel, SimBook, UnitLevel

if TYPE_CHECKING:
    from dragonfly.sim.market import SyntheticMarket

#: A venue's position of a book, as its frames carry it: book -> seq.
SeqOf = Callable[[SimBook], int]
#: Levels per side kept for each state (the engine's deepest top N on a
#: Binance ``depth20`` frame is 20).
DEFAULT_DEPTH = 20
#: Seconds a replaced state is kept.
DEFAULT_KEEP_S = 120.0


class TruthState:
    """One state of one venue's book: the top levels and when it was the venue's book.

    Attributes:
        seq: the venue's position of this state (what its frames carry).
        update_id: the book's update id (equal to ``seq`` on Binance).
        bids: the best bids, best first, ``(price, amount)`` floats.
        asks: the best asks, best first.
        valid_from_ns: wall time of the market step that made this the book.
        valid_until_ns: wall time of the step that replaced it; ``None`` while current.
        index: the state's ordinal in its book's record (consecutive, from 0).
    """

    __slots__ = ("asks", "bids", "index", "seq", "update_id", "valid_from_ns", "valid_until_ns")

    def __init__(self, seq: int, update_id: int, bids: tuple[FloatLevel, ...], asks: tuple[FloatLevel, ...],
                 valid_from_ns: int, index: int) -> None:
        """Build a current state (``valid_until_ns`` is set when a step replaces it)."""
        self.seq = seq
        self.update_id = update_id
        self.bids = bids
        self.asks = asks
        self.valid_from_ns = valid_from_ns
        self.valid_until_ns: int | None = None
        self.index = index

    def __repr__(self) -> str:
        """Show the position, validity and the touch."""
        bid = self.bids[0] if self.bids else None
        ask = self.asks[0] if self.asks else None
        return (f"<TruthState seq={self.seq} from={self.valid_from_ns} until={self.valid_until_ns} "
                f"bid={bid} ask={ask}>")

    def top(self, depth: int) -> tuple[tuple[FloatLevel, ...], tuple[FloatLevel, ...]]:
        """Return the best ``depth`` levels of each side."""
        return self.bids[:depth], self.asks[:depth]


class BookTruth:
    """The states of one venue's book of one instrument, oldest first (see module doc)."""

    def __init__(self, depth: int) -> None:
        """Start empty; keep ``depth`` levels a side per state."""
        self.depth = depth
        # States oldest first; _states[_first:] are the ones kept (evicting
        # from the front by an offset keeps appends and lookups O(1)).
        self._states: list[TruthState] = []
        self._first = 0
        self._by_seq: dict[int, TruthState] = {}
        self._update_id = -1
        # Float levels by unit level: consecutive states share their tuples.
        self._floats: dict[UnitLevel, FloatLevel] = {}
        #: States recorded since the start (evicted ones included).
        self.recorded = 0

    def __len__(self) -> int:
        """Return how many states are kept."""
        return len(self._states) - self._first

    def __iter__(self) -> Iterator[TruthState]:
        """Iterate over the kept states, oldest first."""
        return iter(self._states[self._first:])

    @property
    def current(self) -> TruthState | None:
        """Return the book's current state, or None before the first."""
        return self._states[-1] if len(self) else None

    def observe(self, book: SimBook, seq: int, now_ns: int) -> bool:
        """Record ``book``'s state if it changed since the last call; return whether it did."""
        if book.update_id == self._update_id:
            return False
        self._update_id = book.update_id
        bids, asks = book.sorted_levels()
        depth = self.depth
        old = self._floats
        fresh: dict[UnitLevel, FloatLevel] = {}
        top_bids = self._floats_of(book, bids[:depth], old, fresh)
        top_asks = self._floats_of(book, asks[:depth], old, fresh)
        self._floats = fresh
        last = self.current
        if last is not None:
            last.valid_until_ns = now_ns
        state = TruthState(seq, book.update_id, top_bids, top_asks, now_ns, self.recorded)
        self.recorded += 1
        self._states.append(state)
        # A position shown twice (a clock that did not move) names the newest state.
        self._by_seq[seq] = state
        return True

    @staticmethod
    def _floats_of(book: SimBook, levels: list[UnitLevel], old: dict[UnitLevel, FloatLevel],
                   fresh: dict[UnitLevel, FloatLevel]) -> tuple[FloatLevel, ...]:
        out = []
        for level in levels:
            value = old.get(level)
            if value is None:
                # float_side divides int by int: correctly rounded, as float() of the text.
                value = book.float_side([level])[0]
            fresh[level] = value
            out.append(value)
        return tuple(out)

    def evict(self, cutoff_ns: int) -> int:
        """Drop the states replaced before ``cutoff_ns``; return how many."""
        states = self._states
        first = self._first
        end = len(states) - 1  # the current state is always kept
        while first < end:
            until = states[first].valid_until_ns
            if until is None or until >= cutoff_ns:
                break
            state = states[first]
            if self._by_seq.get(state.seq) is state:
                del self._by_seq[state.seq]
            first += 1
        dropped = first - self._first
        self._first = first
        if first > 1024 and first * 2 > len(states):
            del states[:first]
            self._first = 0
        return dropped

    def state(self, seq: int) -> TruthState | None:
        """Return the state the venue showed at position ``seq``, or None if not kept."""
        return self._by_seq.get(seq)

    def after(self, state: TruthState) -> Iterator[TruthState]:
        """Iterate over the kept states newer than ``state``, oldest first."""
        states = self._states
        if not len(self):
            return
        start = self._first + state.index - states[self._first].index + 1
        for position in range(max(start, self._first), len(states)):
            yield states[position]

    def top_until(self, state: TruthState, depth: int) -> int | None:
        """Return when ``state``'s top ``depth`` levels stopped being the book's; None if they still are.

        A later step may change only deeper levels: the top a client shows
        is then still true, so this is the start of the first later state
        whose top ``depth`` differs, not ``state.valid_until_ns``.
        """
        bids, asks = state.top(depth)
        for later in self.after(state):
            if later.bids[:depth] != bids or later.asks[:depth] != asks:
                return later.valid_from_ns
        return None


class TruthRecord:
    """Every venue book's states for a market, bounded in time (see module doc)."""

    def __init__(self, seq_of: Mapping[str, SeqOf], *, keep_s: float = DEFAULT_KEEP_S,
                 depth: int = DEFAULT_DEPTH, clock_ns: Callable[[], int] = time.time_ns) -> None:
        """Record the venues of ``seq_of`` (venue -> its position of a book), ``depth`` levels a side."""
        if not keep_s > 0:
            raise ValueError(f"keep_s must be positive, got {keep_s!r}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth!r}")
        self.seq_of = dict(seq_of)
        self.keep_ns = round(keep_s * 1e9)
        self.depth = depth
        self._clock_ns = clock_ns
        self._books: dict[tuple[str, str], BookTruth] = {}

    def attach(self, market: SyntheticMarket) -> None:
        """Record ``market``'s current books now, and every change its steps make from now on."""
        for venue in self.seq_of:
            if venue not in market.venues:
                raise ValueError(f"venue {venue!r} is not in the market")
        self.observe(market, self._clock_ns())
        market.observers.append(lambda now_ns: self.observe(market, now_ns))

    def observe(self, market: SyntheticMarket, now_ns: int) -> None:
        """Record every book that changed since the last call, as of ``now_ns``; drop old states."""
        cutoff = now_ns - self.keep_ns
        for instrument in market.instruments:
            for venue, seq_of in self.seq_of.items():
                book = market.book(venue, instrument)
                truth = self._books.get((venue, instrument))
                if truth is None:
                    truth = self._books[venue, instrument] = BookTruth(self.depth)
                truth.observe(book, seq_of(book), now_ns)
                truth.evict(cutoff)

    def book(self, venue: str, instrument: str) -> BookTruth:
        """Return the record of ``venue``'s book of ``instrument``; KeyError if not recorded."""
        return self._books[venue, instrument.lower()]

    def state(self, venue: str, instrument: str, seq: int) -> TruthState | None:
        """Return the state ``venue`` showed of ``instrument`` at position ``seq``, or None."""
        truth = self._books.get((venue, instrument.lower()))
        return None if truth is None else truth.state(seq)

    def __len__(self) -> int:
        """Return how many states are kept, all books together."""
        return sum(len(truth) for truth in self._books.values())
