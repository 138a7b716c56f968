"""One venue book, many aggregators: the listener's output joint in a topology.

A listener (layer 3) forwards a venue's book of one instrument to a single
output with ``put``, ``withdraw`` and ``end_burst`` (the
:class:`~dragonfly.core.slots.SlotProducer` protocol). A :class:`BookTee` is
that output when several aggregators read the same book: it hands each item
to the slot every attached aggregator gave it, so a frame is decoded once
however many aggregators read it, and it keeps the newest item so that an
aggregator attached later (a view a client asked for) starts from the
venue's current book at once, and a venue's book can be read on demand.

Aggregators attach and detach at any time (single-threaded, in the loop):
an aggregator nobody reads is detached and costs nothing per frame. The
tuple of outputs is rebuilt on change (rare) so ``put`` iterates a tuple
that nothing mutates under it.

Reading deep on demand: an output attached with ``on_demand=True`` (the
``liquidity`` view, which recomputes at most every 50 ms) is told of every
change to the book, its deep levels included (:meth:`BookTee.put` and
:meth:`BookTee.put_deep`), but reads the levels it needs itself, with
:meth:`BookTee.read`, when it recomputes. So the listener forwards per frame
only what the views that recompute on every change read (the merged
book's top 10, the BBO's best level), not the 50 or 100 levels of the
deepest view: in a py-spy profile of six venues x 20 instruments at 20k
frames/s (``python -m latency.scale``, scenario b, the hub saturated) the
listeners' top-N reads and compares went from ~20% of the samples (50 levels
a frame) to ~8% (10 levels, and the deep reads ~3.5%).
"""

from __future__ import annotations

from collections.abc import Callable

from dragonfly.core.slots import SlotProducer
from dragonfly.core.types import Side, VenueBook

#: The listener's reader of a book now: ``reader(depth)`` is the book as it would
#: forward it at that depth (``None``: not publishable now).
Reader = Callable[[int], VenueBook | None]


class BookTee:
    """Forward a listener's books to every attached slot producer; keep the newest.

    An output attached with a ``depth`` shallower than the books the listener
    forwards gets a book only when its top ``depth`` levels changed (or the
    book was withdrawn): a BBO view (depth 1) recomputes only when a venue's
    best changed, a top-10 merge only when the top 10 did, even while a deeper
    view reads 100 levels from the same listener. The skipped books were no
    news to it: its slot holds levels equal to theirs, and freshness is read
    from the listener's health record, not from the book.
    """

    __slots__ = ("_deep", "_depths", "_outs", "_shown", "latest", "puts", "reader")

    def __init__(self) -> None:
        self._outs: tuple[SlotProducer[VenueBook], ...] = ()
        # Per output, in step with _outs: its depth (0: every book) and the
        # (bids, asks) slices it was last given at that depth.
        self._depths: tuple[int, ...] = ()
        self._shown: list[tuple[Side, Side] | None] = []
        #: The newest book put, or ``None`` before the first and after a withdraw.
        self.latest: VenueBook | None = None
        #: Books put since creation (what a test counts to see a frame decoded once).
        self.puts = 0
        # The outputs attached on demand, and the levels each reads.
        self._deep: tuple[tuple[SlotProducer[VenueBook], int], ...] = ()
        #: How to read the book as it is now (set by a listener whose book holds
        #: more than it forwards); ``None``: what it forwards is all there is.
        self.reader: Reader | None = None

    def __len__(self) -> int:
        """Return how many slots are attached."""
        return len(self._outs)

    def attach(self, out: SlotProducer[VenueBook], depth: int = 0, *, on_demand: bool = False) -> None:
        """Add ``out`` (reading ``depth`` levels; 0: all) and hand it the newest book now.

        ``on_demand``: ``out`` is told of every change, however deep, and
        reads its ``depth`` levels with :meth:`read` (module doc).
        """
        if out in self._outs:
            raise ValueError("this slot is attached already")
        if on_demand and depth < 1:
            raise ValueError("an output read on demand needs its depth")
        self._outs = (*self._outs, out)
        self._depths = (*self._depths, 0 if on_demand else depth)
        if on_demand:
            self._deep = (*self._deep, (out, depth))
        latest = self.latest
        self._shown.append(
            None if latest is None or not depth or on_demand else (latest[1][:depth], latest[2][:depth])
        )
        if latest is not None:
            out.put(latest)
            out.end_burst()

    def detach(self, out: SlotProducer[VenueBook]) -> None:
        """Stop feeding ``out`` (its slot is left as it is)."""
        keep = [i for i, o in enumerate(self._outs) if o is not out]
        self._outs = tuple(self._outs[i] for i in keep)
        self._depths = tuple(self._depths[i] for i in keep)
        self._shown = [self._shown[i] for i in keep]
        self._deep = tuple(pair for pair in self._deep if pair[0] is not out)

    @property
    def deep(self) -> int:
        """The levels the outputs attached on demand read (0: none attached)."""
        return max((depth for _, depth in self._deep), default=0)

    def read(self, depth: int) -> VenueBook | None:
        """The book now, ``depth`` levels a side at most (``None``: none now).

        From the listener's book when it holds more than it forwards (its
        :attr:`reader`), else from the newest book forwarded.
        """
        latest = self.latest
        if latest is None:
            return None
        if self.reader is not None:
            return self.reader(depth)
        if len(latest[1]) <= depth and len(latest[2]) <= depth:
            return latest
        return latest._replace(bids=latest[1][:depth], asks=latest[2][:depth])

    # -- the SlotProducer protocol, on the hot path ---------------------------------

    def put(self, item: VenueBook) -> None:
        """Hand ``item`` to every attached slot whose top levels it changes (conflating)."""
        self.latest = item
        self.puts += 1
        shown = self._shown
        for i, depth in enumerate(self._depths):
            if depth:
                top = (item[1][:depth], item[2][:depth])
                if top == shown[i]:
                    continue
                shown[i] = top
            self._outs[i].put(item)

    def put_deep(self, item: VenueBook) -> None:
        """Hand ``item`` to the outputs read on demand only: only levels deeper than it holds changed.

        Its levels are those last put (the top the listener forwards did not
        change); its receipt time, frame count and sequence are the change's.
        """
        self.latest = item
        for out, _ in self._deep:
            out.put(item)

    def withdraw(self) -> None:
        """Empty every attached slot and wake their consumers now."""
        self.latest = None
        shown = self._shown
        for i in range(len(shown)):
            shown[i] = None
        for out in self._outs:
            out.withdraw()

    def end_burst(self) -> None:
        """Wake every attached consumer that has a dirty slot."""
        for out in self._outs:
            out.end_burst()
