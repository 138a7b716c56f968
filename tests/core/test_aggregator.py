"""Merge order, ties, withdrawal and crossed merged books."""

from __future__ import annotations

import math

import pytest

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.types import MergedBook, MergedLevel, VenueBook

pytestmark = pytest.mark.usefixtures("both_hot_paths")


def feed(
    agg: Aggregator, venue: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
) -> None:
    producer = agg.producers[venue]
    producer.put(VenueBook(venue, tuple(bids), tuple(asks), 123))
    producer.end_burst()


def collect(agg: Aggregator) -> list[MergedBook]:
    out: list[MergedBook] = []
    agg.add_sink(out.append)
    return out


def test_merges_by_price_across_venues() -> None:
    agg = Aggregator("ethbtc", ["binance", "bitstamp"], depth=3)
    out = collect(agg)
    feed(agg, "binance", [(10.0, 1.0), (9.0, 1.0), (8.0, 1.0)], [(11.0, 1.0), (12.0, 1.0)])
    feed(agg, "bitstamp", [(9.5, 2.0), (7.0, 1.0)], [(10.5, 3.0), (13.0, 1.0)])
    book = out[-1]
    assert [(lv.exchange, lv.price) for lv in book.bids] == [
        ("binance", 10.0),
        ("bitstamp", 9.5),
        ("binance", 9.0),
    ]
    assert [(lv.exchange, lv.price) for lv in book.asks] == [
        ("bitstamp", 10.5),
        ("binance", 11.0),
        ("binance", 12.0),
    ]
    assert book.spread == pytest.approx(0.5)
    assert book.instrument == "ethbtc"
    assert book.sequence == 2


def test_ties_amount_descending_then_venue_name() -> None:
    agg = Aggregator("ethbtc", ["zeta", "alpha", "mid"], depth=4)
    out = collect(agg)
    feed(agg, "zeta", [(10.0, 5.0)], [(11.0, 1.0)])
    feed(agg, "alpha", [(10.0, 1.0)], [(11.0, 1.0)])
    feed(agg, "mid", [(10.0, 1.0)], [(11.0, 2.0)])
    book = out[-1]
    assert book.bids == (
        MergedLevel("zeta", 10.0, 5.0),
        MergedLevel("alpha", 10.0, 1.0),
        MergedLevel("mid", 10.0, 1.0),
    )
    assert book.asks == (
        MergedLevel("mid", 11.0, 2.0),
        MergedLevel("alpha", 11.0, 1.0),
        MergedLevel("zeta", 11.0, 1.0),
    )


def test_crossed_and_locked_merged_books_are_published() -> None:
    agg = Aggregator("ethbtc", ["a", "b"], depth=2)
    out = collect(agg)
    feed(agg, "a", [(100.0, 1.0)], [(101.0, 1.0)])
    feed(agg, "b", [(101.0, 1.0)], [(102.0, 1.0)])  # locked across venues
    assert out[-1].spread == 0.0
    feed(agg, "b", [(101.5, 1.0)], [(102.0, 1.0)])  # crossed across venues
    assert out[-1].spread == pytest.approx(-0.5)
    assert out[-1].bids[0] == MergedLevel("b", 101.5, 1.0)


def test_withdrawn_venue_leaves_the_merge_and_returns() -> None:
    agg = Aggregator("ethbtc", ["a", "b"], depth=2)
    out = collect(agg)
    feed(agg, "a", [(100.0, 1.0)], [(101.0, 1.0)])
    feed(agg, "b", [(100.5, 1.0)], [(100.8, 1.0)])
    assert {lv.exchange for lv in out[-1].bids} == {"a", "b"}
    agg.producers["b"].withdraw()
    assert {lv.exchange for lv in out[-1].bids + out[-1].asks} == {"a"}
    agg.producers["a"].withdraw()
    assert out[-1].bids == () and out[-1].asks == ()
    assert math.isnan(out[-1].spread)
    feed(agg, "b", [(99.0, 1.0)], [(99.5, 1.0)])
    assert out[-1].bids == (MergedLevel("b", 99.0, 1.0),)


def test_publishes_only_when_the_top_n_or_the_members_change() -> None:
    agg = Aggregator("ethbtc", ["a", "b"], depth=1)
    out = collect(agg)
    feed(agg, "a", [(100.0, 1.0), (99.0, 1.0)], [(101.0, 1.0)])
    assert [v.in_merge for v in out[-1].venues] == [True, False]
    # Below a's top 1 on both sides: the levels stay, but b entered the merge.
    feed(agg, "b", [(90.0, 1.0)], [(110.0, 1.0)])
    assert len(out) == 2 and [v.in_merge for v in out[-1].venues] == [True, True]
    feed(agg, "a", [(100.0, 1.0), (98.0, 1.0)], [(101.0, 1.0)])  # change below the top 1
    feed(agg, "b", [(91.0, 1.0)], [(110.0, 1.0)])
    assert len(out) == 2
    feed(agg, "a", [(100.0, 2.0)], [(101.0, 1.0)])
    assert len(out) == 3 and out[-1].sequence == 3
    agg.producers["b"].withdraw()  # b leaves: published, though the top 1 is a's
    assert len(out) == 4 and [v.in_merge for v in out[-1].venues] == [True, False]
    assert out[-1].bids == out[-2].bids


def test_burst_is_one_recompute() -> None:
    agg = Aggregator("ethbtc", ["a"], depth=1)
    out = collect(agg)
    producer = agg.producers["a"]
    for i in range(5):
        producer.put(VenueBook("a", ((100.0 + i, 1.0),), ((200.0, 1.0),), i))
    assert out == []
    producer.end_burst()
    assert len(out) == 1 and out[0].bids[0].price == 104.0 and out[0].recv_ns == 4


def test_a_failing_sink_does_not_stop_the_others() -> None:
    agg = Aggregator("ethbtc", ["a"], depth=1)

    def broken(book: MergedBook) -> None:
        raise RuntimeError("consumer bug")

    agg.add_sink(broken)
    out = collect(agg)
    feed(agg, "a", [(1.0, 1.0)], [(2.0, 1.0)])
    assert len(out) == 1


def test_rejects_bad_depth() -> None:
    with pytest.raises(ValueError):
        Aggregator("ethbtc", ["a"], depth=0)


def test_a_venue_far_from_the_others_is_flagged_and_left_out_by_a_majority() -> None:
    from dragonfly.core.health import VenueStatus

    agg = Aggregator("ethbtc", ["a", "b", "c"], depth=2)
    out = collect(agg)
    feed(agg, "a", [(99.0, 1.0)], [(101.0, 1.0)])
    feed(agg, "b", [(99.5, 1.0)], [(100.5, 1.0)])
    feed(agg, "c", [(99_000.0, 1.0)], [(101_000.0, 1.0)])  # 1000x: a wrong scale, or instrument
    book = out[-1]
    states = {s.venue: s for s in book.venues}
    assert states["c"].status == VenueStatus.OUTLIER and not states["c"].in_merge
    assert states["a"].status == states["b"].status == VenueStatus.LIVE
    assert all(lv.exchange != "c" for lv in book.bids + book.asks) and book.spread == 1.0
    feed(agg, "c", [(99.8, 1.0)], [(100.2, 1.0)])  # sane again: back in
    assert {s.venue: s.in_merge for s in out[-1].venues} == {"a": True, "b": True, "c": True}
    assert out[-1].asks[0].exchange == "c"


def test_two_venues_far_apart_are_both_flagged_and_kept() -> None:
    from dragonfly.core.health import VenueStatus

    agg = Aggregator("ethbtc", ["a", "b"], depth=1)
    out = collect(agg)
    feed(agg, "a", [(99.0, 1.0)], [(101.0, 1.0)])
    feed(agg, "b", [(99_000.0, 1.0)], [(101_000.0, 1.0)])
    states = {s.venue: s for s in out[-1].venues}
    assert states["a"].status == states["b"].status == VenueStatus.OUTLIER
    assert states["a"].in_merge and states["b"].in_merge  # no majority to say which is wrong


def test_a_real_crossed_market_is_published_as_it_is() -> None:
    agg = Aggregator("ethbtc", ["a", "b", "c"], depth=1)
    out = collect(agg)
    feed(agg, "a", [(100.2, 1.0)], [(100.3, 1.0)])
    feed(agg, "b", [(99.9, 1.0)], [(100.0, 1.0)])  # a's bid is above b's ask: crossed by 20 bps
    feed(agg, "c", [(100.0, 1.0)], [(100.1, 1.0)])
    book = out[-1]
    assert book.spread == pytest.approx(-0.2) and all(s.in_merge and s.status == 1 for s in book.venues)


def test_the_sanity_rule_can_be_turned_off() -> None:
    agg = Aggregator("ethbtc", ["a", "b", "c"], depth=1, max_deviation=0)
    out = collect(agg)
    feed(agg, "a", [(99.0, 1.0)], [(101.0, 1.0)])
    feed(agg, "b", [(99.5, 1.0)], [(100.5, 1.0)])
    feed(agg, "c", [(99_000.0, 1.0)], [(101_000.0, 1.0)])
    assert all(s.in_merge and s.status == 1 for s in out[-1].venues)
    with pytest.raises(ValueError):
        Aggregator("x", ["a"], max_deviation=-1)
