"""Several symbols per connection, venue by venue: routing, naming refusals, splitting subscribes.

The feed-level tests run a real client against a small scripted venue over
loopback (the simulator serves Binance and Bitstamp only; see
``tests/core/test_multi_snapshot.py`` for those).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from dragonfly.core.feed import Feed, FeedState
from dragonfly.core.health import VenueStatus
from dragonfly.core.slots import SlotProducer
from dragonfly.core.types import VenueBook
from dragonfly.core.venue import ControlKind, VenueSpec
from dragonfly.venues import VENUES, binance, bitstamp, bybit, coinbase, kraken, okx

# -- routing ---------------------------------------------------------------------


def test_binance_route_reads_the_stream_and_slices_the_payload() -> None:
    inner = b'{"lastUpdateId":7,"bids":[["1.0","2.0"]],"asks":[["1.1","3.0"]]}'
    frame = b'{"stream":"ethbtc@depth20@100ms","data":' + inner + b"}"
    assert binance.route(frame) == (b"ethbtc@depth20@100ms", inner)
    assert binance.route_key("ETHBTC") == b"ethbtc@depth20@100ms"
    for other in (inner, b'{"result":null,"id":1}', b'{"stream":"x"}', b"garbage"):
        assert binance.route(other) is None, other
    # The routed payload is what the one-symbol decoder reads.
    bids, asks, seq = binance.make_decoder(10)(inner) or ((), (), -1)
    assert (bids, asks, seq) == (((1.0, 2.0),), ((1.1, 3.0),), 7)


def test_bitstamp_route_reads_the_channel_from_the_end() -> None:
    frame = (
        b'{"data":{"timestamp":"1","microtimestamp":"1000","bids":[["1","2"]],"asks":[["3","4"]]},'
        b'"channel":"order_book_ethbtc","event":"data"}'
    )
    assert bitstamp.route(frame) == (b"order_book_ethbtc", frame)
    assert bitstamp.route_key("ethbtc") == b"order_book_ethbtc"
    spaced = b'{"event": "data", "channel": "order_book_btcusd", "data": {}}'
    assert bitstamp.route(spaced) == (b"order_book_btcusd", spaced)
    ack = b'{"event":"bts:subscription_succeeded","channel":"order_book_ethbtc","data":{}}'
    for other in (ack, b'{"event":"bts:heartbeat"}', b"garbage", b'{"data": [1'):
        assert bitstamp.route(other) is None, other


def test_bitstamp_names_the_pair_of_an_ack() -> None:
    ack = b'{"event":"bts:subscription_succeeded","channel":"order_book_ethbtc","data":{}}'
    assert bitstamp.control(ack) == (ControlKind.SUBSCRIBED, "", "ethbtc")
    diff_ack = b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_btcusd","data":{}}'
    assert bitstamp.control(diff_ack).symbol == "btcusd"
    refused = b'{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription string."}}'
    assert bitstamp.control(refused) == (ControlKind.REJECTED, "Bad subscription string.", None)
    assert bitstamp.SPEC.answers_in_order


# -- limits and splitting ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VENUES))
def test_every_venue_declares_its_limits(name: str) -> None:
    limits = VENUES[name].limits
    assert limits.connects is not None and limits.messages is not None
    for value in (limits.symbols_per_connection, limits.args_per_message):
        assert value is None or value >= 1


def test_binance_subscribes_every_stream_in_one_request() -> None:
    assert binance.SPEC.limits.symbols_per_connection == 1024
    symbols = [f"S{i}USDT" for i in range(1024)]
    (frame,) = binance.subscribe_many(symbols)
    assert json.loads(frame)["params"] == [f"s{i}usdt@depth20@100ms" for i in range(1024)]


def test_bybit_splits_topics_by_its_args_limit() -> None:
    assert bybit.SPEC.limits.args_per_message == 10
    frames = [json.loads(f) for f in bybit.subscribe([f"S{i}USDT" for i in range(25)])]
    assert [len(f["args"]) for f in frames] == [10, 10, 5]
    assert [a for f in frames for a in f["args"]] == [f"orderbook.50.S{i}USDT" for i in range(25)]


def test_okx_splits_a_request_under_64_kb() -> None:
    symbols = [f"SYM{i}-USDT" for i in range(4000)]
    frames = okx.diff_subscribe(symbols)
    assert len(frames) > 1 and all(len(f) < okx.MAX_REQUEST_BYTES for f in frames)
    args = [a["instId"] for f in frames for a in json.loads(f)["args"]]
    assert args == symbols
    assert okx.diff_subscribe([]) == []
    (one,) = okx.diff_subscribe(["BTC-USDT", "ETH-USDT"])
    assert json.loads(one) == {
        "op": "subscribe",
        "args": [{"channel": "books", "instId": "BTC-USDT"}, {"channel": "books", "instId": "ETH-USDT"}],
    }


# -- a real client against a scripted venue ----------------------------------------------


class ScriptedVenue(WSListener):
    """A local venue session: records what the client sends, answers by ``script``."""

    def __init__(self, script: Callable[[Any], list[bytes]]) -> None:
        super().__init__()
        self.script = script
        self.received: list[Any] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            try:
                msg = json.loads(payload)
            except ValueError:
                msg = payload.decode()
            self.received.append(msg)
            for out in self.script(msg):
                transport.send(WSMsgType.TEXT, out)


async def run_feed(
    spec: VenueSpec, symbols: list[str], venue: ScriptedVenue, done: Callable[[Feed], bool]
) -> Feed:
    server = await ws_create_server(lambda _request: venue, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    outputs: dict[str, SlotProducer[VenueBook] | None] = dict.fromkeys(symbols)
    feed = Feed(spec, outputs, channel="diff", ws_url=f"ws://127.0.0.1:{port}")
    task = asyncio.create_task(feed.run())
    try:
        async with asyncio.timeout(5):
            while not done(feed):
                await asyncio.sleep(0.01)
    finally:
        feed.stop()
        await task
        server.close()
        await server.wait_closed()
    return feed


def bybit_snapshot(symbol: str) -> bytes:
    data = {"s": symbol, "b": [["1.0", "2"]], "a": [["1.1", "3"]], "u": 1, "seq": 1}
    return json.dumps({"topic": f"orderbook.50.{symbol}", "type": "snapshot", "ts": 1, "data": data}).encode()


async def test_bybit_refusing_one_topic_leaves_the_others_streaming() -> None:
    def script(msg: Any) -> list[bytes]:
        if msg.get("op") != "subscribe":
            return []
        refused = [t for t in msg["args"] if t.endswith("XYZUSDT")]
        if refused:  # Bybit names the topic it refuses; the valid ones stream
            answer = {"success": False, "ret_msg": f"Invalid symbol :[{refused[0]}]", "op": "subscribe"}
        else:
            answer = {"success": True, "ret_msg": "", "op": "subscribe", "req_id": msg["req_id"]}
        books = [bybit_snapshot(t.split(".")[-1]) for t in msg["args"] if t not in refused]
        return [json.dumps(answer).encode(), *books]

    symbols = ["ETHBTC", "XYZUSDT", "BTCUSDT"]
    venue = ScriptedVenue(script)
    feed = await run_feed(
        bybit.SPEC,
        symbols,
        venue,
        lambda f: f.outcomes["XYZUSDT"].done()
        and all(f.health(s).status is VenueStatus.LIVE for s in ("ETHBTC", "BTCUSDT")),
    )
    reason = feed.outcomes["XYZUSDT"].result()
    assert reason == "bybit rejected XYZUSDT: Invalid symbol :[orderbook.50.XYZUSDT]"
    assert feed.health("XYZUSDT").status is VenueStatus.REJECTED and feed.health("XYZUSDT").detail == reason
    assert feed.outcome.result() is None and feed.symbols == ["ETHBTC", "BTCUSDT"]
    assert [m["args"] for m in venue.received if m.get("op") == "subscribe"] == [
        [f"orderbook.50.{s}" for s in symbols]
    ]


async def test_kraken_refusing_one_pair_leaves_the_others() -> None:
    def script(msg: Any) -> list[bytes]:
        if not isinstance(msg, dict) or msg.get("event") != "subscribe":
            return []
        out = []
        for pair in msg["pair"]:
            status: dict[str, Any] = {"event": "subscriptionStatus", "pair": pair, "channelName": "book-100"}
            if pair == "ETH/XYZ":
                status |= {"status": "error", "errorMessage": f"Currency pair not supported {pair}"}
            else:
                status |= {"status": "subscribed"}
            out.append(json.dumps(status).encode())
        return out

    venue = ScriptedVenue(script)
    feed = await run_feed(
        kraken.SPEC,
        ["ETH/XBT", "ETH/XYZ", "XBT/USD"],
        venue,
        lambda f: all(fut.done() for fut in f.outcomes.values()),
    )
    assert feed.outcomes["ETH/XBT"].result() is None and feed.outcomes["XBT/USD"].result() is None
    assert "Currency pair not supported" in (feed.outcomes["ETH/XYZ"].result() or "")
    assert feed.health("ETH/XYZ").status is VenueStatus.REJECTED
    assert feed.rejected.keys() == {"ETH/XYZ"} and feed.state is not FeedState.REJECTED


async def test_coinbase_refusal_naming_no_product_refuses_the_request_as_a_whole() -> None:
    # Documented rule: Coinbase's "failure to subscribe" names no product, and
    # the request fails whole: every symbol not yet accepted is refused.
    def script(msg: Any) -> list[bytes]:
        if msg.get("type") == "subscribe" and msg.get("channel") == "level2":
            return [b'{"type":"error","message":"failure to subscribe"}']
        return []

    venue = ScriptedVenue(script)
    feed = await run_feed(coinbase.SPEC, ["ETH-BTC", "ETH-XYZ"], venue, lambda f: f.outcome.done())
    assert feed.state is FeedState.REJECTED
    assert all(feed.outcomes[s].result() for s in ("ETH-BTC", "ETH-XYZ"))
    assert "failure to subscribe" in (feed.outcome.result() or "")
