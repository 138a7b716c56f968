"""The bbo view: each venue's best and the cross-venue best, published exactly when one changes."""

from __future__ import annotations

import math

from dragonfly.core.bbo import BboAggregator
from dragonfly.core.tee import BookTee
from dragonfly.core.types import MergedLevel, VenueBook
from dragonfly.core.views import BboView, VenueBbo


def book(venue: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> VenueBook:
    return VenueBook(venue, tuple(bids), tuple(asks), 1, 1, 1)


def wired() -> tuple[BboAggregator, dict[str, BookTee], list[BboView]]:
    agg = BboAggregator("ethbtc", ["okx", "binance"])
    views: list[BboView] = []
    agg.add_sink(views.append)
    tees = {v: BookTee() for v in ("binance", "okx")}
    for venue, tee in tees.items():
        tee.attach(agg.producers[venue], 1)  # as a hub attaches it under deeper views
    return agg, tees, views


def put(tee: BookTee, item: VenueBook) -> None:
    tee.put(item)
    tee.end_burst()


def test_published_exactly_when_a_venue_best_changes() -> None:
    _, tees, views = wired()
    put(tees["binance"], book("binance", [(10, 1), (9, 1)], [(11, 1), (12, 1)]))
    put(tees["okx"], book("okx", [(10, 2), (8, 1)], [(11.5, 1)]))
    assert len(views) == 2
    put(tees["binance"], book("binance", [(10, 1), (9, 7)], [(11, 1), (13, 1)]))  # deeper levels only
    put(tees["okx"], book("okx", [(10, 2), (7, 1)], [(11.5, 1), (12, 3)]))
    assert len(views) == 2
    put(tees["okx"], book("okx", [(10, 3), (7, 1)], [(11.5, 1)]))  # okx's best bid amount
    assert len(views) == 3
    last = views[-1]
    assert last.quotes == (VenueBbo("binance", 10, 1, 11, 1), VenueBbo("okx", 10, 3, 11.5, 1))
    assert last.best_bid == MergedLevel("okx", 10, 3)  # a tie on price goes to the larger amount
    assert last.best_ask == MergedLevel("binance", 11, 1)
    assert last.spread == 1
    assert [(s.venue, s.in_merge) for s in last.venues] == [("binance", True), ("okx", True)]
    tees["binance"].withdraw()  # a venue leaving is a change
    assert len(views) == 4 and [q.venue for q in views[-1].quotes] == ["okx"]
    assert views[-1].best_ask == MergedLevel("okx", 11.5, 1)


def test_an_empty_side_has_no_best_and_a_nan_spread() -> None:
    _, tees, views = wired()
    put(tees["binance"], book("binance", [(10, 1)], []))
    (view,) = views
    assert view.best_ask is None and math.isnan(view.spread)
    (quote,) = view.quotes
    assert math.isnan(quote.ask_price) and quote.ask_amount == 0
    put(tees["binance"], book("binance", [(10, 1)], []))  # the same again: nothing new
    assert len(views) == 1
