"""The FIX gateway over real TCP on a catalog the test drives: requests, answers, rejects, slow readers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from dragonfly.fix.codec import FieldValue, FixMessage
from dragonfly.fix.gateway import FixGateway, FixGatewayConfig
from dragonfly.fix.mdcodec import encode_book

from .fakecatalog import DEPTH, FakeCatalog, make_bbo, make_book, make_liquidity
from .fixclient import FixClient

ENTRY_TAGS = frozenset({269, 270, 271, 276, 282, 290, 20020, 20021, 20022, 20023, 20024})


@dataclass
class Gw:
    catalog: FakeCatalog
    gateway: FixGateway
    clients: list[FixClient] = field(default_factory=list)

    async def connect(self, sender: str = "CLIENT") -> FixClient:
        client = await FixClient.connect(self.gateway.port, sender=sender)
        self.clients.append(client)
        return client

    async def client(self, sender: str = "CLIENT") -> FixClient:
        client = await self.connect(sender)
        await client.logon(30)
        return client


@contextlib.asynccontextmanager
async def gateway(**kwargs: object) -> AsyncIterator[Gw]:
    catalog = FakeCatalog()
    gw = FixGateway(catalog, FixGatewayConfig(port=0, **kwargs))  # type: ignore[arg-type]
    await gw.start()
    served = Gw(catalog, gw)
    try:
        yield served
    finally:
        for client in served.clients:
            await client.close()
        await gw.stop()


def request(
    req_id: str,
    symbols: Sequence[FieldValue] = ("ethbtc",),
    sub: FieldValue = 1,
    depth: FieldValue = 0,
    types: Sequence[FieldValue] = (0, 1),
    extra: Sequence[tuple[int, FieldValue]] = (),
) -> list[tuple[int, FieldValue]]:
    fields: list[tuple[int, FieldValue]] = [(262, req_id), (263, sub), (264, depth), (265, 0), *extra]
    fields += [(267, len(types)), *((269, t) for t in types)]
    fields += [(146, len(symbols)), *((55, s) for s in symbols)]
    return fields


def entries(msg: FixMessage) -> list[dict[int, bytes]]:
    return msg.group(268, 269, ENTRY_TAGS)


def levels(msg: FixMessage, entry_type: bytes) -> list[tuple[str, float, float]]:
    return [((e[282].decode()), float(e[270]), float(e[271])) for e in entries(msg) if e[269] == entry_type]


async def w(client: FixClient) -> FixMessage:
    return await client.expect("W")


async def sync(client: FixClient) -> None:
    """Return once the gateway has handled everything the client sent (a TestRequest round trip)."""
    await client.send("1", [(112, "sync")])
    await client.expect("0", skip=("W",))


async def test_subscribe_sends_the_latest_then_every_update_with_the_view_sequence() -> None:
    async with gateway() as gw:
        source = gw.catalog.source("ethbtc", "book")
        source.publish(make_book("ethbtc", 1))
        client = await gw.client()
        await client.send("V", request("r1", ["ETH/BTC"]))
        first = await w(client)
        assert first.get(262) == b"r1" and first.get(55) == b"ETH/BTC" and first.get_int(20001) == 1
        book = make_book("ethbtc", 2)
        source.publish(book)
        second = await w(client)
        assert second.get_int(20001) == 2
        assert levels(second, b"0") == [(lv.exchange, lv.price, lv.amount) for lv in book.bids]
        assert levels(second, b"1") == [(lv.exchange, lv.price, lv.amount) for lv in book.asks]
        assert [e[290] for e in entries(second) if e[269] == b"0"] == [str(i).encode() for i in range(1, 11)]
        assert second.get_int(20002) == book.publish_ns and second.get_int(20003) == book.recv_ns
        venues = second.group(20010, 20011, frozenset({20011, 20012, 20013, 20014, 20015}))
        assert [(v[20011], v[20012], v[20013]) for v in venues] == [
            (b"binance", b"Y", b"LIVE"),
            (b"bitstamp", b"Y", b"LIVE"),
            (b"kraken", b"Y", b"LIVE"),
        ]
        assert source.attached == 1 and len(source.sinks) == 1


async def test_snapshot_answers_once_from_the_current_books_and_attaches_nothing() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("s1", ["ethbtc", "BTC-USDT"], sub=0, depth=5))
        got = [await w(client), await w(client)]
        assert [m.get(55) for m in got] == [b"ethbtc", b"BTC-USDT"]
        assert all(len(levels(m, b"0")) == 5 and m.get_int(20001) == 1000 for m in got)
        assert all(not s.sinks for s in gw.catalog.sources.values())
        gw.catalog.source("ethbtc", "book").publish(make_book("ethbtc", 5))
        await client.send("1", [(112, "after")])
        assert (await client.expect("0")).get(112) == b"after"  # no W came in between


async def test_unsubscribe_stops_updates_and_detaches_the_last_reader() -> None:
    async with gateway() as gw:
        source = gw.catalog.source("ethbtc", "book")
        client = await gw.client()
        await client.send("V", request("r1"))
        await sync(client)
        source.publish(make_book("ethbtc", 1))
        await w(client)
        await client.send("V", [(262, "r1"), (263, 2)])
        await sync(client)
        assert not source.sinks and not gw.gateway.feeds
        source.publish(make_book("ethbtc", 2))
        await client.send("1", [(112, "t")])
        assert (await client.expect("0")).get(112) == b"t"
        await client.send("V", [(262, "nope"), (263, 2)])
        reject = await client.expect("Y")
        assert reject.get(262) == b"nope" and b"no subscription" in (reject.get(58) or b"")


async def test_several_instruments_each_get_their_own_updates() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("multi", ["ethbtc", "btcusdt"], depth=3))
        await sync(client)
        gw.catalog.source("btcusdt", "book").publish(make_book("btcusdt", 7))
        gw.catalog.source("ethbtc", "book").publish(make_book("ethbtc", 8))
        first, second = await w(client), await w(client)
        assert [(m.get(55), m.get_int(20001)) for m in (first, second)] == [(b"btcusdt", 7), (b"ethbtc", 8)]
        assert len(levels(first, b"1")) == 3


async def test_depth_below_the_source_skips_updates_unchanged_at_that_depth() -> None:
    async with gateway() as gw:
        source = gw.catalog.source("ethbtc", "book")
        client = await gw.client()
        await client.send("V", request("top3", depth=3))
        await sync(client)
        source.publish(make_book("ethbtc", 1))  # the sequence only shows in the deepest level
        source.publish(make_book("ethbtc", 2))  # unchanged in the top 3: not sent
        source.publish(make_book("ethbtc", 3, top=5.0))
        assert (await w(client)).get_int(20001) == 1
        assert (await w(client)).get_int(20001) == 3


async def test_only_the_entry_types_asked_are_sent() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("bids", types=[0]))
        await sync(client)
        gw.catalog.source("ethbtc", "book").publish(make_book("ethbtc", 1))
        msg = await w(client)
        assert {e[269] for e in entries(msg)} == {b"0"} and msg.get_int(268) == DEPTH


async def test_market_depth_1_is_the_bbo_view() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("bbo", depth=1))
        await sync(client)
        gw.catalog.source("ethbtc", "bbo").publish(make_bbo("ethbtc", 4))
        got = [(e[269], e[276], e[282], float(e[270]), float(e[271])) for e in entries(await w(client))]
        assert got == [
            (b"0", b"D", b"binance", 100.0, 5.0),
            (b"1", b"D", b"binance", 101.0, 2.0),
            (b"0", b"C", b"binance", 100.0, 5.0),
            (b"1", b"C", b"binance", 101.0, 2.0),
            (b"0", b"C", b"bitstamp", 99.5, 3.0),  # its empty offer side is left out
        ]


async def test_liquidity_view_on_request() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("liq", extra=[(20000, "liquidity")]))
        await sync(client)
        gw.catalog.source("ethbtc", "liquidity").publish(make_liquidity("ethbtc", 1))
        msg = await w(client)
        assert msg.get(20025) == b"100.5"
        got = entries(msg)
        bands = [e for e in got if 20020 in e]
        assert [(e[269], e.get(282), e[271]) for e in bands] == [
            (b"0", None, b"4.0"),
            (b"0", b"binance", b"1.5"),
            (b"0", b"kraken", b"2.5"),
            (b"1", None, b"7.0"),
            (b"1", b"binance", b"1.5"),
        ]
        fills = [e for e in got if 20021 in e]
        assert fills[0] == {
            269: b"0",
            270: b"99.5",
            271: b"1.0",
            20021: b"1.0",
            20022: b"99.0",
            20023: b"50.0",
            20024: b"Y",
        }
        assert [(e[282], e[271]) for e in fills[1:3]] == [(b"binance", b"1.5"), (b"kraken", b"2.5")]
        assert fills[3] == {269: b"1", 271: b"6.0", 20021: b"100.0", 20024: b"N"}  # nothing filled: no prices


@pytest.mark.parametrize(
    ("fields", "reason", "text"),
    [
        (request("x", ["xyzabc"]), b"0", b"unknown instrument"),
        (request("x", ["not a symbol!"]), b"0", b"not an instrument name"),
        (request("x", [b"eth\xe2\x80\x83btc"]), b"0", b"not an instrument name"),
        (request("x", [b"\xc3\xa9thbtc"]), b"0", b"not an instrument name"),
        (request("x", sub=5), b"4", b"SubscriptionRequestType"),
        (request("x", depth=11), b"5", b"deeper than the 10 levels"),
        (request("x", depth="abc"), b"5", b"MarketDepth"),
        (request("x", depth=3, extra=[(20000, "bbo")]), b"5", b"top of book"),
        (request("x", depth=2, extra=[(20000, "liquidity")]), b"5", b"no depth"),
        (request("x", extra=[(20000, "candles")]), None, b"DFView"),
        (request("x", types=[0, 2]), b"8", b"MDEntryType 2"),
        (request("x", types=[]), b"8", b"NoMDEntryTypes"),
        (request("x", symbols=[]), b"0", b"NoRelatedSym"),
        (
            [(262, "x"), (263, 1), (264, 0), (265, 1), (267, 1), (269, 0), (146, 1), (55, "ethbtc")],
            b"6",
            b"full refresh",
        ),
        (
            [(262, "x"), (263, 1), (264, 0), (266, "N"), (267, 1), (269, 0), (146, 1), (55, "ethbtc")],
            b"7",
            b"AggregatedBook",
        ),
    ],
)
async def test_requests_that_cannot_be_served_get_a_reject_with_reason_and_text(
    fields: list[tuple[int, FieldValue]], reason: bytes | None, text: bytes
) -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", fields)
        reject = await client.expect("Y")
        assert reject.get(262) == b"x" and reject.get(281) == reason
        assert text in (reject.get(58) or b""), reject
        assert not gw.gateway.feeds  # nothing attached
        # The session goes on.
        await client.send("V", request("ok", sub=0))
        assert (await w(client)).get(262) == b"ok"


async def test_duplicate_md_req_id_is_refused_and_the_first_keeps_running() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("r1"))
        await client.send("V", request("r1", ["btcusdt"]))
        reject = await client.expect("Y")
        await sync(client)
        assert reject.get(281) == b"1"
        gw.catalog.source("ethbtc", "book").publish(make_book("ethbtc", 3))
        assert (await w(client)).get(55) == b"ethbtc"


@pytest.mark.parametrize(
    ("msg_type", "fields", "reason", "tag"),
    [
        ("V", [(263, 1), (264, 0), (267, 1), (269, 0), (146, 1), (55, "ethbtc")], b"1", b"262"),
        ("V", [(262, "x"), (263, 1), (264, 0), (267, 2), (269, 0), (146, 1), (55, "ethbtc")], b"16", b"267"),
        ("D", [(11, "order")], b"11", b"35"),
    ],
)
async def test_malformed_or_unserved_messages_get_a_session_reject(
    msg_type: str, fields: list[tuple[int, FieldValue]], reason: bytes, tag: bytes
) -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send(msg_type, fields)
        reject = await client.expect("3")
        assert reject.get(373) == reason and reject.get(371) == tag and reject.get(58)


async def test_each_update_is_encoded_once_for_every_session() -> None:
    async with gateway() as gw:
        clients = [await gw.client(f"C{i}") for i in range(3)]
        for c in clients:
            await c.send("V", request("r"))
            await sync(c)
        source = gw.catalog.source("ethbtc", "book")
        for seq in range(1, 6):
            source.publish(make_book("ethbtc", seq))
        for c in clients:
            got = [(await w(c)).get_int(20001) for _ in range(5)]
            assert got == [1, 2, 3, 4, 5]
        (feed,) = gw.gateway.feeds
        assert feed.encoded == 5 and len(source.sinks) == 1
        # The bytes after the per-session fields are the shared encoding.
        book = make_book("ethbtc", 9)
        shared = encode_book(book).tail
        source.publish(book)
        raw = (await w(clients[0])).raw
        assert raw[raw.index(b"\x01268=") + 1 : -7] == shared


async def test_a_slow_reader_gets_only_the_newest_and_never_holds_back_others() -> None:
    async with gateway() as gw:
        slow = await gw.client("SLOW")
        fast = await gw.client("FAST")
        await slow.send("V", request("s", ["ethbtc", "btcusdt"]))
        await fast.send("V", request("f"))
        await sync(slow)
        await sync(fast)
        eth = gw.catalog.source("ethbtc", "book")
        btc = gw.catalog.source("btcusdt", "book")
        btc.publish(make_book("btcusdt", 1))
        # SLOW does not read: its transport fills up and the gateway conflates.
        seq = 0
        async with asyncio.timeout(20):
            while gw.gateway.conflated < 50:
                seq += 1
                eth.publish(make_book("ethbtc", seq, depth=DEPTH))
                assert (await w(fast)).get_int(20001) == seq  # the fast reader gets every one, at once
        (session,) = [
            c.session for c in gw.gateway._clients if c.session and c.session.peer_comp_id == "SLOW"
        ]
        assert session is not None and session.write_buffer_size <= 300 * 1024
        # Now SLOW reads everything: what was written, then the newest of each instrument, nothing more.
        got: list[tuple[bytes | None, int | None]] = []
        async with asyncio.timeout(10):
            while not got or got[-1] != (b"ethbtc", seq):
                msg = await slow.expect("W")
                got.append((msg.get(55), msg.get_int(20001)))
        assert (b"btcusdt", 1) in got
        ethseqs = [s for name, s in got if name == b"ethbtc"]
        assert ethseqs == sorted(ethseqs) and len(ethseqs) < seq  # skipped ahead, in order


async def test_max_sessions_refuses_one_more_with_a_reason() -> None:
    async with gateway(max_sessions=1) as gw:
        first = await gw.client("A")
        other = await gw.connect("B")
        await other.send("A", [(98, 0), (108, 30)])
        got = await other.expect_closed()
        assert got[-1].msg_type == b"5" and b"gateway full" in (got[-1].get(58) or b"")
        assert gw.gateway.sessions == 1
        await first.send("1", [(112, "still here")])
        assert (await first.expect("0")).get(112) == b"still here"


async def test_stop_logs_every_session_out() -> None:
    async with gateway() as gw:
        client = await gw.client()
        await client.send("V", request("r"))
        await sync(client)
        stopping = asyncio.create_task(gw.gateway.stop())
        got = await client.expect_closed()
        assert got[-1].msg_type == b"5" and b"shutting down" in (got[-1].get(58) or b"")
        await stopping
        assert not gw.catalog.source("ethbtc", "book").sinks


def test_tiny_and_huge_figures_are_written_without_an_exponent() -> None:
    book = make_book("ethbtc", 1)
    book = book._replace(
        bids=(
            book.bids[0]._replace(price=1.5e-8, amount=2.5e20),
            book.bids[1]._replace(price=1e-4, amount=1e16),
        ),
        asks=(book.asks[0]._replace(price=0.00012345, amount=9999999999999998.0),),
    )
    tail = encode_book(book).tail
    values = [f.split(b"=", 1)[1] for f in tail.split(b"\x01") if f.startswith((b"270=", b"271="))]
    assert values == [
        b"0.000000015",
        b"250000000000000000000",
        b"0.0001",
        b"10000000000000000",
        b"0.00012345",
        b"9999999999999998.0",
    ]
    assert [float(v) for v in values] == [1.5e-8, 2.5e20, 1e-4, 1e16, 0.00012345, 9999999999999998.0]


async def test_snapshots_are_rate_limited_per_session() -> None:
    async with gateway(snapshot_rate=5) as gw:
        client = await gw.client()
        for i in range(8):
            await client.send("V", request(f"s{i}", sub=0))
        got = [await client.expect("W", skip=("0", "Y")) for _ in range(5)]
        assert [m.get(262) for m in got] == [b"s0", b"s1", b"s2", b"s3", b"s4"]
        reject = await client.expect("Y")
        assert reject.get(281) == b"2" and b"at most 5 instruments a second" in (reject.get(58) or b"")


async def test_a_peer_flooding_requests_without_reading_is_held_back_not_buffered() -> None:
    async with gateway() as gw:
        flood = await gw.client("FLOOD")
        other = await gw.client("OTHER")
        (session,) = [
            c.session for c in gw.gateway._clients if c.session and c.session.peer_comp_id == "FLOOD"
        ]
        assert session is not None
        sock = flood.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        async def send_forever() -> None:
            while True:
                flood.writer.write(b"".join(flood.build("1", [(112, "x" * 1000)]) for _ in range(500)))
                await flood.writer.drain()

        sender = asyncio.create_task(send_forever())
        try:
            # The gateway stops reading FLOOD once its answers fill the write buffer ...
            async with asyncio.timeout(10):
                while session.writable:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            assert not session.closed and session.write_buffer_size < 2 * session.config.write_high
            # ... and everyone else is served meanwhile.
            await other.send("1", [(112, "still served")])
            assert (await other.expect("0")).get(112) == b"still served"
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender


async def test_random_hostile_bytes_never_crash_the_gateway_or_stop_it_serving_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import random

    rng = random.Random(14)
    async with gateway() as gw:
        witness = await gw.client("WITNESS")
        await witness.send("V", request("w"))
        await sync(witness)
        source = gw.catalog.source("ethbtc", "book")
        for round_ in range(40):
            victim = await gw.connect(f"FUZZ{round_}")
            if rng.random() < 0.7:
                await victim.logon(30)
            data = bytearray(
                victim.build("V", request(f"f{round_}", ["ethbtc", "btcusdt"], sub=rng.choice([0, 1])))
            )
            data += victim.build("1", [(112, "t")])
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(data))
                choice = rng.random()
                if choice < 0.4:
                    data[at] = rng.randrange(256)
                elif choice < 0.6:
                    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
                elif choice < 0.8:
                    del data[at : at + rng.randint(1, 8)]
                else:
                    data[at:at] = b"\x01"
            await victim.send_raw(bytes(data))
            # Whatever it gets (W, Reject, Logout, a close), the others are served all along.
            with contextlib.suppress(TimeoutError, AssertionError, ConnectionError):
                await victim.recv(timeout=0.05)
            source.publish(make_book("ethbtc", round_ + 1))
            assert (await w(witness)).get_int(20001) == round_ + 1
        assert gw.gateway.sessions >= 1
    # Every hostile input was a Reject, a Y or a clean end: none reached an error handler.
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
