"""The synthetic market: determinism, book invariants, venue differences."""

from __future__ import annotations

import itertools

import pytest

from dragonfly.sim import SyntheticMarket
from dragonfly.sim.book import MIN_LEVELS
from dragonfly.sim.instruments import make_instrument


def _tops(market: SyntheticMarket, instrument: str) -> dict[str, tuple[float, float]]:
    out = {}
    for venue in market.venues:
        book = market.book(venue, instrument)
        bids, asks = book.sorted_levels()
        out[venue] = (book.float_side(bids[:1])[0][0], book.float_side(asks[:1])[0][0])
    return out


def test_same_seed_same_books_other_seed_other_books() -> None:
    runs = [SyntheticMarket(["ethbtc", "btcusdt"], seed=s) for s in (3, 3, 4)]
    for market in runs:
        for _ in range(200):
            market.step()
    a, b, c = (m.book("bitstamp", "ethbtc").sorted_levels() for m in runs)
    assert a == b
    assert a != c
    # Adding an instrument does not disturb another instrument's path.
    alone = SyntheticMarket(["ethbtc"], seed=3)
    for _ in range(200):
        alone.step()
    assert alone.book("bitstamp", "ethbtc").sorted_levels() == a


def test_books_keep_their_invariants() -> None:
    market = SyntheticMarket(seed=11)
    for step in range(600):
        market.step()
        if step % 25:
            continue
        for name in market.instruments:
            for venue in market.venues:
                book = market.book(venue, name)
                bids, asks = book.sorted_levels()
                assert len(bids) >= MIN_LEVELS >= 100 and len(asks) >= MIN_LEVELS
                assert all(a > b for (a, _), (b, _) in itertools.pairwise(bids))
                assert all(a < b for (a, _), (b, _) in itertools.pairwise(asks))
                assert bids[0][0] < asks[0][0]
                assert all(p > 0 and q > 0 for p, q in bids + asks)
                # Printed text and float view agree exactly.
                text = book.text_side(bids[:20] + asks[:20])
                floats = book.float_side(bids[:20] + asks[:20])
                assert [(float(p), float(q)) for p, q in text] == floats
                decimals = book.spec.price_decimals
                assert all(len(p.partition(".")[2]) == decimals for p, _ in text)


def test_update_id_grows_and_books_move() -> None:
    market = SyntheticMarket(["ethbtc"], seed=1)
    book = market.book("binance", "ethbtc")
    first_id, first = book.update_id, book.sorted_levels()
    for _ in range(20):
        market.step()
    assert book.update_id > first_id
    assert book.sorted_levels() != first


def test_venues_quote_near_but_different_prices() -> None:
    market = SyntheticMarket(["btcusdt"], seed=5)
    differing = crossed = 0
    for _ in range(1500):
        market.step()
        tops = _tops(market, "btcusdt")
        (bb, ba), (sb, sa) = tops["binance"], tops["bitstamp"]
        mid = market.mid("btcusdt")
        for price in (bb, ba, sb, sa):
            assert abs(price / mid - 1) < 1e-3  # within 10 bps of the market mid
        differing += (bb, ba) != (sb, sa)
        crossed += max(bb, sb) >= min(ba, sa)
    assert differing > 1450
    assert 0 < crossed < 300  # cross-venue locks/crosses happen, but rarely


def test_instrument_table_and_fallback() -> None:
    ethbtc = make_instrument("ethbtc")
    assert (ethbtc.base, ethbtc.quote) == ("ETH", "BTC")
    assert ethbtc.specs["binance"].tick == pytest.approx(1e-5)
    assert ethbtc.specs["bitstamp"].tick == pytest.approx(1e-8)
    other = make_instrument("solusdt")
    assert (other.base, other.quote) == ("SOL", "USDT")
    market = SyntheticMarket(["solusdt"], seed=2)
    market.step()
    assert market.book("binance", "solusdt").sorted_levels()[0]
    for bad in ("ETHBTC", "eth-btc", "abcxyz", ""):
        with pytest.raises(ValueError):
            make_instrument(bad)
    with pytest.raises(ValueError):
        SyntheticMarket(["ethbtc"], venues=["ftx"])
