"""Liquidity bands and fill costs against an independent Decimal computation from the venues' books."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dragonfly.core import liquidity
from dragonfly.core.errors import ConfigError
from dragonfly.core.liquidity import (
    DEFAULT_BANDS_BPS,
    Band,
    Fill,
    VenueAmount,
    check_bands,
    check_quantities,
    compute,
)
from dragonfly.core.types import Side

# Every side read by the C speedups' side_sums and again by its Python twin.
pytestmark = pytest.mark.usefixtures("both_hot_paths")

# A venue's book as the test writes it: decimal strings, best first.
Book = list[tuple[str, str]]
Books = dict[str, Book]


# ------------------------------------------------------------ the reference
# Written plainly, in Decimal, from the books as strings: no prefix sums, no
# bisect, no heap; every level of every venue in one fully sorted list.


def ref_mid(bids: Books, asks: Books) -> Decimal | None:
    best_bids = [Decimal(p) for book in bids.values() for p, _ in book]
    best_asks = [Decimal(p) for book in asks.values() for p, _ in book]
    if not best_bids or not best_asks:
        return None
    return (max(best_bids) + min(best_asks)) / 2


def ref_band(books: Books, mid: Decimal, bps: Decimal, bid: bool) -> tuple[Decimal, dict[str, Decimal]]:
    edge = mid * (1 - bps / 10000) if bid else mid * (1 + bps / 10000)
    parts: dict[str, Decimal] = {}
    for venue, book in books.items():
        for price, amount in book:
            inside = Decimal(price) >= edge if bid else Decimal(price) <= edge
            if inside:
                parts[venue] = parts.get(venue, Decimal(0)) + Decimal(amount)
    return sum(parts.values(), Decimal(0)), parts


class RefFill:
    def __init__(self, books: Books, quantity: Decimal, sell: bool) -> None:
        levels = [
            (Decimal(price), Decimal(amount), venue)
            for venue, book in books.items()
            for price, amount in book
        ]
        # Best price first; at one price the larger amount, then the venue name.
        levels.sort(key=lambda lv: (-lv[0] if sell else lv[0], -lv[1], lv[2]))
        self.parts: dict[str, Decimal] = {}
        self.filled = Decimal(0)
        self.cost = Decimal(0)
        self.worst: Decimal | None = None
        for price, amount, venue in levels:
            if self.filled == quantity:
                break
            take = min(amount, quantity - self.filled)
            self.filled += take
            self.cost += take * price
            self.parts[venue] = self.parts.get(venue, Decimal(0)) + take
            self.worst = price
        self.complete = self.filled == quantity
        self.best = levels[0][0] if levels else None
        self.average = self.cost / self.filled if self.filled else None
        self.slippage: Decimal | None = None
        if self.average is not None and self.best is not None:
            gap = self.best - self.average if sell else self.average - self.best
            self.slippage = gap / self.best * 10000


# ------------------------------------------------------------ helpers


def close(value: float, expected: Decimal | None) -> bool:
    if expected is None:
        return math.isnan(value)
    return math.isclose(value, float(expected), rel_tol=1e-9, abs_tol=1e-9)


def parts_match(got: tuple[VenueAmount, ...], expected: dict[str, Decimal]) -> None:
    assert [v.venue for v in got] == sorted(k for k, a in expected.items() if a), (got, expected)
    for part in got:
        assert close(part.amount, expected[part.venue]), (part, expected)


def runs(books: Books, venues: list[str]) -> list[tuple[str, Side]]:
    """The merge's runs: every venue in name order, () where it has nothing."""
    return [(v, tuple((float(p), float(a)) for p, a in books.get(v, []))) for v in sorted(venues)]


def check_against_reference(
    bids: Books, asks: Books, bands: tuple[str, ...], quantities: tuple[str, ...]
) -> tuple[float, tuple[Band, ...], tuple[Fill, ...], tuple[Fill, ...]]:
    venues = sorted(set(bids) | set(asks))
    out = compute(
        runs(bids, venues),
        runs(asks, venues),
        tuple(float(b) for b in bands),
        tuple(float(q) for q in quantities),
    )
    mid, got_bands, sells, buys = out
    expected_mid = ref_mid(bids, asks)
    assert close(mid, expected_mid), (mid, expected_mid)
    assert [b.bps for b in got_bands] == [float(b) for b in bands]
    for band, bps in zip(got_bands, bands, strict=True):
        if expected_mid is None:
            assert band == (float(bps), 0.0, 0.0, (), ())
            continue
        bid_total, bid_parts = ref_band(bids, expected_mid, Decimal(bps), bid=True)
        ask_total, ask_parts = ref_band(asks, expected_mid, Decimal(bps), bid=False)
        assert close(band.bid_amount, bid_total), (band, bid_total)
        assert close(band.ask_amount, ask_total), (band, ask_total)
        parts_match(band.bid_venues, bid_parts)
        parts_match(band.ask_venues, ask_parts)
    for fills, books, sell in ((sells, bids, True), (buys, asks, False)):
        assert len(fills) == len(quantities)
        for fill, quantity in zip(fills, quantities, strict=True):
            ref = RefFill(books, Decimal(quantity), sell)
            assert fill.side == ("sell" if sell else "buy")
            assert fill.quantity == float(quantity)
            assert fill.complete == ref.complete, (fill, ref.filled)
            assert close(fill.filled, ref.filled), (fill, ref.filled)
            assert close(fill.average_price, ref.average), (fill, ref.average)
            # The worst price is a level's own price: exactly equal.
            if ref.worst is None:
                assert math.isnan(fill.worst_price)
            else:
                assert fill.worst_price == float(ref.worst), (fill, ref.worst)
            assert close(fill.slippage_bps, ref.slippage), (fill, ref.slippage)
            assert fill.slippage_bps >= 0 or math.isnan(fill.slippage_bps)
            parts_match(fill.venues, ref.parts)
            assert math.isclose(sum(v.amount for v in fill.venues), fill.filled, rel_tol=1e-9, abs_tol=1e-12)
    return out


# ------------------------------------------------------------ generated books

VENUES = ["binance", "bitstamp", "bybit", "coinbase", "kraken", "okx"]


@st.composite
def side_strategy(draw: st.DrawFn, low: int, high: int, bid: bool) -> Book:
    """Distinct prices on a cent grid in [low, high] cents, best first; 4-decimal amounts."""
    ticks = draw(st.lists(st.integers(low, high), unique=True, max_size=30))
    ticks.sort(reverse=bid)
    amounts = draw(st.lists(st.integers(1, 500_000), min_size=len(ticks), max_size=len(ticks)))
    return [
        (f"{t // 100}.{t % 100:02d}", f"{a // 10000}.{a % 10000:04d}")
        for t, a in zip(ticks, amounts, strict=True)
    ]


@st.composite
def books_strategy(draw: st.DrawFn) -> tuple[Books, Books]:
    """Up to 6 venues; bid and ask ranges overlap, so venues cross each other at times.

    A narrow grid makes ties across venues (one price at several venues) common.
    """
    width = draw(st.sampled_from([5, 20, 200]))
    center = 10_000
    names = draw(st.lists(st.sampled_from(VENUES), unique=True, max_size=6))
    bids: Books = {}
    asks: Books = {}
    for name in names:
        bids[name] = draw(side_strategy(center - width, center + width // 4, bid=True))
        asks[name] = draw(side_strategy(center - width // 4, center + width, bid=False))
    return bids, asks


# Bands on a 0.25 bps grid and quantities on a 1e-4 grid: with prices on a
# cent grid, an edge or a cumulative amount that differs from a level's is
# at least ~1e-9 away in relative terms, far beyond the code's 1e-12 slack;
# when equal in Decimal, the code must count the level in (tested as such).
bands_strategy = st.lists(st.integers(1, 40_000), min_size=1, max_size=5, unique=True).map(
    lambda xs: tuple(str(Decimal(x) / 4) for x in sorted(xs))
)
quantities_strategy = st.lists(st.integers(1, 20_000_000), max_size=5).map(
    lambda xs: tuple(str(Decimal(x) / 10000) for x in xs)
)


#: The fill walk's threshold as shipped (the C walk's, compiled in: LIQ_SKIP_AFTER in _speedups.c).
SHIPPED_SKIP_AFTER = liquidity._SKIP_AFTER


@pytest.fixture(params=[1, SHIPPED_SKIP_AFTER], ids=["bisect-ahead-always", "default"])
def skip_after(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, both_hot_paths: str) -> int:
    """Run a test with the fill walk bisecting ahead after every run, and as shipped.

    The C fill walk's threshold is compiled in: bisecting ahead always is the
    twin's walk, whichever hot path the test runs on (so this comes after
    ``both_hot_paths``).
    """
    monkeypatch.setattr(liquidity, "_SKIP_AFTER", request.param)
    if request.param != SHIPPED_SKIP_AFTER:
        monkeypatch.setattr(liquidity, "fill_figures", liquidity.fill_figures_py)
    return int(request.param)


@pytest.mark.usefixtures("skip_after")
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books_strategy(), bands_strategy, quantities_strategy)
def test_matches_decimal_reference(
    books: tuple[Books, Books], bands: tuple[str, ...], quantities: tuple[str, ...]
) -> None:
    bids, asks = books
    check_against_reference(bids, asks, bands, quantities)


@pytest.mark.usefixtures("skip_after")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(books_strategy(), st.data())
def test_quantities_at_cumulative_sums(books: tuple[Books, Books], data: st.DataObject) -> None:
    """A quantity equal to a cumulative amount of the merged order ends at that level exactly."""
    bids, asks = books
    levels = sorted(
        ((Decimal(p), Decimal(a), v) for v, book in bids.items() for p, a in book),
        key=lambda lv: (-lv[0], -lv[1], lv[2]),
    )
    sums = []
    total = Decimal(0)
    for _, amount, _ in levels:
        total += amount
        sums.append(str(total))
    picked = tuple(data.draw(st.lists(st.sampled_from(sums), max_size=4))) if sums else ()
    check_against_reference(bids, asks, ("10",), picked)


# ------------------------------------------------------------ edge cases


def test_empty_side_gives_nan_mid_and_empty_bands() -> None:
    bids = {"binance": [("100.00", "1")]}
    asks: Books = {"binance": []}
    mid, bands, sells, buys = check_against_reference(bids, asks, ("10", "100"), ("0.5", "2"))
    assert math.isnan(mid)
    assert bands == (Band(10.0, 0.0, 0.0, (), ()), Band(100.0, 0.0, 0.0, (), ()))
    # The bids still sell; nothing to buy.
    assert sells[0] == Fill("sell", 0.5, 0.5, 100.0, 100.0, 0.0, (VenueAmount("binance", 0.5),), True)
    assert sells[1].filled == 1.0 and not sells[1].complete
    assert buys[0].filled == 0.0 and not buys[0].complete and buys[0].venues == ()
    assert math.isnan(buys[0].average_price) and math.isnan(buys[0].worst_price)
    assert math.isnan(buys[0].slippage_bps)


def test_no_venues_at_all() -> None:
    mid, bands, sells, _ = compute([("a", ()), ("b", ())], [("a", ()), ("b", ())], (10.0,), (1.0,))
    assert math.isnan(mid)
    assert bands == (Band(10.0, 0.0, 0.0, (), ()),)
    assert sells[0].filled == 0.0 and sells[0].venues == () and not sells[0].complete
    assert compute([], [], (10.0,), ())[2:] == ((), ())


def test_unchanged_empty_figures_compare_equal() -> None:
    """Every nan is the same object, so a consumer sees "nothing changed" (NaN != NaN otherwise)."""
    first = compute([("a", ())], [("a", ())], (10.0,), (1.0,))
    second = compute([("a", ())], [("a", ())], (10.0,), (1.0,))
    assert first[1:] == second[1:]


def test_quantity_larger_than_the_books() -> None:
    bids = {"a": [("100", "1"), ("99", "2")], "b": [("99.5", "1.5")]}
    asks = {"a": [("101", "1")], "b": [("100.5", "0.5"), ("102", "1")]}
    _, _, sells, buys = check_against_reference(bids, asks, ("50",), ("10", "4.5", "7"))
    assert sells[0].filled == 4.5 and not sells[0].complete
    assert sells[0].worst_price == 99.0
    assert sells[0].venues == (VenueAmount("a", 3.0), VenueAmount("b", 1.5))
    assert sells[1].complete and sells[1].filled == 4.5  # exactly the books
    assert sells[2].filled == 4.5 and sells[2].quantity == 7.0
    assert buys[0].filled == 2.5 and buys[0].worst_price == 102.0


def test_ties_across_venues_larger_amount_first_then_name() -> None:
    # Three venues at 100: c holds the most, then a and b hold 1 each (name order).
    bids = {"a": [("100", "1"), ("98", "5")], "b": [("100", "1")], "c": [("100", "2"), ("99", "1")]}
    asks = {"a": [("101", "1")], "b": [("101", "1")], "c": [("101", "1")]}
    _, _, sells, buys = check_against_reference(bids, asks, ("1",), ("1.5", "2.5", "3.5", "4.5"))
    assert sells[0].venues == (VenueAmount("c", 1.5),)
    assert sells[1].venues == (VenueAmount("a", 0.5), VenueAmount("c", 2.0))
    assert sells[2].venues == (VenueAmount("a", 1.0), VenueAmount("b", 0.5), VenueAmount("c", 2.0))
    assert sells[2].worst_price == 100.0 and sells[2].slippage_bps == 0.0
    assert sells[3].worst_price == 99.0
    # Equal amounts at one price: name order.
    assert buys[0].venues == (VenueAmount("a", 1.0), VenueAmount("b", 0.5))


def test_band_that_includes_nothing() -> None:
    # A wide spread: nothing within 1 bps of the mid (100).
    bids = {"a": [("90", "1")], "b": [("95", "2")]}
    asks = {"a": [("105", "1")], "b": [("110", "2")]}
    mid, bands, _, _ = check_against_reference(bids, asks, ("1", "600", "1000"), ())
    assert mid == 100.0
    assert bands[0] == Band(1.0, 0.0, 0.0, (), ())
    assert bands[1] == Band(600.0, 2.0, 1.0, (VenueAmount("b", 2.0),), (VenueAmount("a", 1.0),))
    assert bands[2] == Band(
        1000.0,
        3.0,
        3.0,
        (VenueAmount("a", 1.0), VenueAmount("b", 2.0)),
        (VenueAmount("a", 1.0), VenueAmount("b", 2.0)),
    )


def test_levels_exactly_at_a_band_edge_are_in() -> None:
    # mid 100.00: edges at 99.9/100.1 (10 bps), 99.75/100.25, 99.00/101.00 (100 bps).
    bids = {"a": [("100", "1"), ("99.9", "1"), ("99.75", "1"), ("99", "1"), ("98.99", "1")]}
    asks = {"a": [("100", "1"), ("100.1", "1"), ("100.25", "1"), ("101", "1"), ("101.01", "1")]}
    _, bands, _, _ = check_against_reference(bids, asks, ("10", "25", "100"), ())
    assert [(b.bid_amount, b.ask_amount) for b in bands] == [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]


def test_crossed_venues_mid_between_the_crossed_quotes() -> None:
    # a's bid is above b's ask: best bid 101 (a), best ask 100 (b), mid 100.5.
    bids = {"a": [("101", "1"), ("100", "1")], "b": [("99", "3")]}
    asks = {"a": [("102", "1")], "b": [("100", "2"), ("103", "1")]}
    mid, bands, sells, buys = check_against_reference(bids, asks, ("10", "100", "250"), ("1.5", "3"))
    assert mid == 100.5
    assert bands[0].bid_venues == (VenueAmount("a", 1.0),)
    assert bands[0].ask_venues == (VenueAmount("b", 2.0),)
    assert buys[0].worst_price == 100.0 and buys[0].slippage_bps == 0.0
    assert sells[1].venues == (VenueAmount("a", 2.0), VenueAmount("b", 1.0))


def test_float_rounding_never_touches_one_more_level() -> None:
    # 0.1 + 0.2 != 0.3 in floats: 0.3 still ends at the second level, whole.
    bids = {"a": [("100", "0.1"), ("99", "0.2"), ("98", "5")], "b": [("99.5", "0.7"), ("90", "1")]}
    asks = {"a": [("101", "0.1"), ("102", "0.2")], "b": [("102.5", "0.7")]}
    _, _, sells, buys = check_against_reference(bids, asks, ("1",), ("0.8", "1", "0.3"))
    assert sells[1].worst_price == 99.0 and [v.venue for v in sells[1].venues] == ["a", "b"]
    assert sells[1].complete and sells[1].filled == 1.0
    assert buys[2].worst_price == 102.0 and buys[2].complete and buys[2].filled == 0.3
    assert [v.venue for v in buys[2].venues] == ["a"]
    assert buys[1].complete and buys[1].worst_price == 102.5


@pytest.mark.usefixtures("skip_after")
def test_deep_interleaved_fill_matches_reference() -> None:
    """Six venues interleaved tick by tick: the fill bisects ahead (past _SKIP_AFTER runs)."""
    bids: Books = {}
    asks: Books = {}
    for rank, venue in enumerate(VENUES):
        bids[venue] = [
            (f"{1000 - (6 * i + rank) * 0.25:.2f}", f"{1 + (i * 7 + rank) % 5}.5") for i in range(60)
        ]
        asks[venue] = [
            (f"{1001 + (6 * i + rank) * 0.25:.2f}", f"{1 + (i * 3 + rank) % 4}.25") for i in range(60)
        ]
    bid_total = sum((Decimal(a) for book in bids.values() for _, a in book), Decimal(0))
    quantities = (
        "3",
        "40",
        str(bid_total / 3),
        str(bid_total / 2 + Decimal("0.0001")),
        str(bid_total),
        "5000",
    )
    check_against_reference(bids, asks, ("1", "10", "25", "50", "100"), quantities)


def test_cache_follows_side_identity() -> None:
    """A venue's new side object is read afresh; the same object is read once."""
    caches = (liquidity.SideCache(bids=True), liquidity.SideCache(bids=False))
    side1: Side = ((100.0, 1.0), (99.0, 1.0))
    side2: Side = ((100.0, 3.0), (99.0, 1.0))
    asks: Side = ((101.0, 1.0),)
    first = compute([("a", side1)], [("a", asks)], (200.0,), (2.0,), caches)
    entry = caches[0].entries["a"]
    again = compute([("a", side1)], [("a", asks)], (200.0,), (2.0,), caches)
    assert first == again and caches[0].entries["a"] is entry
    changed = compute([("a", side2)], [("a", asks)], (200.0,), (2.0,), caches)
    assert changed[1][0].bid_amount == 4.0 and changed[2][0].worst_price == 100.0
    assert changed == compute([("a", side2)], [("a", asks)], (200.0,), (2.0,))  # uncached agrees


def test_cache_holds_one_side_per_venue_and_stays_right() -> None:
    cache = liquidity.SideCache(bids=True)
    kept: Side = ((100.0, 1.0), (99.0, 2.0))
    for i in range(100):
        fresh: Side = ((100.0 + i, 1.0), (99.0, float(i + 1)))
        read = cache.read([("a", fresh), ("b", kept)])
        assert read.amounts == [[0.0, 1.0, 2.0 + i], [0.0, 1.0, 3.0]]
        assert read.sides[0] is fresh and read.sides[1] is kept
        assert len(cache.entries) == 2


# ------------------------------------------------------------ configuration


def test_check_bands_accepts_and_normalises() -> None:
    assert check_bands([10, 25.5, 10_000]) == (10.0, 25.5, 10_000.0)
    assert check_bands(DEFAULT_BANDS_BPS) == DEFAULT_BANDS_BPS
    assert all(isinstance(b, float) for b in check_bands([1, 2]))


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ([], "bands_bps must list at least one band half-width in bps, e.g. [10.0, 25.0, 50.0, 100.0]"),
        ([10, 0], "bands_bps: 0 bps is out of range: a band's half-width around the mid must be > 0"),
        ([-5], "bands_bps: -5 bps is out of range"),
        ([10, 20_000], "bands_bps: 20000 bps is out of range"),
        ([10, float("nan")], "bands_bps: nan is not a finite number"),
        ([float("inf")], "bands_bps: inf is not a finite number"),
        ([25, 10], "bands_bps must be strictly increasing, without duplicates: 10 comes after 25"),
        ([10, 10], "bands_bps must be strictly increasing, without duplicates: 10 comes after 10"),
        (["10"], "bands_bps: '10' is not a number"),
        ([True], "bands_bps: True is not a number"),
        ("10,25", "bands_bps must be a list of numbers, got '10,25'"),
        (10, "bands_bps must be a list of numbers, got 10"),
    ],
)
def test_check_bands_errors(bands: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_bands(bands)  # type: ignore[arg-type]
    assert str(info.value).startswith(message), str(info.value)


def test_check_bands_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^liquidity\.bands: 0 bps"):
        check_bands([0], what="liquidity.bands")


def test_check_quantities() -> None:
    assert check_quantities([]) == ()
    assert check_quantities([1, 0.5, 1]) == (1.0, 0.5, 1.0)  # any order, repeats allowed


@pytest.mark.parametrize(
    ("quantities", "message"),
    [
        ([1, 0], "quantities: 0 is not a quantity to fill: each must be > 0 (a base-currency amount)"),
        ([-1], "quantities: -1 is not a quantity to fill"),
        ([float("nan")], "quantities: nan is not a finite number"),
        ([float("inf")], "quantities: inf is not a finite number"),
        (["1"], "quantities: '1' is not a number"),
        (None, "quantities must be a list of numbers, got None"),
    ],
)
def test_check_quantities_errors(quantities: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_quantities(quantities)  # type: ignore[arg-type]
    assert str(info.value).startswith(message), str(info.value)
