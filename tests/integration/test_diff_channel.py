"""The exact-book (diff) channel live against the simulator: books equal the venue's."""

from __future__ import annotations

import asyncio

import pytest

from dragonfly.core.diff import DiffListener, SyncState
from dragonfly.core.engine import Engine
from dragonfly.sim import Simulator

from .conftest import endpoints, reference_merge, wait_until


@pytest.fixture
async def diff_engine(sim: Simulator) -> Engine:
    eng = Engine("ethbtc", endpoints(sim), depth=10, channels={"binance": "diff", "bitstamp": "diff"})
    assert await eng.start(wait=10) == {"binance": None, "bitstamp": None}
    return eng


def synced(engine: Engine, venue: str) -> bool:
    listener = engine.feeds[venue].listener
    assert isinstance(listener, DiffListener)
    return all(s.state is SyncState.SYNCED for s in listener.syms.values())


async def test_diff_books_equal_the_simulated_venues(sim: Simulator, diff_engine: Engine) -> None:
    try:
        await wait_until(
            lambda: synced(diff_engine, "binance") and synced(diff_engine, "bitstamp"), what="sync"
        )
        await asyncio.sleep(0.5)  # let the books move
        sim.pause_market()
        await asyncio.sleep(0.4)  # the last diffs land
        for venue in ("binance", "bitstamp"):
            listener = diff_engine.feeds[venue].listener
            assert isinstance(listener, DiffListener)
            (sync,) = listener.syms.values()
            bids, asks = sync.book.top(len(sync.book))
            sim_bids, sim_asks = sim.book(venue, "ethbtc")
            assert list(bids) == [tuple(lv) for lv in sim_bids], venue
            assert list(asks) == [tuple(lv) for lv in sim_asks], venue
            assert sync.stats.gaps == 0 and sync.stats.applied > 0
        merged = diff_engine.latest
        assert merged is not None
        books = {v: sim.book(v, "ethbtc") for v in ("binance", "bitstamp")}
        bids, asks = reference_merge(
            {v: ([tuple(x) for x in b], [tuple(x) for x in a]) for v, (b, a) in books.items()}, 10
        )
        assert (list(merged.bids), list(merged.asks)) == (bids, asks)
    finally:
        await diff_engine.stop()


async def test_a_lost_diff_withdraws_the_book_and_resyncs(sim: Simulator, diff_engine: Engine) -> None:
    try:
        await wait_until(lambda: synced(diff_engine, "binance"), what="binance sync")
        listener = diff_engine.feeds["binance"].listener
        assert isinstance(listener, DiffListener)
        (sync,) = listener.syms.values()
        withdrawn: list[bool] = []
        diff_engine.add_sink(
            lambda book: withdrawn.append("binance" not in {lv.exchange for lv in book.bids + book.asks})
        )
        # Past the snapshot first: a lost event that the snapshot covers is harmless.
        await wait_until(lambda: sync.stats.applied >= 10, what="deltas past the snapshot")
        assert sim.skip_update("binance", "ethbtc") == 1
        await wait_until(lambda: sync.stats.gaps >= 1, what="the gap")
        await wait_until(lambda: sync.state is SyncState.SYNCED, timeout=15, what="resync")
        assert sync.stats.resyncs >= 1 and diff_engine.feeds["binance"].stats.snapshots >= 2
        assert True in withdrawn, "the gapped book was not withdrawn from the merge"
        sim.pause_market()
        await asyncio.sleep(0.4)
        bids, asks = sync.book.top(len(sync.book))
        sim_bids, sim_asks = sim.book("binance", "ethbtc")
        assert (list(bids), list(asks)) == ([tuple(x) for x in sim_bids], [tuple(x) for x in sim_asks])
    finally:
        await diff_engine.stop()
