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
"""

from __future__ import annotations

from typing import Generic, TypeVar

from dragonfly.core.slots import SlotProducer

T = TypeVar("T")


class BookTee(Generic[T]):
    """Forward a listener's items to every attached slot producer; keep the newest."""

    __slots__ = ("_outs", "latest", "puts")

    def __init__(self) -> None:
        self._outs: tuple[SlotProducer[T], ...] = ()
        #: The newest item put, or ``None`` before the first and after a withdraw.
        self.latest: T | None = None
        #: Items put since creation (what a test counts to see a frame decoded once).
        self.puts = 0

    def __len__(self) -> int:
        """Return how many slots are attached."""
        return len(self._outs)

    def attach(self, out: SlotProducer[T]) -> None:
        """Add ``out`` and hand it the newest item now (its consumer runs if it got one)."""
        if out in self._outs:
            raise ValueError("this slot is attached already")
        self._outs = (*self._outs, out)
        if self.latest is not None:
            out.put(self.latest)
            out.end_burst()

    def detach(self, out: SlotProducer[T]) -> None:
        """Stop feeding ``out`` (its slot is left as it is)."""
        self._outs = tuple(o for o in self._outs if o is not out)

    # -- the SlotProducer protocol, on the hot path ---------------------------------

    def put(self, item: T) -> None:
        """Replace every attached slot with ``item`` (conflating)."""
        self.latest = item
        self.puts += 1
        for out in self._outs:
            out.put(item)

    def withdraw(self) -> None:
        """Empty every attached slot and wake their consumers now."""
        self.latest = None
        for out in self._outs:
            out.withdraw()

    def end_burst(self) -> None:
        """Wake every attached consumer that has a dirty slot."""
        for out in self._outs:
            out.end_burst()
