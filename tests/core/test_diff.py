"""The shared diff-book machinery: publishing only what moves the top N."""

from __future__ import annotations

from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.diff import Delta, DiffChannel, DiffListener, Event, Snapshot
from dragonfly.core.slots import SlotProducer, SlotQueue
from dragonfly.core.tee import BookTee
from dragonfly.core.types import MergedBook, VenueBook

# The numeric book's apply and top-N read on their C twins and on Python.
pytestmark = pytest.mark.usefixtures("both_hot_paths")


class Control:
    def request_snapshot(self, symbol: str) -> None:
        raise AssertionError("no REST snapshot here")

    def resubscribe(self, symbol: str) -> None:
        self.resubscribed = symbol


def scripted(events: list[Event], numeric: bool = False) -> DiffChannel:
    """A channel whose decoder hands out ``events`` one per frame, whatever the frame.

    ``numeric``: the channel declares float levels, and the events' string
    levels are handed out as floats.
    """
    if numeric:
        events = [
            e._replace(
                bids=[(float(p), float(a)) for p, a in e.bids],
                asks=[(float(p), float(a)) for p, a in e.asks],
            )
            if isinstance(e, (Snapshot, Delta))
            else e
            for e in events
        ]
    queue = list(events)

    def decoder() -> object:
        return lambda payload: [queue.pop(0)]

    return DiffChannel(
        subscribe=lambda s: [],
        unsubscribe=lambda s: [],
        make_decoder=decoder,  # type: ignore[arg-type]
        continuity=True,
        numeric=numeric,
    )


def make(events: list[Event]) -> tuple[DiffListener, list[MergedBook]]:
    """A listener on a scripted channel, merged by an aggregator of depth 2."""
    channel = scripted(events)
    agg = Aggregator("x", ["v"], depth=2)
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    return DiffListener("v", channel, {"S": agg.producers["v"]}, 2, Control()), out


SNAP = Snapshot("S", [("10", "1"), ("9", "1"), ("8", "1")], [("11", "1"), ("12", "1"), ("13", "1")], 100)


def test_changes_beyond_the_top_n_publish_nothing() -> None:
    lst, out = make([SNAP, Delta("S", [("8", "5"), ("7", "1")], [("13", "0"), ("14", "2")], 101, 101)])
    lst.on_frame(b"", 1, True)
    assert len(out) == 1
    lst.on_frame(b"", 2, True)
    assert len(out) == 1  # 8/7 below the 2nd bid, 13/14 above the 2nd ask
    sync = lst.syms["S"]
    assert sync.book.top(4) == (
        ((10.0, 1.0), (9.0, 1.0), (8.0, 5.0), (7.0, 1.0)),
        ((11.0, 1.0), (12.0, 1.0), (14.0, 2.0)),
    )


def test_a_removed_top_level_lets_the_next_one_in() -> None:
    lst, out = make([SNAP, Delta("S", [("9", "0")], [], 101, 101), Delta("S", [], [("12", "3")], 102, 102)])
    for i in range(3):
        lst.on_frame(b"", i, True)
    assert [(lv.price, lv.amount) for lv in out[1].bids] == [(10.0, 1.0), (8.0, 1.0)]
    assert [(lv.price, lv.amount) for lv in out[2].asks] == [(11.0, 1.0), (12.0, 3.0)]


def test_a_gap_withdraws_and_asks_for_the_book_again() -> None:
    lst, out = make([SNAP, Delta("S", [("10", "2")], [], 105, 105)])
    lst.on_frame(b"", 1, True)
    lst.on_frame(b"", 2, True)
    assert out[-1].bids == () and lst.syms["S"].stats.gaps == 1
    assert lst.control.resubscribed == "S"  # type: ignore[attr-defined]


def test_an_overlapping_delta_is_a_gap_unless_it_follows_a_rest_snapshot() -> None:
    # 99..101 overlaps the in-band snapshot at 100: only the first delta after
    # a REST snapshot may (Binance's U <= lastUpdateId + 1 <= u).
    lst, out = make([SNAP, Delta("S", [("10", "2")], [], 99, 101)])
    lst.on_frame(b"", 1, True)
    lst.on_frame(b"", 2, True)
    assert out[-1].bids == () and lst.syms["S"].stats.gaps == 1
    lst, out = make([Delta("S", [("10", "2")], [], 99, 101)])
    lst.on_snapshot(SNAP)  # from REST
    lst.on_frame(b"", 1, True)
    sync = lst.syms["S"]
    assert sync.stats.gaps == 0 and sync.book.seq == 101
    assert [(lv.price, lv.amount) for lv in out[-1].bids] == [(10.0, 2.0), (9.0, 1.0)]


_bid_levels = st.lists(
    st.tuples(st.integers(1, 30).map(str), st.sampled_from(["0", "1", "2", "3.5"])), max_size=6
)
_ask_levels = st.lists(
    st.tuples(st.integers(31, 60).map(str), st.sampled_from(["0", "1", "2", "3.5"])), max_size=6
)


def as_output(tee: BookTee) -> SlotProducer[VenueBook]:
    """A tee as a listener's output (it speaks the SlotProducer protocol, as the hub casts it)."""
    return cast(SlotProducer[VenueBook], tee)


class Model:
    """A book kept by the test itself, float levels in dicts."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, event: Event) -> None:
        assert isinstance(event, (Snapshot, Delta))
        for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
            if isinstance(event, Snapshot):
                side.clear()
            for price, amount in levels:
                if float(amount):
                    side[float(price)] = float(amount)
                else:
                    side.pop(float(price), None)

    def top(self, depth: int) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        bids = tuple(sorted(self.bids.items(), reverse=True)[:depth])
        return bids, tuple(sorted(self.asks.items())[:depth])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5),
    _bid_levels,
    _ask_levels,
    st.lists(st.tuples(_bid_levels, _ask_levels), min_size=1, max_size=30),
    st.booleans(),
)
def test_the_published_top_n_is_always_the_books_top_n(
    depth: int,
    snap_bids: list[tuple[str, str]],
    snap_asks: list[tuple[str, str]],
    deltas: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]],
    numeric: bool,
) -> None:
    """Incremental top N (bounds, one-side re-reads) never publishes a stale side.

    Both kinds of channel: the venue's strings, and numeric (float levels).
    """
    events: list[Event] = [Snapshot("S", snap_bids, snap_asks, 0)]
    events += [Delta("S", b, a, i, i) for i, (b, a) in enumerate(deltas, 1)]
    slots: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    lst = DiffListener("v", scripted(events, numeric), {"S": slots.producer("S")}, depth, Control())
    model = Model()
    for event in events:
        model.apply(event)
        lst.on_frame(b"", 0, True)
        published = slots.peek(0)
        want = model.top(depth)
        if published is None:
            assert want == ((), ())
        else:
            assert (published.bids, published.asks) == want


def test_a_numeric_channel_cannot_have_a_checksum() -> None:
    with pytest.raises(ValueError, match="numeric channel"):
        DiffChannel(
            subscribe=lambda s: [],
            unsubscribe=lambda s: [],
            make_decoder=lambda: lambda payload: None,
            checksum=lambda book: 0,
            numeric=True,
        )


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 8),
    _bid_levels,
    _ask_levels,
    st.lists(st.tuples(_bid_levels, _ask_levels), min_size=1, max_size=30),
    st.booleans(),
)
def test_a_deep_reader_hears_of_every_change_and_reads_the_books_own_top(
    depth: int,
    deep: int,
    snap_bids: list[tuple[str, str]],
    snap_asks: list[tuple[str, str]],
    deltas: list[tuple[list[tuple[str, str]], list[tuple[str, str]]]],
    numeric: bool,
) -> None:
    """A view read on demand is told of every change, however deep, and reads the book as it is.

    The listener forwards ``depth`` levels; the on-demand output reads
    ``deep`` (deeper or not). The forwarded top never changes for a change
    below it, and the reader's sequence is the last delta's.
    """
    events: list[Event] = [Snapshot("S", snap_bids, snap_asks, 0)]
    events += [Delta("S", b, a, i, i) for i, (b, a) in enumerate(deltas, 1)]
    eager: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    lazy: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    tee = BookTee()
    tee.attach(eager.producer("v"))
    tee.attach(lazy.producer("v"), deep, on_demand=True)
    lst = DiffListener("v", scripted(events, numeric), {"S": as_output(tee)}, depth, Control())
    lst.set_deep(True)
    tee.reader = lst.reader("S")
    model = Model()
    for seq, event in enumerate(events):
        model.apply(event)
        eager.drain()
        lazy.drain()
        lst.on_frame(b"", 0, True)
        top = model.top(depth)
        want = model.top(deep)
        read = tee.read(deep)
        if read is None:  # never published: an empty book
            assert want == ((), ()) and lazy.peek(0) is None
            continue
        assert (read.bids, read.asks) == want and read.seq == seq
        assert isinstance(event, (Snapshot, Delta))
        if event.bids or event.asks:  # a change: the deep reader hears of it, told the change's sequence
            assert lazy._dirty == [0]
            told = lazy.peek(0)
            assert told is not None and told.seq == seq and (told.bids, told.asks) == top
        forwarded = eager.peek(0)
        assert forwarded is not None and (forwarded.bids, forwarded.asks) == top


def test_a_deep_change_is_forwarded_only_while_asked_for_and_only_to_a_tee() -> None:
    delta = Delta("S", [("7", "5")], [], 101, 101)  # below the top 2
    slots: SlotQueue[VenueBook] = SlotQueue(lambda: None)
    lst = DiffListener("v", scripted([SNAP, delta]), {"S": slots.producer("S")}, 2, Control())
    with pytest.raises(TypeError, match="put_deep"):
        lst.set_deep(True)
    ran = {"lazy": 0}
    lazy: SlotQueue[VenueBook] = SlotQueue(lambda: ran.__setitem__("lazy", ran["lazy"] + 1))
    tee = BookTee()
    tee.attach(lazy.producer("v"), 3, on_demand=True)
    for deep in (False, True):
        ran["lazy"] = 0
        lst = DiffListener("v", scripted([SNAP, delta]), {"S": as_output(tee)}, 2, Control())
        lst.set_deep(deep)
        tee.reader = lst.reader("S")
        assert tee.read(3) is None  # nothing published yet
        lst.on_frame(b"", 1, True)
        first = lazy.drain()[0][1]
        assert first is not None and first.seq == 100 and ran["lazy"] == 1
        lst.on_frame(b"", 2, True)
        if deep:
            told = lazy.drain()[0][1]
            assert ran["lazy"] == 2 and told is not None and told.seq == 101
            assert told.bids is first.bids and told.asks is first.asks  # the forwarded top, unchanged
        else:
            assert not lazy._dirty and ran["lazy"] == 1
        read = tee.read(3)
        assert read is not None and read.bids == ((10.0, 1.0), (9.0, 1.0), (8.0, 1.0)) and read.seq == 101
        lst.withdraw()
        assert tee.read(3) is None and lazy.drain() == [(0, None)]
