"""The liquidity aggregator reads its venues' books on demand, as deep as it reads, when it recomputes."""

from __future__ import annotations

import asyncio

import pytest

from dragonfly.core.liquidity_agg import LiquidityAggregator
from dragonfly.core.types import VenueBook


def book(venue: str, levels: int, seq: int) -> VenueBook:
    """``levels`` bids of 1 from 100 down and asks of 1 from 101 up."""
    bids = tuple((100.0 - i, 1.0) for i in range(levels))
    asks = tuple((101.0 + i, 1.0) for i in range(levels))
    return VenueBook(venue, bids, asks, seq, seq, seq)


def test_a_changed_venue_is_read_on_demand_as_deep_as_the_view_reads() -> None:
    agg = LiquidityAggregator("x", ["a", "b"], 20, bands=(10.0,), quantities=(15.0,), max_deviation=0.0)
    asked: list[int] = []
    deep: dict[str, VenueBook | None] = {"a": book("a", 30, 2)}

    def read_a(depth: int) -> VenueBook | None:
        asked.append(depth)
        found = deep["a"]
        return None if found is None else found._replace(bids=found.bids[:depth], asks=found.asks[:depth])

    agg.read_with("a", read_a)
    views: list[object] = []
    agg.add_sink(views.append)
    # The listeners forward two levels; a reads its own 20, b has no reader (what it forwards).
    agg.producers["a"].put(book("a", 2, 1))
    agg.producers["b"].put(book("b", 2, 1))
    agg.recompute()
    assert asked == [20]
    liq = agg.last
    assert liq is not None
    # Selling 15: 2 from b, 13 from a's levels read on demand (past the 2 forwarded).
    assert liq.sells[0].filled == 15.0 and liq.sells[0].complete
    assert {v.venue: v.amount for v in liq.sells[0].venues} == {"a": 13.0, "b": 2.0}
    assert [s.seq for s in liq.venues] == [2, 1]  # the read's own sequence
    # Only a venue that changed is read again.
    agg.producers["b"].put(book("b", 3, 2))
    agg.recompute()
    assert asked == [20] and agg.last is not None and agg.last.sells[0].venues[0].amount == 12.0
    # A venue whose book is not published now (the reader says None) leaves the view.
    deep["a"] = None
    agg.producers["a"].put(book("a", 2, 3))
    agg.recompute()
    assert asked == [20, 20]
    last = agg.last
    assert last is not None and not last.venues[0].in_merge and last.venues[1].in_merge
    assert last.sells[0].filled == 3.0 and not last.sells[0].complete


async def test_a_paced_view_schedules_nothing_while_its_timer_is_due_but_a_withdrawal_goes_at_once() -> None:
    agg = LiquidityAggregator("x", ["a", "b"], 5, bands=(10.0,), quantities=(1.0,), min_interval=0.2)
    views: list[object] = []
    agg.add_sink(views.append)
    a, b = agg.producers["a"], agg.producers["b"]
    queue = agg.queue
    b.put(book("b", 2, 1))
    b.end_burst()
    await asyncio.sleep(0)  # deferred: one loop hop
    assert len(views) == 1 and not queue.held
    a.put(book("a", 3, 2))  # within the interval: one hop, which sets the timer
    a.end_burst()
    assert queue._scheduled
    await asyncio.sleep(0)
    for seq in range(3, 30):  # the timer is due: nothing is scheduled for these
        a.put(book("a", 2 + seq % 3, seq))
        a.end_burst()
        assert queue.held and not queue._scheduled  # no hop for this change
        await asyncio.sleep(0)
    assert len(views) == 1
    await asyncio.sleep(0.3)
    assert len(views) == 2 and not queue.held and agg.last is not None and agg.last.venues[0].seq == 29
    a.put(book("a", 4, 40))
    a.end_burst()
    await asyncio.sleep(0)
    assert queue.held and len(views) == 2
    b.withdraw()  # within the interval, held: a venue leaving is still published at once
    assert not queue.held and queue._scheduled
    await asyncio.sleep(0)
    assert len(views) == 3 and agg.last is not None
    assert [s.in_merge for s in agg.last.venues] == [True, False] and agg.last.venues[0].seq == 40
    agg.reset()
    assert not queue.held


def test_only_a_kind_that_reads_on_demand_takes_a_reader() -> None:
    from dragonfly.core.aggregator import Aggregator

    book_view = Aggregator("x", ["a"], 5)
    assert not book_view.on_demand and LiquidityAggregator.on_demand
    with pytest.raises(TypeError, match="book view reads what its listeners forward"):
        book_view.read_with("a", lambda depth: None)
