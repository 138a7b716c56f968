"""Bitstamp: subscribe/unsubscribe/heartbeat events, book channels, errors, REST."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from picows import WSHandshakeError

from dragonfly.sim import Simulator
from dragonfly.sim.probe import Probe, connect, http_get

BAD_SUBSCRIPTION = {
    "event": "bts:error", "channel": "", "data": {"code": None, "message": "Bad subscription string."}
}


def assert_book(body: dict[str, Any], depth: int | None, price_decimals: int) -> None:
    """Check a book body: timestamps, level text, ordering, depth."""
    assert set(body) == {"timestamp", "microtimestamp", "bids", "asks"}
    assert body["timestamp"].isdigit() and body["microtimestamp"].isdigit()
    assert int(body["microtimestamp"]) // 1_000_000 == int(body["timestamp"])
    bids, asks = body["bids"], body["asks"]
    if depth is not None:
        assert len(bids) == depth and len(asks) == depth
    price = re.compile(rf"^\d+\.\d{{{price_decimals}}}$")
    for p, q in bids + asks:
        assert price.match(p) and re.match(r"^\d+\.\d{8}$", q), (p, q)
    bid_prices = [float(p) for p, _ in bids]
    ask_prices = [float(p) for p, _ in asks]
    assert bid_prices == sorted(set(bid_prices), reverse=True)
    assert ask_prices == sorted(set(ask_prices))
    assert bid_prices[0] < ask_prices[0]


async def subscribe(probe: Probe, channel: str) -> None:
    probe.send({"event": "bts:subscribe", "data": {"channel": channel}})
    reply = await probe.recv_json()
    assert reply == {"event": "bts:subscription_succeeded", "channel": channel, "data": {}}


async def test_order_book_snapshots(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("bitstamp"))
    await subscribe(probe, "order_book_ethbtc")
    await subscribe(probe, "order_book_btcusdt")
    seen: set[object] = set()
    while len(seen) < 2:
        raw = await probe.recv()
        assert b'"event": "data"' in raw  # the venue prints ", " and ": "
        event = json.loads(raw)
        assert set(event) == {"data", "channel", "event"} and event["event"] == "data"
        decimals = 8 if event["channel"] == "order_book_ethbtc" else 2
        assert_book(event["data"], 100, decimals)
        seen.add(event["channel"])
    assert sim.last_sent("bitstamp", "ethbtc") is not None
    await probe.close()


async def test_subscription_errors_heartbeat_and_bad_json(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("bitstamp"))
    for channel in ("order_book_xrpbtc", "live_trades_ethbtc", "order_book_ETHBTC"):
        probe.send({"event": "bts:subscribe", "data": {"channel": channel}})
        assert await probe.recv_json() == BAD_SUBSCRIPTION
    probe.send({"event": "bts:heartbeat"})
    assert await probe.recv_json() == {
        "event": "bts:heartbeat", "channel": "", "data": {"status": "success"}
    }
    for bad in ("{oops", '{"event": "bts:dance"}', "[]"):
        probe.send(bad)
        reply = await probe.recv_json()
        assert reply["event"] == "bts:error" and reply["data"]["message"] == "Incorrect JSON format."
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.15)  # nothing subscribed, so no data
    await probe.close()


async def test_unsubscribe_stops_data(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("bitstamp"))
    await subscribe(probe, "order_book_ethbtc")
    await probe.wait_json({"event": "data"})
    probe.send({"event": "bts:unsubscribe", "data": {"channel": "order_book_ethbtc"}})
    reply = await probe.wait_json({"event": "bts:unsubscription_succeeded"})
    assert reply == {"event": "bts:unsubscription_succeeded", "channel": "order_book_ethbtc", "data": {}}
    await asyncio.sleep(0.05)
    probe.drain()
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.2)
    await probe.close()


async def test_request_reconnect_then_close(sim: Simulator) -> None:
    probe = await connect(sim.ws_url("bitstamp"))
    await subscribe(probe, "order_book_ethbtc")
    assert sim.request_reconnect("bitstamp", grace_s=0.2) == 1
    assert await probe.wait_json({"event": "bts:request_reconnect"}) == {
        "event": "bts:request_reconnect", "channel": "", "data": ""
    }
    await asyncio.sleep(0.05)
    assert not probe.disconnected.is_set()  # still inside the grace period
    await asyncio.wait_for(probe.disconnected.wait(), 2.0)
    assert sim.clients("bitstamp") == 0
    with pytest.raises(ValueError):
        sim.request_reconnect("binance")


async def test_rest_endpoints_and_404(sim: Simulator) -> None:
    rest = sim.rest_url("bitstamp")
    pairs = (await http_get(rest + "/api/v2/trading-pairs-info/")).json()
    ethbtc = next(p for p in pairs if p["url_symbol"] == "ethbtc")
    assert ethbtc["name"] == "ETH/BTC" and ethbtc["trading"] == "Enabled"
    assert (ethbtc["base_decimals"], ethbtc["counter_decimals"]) == (8, 8)
    assert {p["url_symbol"] for p in pairs} == {"ethbtc", "btcusdt"}
    reply = await http_get(rest + "/api/v2/order_book/btcusdt/")
    assert reply.status == 200
    book = reply.json()
    assert_book(book, None, 2)
    assert len(book["bids"]) >= 100 and len(book["asks"]) >= 100
    assert (await http_get(rest + "/api/v2/order_book/xrpbtc/")).status == 404
    with pytest.raises(WSHandshakeError):
        await connect(sim.ws_url("bitstamp") + "elsewhere")


async def test_frozen_market_snapshot_equals_rest_and_diffs_rebuild_the_book() -> None:
    # tick_s of an hour: the market only moves when the test steps it.
    sim = Simulator(["bitstamp"], ["ethbtc"], seed=3, period_s=0.02, tick_s=3600)
    async with sim:
        rest = sim.rest_url("bitstamp") + "/api/v2/order_book/ethbtc/"
        snap_probe = await connect(sim.ws_url("bitstamp"))
        await subscribe(snap_probe, "order_book_ethbtc")
        pushed = (await snap_probe.wait_json({"event": "data"}))["data"]
        full = (await http_get(rest)).json()
        assert pushed["bids"] == full["bids"][:100] and pushed["asks"] == full["asks"][:100]
        with pytest.raises(TimeoutError):
            await snap_probe.recv(timeout=0.1)  # unchanged book: no snapshot resent

        diffs = await connect(sim.ws_url("bitstamp"))
        await subscribe(diffs, "diff_order_book_ethbtc")
        for _ in range(2):
            sim.market.step()
            await asyncio.sleep(0.06)
        start = (await http_get(rest)).json()
        for _ in range(3):
            sim.market.step()
            await asyncio.sleep(0.06)
        final = (await http_get(rest)).json()

        bids = dict(start["bids"])
        asks = dict(start["asks"])
        applied = 0
        for raw in diffs.drain():
            event = json.loads(raw)
            body = event["data"]
            assert event["channel"] == "diff_order_book_ethbtc"
            if int(body["microtimestamp"]) <= int(start["microtimestamp"]):
                continue
            applied += 1
            for side, levels in ((bids, body["bids"]), (asks, body["asks"])):
                for price, amount in levels:
                    if float(amount) == 0:
                        side.pop(price, None)
                    else:
                        side[price] = amount
        assert applied == 3
        assert bids == dict(final["bids"]) and asks == dict(final["asks"])
        snapshots = snap_probe.drain()
        assert len(snapshots) == 5  # one per change
        await snap_probe.close()
        await diffs.close()
