"""Resyncs are paced: a venue whose book breaks after every subscribe is not resubscribed in a loop.

In-band resyncs (Kraken, OKX, Coinbase, Bybit: unsubscribe and subscribe for a
fresh snapshot) used to go out at once, every time: a venue whose stream kept
breaking got a resubscribe per broken update, and OKX allows 480 subscribe
requests an hour per connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.feed import Feed
from dragonfly.venues.okx import SPEC

INST = "ETH-BTC"


def push(action: str, prev: int, seq: int) -> bytes:
    level = ["0.072", "1", "0", "1"]
    book: dict[str, object] = {"asks": [level], "bids": [["0.071", *level[1:]]]}
    book |= {"ts": "1", "checksum": 0, "prevSeqId": prev, "seqId": seq}
    arg = {"channel": "books", "instId": INST}
    return json.dumps({"arg": arg, "action": action, "data": [book]}).encode()


class BreaksAfterEverySubscribe(WSListener):
    """An OKX-like venue: every subscribe gets a snapshot and then an update past a gap."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribes: list[float] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if payload == b"ping":
            transport.send(WSMsgType.TEXT, b"pong")
            return
        msg: dict[str, Any] = json.loads(payload)
        arg = {"channel": "books", "instId": INST}
        if msg.get("op") == "subscribe":
            self.subscribes.append(asyncio.get_running_loop().time())
            transport.send(WSMsgType.TEXT, json.dumps({"event": "subscribe", "arg": arg}).encode())
            transport.send(WSMsgType.TEXT, push("snapshot", -1, 10))
            transport.send(WSMsgType.TEXT, push("update", 12, 13))  # 11..12 never came
        elif msg.get("op") == "unsubscribe":
            transport.send(WSMsgType.TEXT, json.dumps({"event": "unsubscribe", "arg": arg}).encode())


async def test_a_book_that_keeps_breaking_is_resubscribed_at_a_backed_off_pace() -> None:
    venue = BreaksAfterEverySubscribe()
    server = await ws_create_server(lambda _request: venue, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    agg = Aggregator("ethbtc", ["okx"], depth=10)
    feed = Feed(SPEC, {INST: agg.producers["okx"]}, ws_url=f"ws://127.0.0.1:{port}/ws/v5/public")
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.sleep(4.0)
    finally:
        feed.stop()
        await task
        server.close()
        await server.wait_closed()
    subscribes = venue.subscribes
    # Unpaced, this was one resubscribe per round trip: hundreds in 4 s. Paced: the
    # first at once, then full-jitter delays from 0.2 s doubling (expected sum of
    # the first five: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s), so a handful.
    assert 3 <= len(subscribes) <= 12, len(subscribes)
    gaps = [b - a for a, b in itertools.pairwise(subscribes)]
    assert sum(gaps[-3:]) > 0.3  # they slow down
    assert feed.stats.resubscribes == len(subscribes) - 1
    assert feed.stats.connects == 1  # resynced in-band, not by reconnecting
