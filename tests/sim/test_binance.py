"""Binance spot: WebSocket requests, depth payloads, combined streams, REST."""

from __future__ import annotations

import asyncio
import json
import re
from itertools import pairwise
from typing import Any

import pytest
from picows import WSCloseCode, WSHandshakeError

from dragonfly.sim import Simulator, VenueConfig
from dragonfly.sim.probe import Probe, connect, http_get

DECIMAL8 = re.compile(r"^\d+\.\d{8}$")


def assert_depth(payload: dict[str, Any], depth: int) -> None:
    """Check a partial-depth payload: keys, sizes, 8-decimal strings, ordering."""
    assert set(payload) == {"lastUpdateId", "bids", "asks"}
    assert isinstance(payload["lastUpdateId"], int)
    bids, asks = payload["bids"], payload["asks"]
    assert len(bids) == depth and len(asks) == depth
    for level in bids + asks:
        assert len(level) == 2 and all(DECIMAL8.match(x) for x in level), level
        assert float(level[1]) > 0
    bid_prices = [float(p) for p, _ in bids]
    ask_prices = [float(p) for p, _ in asks]
    assert bid_prices == sorted(bid_prices, reverse=True) and len(set(bid_prices)) == depth
    assert ask_prices == sorted(ask_prices) and len(set(ask_prices)) == depth
    assert bid_prices[0] < ask_prices[0]


async def subscribe(probe: Probe, streams: list[str], req_id: int = 1) -> None:
    probe.send({"method": "SUBSCRIBE", "params": streams, "id": req_id})
    assert await probe.wait_json({"id": req_id}) == {"result": None, "id": req_id}


async def test_subscribe_ack_and_raw_depth_payloads(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    await subscribe(probe, ["ethbtc@depth5@100ms"])
    ids = []
    for _ in range(4):
        payload = await probe.recv_json()
        assert_depth(payload, 5)
        ids.append(payload["lastUpdateId"])
    assert ids == sorted(ids) and ids[-1] > ids[0]
    assert sim.clients("binance") == 1 and sim.sent_count("binance") >= 4
    await probe.close()


async def test_depth_levels_and_list_and_unsubscribe(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    await subscribe(probe, ["btcusdt@depth20@100ms", "btcusdt@depth10"])
    sizes: set[int] = set()
    while len(sizes) < 2:
        payload = await probe.recv_json()
        sizes.add(len(payload["bids"]))
        assert_depth(payload, len(payload["bids"]))
    assert sizes == {10, 20}
    probe.send({"method": "LIST_SUBSCRIPTIONS", "id": 3})
    reply = await probe.wait_json({"id": 3})
    assert reply == {"result": ["btcusdt@depth20@100ms", "btcusdt@depth10"], "id": 3}
    probe.send({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth20@100ms", "btcusdt@depth10"],
                "id": 4})
    assert await probe.wait_json({"id": 4}) == {"result": None, "id": 4}
    await asyncio.sleep(0.1)
    probe.drain()
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.2)
    await probe.close()


async def test_unknown_symbol_is_acked_and_sends_nothing(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    await subscribe(probe, ["xrpbtc@depth5@100ms", "ethbtc@trade"])
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.3)
    assert sim.last_sent("binance", "xrpbtc") is None
    await probe.close()
    reply = await http_get(sim.rest_url("binance") + "/api/v3/exchangeInfo?symbol=XRPBTC")
    assert reply.status == 400
    assert reply.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_raw_path_streams_are_presubscribed(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance") + "/ethbtc@depth5@100ms/btcusdt@depth10@100ms")
    seen: set[object] = set()
    while len(seen) < 2:
        payload = await probe.recv_json()
        seen.add(len(payload["bids"]))
    assert seen == {5, 10}
    probe.send({"method": "LIST_SUBSCRIPTIONS", "id": 9})
    reply = await probe.wait_json({"id": 9})
    assert reply["result"] == ["ethbtc@depth5@100ms", "btcusdt@depth10@100ms"]
    await probe.close()


async def test_combined_streams_are_wrapped(sim: Simulator) -> None:
    base = sim.ws_url("binance").removesuffix("/ws")
    by_query = await connect(base + "/stream?streams=ethbtc@depth10@100ms/btcusdt@depth5@100ms")
    streams: set[str] = set()
    while len(streams) < 2:
        event = await by_query.recv_json()
        assert set(event) == {"stream", "data"}
        streams.add(event["stream"])
        assert_depth(event["data"], 10 if event["stream"].startswith("ethbtc") else 5)
    assert streams == {"ethbtc@depth10@100ms", "btcusdt@depth5@100ms"}
    await by_query.close()

    by_frame = await connect(base + "/stream")
    await subscribe(by_frame, ["ethbtc@depth20@100ms"], req_id=7)  # the ack is not wrapped
    event = await by_frame.recv_json()
    assert event["stream"] == "ethbtc@depth20@100ms"
    assert_depth(event["data"], 20)
    await by_frame.close()


async def test_combined_property(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    probe.send({"method": "GET_PROPERTY", "params": ["combined"], "id": 1})
    assert await probe.wait_json({"id": 1}) == {"result": False, "id": 1}
    probe.send({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2})
    assert await probe.wait_json({"id": 2}) == {"result": None, "id": 2}
    await subscribe(probe, ["ethbtc@depth5@100ms"], req_id=3)
    event = await probe.recv_json()
    assert event["stream"] == "ethbtc@depth5@100ms"
    assert_depth(event["data"], 5)
    await probe.close()


async def test_request_errors(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    probe.send("{not json")
    reply = await probe.recv_json()
    assert set(reply) == {"error"} and reply["error"]["code"] == 3
    assert reply["error"]["msg"].startswith("Invalid JSON")
    probe.send({"method": "SUBSCRIBE", "params": [5], "id": 11})
    reply = await probe.recv_json()
    assert reply["id"] == 11 and reply["error"]["code"] == 2
    assert reply["error"]["msg"].startswith("Invalid request")
    probe.send({"method": "FETCH", "params": [], "id": 12})
    reply = await probe.recv_json()
    assert reply["id"] == 12 and reply["error"]["code"] == 2
    await probe.close()
    probe = await connect(sim.ws_url("binance"))
    probe.send({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 13})
    assert (await probe.recv_json())["error"]["code"] == 1
    probe.send({"method": "GET_PROPERTY", "params": ["colour"], "id": 14})
    assert (await probe.recv_json()) == {"error": {"code": 0, "msg": "Unknown property"}, "id": 14}
    await probe.close()


async def test_unknown_path_is_404(sim: Simulator) -> None:
    with pytest.raises(WSHandshakeError) as info:
        await connect(sim.ws_url("binance").removesuffix("/ws") + "/nope")
    assert info.value.response is not None and info.value.response.status == 404


async def test_last_sent_matches_what_the_client_got(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("binance"))
    await subscribe(probe, ["ethbtc@depth20@100ms"])
    last = await probe.recv_json()
    sim.pause("binance")
    await asyncio.sleep(0.1)  # let frames already written arrive
    frames = probe.drain()
    if frames:
        last = json.loads(frames[-1])
    sent = sim.last_sent("binance", "ethbtc")
    assert sent is not None
    bids, asks = sent
    assert bids == [(float(p), float(q)) for p, q in last["bids"]]
    assert asks == [(float(p), float(q)) for p, q in last["asks"]]
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.15)  # paused
    sim.resume("binance")
    assert_depth(await probe.recv_json(), 20)
    await probe.close()


async def test_rest_endpoints(sim: Simulator) -> None:
    rest = sim.rest_url("binance")
    reply = await http_get(rest + "/api/v3/ping")
    assert (reply.status, reply.json()) == (200, {})
    reply = await http_get(rest + "/api/v3/exchangeInfo?symbol=ETHBTC")
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    info = reply.json()
    assert info["timezone"] == "UTC" and isinstance(info["serverTime"], int)
    (symbol,) = info["symbols"]
    assert (symbol["symbol"], symbol["status"]) == ("ETHBTC", "TRADING")
    assert (symbol["baseAsset"], symbol["quoteAsset"]) == ("ETH", "BTC")
    price_filter = next(f for f in symbol["filters"] if f["filterType"] == "PRICE_FILTER")
    assert price_filter["tickSize"] == "0.00001000"
    everything = (await http_get(rest + "/api/v3/exchangeInfo")).json()
    assert {s["symbol"] for s in everything["symbols"]} == {"ETHBTC", "BTCUSDT"}
    lower = await http_get(rest + "/api/v3/exchangeInfo?symbol=ethbtc")
    assert lower.status == 400 and lower.json()["code"] == -1100

    depth = (await http_get(rest + "/api/v3/depth?symbol=ETHBTC")).json()
    assert_depth(depth, 100)
    assert_depth((await http_get(rest + "/api/v3/depth?symbol=ETHBTC&limit=7")).json(), 7)
    missing = await http_get(rest + "/api/v3/depth")
    assert missing.status == 400 and missing.json()["code"] == -1102
    unknown = await http_get(rest + "/api/v3/depth?symbol=DOGEBTC&limit=5")
    assert unknown.status == 400 and unknown.json() == {"code": -1121, "msg": "Invalid symbol."}
    assert (await http_get(rest + "/api/v3/nothing")).status == 404


async def test_pings_and_pong_timeout() -> None:
    sim = Simulator(["binance"], ["ethbtc"], period_s=0.05, ping_interval_s=0.1, pong_timeout_s=0.35)
    async with sim:
        answering = await connect(sim.ws_url("binance"))
        silent = await connect(sim.ws_url("binance"), auto_pong=False)
        await asyncio.wait_for(silent.disconnected.wait(), 2.0)
        assert silent.close_code == WSCloseCode.POLICY_VIOLATION
        assert len(silent.pings) >= 2
        assert not answering.disconnected.is_set() and len(answering.pings) >= 3
        gaps = [b[0] - a[0] for a, b in pairwise(answering.pings)]
        assert all(0.05 < gap < 0.25 for gap in gaps), gaps
        assert sim.clients("binance") == 1
        await answering.close()


async def test_incoming_rate_limit_drops_the_client() -> None:
    config = VenueConfig(period_s=0.05, max_msgs_per_s=5)
    async with Simulator(["binance"], ["ethbtc"], configs={"binance": config}) as sim:
        probe = await connect(sim.ws_url("binance"))
        for i in range(11):  # at least 6 fall in one wall-clock second
            probe.send({"method": "LIST_SUBSCRIPTIONS", "id": i})
        await asyncio.wait_for(probe.disconnected.wait(), 2.0)
        assert probe.close_code == WSCloseCode.POLICY_VIOLATION
