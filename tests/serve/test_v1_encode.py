"""The fast dragonfly.v1 encoders write the official bytes of every view kind."""

from __future__ import annotations

import math
import time

import pytest

from dragonfly.core.liquidity import Band, Fill, Liquidity, VenueAmount
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import BboView, VenueBbo
from dragonfly.serve import dragonfly_v1_pb2 as pb
from dragonfly.serve.encode import append_send_ns
from dragonfly.serve.v1_encode import BookEncoder, encode_bbo, encode_book, encode_liquidity, encode_update_pb

# Every test here runs on the C encoder and on the pure-Python one.
pytestmark = pytest.mark.usefixtures("both_hot_paths")

NAN = math.nan
VENUES = ("binance", "bitstamp", "bybit", "coinbase", "kraken", "okx")
NOW = time.time_ns()


def states(count: int = 6) -> tuple[VenueState, ...]:
    """Venue states with every kind of field: in and out, zero and set numbers."""
    return tuple(
        VenueState(venue, i % 3 != 0, 1 if i % 3 else 4, NOW - 1000 * i if i != 5 else 0, 1000 * i, 12345 + i)
        for i, venue in enumerate(VENUES[:count])
    )


def book(depth: int = 20, sequence: int = 7) -> MergedBook:
    bids = tuple(MergedLevel(VENUES[i % 6], 0.068 - i * 1e-5, 1.0 + i) for i in range(depth))
    asks = tuple(MergedLevel(VENUES[(i + 1) % 6], 0.069 + i * 1e-5, 2.0 + i) for i in range(depth))
    return MergedBook("ethbtc", 0.001, bids, asks, sequence, NOW - 5000, NOW, "okx", 99, states())


def bbo() -> BboView:
    quotes = tuple(
        VenueBbo(v, 0.068 - i * 1e-6, 1.5 + i, 0.069 + i * 1e-6, 2.5) for i, v in enumerate(VENUES)
    )
    best_bid = MergedLevel("binance", 0.068, 1.5)
    best_ask = MergedLevel("binance", 0.069, 2.5)
    return BboView("ethbtc", 0.001, best_bid, best_ask, quotes, 8, NOW - 5000, NOW, "kraken", 3, states())


def amounts(count: int) -> tuple[VenueAmount, ...]:
    return tuple(VenueAmount(venue, 1.0 + i) for i, venue in enumerate(VENUES[:count]))


def liquidity() -> Liquidity:
    bands = tuple(
        Band(bps, 10.0 * bps, 11.0 * bps, amounts(4), amounts(3)) for bps in (10.0, 25.0, 50.0, 100.0)
    )
    sells = tuple(Fill("sell", q, q, 0.068, 0.0679, 1.5, amounts(3), True) for q in (1.0, 10.0, 100.0))
    buys = (*sells[:2], Fill("buy", 5.0, 0.0, NAN, NAN, NAN, (), False))
    return Liquidity("ethbtc", 0.0685, bands, sells, buys, 9, NOW - 5000, NOW, "binance", 4, states())


@pytest.mark.parametrize("depth", [0, 1, 10, 20, 25])
def test_book_matches_the_official_serializer(depth: int) -> None:
    view = book()
    assert encode_book(view, depth) == encode_update_pb(view, depth)
    update = pb.Update.FromString(encode_book(view, depth))
    assert update.WhichOneof("view") == "book" and update.kind == pb.KIND_BOOK
    assert len(update.book.bids) == min(depth or 20, 20)
    assert (update.instrument, update.sequence, update.source_venue, update.source_frame) == (
        "ethbtc",
        7,
        "okx",
        99,
    )
    assert [(s.venue, s.in_merge, s.status, s.data_ns, s.age_ns, s.seq) for s in update.venues] == list(
        states()
    )


@pytest.mark.parametrize(
    "view",
    [
        MergedBook("ethbtc", NAN, (), (), 1, 0, 0),  # empty: the oneof is still set
        MergedBook("", 0.0, (), (), 0, 0, 0),  # everything default
        MergedBook(
            "x", -0.0, (MergedLevel("", 0.0, -0.0),), (MergedLevel("a", NAN, 1.0),), 2**64 - 1, -1, 2**62
        ),
    ],
)
def test_book_edge_values_match(view: MergedBook) -> None:
    assert encode_book(view) == encode_update_pb(view)


def test_bbo_matches_the_official_serializer() -> None:
    assert encode_bbo(bbo()) == encode_update_pb(bbo())
    update = pb.Update.FromString(encode_bbo(bbo()))
    assert update.WhichOneof("view") == "bbo" and update.kind == pb.KIND_BBO
    assert (update.bbo.best_bid.venue, update.bbo.best_bid.price) == ("binance", 0.068)
    assert [q.venue for q in update.bbo.quotes] == list(VENUES)


@pytest.mark.parametrize(
    "view",
    [
        BboView(
            "ethbtc", NAN, None, MergedLevel("okx", 1.0, 2.0), (VenueBbo("okx", NAN, 0.0, 1.0, 2.0),), 8, 1, 2
        ),
        BboView("", 0.0, None, None, (), 0, 0, 0),
        BboView(
            "e",
            1.0,
            None,
            None,
            (VenueBbo("", -0.0, 0.0, NAN, -0.0), VenueBbo("k", 1.0, 0.0, 0.0, 1.0)),
            1,
            1,
            1,
        ),
    ],
)
def test_bbo_edge_values_match(view: BboView) -> None:
    assert encode_bbo(view) == encode_update_pb(view)
    assert pb.Update.FromString(encode_bbo(view)).WhichOneof("view") == "bbo"


def test_liquidity_matches_the_official_serializer() -> None:
    view = liquidity()
    assert encode_liquidity(view) == encode_update_pb(view)
    update = pb.Update.FromString(encode_liquidity(view))
    assert update.WhichOneof("view") == "liquidity" and update.kind == pb.KIND_LIQUIDITY
    assert [band.bps for band in update.liquidity.bands] == [10.0, 25.0, 50.0, 100.0]
    assert [(a.venue, a.amount) for a in update.liquidity.sells[0].venues] == list(amounts(3))
    assert math.isnan(update.liquidity.buys[2].average_price) and not update.liquidity.buys[2].complete


@pytest.mark.parametrize(
    "view",
    [
        Liquidity("ethbtc", NAN, (Band(10.0, 0.0, 0.0, (), ()),), (), (), 1, 0, 0),
        Liquidity("", 0.0, (), (), (), 0, 0, 0),
        Liquidity(
            "",
            -0.0,
            (),
            (),
            (Fill("buy", 1.0, -0.0, 0.0, 1.0, 0.0, (VenueAmount("", 0.0), VenueAmount("a", -0.0)), False),),
            0,
            0,
            0,
        ),
    ],
)
def test_liquidity_edge_values_match(view: Liquidity) -> None:
    assert encode_liquidity(view) == encode_update_pb(view)


def test_send_ns_appends_as_in_the_seed_api() -> None:
    update = pb.Update.FromString(append_send_ns(encode_book(book()), 123))
    assert update.send_ns == 123 and update.sequence == 7


def test_book_encoder_leaves_out_updates_unchanged_at_its_depth() -> None:
    encode = BookEncoder(3, 20)
    first = book(sequence=1)
    assert encode(first) == encode_book(first, 3)
    # Deeper levels and the times changed, the top 3 and the memberships did not.
    deeper = first._replace(
        sequence=2, bids=(*first.bids[:3], MergedLevel("okx", 0.01, 9.0)), publish_ns=NOW + 1
    )
    assert encode(deeper) is None
    aged = first._replace(sequence=3, venues=tuple(s._replace(age_ns=s.age_ns + 5) for s in first.venues))
    assert encode(aged) is None
    # A venue leaving the merge is news at any depth, and so is a top-3 level.
    left = first._replace(sequence=4, venues=(first.venues[0], first.venues[1]._replace(in_merge=False)))
    assert encode(left) == encode_book(left, 3)
    top = left._replace(sequence=5, asks=(MergedLevel("kraken", 0.0689, 1.0), *left.asks[1:]))
    assert encode(top) == encode_book(top, 3)


def test_book_encoder_at_the_source_depth_sends_everything() -> None:
    encode = BookEncoder(20, 20)  # the aggregator already publishes changes only
    view = book()
    assert encode(view) == encode(view) == encode_book(view, 20)
