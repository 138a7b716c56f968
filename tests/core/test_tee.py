"""BookTee: one listener output, many aggregators, each told only what changes its view."""

from __future__ import annotations

import pytest

from dragonfly.core.slots import SlotQueue
from dragonfly.core.tee import BookTee
from dragonfly.core.types import VenueBook


def counted(ran: dict[str, int], key: str) -> SlotQueue[VenueBook]:
    """A queue whose consumer drains it and counts its runs."""

    def run() -> None:
        ran[key] += 1
        queue.drain()

    queue: SlotQueue[VenueBook] = SlotQueue(run)
    return queue


def book(bids: list[tuple[float, float]], asks: list[tuple[float, float]], seq: int) -> VenueBook:
    return VenueBook("v", tuple(bids), tuple(asks), seq, seq, seq)


def test_a_shallow_output_hears_only_of_changes_in_its_own_top_levels() -> None:
    ran = {"deep": 0, "top1": 0}
    deep = counted(ran, "deep")
    top1 = counted(ran, "top1")
    tee = BookTee()
    tee.attach(deep.producer("v"))
    tee.attach(top1.producer("v"), 1)
    first = book([(10, 1), (9, 1)], [(11, 1), (12, 1)], 1)
    tee.put(first)
    tee.end_burst()
    assert ran == {"deep": 1, "top1": 1}
    deeper = book([(10, 1), (9, 5)], [(11, 1), (12, 1)], 2)  # only level 2 changed
    tee.put(deeper)
    tee.end_burst()
    assert ran == {"deep": 2, "top1": 1}
    assert deep.peek(0) is deeper and top1.peek(0) is first
    best = book([(10, 2), (9, 5)], [(11, 1), (12, 1)], 3)  # the best bid's amount changed
    tee.put(best)
    tee.end_burst()
    assert ran == {"deep": 3, "top1": 2} and top1.peek(0) is best
    tee.withdraw()  # every output hears of a withdrawal, and the next book is news again
    assert ran == {"deep": 4, "top1": 3}
    tee.put(best)
    tee.end_burst()
    assert ran == {"deep": 5, "top1": 4}


def test_attach_hands_over_the_newest_book_and_detach_stops_the_feed() -> None:
    ran = {"n": 0}
    queue = counted(ran, "n")
    tee = BookTee()
    newest = book([(10, 1)], [(11, 1)], 1)
    tee.put(newest)
    out = queue.producer("v")
    tee.attach(out, 1)
    assert ran["n"] == 1 and queue.peek(0) is newest and len(tee) == 1
    tee.put(book([(10, 1)], [(11, 1)], 2))  # same top 1: nothing new for it
    tee.end_burst()
    assert ran["n"] == 1
    tee.detach(out)
    tee.put(book([(10, 3)], [(11, 1)], 3))
    tee.end_burst()
    assert ran["n"] == 1 and len(tee) == 0 and tee.puts == 3


def test_an_output_read_on_demand_hears_of_every_change_and_reads_the_book_itself() -> None:
    ran = {"eager": 0, "lazy": 0}
    eager = counted(ran, "eager")
    lazy = counted(ran, "lazy")
    tee = BookTee()
    tee.attach(eager.producer("v"), 1)
    with pytest.raises(ValueError, match="depth"):
        tee.attach(SlotQueue[VenueBook](lambda: None).producer("w"), 0, on_demand=True)
    out = lazy.producer("v")
    tee.attach(out, 3, on_demand=True)
    assert tee.deep == 3
    first = book([(10, 1), (9, 1), (8, 1), (7, 1)], [(11, 1)], 1)
    tee.put(first)
    tee.end_burst()
    assert ran == {"eager": 1, "lazy": 1}
    # Without a reader, what was forwarded is all there is: read to the depth asked.
    read = tee.read(2)
    assert read is not None and read.bids == ((10, 1), (9, 1)) and read.seq == 1
    assert tee.read(5) is first
    # A change below what the listener forwards: the on-demand output only.
    deep = book([(10, 1), (9, 1), (8, 1), (7, 1)], [(11, 1)], 2)
    tee.put_deep(deep)
    tee.end_burst()
    assert ran == {"eager": 1, "lazy": 2} and lazy.peek(0) is deep and tee.latest is deep
    # A reader (the listener's book) answers for the levels it forwards not.
    asked: list[int] = []

    def reader(depth: int) -> VenueBook:
        asked.append(depth)
        return book([(10.0, 1.0), (9.0, 1.0), (8.0, 2.0)][:depth], [(11.0, 1.0)], 3)

    tee.reader = reader
    read = tee.read(3)
    assert read is not None and read.bids == ((10, 1), (9, 1), (8, 2)) and asked == [3]
    tee.withdraw()  # withdrawn: nothing to read, whatever the reader says
    assert tee.read(3) is None and asked == [3] and lazy.peek(0) is None
    tee.detach(out)
    assert tee.deep == 0
    tee.put_deep(deep)
    tee.end_burst()
    assert ran == {"eager": 2, "lazy": 3}  # the withdrawal only
