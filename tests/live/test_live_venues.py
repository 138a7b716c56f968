"""Against the real venues (internet needed): ``pytest -m live``. Deselected by default.

The same code as everywhere else, only the addresses are the venues' own.
"""

from __future__ import annotations

import asyncio

import pytest

from dragonfly.core.diff import DiffListener, SyncState
from dragonfly.core.engine import Engine
from dragonfly.venues import VENUES, get_venue

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]

INSTRUMENTS = {"binance": "ethbtc", "bitstamp": "ethbtc", "kraken": "ethbtc", "okx": "ethbtc",
               "coinbase": "ethbtc", "bybit": "ethbtc"}  # fmt: skip


async def test_snapshot_channels_merge_live() -> None:
    engine = Engine("ethbtc", [get_venue("binance"), get_venue("bitstamp")], depth=10)
    assert await engine.start(wait=20) == {"binance": None, "bitstamp": None}
    try:
        book = await asyncio.wait_for(engine.books().get(), 20)
        assert book is not None and book.bids and book.asks
    finally:
        await engine.stop()


@pytest.mark.parametrize("venue", sorted(VENUES))
async def test_diff_book_synchronises_live(venue: str) -> None:
    engine = Engine(INSTRUMENTS[venue], [get_venue(venue)], depth=10, channels={venue: "diff"})
    report = await engine.start(wait=20)
    try:
        assert report[venue] is None, report
        listener = engine.feeds[venue].listener
        assert isinstance(listener, DiffListener)
        (sync,) = listener.syms.values()
        for _ in range(300):
            if sync.state is SyncState.SYNCED and sync.stats.applied >= 5:
                break
            await asyncio.sleep(0.1)
        assert sync.state is SyncState.SYNCED, sync.stats
        assert sync.stats.gaps == 0 and sync.stats.checksums_bad == 0
        assert not sync.book.crossed()
    finally:
        await engine.stop()


async def test_unknown_instrument_is_rejected_live() -> None:
    engine = Engine("xyzxyz", [get_venue("binance"), get_venue("bitstamp")])
    with pytest.raises(Exception, match="rejected instrument 'xyzxyz'"):
        await engine.start(wait=20)
