"""dragonfly.v1.MarketData over real sockets, with the generated stubs, on a fake catalog.

The catalog's sources are driven by calling their sinks (no venues): each
test publishes views and reads what a real grpc.aio client receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest

from dragonfly.core.errors import ConfigError, NotFoundError
from dragonfly.core.fanout import FanOut
from dragonfly.core.liquidity import Band, Fill, Liquidity, VenueAmount
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import BboView, VenueBbo
from dragonfly.serve import dragonfly_v1_pb2 as pb
from dragonfly.serve import dragonfly_v1_pb2_grpc as pb_grpc
from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc, v1_encode
from dragonfly.serve.encode import encode_summary
from dragonfly.serve.grpc_service import GrpcService, Limits
from dragonfly.serve.v1 import MarketData
from dragonfly.serve.v1_encode import encode_update_pb, update_pb
from dragonfly.topology.source import InstrumentInfo, VenueInfo, View, ViewSink

VENUES = ("binance", "bitstamp", "kraken")
INSTRUMENTS = ("ethbtc", "btcusdt")
DEPTH = 10
TOKEN = "s3cret-token"
SUBSCRIBE = "/dragonfly.v1.MarketData/Subscribe"


# ---------------------------------------------------------------- the fake topology


def states(out: str = "") -> tuple[VenueState, ...]:
    now = time.time_ns()
    return tuple(
        VenueState(venue, venue != out, 1 if venue != out else 4, now - 1000, 1000, 7 + i)
        for i, venue in enumerate(VENUES)
    )


def make_book(instrument: str, sequence: int, top: float = 1.0, out: str = "") -> MergedBook:
    """A book of DEPTH levels a side; ``top`` is the best bid's amount, ``sequence`` in the deepest level."""
    bids = tuple(
        MergedLevel(VENUES[i % 3], 100.0 - i, float(sequence) if i == DEPTH - 1 else top + i)
        for i in range(DEPTH)
    )
    asks = tuple(MergedLevel(VENUES[(i + 1) % 3], 101.0 + i, 2.0 + i) for i in range(DEPTH))
    now = time.time_ns()
    return MergedBook(instrument, 1.0, bids, asks, sequence, now - 500, now, "kraken", sequence, states(out))


def make_bbo(instrument: str, sequence: int) -> BboView:
    quotes = tuple(VenueBbo(v, 100.0 - i, 1.0 + sequence, 101.0 + i, 2.0) for i, v in enumerate(VENUES))
    best_bid = MergedLevel(VENUES[0], 100.0, 1.0 + sequence)
    best_ask = MergedLevel(VENUES[0], 101.0, 2.0)
    now = time.time_ns()
    return BboView(
        instrument, 1.0, best_bid, best_ask, quotes, sequence, now - 500, now, "binance", 1, states()
    )


def make_liquidity(instrument: str, sequence: int) -> Liquidity:
    parts = tuple(VenueAmount(v, 1.0 + i) for i, v in enumerate(VENUES))
    bands = tuple(Band(bps, 6.0, 6.0 + sequence, parts, parts[:2]) for bps in (10.0, 25.0, 50.0, 100.0))
    sells = tuple(Fill("sell", q, q, 99.5, 99.0, 50.0, parts, True) for q in (1.0, 5.0))
    buys = (Fill("buy", 100.0, 6.0, 101.5, 103.0, 49.5, parts, False),)
    now = time.time_ns()
    return Liquidity(instrument, 100.5, bands, sells, buys, sequence, now - 500, now, "okx", 2, states())


MAKERS: dict[str, Callable[[str, int], View]] = {
    "book": make_book,
    "bbo": make_bbo,
    "liquidity": make_liquidity,
}


@dataclass(eq=False)
class FakeSource:
    """A view source driven by the test: publish() calls every sink, as an aggregator does."""

    instrument: str
    kind: str
    venue_names: tuple[str, ...]
    depth: int = DEPTH
    latest: View | None = None
    sinks: list[ViewSink] = field(default_factory=list)
    attached: int = 0

    def current(self) -> View:
        return MAKERS[self.kind](self.instrument, 1000)

    def add_sink(self, sink: ViewSink) -> None:
        self.attached += 1
        self.sinks.append(sink)

    def remove_sink(self, sink: ViewSink) -> None:
        self.sinks.remove(sink)

    def publish(self, view: View) -> None:
        self.latest = view
        for sink in tuple(self.sinks):
            sink(view)


class FakeCatalog:
    """Two instruments on three venues, every kind; sources made on demand, one per arguments."""

    def __init__(self) -> None:
        self.sources: dict[tuple[str, str, tuple[str, ...]], FakeSource] = {}

    @property
    def instruments(self) -> tuple[str, ...]:
        return INSTRUMENTS

    def catalog(self) -> tuple[InstrumentInfo, ...]:
        now = time.time_ns()
        return tuple(
            InstrumentInfo(
                instrument,
                tuple(
                    VenueInfo(
                        venue,
                        instrument.upper(),
                        "diff" if venue == "kraken" else "snapshot",
                        venue != "bitstamp",
                        1 if venue != "bitstamp" else 4,
                        now - 2000,
                        2000,
                        60_000_000_000,
                        "" if venue != "bitstamp" else "no update for 60 s",
                    )
                    for venue in VENUES
                ),
                ("book", "bbo", "liquidity"),
                DEPTH,
            )
            for instrument in INSTRUMENTS
        )

    def source(self, instrument: str, kind: str, venues: Sequence[str] = ()) -> FakeSource:
        if instrument not in INSTRUMENTS:
            raise NotFoundError(f"unknown instrument {instrument!r}")
        if kind not in MAKERS:
            raise ConfigError(f"unknown kind {kind!r}")
        for venue in venues:
            if venue not in VENUES:
                raise NotFoundError(f"unknown venue {venue!r} for {instrument}: it has {', '.join(VENUES)}")
        key = (instrument, kind, tuple(venues))
        if key not in self.sources:
            self.sources[key] = FakeSource(instrument, kind, tuple(venues) or VENUES)
        return self.sources[key]

    def the(self, instrument: str = "ethbtc", kind: str = "book") -> FakeSource:
        return self.source(instrument, kind)


# ---------------------------------------------------------------- serving


@dataclass
class Served:
    catalog: FakeCatalog
    fanout: FanOut[bytes]
    service: GrpcService
    target: str

    @property
    def v1(self) -> MarketData:
        assert self.service.v1 is not None
        return self.service.v1


@contextlib.asynccontextmanager
async def serving(**kwargs: Any) -> AsyncIterator[Served]:
    catalog = FakeCatalog()
    fanout: FanOut[bytes] = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0, catalog=catalog, **kwargs)
    port = await service.start()
    try:
        yield Served(catalog, fanout, service, f"127.0.0.1:{port}")
    finally:
        await service.stop(grace=0.2)


@contextlib.asynccontextmanager
async def stub(served: Served) -> AsyncIterator[pb_grpc.MarketDataAsyncStub]:
    async with grpc.aio.insecure_channel(served.target) as channel:
        yield pb_grpc.MarketDataStub(channel)


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def read(call: grpc.aio.UnaryStreamCall[Any, pb.Update]) -> pb.Update:
    async with asyncio.timeout(5):
        update = await call.read()
    assert isinstance(update, pb.Update), update
    return update


async def opened(served: Served, call: grpc.aio.UnaryStreamCall[Any, Any], streams: int = 1) -> None:
    """Wait until ``call``'s stream is up on the server (its feeds attached)."""
    async with asyncio.timeout(5):
        await call.initial_metadata()
    await wait_until(lambda: served.service.subscribers == streams)


def request(
    *instruments: str, kind: pb.Kind.ValueType = pb.KIND_BOOK, depth: int = 0, **kwargs: Any
) -> pb.SubscribeRequest:
    return pb.SubscribeRequest(instruments=instruments, kind=kind, depth=depth, **kwargs)


async def refused(call: Any) -> tuple[grpc.StatusCode, str]:
    """Await a call that must fail; return its status and details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async with asyncio.timeout(5):
            if isinstance(call, grpc.aio.UnaryStreamCall):
                await call.read()
            else:
                await call
    return info.value.code(), info.value.details() or ""


# ---------------------------------------------------------------- streams


async def test_subscribe_book_truncates_to_the_depth_asked() -> None:
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("ETH-BTC", depth=3))  # case and separators ignored
        await opened(served, call)
        book = make_book("ethbtc", 1)
        served.catalog.the().publish(book)
        update = await read(call)
        assert update == update_pb(book, 3)
        assert update.kind == pb.KIND_BOOK and update.WhichOneof("view") == "book"
        assert [(lv.venue, lv.price, lv.amount) for lv in update.book.bids] == list(book.bids[:3])
        assert len(update.book.asks) == 3
        assert update.instrument == "ethbtc" and update.sequence == 1
        assert (update.recv_ns, update.publish_ns) == (book.recv_ns, book.publish_ns)
        assert [(s.venue, s.in_merge, s.status, s.age_ns) for s in update.venues] == [
            (s.venue, s.in_merge, s.status, s.age_ns) for s in book.venues
        ]


async def test_the_stream_carries_the_encoded_bytes_and_depth_0_is_the_source_depth() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.target) as channel:
        method = channel.unary_stream(
            SUBSCRIBE, request_serializer=pb.SubscribeRequest.SerializeToString, response_deserializer=None
        )
        call = method(request("ethbtc"))
        await opened(served, call)
        book = make_book("ethbtc", 1)
        served.catalog.the().publish(book)
        async with asyncio.timeout(5):
            assert await call.read() == encode_update_pb(book, 0)


async def test_updates_unchanged_at_a_smaller_depth_are_not_sent() -> None:
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("ethbtc", depth=3))
        await opened(served, call)
        source = served.catalog.the()
        source.publish(make_book("ethbtc", 1))
        assert (await read(call)).sequence == 1
        source.publish(make_book("ethbtc", 2))  # only the deepest level differs
        source.publish(make_book("ethbtc", 3, out="kraken"))  # kraken leaves the merge: sent
        update = await read(call)
        assert update.sequence == 3 and not update.venues[2].in_merge
        source.publish(make_book("ethbtc", 4, top=5.0, out="kraken"))  # the top changed: sent
        assert (await read(call)).sequence == 4
        (feed,) = served.v1.feeds
        assert (feed.encoded, feed.suppressed) == (4, 1)


@pytest.mark.parametrize("kind", [pb.KIND_BBO, pb.KIND_LIQUIDITY])
async def test_subscribe_bbo_and_liquidity(kind: pb.Kind.ValueType) -> None:
    name = v1_encode.KIND_NAMES[kind]
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("btcusdt", kind=kind))
        await opened(served, call)
        views = [MAKERS[name]("btcusdt", n) for n in (1, 2)]
        for view in views:
            served.catalog.the("btcusdt", name).publish(view)
            update = await read(call)
            assert update == update_pb(view)  # type: ignore[arg-type]
            assert update.kind == kind and update.WhichOneof("view") == name


async def test_several_instruments_in_one_stream_each_keep_their_newest() -> None:
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("ethbtc", "btcusdt", "ethbtc", depth=5))  # a duplicate counts once
        await opened(served, call)
        eth, btc = served.catalog.the("ethbtc"), served.catalog.the("btcusdt")
        assert len(served.v1.feeds) == 2 and len(eth.sinks) == len(btc.sinks) == 1
        eth.publish(make_book("ethbtc", 1))
        assert (await read(call)).instrument == "ethbtc"
        btc.publish(make_book("btcusdt", 1))
        assert (await read(call)).instrument == "btcusdt"
        # A burst of one instrument does not push the other's update out (queue_len 1 each).
        btc.publish(make_book("btcusdt", 2, top=2.0))
        for n in range(2, 7):
            eth.publish(make_book("ethbtc", n, top=float(n)))
        received = {(u.instrument, u.sequence) for u in [await read(call), await read(call)]}
        assert received == {("ethbtc", 6), ("btcusdt", 2)}


async def test_each_update_is_encoded_once_for_all_subscribers(monkeypatch: pytest.MonkeyPatch) -> None:
    encodes: list[int] = []
    encode_book = v1_encode.encode_book

    def counting(book: MergedBook, depth: int = 0) -> bytes:
        encodes.append(book.sequence)
        return encode_book(book, depth)

    monkeypatch.setattr(v1_encode, "encode_book", counting)
    async with serving() as served:
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(stub(served)) for _ in range(3)]
            calls = []
            for count, client in enumerate(clients, 1):
                calls.append(call := client.Subscribe(request("ethbtc", depth=5)))
                await opened(served, call, count)
            source = served.catalog.the()
            assert len(source.sinks) == 1 and source.attached == 1
            for n in range(1, 4):
                source.publish(make_book("ethbtc", n, top=float(n)))
                updates = [await read(call) for call in calls]
                assert {u.sequence for u in updates} == {n}
            assert encodes == [1, 2, 3]  # one encoding per update, not per subscriber
            # Another depth is another feed: its own sink and encoding.
            other = clients[0].Subscribe(request("ethbtc", depth=2))
            await opened(served, other, 4)
            assert len(source.sinks) == 2 and len(served.v1.feeds) == 2
            # It starts with the latest view, encoded for it.
            assert (await read(other)).sequence == 3 and encodes == [1, 2, 3, 3]
            for call in (*calls, other):
                call.cancel()
            await wait_until(lambda: served.service.subscribers == 0)
        # The last subscriber gone, the sinks are removed: the aggregator detaches.
        assert source.sinks == [] and not served.v1.feeds
        source.publish(make_book("ethbtc", 9))
        assert encodes == [1, 2, 3, 3]


async def test_the_sink_stays_until_the_last_subscriber_leaves() -> None:
    async with serving() as served, stub(served) as client:
        one = client.Subscribe(request("ethbtc", kind=pb.KIND_BBO))
        await opened(served, one)
        two = client.Subscribe(request("ethbtc", kind=pb.KIND_BBO))
        await opened(served, two, 2)
        source = served.catalog.the("ethbtc", "bbo")
        one.cancel()
        await wait_until(lambda: served.service.subscribers == 1)
        assert len(source.sinks) == 1
        source.publish(make_bbo("ethbtc", 5))
        assert (await read(two)).sequence == 5
        two.cancel()
        await wait_until(lambda: not source.sinks)
        assert served.v1.feeds == ()


async def test_a_new_stream_starts_with_the_latest_view() -> None:
    async with serving() as served, stub(served) as client:
        served.catalog.the().latest = make_book("ethbtc", 41)
        call = client.Subscribe(request("ethbtc"))
        assert (await read(call)).sequence == 41


async def test_a_venue_subset_is_its_own_source() -> None:
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("ethbtc", venues=["kraken", "Binance"]))
        await opened(served, call)
        subset = served.catalog.sources["ethbtc", "book", ("binance", "kraken")]
        assert len(subset.sinks) == 1 and not served.catalog.the().sinks
        subset.publish(make_book("ethbtc", 3))
        assert (await read(call)).sequence == 3


async def test_stop_ends_v1_streams_with_ok_and_detaches() -> None:
    async with serving() as served, stub(served) as client:
        call = client.Subscribe(request("ethbtc", "btcusdt"))
        await opened(served, call)
        await served.service.stop(grace=0.5)
        async with asyncio.timeout(5):
            assert await call.code() == grpc.StatusCode.OK
        assert served.v1.feeds == () and not served.catalog.the().sinks


async def test_stamp_send_ns_applies_to_v1() -> None:
    async with serving(stamp_send_ns=True) as served, stub(served) as client:
        call = client.Subscribe(request("ethbtc"))
        await opened(served, call)
        before = time.time_ns()
        served.catalog.the().publish(make_book("ethbtc", 1))
        assert (await read(call)).send_ns >= before


# ---------------------------------------------------------------- unary calls


async def test_snapshot_returns_the_view_made_now() -> None:
    async with serving() as served, stub(served) as client:
        update = await client.Snapshot(pb.SnapshotRequest(instrument="ethbtc", kind=pb.KIND_BOOK, depth=2))
        assert update.sequence == 1000 and len(update.book.bids) == len(update.book.asks) == 2
        liquidity = await client.Snapshot(pb.SnapshotRequest(instrument="btcusdt", kind=pb.KIND_LIQUIDITY))
        assert liquidity.WhichOneof("view") == "liquidity" and liquidity.liquidity.mid == 100.5
        # A unary call attaches nothing.
        assert served.v1.feeds == () and not any(s.sinks for s in served.catalog.sources.values())


async def test_list_instruments() -> None:
    async with serving() as served, stub(served) as client:
        listed = await client.ListInstruments(pb.ListInstrumentsRequest())
        assert [i.instrument for i in listed.instruments] == list(INSTRUMENTS)
        eth = listed.instruments[0]
        assert list(eth.kinds) == [pb.KIND_BOOK, pb.KIND_BBO, pb.KIND_LIQUIDITY] and eth.depth == DEPTH
        assert [(v.venue, v.symbol, v.channel, v.in_merge, v.status) for v in eth.venues] == [
            ("binance", "ETHBTC", "snapshot", True, pb.VENUE_STATUS_LIVE),
            ("bitstamp", "ETHBTC", "snapshot", False, pb.VENUE_STATUS_STALE),
            ("kraken", "ETHBTC", "diff", True, pb.VENUE_STATUS_LIVE),
        ]
        assert eth.venues[1].detail == "no update for 60 s"
        assert eth.venues[0].age_ns == 2000 and eth.venues[0].stale_after_ns == 60_000_000_000


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("message", "code", "details"),
    [
        (
            request("xyz"),
            grpc.StatusCode.NOT_FOUND,
            "unknown instrument 'xyz': this server serves ethbtc, btcusdt",
        ),
        (
            request("ethbtc", venues=["binance", "mtgox"]),
            grpc.StatusCode.NOT_FOUND,
            "unknown venue 'mtgox' for ethbtc: it has binance, bitstamp, kraken",
        ),
        (
            request(),
            grpc.StatusCode.INVALID_ARGUMENT,
            "no instrument given: name one or more in instruments; this server serves ethbtc, btcusdt",
        ),
        (
            request("ethbtc", depth=11),
            grpc.StatusCode.INVALID_ARGUMENT,
            "depth 11 is deeper than the 10 levels a side this server keeps for ethbtc: "
            "ask for 1 to 10, or 0 for all of them",
        ),
        (
            request("ethbtc", kind=pb.KIND_UNSPECIFIED),
            grpc.StatusCode.INVALID_ARGUMENT,
            "no kind given: set kind to one of KIND_BOOK, KIND_BBO, KIND_LIQUIDITY",
        ),
        (
            request("ethbtc", kind=pb.Kind.ValueType(7)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown kind 7: expected one of KIND_BOOK, KIND_BBO, KIND_LIQUIDITY",
        ),
        (
            request("ethbtc", kind=pb.KIND_BBO, depth=5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "depth applies to KIND_BOOK only: send depth 0 with KIND_BBO (got 5)",
        ),
    ],
)
async def test_bad_subscriptions_are_refused_with_an_actionable_message(
    message: pb.SubscribeRequest, code: grpc.StatusCode, details: str
) -> None:
    async with serving() as served, stub(served) as client:
        assert await refused(client.Subscribe(message)) == (code, details)
        if len(message.instruments) == 1:  # the same for a one-off
            snapshot = pb.SnapshotRequest(
                instrument=message.instruments[0],
                kind=message.kind,
                depth=message.depth,
                venues=message.venues,
            )
            assert await refused(client.Snapshot(snapshot)) == (code, details)
        assert served.service.subscribers == 0 and served.v1.feeds == ()
        assert not any(source.sinks for source in served.catalog.sources.values())


async def test_every_v1_call_needs_the_token() -> None:
    async with serving(token=TOKEN) as served, stub(served) as client:
        expected = (
            grpc.StatusCode.UNAUTHENTICATED,
            "this server requires a bearer token: send 'authorization: Bearer <token>' metadata",
        )
        assert await refused(client.Subscribe(request("ethbtc"))) == expected
        # Without the token, nothing is learnt about what is served.
        wrong = (("authorization", "Bearer nope"),)
        assert await refused(client.Subscribe(request("xyz"), metadata=wrong)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid bearer token",
        )
        assert (
            await refused(client.Snapshot(pb.SnapshotRequest(instrument="ethbtc", kind=pb.KIND_BOOK)))
            == expected
        )
        assert await refused(client.ListInstruments(pb.ListInstrumentsRequest())) == expected
        assert served.v1.feeds == ()
        good = (("authorization", f"Bearer {TOKEN}"),)
        listed = await client.ListInstruments(pb.ListInstrumentsRequest(), metadata=good)
        assert len(listed.instruments) == 2
        call = client.Subscribe(request("ethbtc"), metadata=good)
        await opened(served, call)
        served.catalog.the().publish(make_book("ethbtc", 1))
        assert (await read(call)).sequence == 1


async def test_the_stream_caps_count_both_apis() -> None:
    async with (
        serving(limits=Limits(max_streams=2)) as served,
        grpc.aio.insecure_channel(served.target) as channel,
    ):
        seed = orderbook_pb2_grpc.OrderbookAggregatorStub(channel).BookSummary(orderbook_pb2.Empty())
        await opened(served, seed)
        client = pb_grpc.MarketDataStub(channel)
        v1 = client.Subscribe(request("ethbtc", "btcusdt"))  # several instruments: one stream
        await opened(served, v1, 2)
        assert await refused(client.Subscribe(request("ethbtc"))) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "the server is at its limit of 2 streams; try again later",
        )
        # Unary calls are not streams.
        assert (
            await client.Snapshot(pb.SnapshotRequest(instrument="ethbtc", kind=pb.KIND_BBO))
        ).sequence == 1000
        assert len(served.v1.feeds) == 2
        assert [stats.delivered for stats in served.service.stream_stats()] == [0, 0]


# ---------------------------------------------------------------- the seed API beside it


async def test_the_seed_api_is_unchanged_beside_v1() -> None:
    async with serving() as served, grpc.aio.insecure_channel(served.target) as channel:
        raw = channel.unary_stream(
            "/orderbook.OrderbookAggregator/BookSummary", request_serializer=None, response_deserializer=None
        )(b"")
        await opened(served, raw)
        v1 = pb_grpc.MarketDataStub(channel).Subscribe(request("ethbtc"))
        await opened(served, v1, 2)
        book = make_book("ethbtc", 1)
        payload = encode_summary(book)
        served.fanout.publish(payload)
        served.catalog.the().publish(book)
        async with asyncio.timeout(5):
            assert await raw.read() == payload  # the same bytes as ever
        assert (await read(v1)).sequence == 1
        summary = orderbook_pb2.Summary.FromString(payload)
        assert summary.spread == 1.0 and not math.isnan(summary.spread)


async def test_without_a_catalog_v1_is_not_served() -> None:
    service = GrpcService(FanOut(), "127.0.0.1", 0)
    assert service.v1 is None
    port = await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            code, _ = await refused(
                pb_grpc.MarketDataStub(channel).ListInstruments(pb.ListInstrumentsRequest())
            )
            assert code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await service.stop(grace=0.2)


async def test_a_v1_stream_that_stops_reading_is_ended_by_the_write_watchdog() -> None:
    stalled_options = [("grpc.http2.bdp_probe", 0)]  # the window stays 64 KiB
    async with (
        serving(limits=Limits(write_timeout=0.5)) as served,
        grpc.aio.insecure_channel(served.target, options=stalled_options) as channel,
    ):
        call = pb_grpc.MarketDataStub(channel).Subscribe(request("ethbtc", "btcusdt"))
        await opened(served, call)
        eth, btc = served.catalog.the("ethbtc"), served.catalog.the("btcusdt")
        feeds = served.v1.feeds
        loop = asyncio.get_running_loop()
        started = loop.time()
        sequence = 0
        while any(len(feed.fanout) for feed in feeds) and loop.time() - started < 5:
            sequence += 1
            eth.publish(make_book("ethbtc", sequence))
            btc.publish(make_book("btcusdt", sequence))
            await asyncio.sleep(0.005)
        # Both subscriptions released at once: the timeout, then at most a tick.
        assert 0.5 <= loop.time() - started < 1.5
        messages = 0
        with pytest.raises(grpc.aio.AioRpcError) as ended_with:
            async for _ in call:
                messages += 1
        assert ended_with.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert messages > 10
        await wait_until(lambda: served.service.subscribers == 0)
        assert not served.v1.feeds and not eth.sinks and not btc.sinks
