"""Helpers shared by the fault tests: subscribing probes and reading frames until one fits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from dragonfly.sim import Simulator
from dragonfly.sim.probe import Probe, RawFrame, RawProbe, connect, connect_raw

BITSTAMP_BOOK = {"event": "bts:subscribe", "data": {"channel": "order_book_ethbtc"}}


async def bitstamp_probe(sim: Simulator) -> Probe:
    """A probe subscribed to Bitstamp's ethbtc order book, ack consumed."""
    probe = await connect(sim.ws_url("bitstamp"))
    probe.send(BITSTAMP_BOOK)
    await probe.wait_json({"event": "bts:subscription_succeeded"})
    return probe


async def binance_raw(sim: Simulator, streams: str = "ethbtc@depth20@100ms") -> RawProbe:
    """A raw probe on Binance streams named in the path (no subscribe request needed)."""
    return await connect_raw(f"{sim.ws_url('binance')}/{streams}")


async def raw_until(probe: RawProbe, match: Callable[[RawFrame], bool], timeout: float = 2.0) -> RawFrame:
    """Return the first raw frame that ``match`` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await probe.frame(max(deadline - time.monotonic(), 0.01))
        if match(frame):
            return frame


async def quiet(probe: Probe, seconds: float) -> list[bytes]:
    """Return every frame received within ``seconds``."""
    await asyncio.sleep(seconds)
    return probe.drain()


async def json_frames(probe: Probe, count: int, timeout: float = 2.0) -> list[Any]:
    """Return the next ``count`` frames parsed as JSON."""
    return [json.loads(await probe.recv(timeout)) for _ in range(count)]
