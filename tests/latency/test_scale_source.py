"""latency.scale_source: pre-generated synthetic venues, replayed, keep every diff book exact.

Six venues x two instruments on their diff channels: a hub syncs every book
once (no gap, no resync, no bad checksum), and once the source stops, each
venue book it holds is the synthetic market's after as many steps as that
channel was sent rounds (the market is deterministic given the seed).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from dragonfly.core.diff import DiffListener
from dragonfly.sim.market import SyntheticMarket
from dragonfly.topology.hub import AggregatorSpec, Hub, VenueEndpoint
from dragonfly.venues import get_venue
from latency.scale_source import ReplayedVenues, generate

VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")
INSTRUMENTS = ["ethbtc", "btcusdt"]
SEED = 3
PERIOD = 0.01
ROUNDS = 300


async def _until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def captures() -> dict[str, object]:
    return generate(VENUES, INSTRUMENTS, PERIOD, ROUNDS, SEED)  # type: ignore[return-value]


async def test_replayed_books_are_the_market_s(captures: dict[str, object]) -> None:
    source = ReplayedVenues(captures, INSTRUMENTS, PERIOD, SEED)  # type: ignore[arg-type]
    await source.start()
    hub = Hub(
        INSTRUMENTS,
        [VenueEndpoint(get_venue(v), f"ws://127.0.0.1:{s.port}{s.ws_path}", s.rest.url)
         for v, s in source.servers.items()],
        aggregators=[AggregatorSpec("book", "book", depth=10)],
        channels=dict.fromkeys(VENUES, "diff"),
    )
    for instrument in INSTRUMENTS:  # a view read: the listeners forward its 10 levels
        hub.on_view(lambda view: None, instrument, "book")
    try:
        await hub.start(wait=20.0)
        await _until(lambda: all(tee.latest is not None for tee in hub.tees.values()))
        await _until(lambda: source.rounds >= 60)
        # Stop the source, let the hub read what is in flight.
        assert source._task is not None
        source._task.cancel()
        sent = dict(source.cursor)
        await asyncio.sleep(0.5)
        assert source.late == 0 and not source.exhausted
        for venue in VENUES:
            for feed in hub.connections[venue]:
                assert isinstance(feed.listener, DiffListener)
                for sync in feed.listener.syms.values():
                    s = sync.stats
                    assert (s.snapshots, s.gaps, s.resyncs, s.checksums_bad) == (1, 0, 0, 0), (venue, s)
        for venue in VENUES:
            cap = source.captures[venue]
            for key, instrument in cap.keys.items():
                steps = sent[venue, key]
                market = SyntheticMarket(INSTRUMENTS, VENUES, SEED)
                for _ in range(steps):
                    market.step()
                book = market.book(venue, instrument)
                bids, asks = book.sorted_levels()
                want = (book.float_side(bids)[:10], book.float_side(asks)[:10])
                got = hub.venue_book(venue, instrument)
                assert got is not None
                assert (list(got.bids), list(got.asks)) == want, (venue, instrument, steps)
    finally:
        await hub.stop()
        await source.stop()
