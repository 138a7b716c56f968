"""The hub: several instruments and views on shared venue connections, against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from dragonfly.core.errors import ConfigError, NotFoundError, SubscribeError
from dragonfly.core.liquidity import Liquidity
from dragonfly.core.types import MergedBook
from dragonfly.core.views import BboView
from dragonfly.sim import Simulator
from dragonfly.topology.hub import AggregatorSpec, Hub

from .conftest import endpoints, wait_until

INSTRUMENTS = ["ethbtc", "btcusdt", "ethusdt"]
DIFF = {"binance": "diff", "bitstamp": "diff"}
VIEWS = (
    AggregatorSpec("book", "book", depth=10),
    AggregatorSpec("bbo", "bbo"),
    AggregatorSpec("liq", "liquidity", depth=50, bands_bps=(10, 50, 200), quantities=(1, 50, 10_000)),
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(venues=["binance", "bitstamp"], instruments=INSTRUMENTS, seed=5, period_s=0.02)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def settle(sim: Simulator, hub: Hub) -> None:
    """Freeze the market, let the diff streams catch up, wait until every venue book is the simulator's."""
    sim.pause_market()

    def caught_up() -> bool:
        for instrument in hub.instruments:
            for venue in hub.venues:
                book = hub.venue_book(venue, instrument)
                bids, asks = sim.book(venue, instrument)
                if book is None or list(book.bids) != bids[: len(book.bids)] or not book.bids:
                    return False
                if list(book.asks) != asks[: len(book.asks)] or not book.asks:
                    return False
        return True

    await wait_until(caught_up, timeout=15, what="every venue book equal to the simulator's")


async def test_several_instruments_share_one_connection_per_venue(sim: Simulator) -> None:
    async with Hub(INSTRUMENTS, endpoints(sim), channels=DIFF, aggregators=VIEWS) as hub:
        assert hub.report == {i: {"binance": None, "bitstamp": None} for i in INSTRUMENTS}
        assert {v: len(feeds) for v, feeds in hub.connections.items()} == {"binance": 1, "bitstamp": 1}
        subs = {i: hub.views(i, "book") for i in INSTRUMENTS}
        await settle(sim, hub)
        for instrument in INSTRUMENTS:
            book = hub.declared("book", instrument).current()
            assert isinstance(book, MergedBook)
            assert book.instrument == instrument
            assert {s.venue for s in book.venues if s.in_merge} == {"binance", "bitstamp"}
            # The merged top 10 is the plain merge of the simulator's books.
            levels = [(p, a, v) for v in hub.venues for p, a in sim.book(v, instrument)[0][:10]]
            levels.sort(key=lambda t: (-t[0], -t[1], t[2]))
            assert [(lv.price, lv.amount, lv.exchange) for lv in book.bids] == levels[:10]
            assert (await subs[instrument].get()) is not None
    # Each venue accepted exactly one connection for the three instruments.
    assert sim.connections("binance") == 1
    assert sim.connections("bitstamp") == 1


async def test_three_views_read_each_frame_decoded_once(sim: Simulator) -> None:
    async with Hub(INSTRUMENTS, endpoints(sim), channels=DIFF, aggregators=VIEWS) as hub:
        decoded = {"n": 0}
        listener = hub.feed("binance").listener
        decode = listener._decode  # type: ignore[union-attr]

        def counting(payload: bytes) -> object:
            decoded["n"] += 1
            return decode(payload)

        listener._decode = counting  # type: ignore[union-attr]
        frames_before = listener.frames
        seen: dict[str, int] = {"book": 0, "bbo": 0, "liquidity": 0}
        def counter(kind: str) -> Callable[[object], None]:
            return lambda _view: seen.__setitem__(kind, seen[kind] + 1)

        for spec in VIEWS:
            hub.on_view(counter(spec.kind), "ethbtc", spec.kind)
        await wait_until(lambda: all(n >= 3 for n in seen.values()), what="all three views publishing")
        # One decode per frame received, whatever the number of views reading it.
        assert decoded["n"] == listener.frames - frames_before
        tee = hub.tees["ethbtc", "binance"]
        assert len(tee) == 3  # book, bbo and liquidity attached to the one listener output


async def test_views_match_independent_computations(sim: Simulator) -> None:
    async with Hub(INSTRUMENTS, endpoints(sim), channels=DIFF, aggregators=VIEWS) as hub:
        for instrument in INSTRUMENTS:  # read: the listeners forward as deep as the views read
            for spec in VIEWS:
                hub.on_view(lambda _view: None, instrument, spec.kind)
        await settle(sim, hub)
        for instrument in INSTRUMENTS:
            book = hub.venue_book("binance", instrument)
            assert book is not None and len(book.bids) == 50
            bbo = hub.declared("bbo", instrument).current()
            assert isinstance(bbo, BboView)
            quotes = {q.venue: q for q in bbo.quotes}
            for venue in hub.venues:
                bids, asks = sim.book(venue, instrument)
                q = quotes[venue]
                assert (q.bid_price, q.bid_amount, q.ask_price, q.ask_amount) == (*bids[0], *asks[0])
                assert hub.venue_bbo(venue, instrument) == q
            assert bbo.best_bid is not None and bbo.best_ask is not None
            assert bbo.best_bid.price == max(q.bid_price for q in bbo.quotes)
            assert bbo.best_ask.price == min(q.ask_price for q in bbo.quotes)

            liq = hub.declared("liq", instrument).current()
            assert isinstance(liq, Liquidity)
            books = {v: hub.venue_book(v, instrument) for v in hub.venues}
            dbids = [
                (Decimal(repr(p)), Decimal(repr(a)), v) for v, b in books.items() if b for p, a in b.bids
            ]
            dasks = [
                (Decimal(repr(p)), Decimal(repr(a)), v) for v, b in books.items() if b for p, a in b.asks
            ]
            mid = (max(p for p, _, _ in dbids) + min(p for p, _, _ in dasks)) / 2
            assert liq.mid == pytest.approx(float(mid), rel=1e-12)
            for band in liq.bands:
                low = mid * (1 - Decimal(repr(band.bps)) / 10_000)
                high = mid * (1 + Decimal(repr(band.bps)) / 10_000)
                assert band.bid_amount == pytest.approx(
                    float(sum(a for p, a, _ in dbids if p >= low)), rel=1e-9
                )
                assert band.ask_amount == pytest.approx(
                    float(sum(a for p, a, _ in dasks if p <= high)), rel=1e-9
                )
            # Selling 50: walk the bids best first across venues.
            fill = liq.sells[1]
            left, cost, per_venue = Decimal(50), Decimal(0), dict.fromkeys(hub.venues, Decimal(0))
            for price, amount, venue in sorted(dbids, key=lambda t: (-t[0], -t[1], t[2])):
                take = min(left, amount)
                cost += take * price
                per_venue[venue] += take
                left -= take
                if not left:
                    break
            filled = Decimal(50) - left
            assert fill.filled == pytest.approx(float(filled), rel=1e-9)
            assert fill.average_price == pytest.approx(float(cost / filled), rel=1e-9)
            assert {v.venue: v.amount for v in fill.venues} == pytest.approx(
                {v: float(a) for v, a in per_venue.items() if a}, rel=1e-9
            )
            assert not liq.sells[2].complete  # 10k is more than the books hold


async def test_an_instrument_missing_on_one_venue_is_skipped_there_only() -> None:
    both = Simulator(venues=["binance"], instruments=["ethbtc", "btcusdt"], seed=2, period_s=0.02)
    one = Simulator(venues=["bitstamp"], instruments=["ethbtc"], seed=2, period_s=0.02)
    async with both, one:
        venues = endpoints(both) + endpoints(one)
        async with Hub(["ethbtc", "btcusdt"], venues, channels=DIFF) as hub:
            assert hub.report["ethbtc"] == {"binance": None, "bitstamp": None}
            assert hub.report["btcusdt"]["binance"] is None
            reason = hub.report["btcusdt"]["bitstamp"]
            assert reason is not None and "btcusd" in reason.lower()
            await wait_until(
                lambda: all(hub.venue_book(v, "ethbtc") is not None for v in hub.venues), what="ethbtc books"
            )
            await wait_until(lambda: hub.venue_book("binance", "btcusdt") is not None, what="btcusdt book")
            book = hub.source("btcusdt").current()
            assert isinstance(book, MergedBook)
            states = {s.venue: s for s in book.venues}
            assert states["binance"].in_merge and not states["bitstamp"].in_merge
            info = {i.instrument: {v.venue: v for v in i.venues} for i in hub.catalog()}
            assert info["btcusdt"]["bitstamp"].detail == reason


async def test_no_venue_listing_any_instrument_is_an_error(sim: Simulator) -> None:
    hub = Hub(["xyzabc"], endpoints(sim), channels=DIFF)
    with pytest.raises(SubscribeError):
        await hub.start(wait=10)


async def test_views_built_on_request_cost_nothing_once_unread(sim: Simulator) -> None:
    async with Hub(["ethbtc"], endpoints(sim), channels=DIFF) as hub:
        source = hub.source("ethbtc", "bbo", ["bitstamp"])
        assert hub.source("ethbtc", "bbo", ["bitstamp"]) is source
        assert not source.attached
        got: list[BboView] = []
        source.add_sink(got.append)
        await wait_until(lambda: len(got) >= 2, what="bbo updates")
        assert {q.venue for q in got[-1].quotes} == {"bitstamp"}
        source.remove_sink(got.append)
        # Nothing else reads bitstamp (the declared book view has no sink): its output feeds no one.
        assert not source.attached and len(hub.tees["ethbtc", "bitstamp"]) == 0
        assert source.latest is None
        view = source.current()  # made now, attached only meanwhile
        assert isinstance(view, BboView) and not source.attached
        with pytest.raises(NotFoundError, match="unknown instrument 'solusdt'"):
            hub.source("solusdt")
        with pytest.raises(NotFoundError, match="unknown venue 'kraken'"):
            hub.source("ethbtc", "book", ["kraken"])
        with pytest.raises(ConfigError, match="unknown view kind 'depth'"):
            hub.source("ethbtc", "depth")


async def test_two_hubs_in_one_process_are_independent(sim: Simulator) -> None:
    async with (
        Hub(["ethbtc"], endpoints(sim, ["binance"]), channels={"binance": "diff"}) as one,
        Hub(["btcusdt", "ethbtc"], endpoints(sim), channels=DIFF) as two,
    ):
        first, second = one.views("ethbtc"), two.views("btcusdt")
        a, b = await asyncio.wait_for(asyncio.gather(first.get(), second.get()), 10)
        assert isinstance(a, MergedBook) and a.instrument == "ethbtc"
        assert isinstance(b, MergedBook) and b.instrument == "btcusdt"
    assert first.closed and second.closed


def test_bad_topologies_are_refused_with_the_reason() -> None:
    from dragonfly.venues import get_venue

    venues = [get_venue("binance"), get_venue("bitstamp")]
    with pytest.raises(ConfigError, match="unknown kind 'vwap'"):
        Hub(["ethbtc"], venues, aggregators=[AggregatorSpec("x", "vwap")])
    with pytest.raises(ConfigError, match="two aggregators are named 'a'"):
        Hub(["ethbtc"], venues, aggregators=[AggregatorSpec("a"), AggregatorSpec("a", "bbo")])
    with pytest.raises(ConfigError, match="instrument 'solusdt' is not among"):
        Hub(["ethbtc"], venues, aggregators=[AggregatorSpec("a", instruments=("solusdt",))])
    with pytest.raises(ConfigError, match="deeper than binance's snapshot channel"):
        Hub(["ethbtc"], venues, aggregators=[AggregatorSpec("a", depth=50)])
    with pytest.raises(ConfigError, match="listed twice"):
        Hub(["ethbtc", "ETH/BTC"], venues)


async def test_snapshot_channels_carry_every_instrument_on_one_connection(sim: Simulator) -> None:
    async with Hub(INSTRUMENTS, endpoints(sim)) as hub:  # binance depth20, bitstamp order_book
        assert set(hub.channels.values()) == {"snapshot"}
        assert {v: len(feeds) for v, feeds in hub.connections.items()} == {"binance": 1, "bitstamp": 1}
        await wait_until(
            lambda: all(hub.venue_book(v, i) is not None for i in INSTRUMENTS for v in hub.venues),
            what="every snapshot book",
        )
        for instrument in INSTRUMENTS:
            book = hub.source(instrument).current()
            assert isinstance(book, MergedBook) and book.instrument == instrument
            assert all(s.in_merge for s in book.venues)
    assert (sim.connections("binance"), sim.connections("bitstamp")) == (1, 1)


def test_a_venue_limit_splits_its_symbols_over_connections() -> None:
    from dragonfly.topology.hub import split_symbols

    assert split_symbols(["a", "b", "c"], None) == [["a", "b", "c"]]
    assert split_symbols(["a", "b", "c"], 2) == [["a", "b"], ["c"]]
    assert split_symbols([], 2) == []


async def test_a_paced_view_conflates_books_but_never_holds_back_a_withdrawal() -> None:
    from dragonfly.core.aggregator import Aggregator
    from dragonfly.core.types import VenueBook

    agg = Aggregator("ethbtc", ["a", "b"], 5, min_interval=0.2)
    views: list[MergedBook] = []
    agg.add_sink(views.append)
    a, b = agg.producers["a"], agg.producers["b"]
    b.put(VenueBook("b", ((9.0, 1.0),), ((11.0, 1.0),), 1))
    b.end_burst()
    assert len(views) == 1  # the first comes at once
    for i in range(50):  # a burst of changes within the interval: held, conflated
        a.put(VenueBook("a", ((9.5, 1.0 + i),), ((10.5, 1.0),), 2 + i))
        a.end_burst()
    assert len(views) == 1
    await asyncio.sleep(0.3)
    assert len(views) == 2 and views[-1].bids[0] == ("a", 9.5, 50.0)  # the newest, once
    a.put(VenueBook("a", ((9.6, 1.0),), ((10.5, 1.0),), 99))
    a.end_burst()
    b.withdraw()  # within the interval, but a venue leaving is published at once
    assert len(views) == 3 and {lv.exchange for lv in views[-1].bids} == {"a"}
    agg.reset()


def test_min_interval_is_checked_and_has_kind_defaults() -> None:
    assert AggregatorSpec("l", "liquidity").min_interval == 0.05
    assert AggregatorSpec("b", "book").min_interval == 0.0
    assert AggregatorSpec("b", "bbo", min_interval_ms=20).min_interval == 0.02
    with pytest.raises(ConfigError, match="min_interval_ms must be from 0 to 60000"):
        AggregatorSpec("b", "bbo", min_interval_ms=-1).check()


async def test_listeners_read_only_as_deep_as_the_views_attached_now(sim: Simulator) -> None:
    async with Hub(["ethbtc"], endpoints(sim), channels=DIFF, aggregators=VIEWS) as hub:
        listener = hub.feed("binance").listener
        assert listener.depth == 1  # nothing reads yet  # type: ignore[union-attr]
        seen: list[MergedBook] = []
        undo_book = hub.on_view(seen.append, "ethbtc", "book")
        assert listener.depth == 10  # type: ignore[union-attr]
        await wait_until(lambda: bool(seen), what="a book view")
        assert not listener.deep  # type: ignore[union-attr]
        liq: list[Liquidity] = []
        undo_liq = hub.on_view(liq.append, "ethbtc", "liquidity")
        # The liquidity view reads its 50 levels on demand: the listener still
        # forwards the book view's 10 a frame, and its deep changes too.
        assert listener.depth == 10  # type: ignore[union-attr]
        assert listener.deep  # type: ignore[union-attr]
        book = hub.venue_book("binance")
        assert book is not None and len(book.bids) > 10  # the deeper top, read at once
        assert len(book.bids) <= 50
        await wait_until(lambda: bool(liq), what="a liquidity view")
        aggregator = hub.source("ethbtc", "liquidity").aggregator
        read = [b for b in aggregator._books if b is not None]
        assert read and all(len(b.bids) > 10 for b in read)  # what it computed from
        undo_liq()
        assert listener.depth == 10  # type: ignore[union-attr]
        assert not listener.deep  # type: ignore[union-attr]
        undo_book()
        assert listener.depth == 1  # type: ignore[union-attr]
