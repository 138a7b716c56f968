"""Several symbols on one snapshot-channel connection, against the simulator over loopback.

One Binance (combined payloads) or Bitstamp connection carries two or three
symbols; every symbol's book must equal what the venue sent for it, a symbol
the venue does not list is refused alone (``REJECTED``, reason as detail,
never subscribed again) while the others stream, and the feed as a whole is
refused only when every symbol is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable

import pytest

from dragonfly.core.feed import Feed, FeedState
from dragonfly.core.health import VenueStatus
from dragonfly.core.listener import SnapshotRouter, TopNListener
from dragonfly.core.slots import SlotProducer, SlotQueue
from dragonfly.core.types import VenueBook
from dragonfly.sim import Simulator
from dragonfly.venues import get_venue

DEPTH = 10
#: Short, so the watchdog test is quick.
STALE_AFTER = 1.0


class Books:
    """One slot queue per symbol, as a topology gives each instrument its own aggregator."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.queues: dict[str, SlotQueue[VenueBook]] = {}
        self.producers: dict[str, SlotProducer[VenueBook] | None] = {}
        for symbol in symbols:
            queue: SlotQueue[VenueBook] = SlotQueue(lambda: None)
            self.queues[symbol] = queue
            self.producers[symbol] = queue.producer("venue")

    def latest(self, symbol: str) -> VenueBook | None:
        return self.queues[symbol].peek(0)


class Tap:
    """Records what the feed sent."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def opened(self, url: str) -> None:
        pass

    def sent(self, url: str, payload: bytes) -> None:
        self.frames.append(payload)

    def received(self, payload: bytes, recv_ns: int) -> None:
        pass

    def rest(self, url: str, body: bytes) -> None:
        pass


def all_live(feed: Feed, symbols: Iterable[str]) -> bool:
    return all(feed.health(s).status is VenueStatus.LIVE for s in symbols)


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        venues=["binance", "bitstamp"], instruments=["ethbtc", "btcusdt", "ethusdt"], seed=5, period_s=0.02
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


Started = tuple[Feed, "Books", Tap, "asyncio.Task[None]"]


async def start(sim: Simulator, venue: str, symbols: list[str]) -> Started:
    books = Books(symbols)
    tap = Tap()
    feed = Feed(
        get_venue(venue),
        books.producers,
        depth=DEPTH,
        channel="snapshot",
        ws_url=sim.ws_url(venue),
        rest_url=sim.rest_url(venue),
        tap=tap,
        stale_after=STALE_AFTER,
    )
    return feed, books, tap, asyncio.create_task(feed.run())


async def stop(feed: Feed, task: asyncio.Task[None]) -> None:
    feed.stop()
    await asyncio.wait_for(task, 5)


async def books_equal_what_was_sent(sim: Simulator, venue: str, feed: Feed, books: Books,
                                    instruments: dict[str, str]) -> None:
    """Pause the venue, let the last frames land, compare every symbol's book with its last frame."""
    sim.pause(venue)
    await asyncio.sleep(0.3)
    for symbol, instrument in instruments.items():
        sent = sim.last_sent(venue, instrument)
        assert sent is not None, instrument
        book = books.latest(symbol)
        assert book is not None, symbol
        assert list(book.bids) == sent[0][:DEPTH], symbol
        assert list(book.asks) == sent[1][:DEPTH], symbol
        assert feed.health(symbol).status is VenueStatus.LIVE


@pytest.mark.parametrize(
    ("venue", "instruments"),
    [
        ("binance", {"ETHBTC": "ethbtc", "BTCUSDT": "btcusdt", "ETHUSDT": "ethusdt"}),
        ("bitstamp", {"ethbtc": "ethbtc", "btcusdt": "btcusdt"}),
    ],
)
async def test_several_symbols_share_one_connection_and_each_gets_its_own_book(
    sim: Simulator, venue: str, instruments: dict[str, str]
) -> None:
    feed, books, tap, task = await start(sim, venue, list(instruments))
    try:
        assert isinstance(feed.listener, SnapshotRouter)
        assert await asyncio.wait_for(feed.outcome, 5) is None
        await wait_until(lambda: all(feed.health(s).status is VenueStatus.LIVE for s in instruments), "books")
        for symbol in instruments:
            assert await asyncio.wait_for(feed.outcomes[symbol], 5) is None
        await books_equal_what_was_sent(sim, venue, feed, books, instruments)
        assert sim.connections(venue) == 1
        assert feed.listener.unrouted == 0 and feed.listener.malformed == 0
        # The watchdog covers every symbol: the venue is paused, and each book goes stale.
        await wait_until(
            lambda: all(feed.health(s).status is VenueStatus.STALE for s in instruments),
            "every book stale",
            timeout=STALE_AFTER + 3,
        )
        assert not feed.listener.has_book
    finally:
        await stop(feed, task)
    if venue == "binance":
        # Combined payloads first, then one SUBSCRIBE naming every stream.
        first, second = (json.loads(f) for f in tap.frames[:2])
        assert first["method"] == "SET_PROPERTY" and first["params"] == ["combined", True]
        assert second["params"] == [f"{s.lower()}@depth20@100ms" for s in instruments]
    else:
        assert [json.loads(f)["data"]["channel"] for f in tap.frames if b"subscribe" in f] == [
            f"order_book_{s}" for s in instruments
        ]


@pytest.mark.parametrize(
    ("venue", "listed", "unlisted"),
    [("binance", ["ETHBTC", "BTCUSDT"], "NOPEUSDT"), ("bitstamp", ["ethbtc", "btcusdt"], "nopeusd")],
)
async def test_an_unlisted_symbol_is_refused_alone_and_the_others_stream(
    sim: Simulator, venue: str, listed: list[str], unlisted: str
) -> None:
    symbols = [listed[0], unlisted, listed[1]]
    feed, books, tap, task = await start(sim, venue, symbols)
    try:
        reason = await asyncio.wait_for(feed.outcomes[unlisted], 5)
        assert reason is not None and unlisted in reason
        assert await asyncio.wait_for(feed.outcome, 5) is None
        for symbol in listed:
            assert await asyncio.wait_for(feed.outcomes[symbol], 5) is None
        await wait_until(lambda: all_live(feed, listed), "listed books")
        refused = feed.health(unlisted)
        assert refused.status is VenueStatus.REJECTED and refused.detail == reason
        assert feed.rejected == {unlisted: reason}
        assert feed.symbols == listed and feed.state is FeedState.LIVE
        assert books.latest(unlisted) is None
        # A reconnect subscribes the listed symbols only, and leaves the refusal as it was.
        await sim.drop_clients(venue)
        await wait_until(lambda: feed.stats.connects == 2, "reconnect")
        await wait_until(lambda: all_live(feed, listed), "books again")
        assert feed.health(unlisted).status is VenueStatus.REJECTED
        await books_equal_what_was_sent(sim, venue, feed, books, {s: s.lower() for s in listed})
    finally:
        await stop(feed, task)
    assert feed.health(unlisted).status is VenueStatus.REJECTED  # stopping does not overwrite it
    subscribes = [f for f in tap.frames if b"subscribe" in f.lower() or b"SUBSCRIBE" in f]
    if venue == "binance":
        # Refused by the REST check before connecting: never subscribed at all.
        assert all(unlisted.lower().encode() not in f for f in subscribes)
        assert sim.connections(venue) == 2
    else:
        # Bitstamp refuses it on the wire; after that it is never subscribed again.
        assert sum(unlisted.encode() in f for f in subscribes) == 1


async def test_the_feed_is_refused_only_when_every_symbol_is(sim: Simulator) -> None:
    feed, _, _, task = await start(sim, "binance", ["NOPEUSDT", "NONEBTC"])
    try:
        reason = await asyncio.wait_for(feed.outcome, 5)
    finally:
        await stop(feed, task)
    assert reason is not None and "NOPEUSDT" in reason and "NONEBTC" in reason
    assert feed.state is FeedState.REJECTED
    assert all(feed.health(s).status is VenueStatus.REJECTED for s in ("NOPEUSDT", "NONEBTC"))
    assert all(feed.outcomes[s].result() for s in ("NOPEUSDT", "NONEBTC"))
    assert sim.connections("binance") == 0


async def test_one_symbol_keeps_the_raw_stream_and_a_bare_listener(sim: Simulator) -> None:
    feed, books, tap, task = await start(sim, "binance", ["ETHBTC"])
    try:
        assert isinstance(feed.listener, TopNListener)
        await wait_until(lambda: feed.listener.has_book, "book")
        await books_equal_what_was_sent(sim, "binance", feed, books, {"ETHBTC": "ethbtc"})
    finally:
        await stop(feed, task)
    assert [json.loads(f)["method"] for f in tap.frames] == ["SUBSCRIBE"]


async def test_a_feed_keeps_to_the_venues_symbols_per_connection() -> None:
    spec = get_venue("bybit")
    most = spec.limits.symbols_per_connection
    assert most is not None
    outputs: dict[str, SlotProducer[VenueBook] | None] = {f"S{i}USDT": None for i in range(most + 1)}
    with pytest.raises(ValueError, match="split them over several feeds"):
        Feed(spec, outputs)
    binance = get_venue("binance")
    assert binance.snapshot is not None
    snapshot = dataclasses.replace(binance.snapshot, route=None, route_key=None)
    unrouted = dataclasses.replace(binance, snapshot=snapshot)
    with pytest.raises(ValueError, match="one symbol a connection"):
        Feed(unrouted, {"A": None, "B": None}, channel="snapshot")
