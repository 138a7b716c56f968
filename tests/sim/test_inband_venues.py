"""Kraken, OKX, Coinbase and Bybit on the synthetic market, against the real client.

Every test runs the simulator and dragonfly's own feed (``dragonfly.core.feed``
with the venue's ``VenueSpec``) over loopback: several symbols share one
connection, the client's books must equal the simulator's, checksums must
verify, and the venue's faults must show the way its protocol shows them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dragonfly.core.diff import DiffListener, SymbolSync, SyncState
from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.feed import Feed
from dragonfly.sim import Simulator, SyntheticMarket
from dragonfly.sim.instruments import venue_symbol
from dragonfly.sim.probe import connect
from dragonfly.venues import get_venue

INBAND = ("kraken", "okx", "coinbase", "bybit")
INSTRUMENTS = ("ethbtc", "btcusdt")
#: Venues whose frames carry a checksum the client verifies.
CHECKSUMMED = ("kraken", "okx")
#: Venues whose frames carry a position a lost message breaks.
SEQUENCED = ("okx", "coinbase", "bybit")
PERIOD_S = 0.02


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Client:
    """One real feed of a venue, every instrument on one connection."""

    def __init__(self, sim: Simulator, venue: str, instruments: tuple[str, ...] = INSTRUMENTS) -> None:
        self.sim = sim
        self.venue = venue
        spec = get_venue(venue)
        self.symbols = {spec.symbol(i): i for i in instruments}
        self.feed = Feed(spec, dict.fromkeys(self.symbols), ws_url=sim.ws_url(venue))
        self.task = asyncio.create_task(self.feed.run())

    @property
    def listener(self) -> DiffListener:
        listener = self.feed.listener
        assert isinstance(listener, DiffListener)
        return listener

    def sync(self, symbol: str) -> SymbolSync:
        return self.listener.syms[symbol]

    def synced(self, applied: int = 0) -> bool:
        return all(s.state is SyncState.SYNCED and s.stats.applied >= applied
                   for s in self.listener.syms.values())

    async def settle(self) -> None:
        """Freeze the market and let the last frames land."""
        self.sim.pause_market()
        await asyncio.sleep(0.2)

    def assert_equal(self) -> None:
        """Assert every book equals the simulator's (cut to the depth the client keeps)."""
        for symbol, instrument in self.symbols.items():
            sync = self.sync(symbol)
            bids, asks = sync.book.top(len(sync.book))
            sim_bids, sim_asks = self.sim.book(self.venue, instrument)
            kept = self.feed.diff.truncate or len(sim_bids) + len(sim_asks)
            assert list(bids) == [tuple(x) for x in sim_bids[:kept]], (self.venue, symbol)
            assert list(asks) == [tuple(x) for x in sim_asks[:kept]], (self.venue, symbol)

    async def stop(self) -> None:
        self.feed.stop()
        await self.task


@pytest.fixture(params=INBAND)
async def venue_sim(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Simulator]]:
    """One in-band venue serving two instruments, its truth recorded."""
    venue: str = request.param
    async with Simulator([venue], INSTRUMENTS, seed=5, period_s=PERIOD_S, truth_s=30) as sim:
        yield venue, sim


async def test_books_equal_the_venue_on_one_connection(venue_sim: tuple[str, Simulator]) -> None:
    venue, sim = venue_sim
    client = Client(sim, venue)
    try:
        assert await asyncio.wait_for(asyncio.shield(client.feed.outcome), 5) is None
        await wait_until(lambda: client.synced(applied=15), what="books synced and moving")
        await client.settle()
        client.assert_equal()
        for symbol, instrument in client.symbols.items():
            stats = client.sync(symbol).stats
            assert (stats.snapshots, stats.gaps, stats.resyncs, stats.checksums_bad) == (1, 0, 0, 0)
            if venue in CHECKSUMMED:
                assert stats.checksums_ok >= stats.applied > 0
            # The venue's position of the book names the state the client shows.
            book = client.sync(symbol).book
            seq = book.seq or sim.server(venue).book_seq(sim.market.book(venue, instrument))
            state = sim.truth(venue, instrument, seq)
            assert state is not None and state.valid_until_ns is None
            depth = len(state.bids)
            assert list(book.top(depth)[0]) == list(state.bids)
            assert list(book.top(depth)[1]) == list(state.asks)
        assert sim.connections(venue) == 1 and sim.clients(venue) == 1
    finally:
        await client.stop()


# The venue's rejection of an unknown symbol, as the real venue words it.
REJECTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "kraken": ({"event": "subscribe", "pair": ["XYZ/ABC"], "subscription": {"name": "book", "depth": 100}},
               {"errorMessage": "Currency pair not supported XYZ/ABC", "event": "subscriptionStatus",
                "pair": "XYZ/ABC", "status": "error", "subscription": {"depth": 100, "name": "book"}}),
    "okx": ({"op": "subscribe", "args": [{"channel": "books", "instId": "XYZ-ABC"}]},
            {"event": "error", "code": "60018",
             "msg": "Wrong URL or channel:books,instId:XYZ-ABC doesn't exist."}),
    "coinbase": ({"type": "subscribe", "channel": "level2", "product_ids": ["XYZ-ABC"]},
                 {"type": "error", "message": "Failed to subscribe: unknown product_ids ['XYZ-ABC']"}),
    "bybit": ({"op": "subscribe", "args": ["orderbook.50.XYZABC"], "req_id": "1"},
              {"success": False, "ret_msg": "Invalid symbol :[orderbook.50.XYZABC]", "req_id": "1",
               "op": "subscribe"}),
}


async def test_unknown_symbol_gets_the_venue_rejection(venue_sim: tuple[str, Simulator]) -> None:
    venue, sim = venue_sim
    request, reply = REJECTIONS[venue]
    probe = await connect(sim.ws_url(venue))
    probe.send(request)
    got = await probe.wait_json({k: reply[k] for k in list(reply)[:2]})
    got.pop("connId", None)
    got.pop("conn_id", None)
    assert got == reply
    await probe.close()
    # The real client reads it as a refusal of that symbol.
    client = Client(sim, venue, ("xyzabc",))
    try:
        outcome = await asyncio.wait_for(asyncio.shield(client.feed.outcome), 5)
        assert outcome is not None and "XYZ" in outcome.upper(), outcome
    finally:
        await client.stop()


async def test_dropped_connection_resyncs(venue_sim: tuple[str, Simulator]) -> None:
    venue, sim = venue_sim
    client = Client(sim, venue)
    try:
        await wait_until(lambda: client.synced(applied=3), what="sync")
        assert await sim.drop_clients(venue) == 1
        await wait_until(lambda: client.feed.stats.connects == 2, timeout=10, what="reconnect")
        await wait_until(lambda: client.synced() and all(
            client.sync(s).stats.snapshots == 2 for s in client.symbols), timeout=10, what="resync")
        await client.settle()
        client.assert_equal()
        assert sim.connections(venue) == 2
    finally:
        await client.stop()


@pytest.mark.parametrize("venue_sim", SEQUENCED, indirect=True)
async def test_a_lost_message_shows_as_a_gap(venue_sim: tuple[str, Simulator]) -> None:
    venue, sim = venue_sim
    client = Client(sim, venue)
    try:
        await wait_until(lambda: client.synced(applied=5), what="sync")
        assert sim.skip_update(venue, "ethbtc") == 1
        symbol = get_venue(venue).symbol("ethbtc")
        await wait_until(lambda: client.sync(symbol).stats.resyncs >= 1, what="the gap seen")
        await wait_until(lambda: client.synced(), timeout=10, what="resync")
        await client.settle()
        client.assert_equal()
    finally:
        await client.stop()


@pytest.mark.parametrize("venue_sim", CHECKSUMMED, indirect=True)
async def test_a_broken_checksum_is_caught(venue_sim: tuple[str, Simulator]) -> None:
    venue, sim = venue_sim
    client = Client(sim, venue)
    try:
        await wait_until(lambda: client.synced(applied=5), what="sync")
        fault = sim.fault(venue, "checksum")
        await wait_until(lambda: fault.applied >= 1, what="a frame changed")
        fault.cancel()
        await wait_until(lambda: any(client.sync(s).stats.checksums_bad >= 1 for s in client.symbols),
                         what="the bad checksum seen")
        await wait_until(lambda: client.synced(), timeout=10, what="resync")
        await client.settle()
        client.assert_equal()
    finally:
        await client.stop()


def test_capabilities_say_what_each_venue_shows() -> None:
    sim = Simulator(list(INBAND), ["ethbtc"])
    for venue in ("kraken",):
        with pytest.raises(ValueError, match="skip"):
            sim.fault(venue, "skip")
    for venue in ("coinbase", "bybit"):
        with pytest.raises(ValueError, match="checksum"):
            sim.fault(venue, "checksum")
    for venue in ("kraken", "coinbase", "bybit"):
        with pytest.raises(ValueError, match="notice"):
            sim.fault(venue, "notice")
        with pytest.raises(ValueError, match="rest"):
            sim.fault(venue, "rest-error")


async def test_okx_notice_makes_the_client_reconnect() -> None:
    async with Simulator(["okx"], INSTRUMENTS, period_s=PERIOD_S) as sim:
        client = Client(sim, "okx")
        try:
            await wait_until(lambda: client.synced(), what="sync")
            sim.fault("okx", "notice,grace=5")
            await wait_until(lambda: client.feed.stats.connects == 2, what="reconnect on the notice")
            await wait_until(lambda: client.synced(), what="resync")
        finally:
            await client.stop()


async def test_kraken_heartbeats_an_idle_connection() -> None:
    async with Simulator(["kraken"], ["ethbtc"], period_s=PERIOD_S) as sim:
        probe = await connect(sim.ws_url("kraken"))
        probe.send({"event": "subscribe", "pair": ["ETH/XBT"], "subscription": {"name": "book", "depth": 10}})
        ack = await probe.wait_json({"event": "subscriptionStatus"})
        assert ack["status"] == "subscribed" and ack["channelName"] == "book-10"
        sim.pause_market()  # no more updates: the connection goes idle
        assert await probe.wait_json({"event": "heartbeat"}, timeout=3) == {"event": "heartbeat"}
        probe.send({"event": "ping", "reqid": 7})
        assert await probe.wait_json({"event": "pong"}) == {"event": "pong", "reqid": 7}
        await probe.close()


async def test_one_engine_merges_all_four_venues() -> None:
    async with Simulator(list(INBAND), ["ethbtc"], seed=2, period_s=PERIOD_S) as sim:
        endpoints = [VenueEndpoint(get_venue(v), ws_url=sim.ws_url(v), rest_url=sim.rest_url(v))
                     for v in INBAND]
        engine = Engine("ethbtc", endpoints, depth=10, max_deviation=0)
        assert await engine.start(wait=10) == dict.fromkeys(INBAND)
        try:
            await wait_until(lambda: engine.latest is not None and len(
                {lv.exchange for lv in engine.latest.bids}) == len(INBAND), what="all four merged")
            sim.pause_market()
            await asyncio.sleep(0.3)
            book = engine.latest
            assert book is not None
            bids = sorted(((p, a, v) for v in INBAND for p, a in sim.book(v, "ethbtc")[0][:10]),
                          key=lambda x: (-x[0], -x[1], x[2]))[:10]
            asks = sorted(((p, a, v) for v in INBAND for p, a in sim.book(v, "ethbtc")[1][:10]),
                          key=lambda x: (x[0], -x[1], x[2]))[:10]
            assert [(lv.price, lv.amount, lv.exchange) for lv in book.bids] == bids
            assert [(lv.price, lv.amount, lv.exchange) for lv in book.asks] == asks
            assert all(sim.connections(v) == 1 for v in INBAND)
        finally:
            await engine.stop()


def test_cli_serves_all_six_venues() -> None:
    venues = ["binance", "bitstamp", *INBAND]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dragonfly.sim", "--venues", ",".join(venues),
         "--instruments", "ethbtc,btcusdt", "--period", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in venues]
        for venue, line in zip(venues, lines, strict=True):
            assert line.startswith(venue) and " ws ws://127.0.0.1:" in line and " rest http://" in line
        urls = {venue: line.split()[2] for venue, line in zip(venues, lines, strict=True)}

        async def one_symbol_each() -> None:
            for venue in INBAND:
                request = REJECTIONS[venue][0]
                probe = await connect(urls[venue])
                probe.send(request)  # an unknown symbol: the venue's own error comes back
                reply = REJECTIONS[venue][1]
                await probe.wait_json({k: reply[k] for k in list(reply)[:2]})
                await probe.close()

        asyncio.run(one_symbol_each())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_symbols_and_decimals_as_the_venues_print_them() -> None:
    market = SyntheticMarket(["ethbtc", "btcusdt"], list(INBAND), seed=1)
    ethbtc = market.instruments["ethbtc"]
    assert {v: venue_symbol(v, ethbtc) for v in INBAND} == {
        "kraken": "ETH/XBT", "okx": "ETH-BTC", "coinbase": "ETH-BTC", "bybit": "ETHBTC"}
    for venue in INBAND:  # the client spells them the same
        assert get_venue(venue).symbol("ethbtc") == venue_symbol(venue, ethbtc)
    bids, _ = market.book("kraken", "ethbtc").sorted_levels()
    price, volume = market.book("kraken", "ethbtc").text_side(bids[:1])[0]
    assert len(price.partition(".")[2]) == 5 and len(volume.partition(".")[2]) == 8
    okx_book = market.book("okx", "btcusdt")
    for price, size in okx_book.text_side(okx_book.sorted_levels()[0]):
        assert not price.endswith("0") or "." not in price, price  # no trailing zeros
        assert not size.endswith(".") and (not size.endswith("0") or "." not in size), size
