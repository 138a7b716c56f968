"""Fixtures of the serving tests: a running service, book and polling helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from dragonfly.core.fanout import FanOut
from dragonfly.core.types import MergedBook, MergedLevel
from dragonfly.serve.grpc_service import GrpcService


def _make_book(sequence: int, depth: int = 10, venue: str = "binance") -> MergedBook:
    """Return a plausible ETHBTC book whose amounts change with ``sequence``."""
    bids = tuple(
        MergedLevel(venue if i % 2 else "bitstamp", 0.068 - i * 1e-5, 1.0 + sequence + i)
        for i in range(depth)
    )
    asks = tuple(MergedLevel("kraken" if i % 2 else venue, 0.069 + i * 1e-5, 2.0 + i) for i in range(depth))
    now = time.time_ns()
    spread = asks[0].price - bids[0].price if depth else float("nan")
    return MergedBook("ETHBTC", spread, bids, asks, sequence, now - 1000, now)


@dataclass
class Running:
    """A GrpcService serving a FanOut on 127.0.0.1."""

    fanout: FanOut[bytes]
    service: GrpcService
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    """Serve a fresh FanOut on a free port; stop it afterwards."""
    fanout: FanOut[bytes] = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0)
    port = await service.start()
    try:
        yield Running(fanout, service, port)
    finally:
        await service.stop(grace=0.2)


async def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


#: Signature of the ``make_book`` fixture.
MakeBook = Callable[..., MergedBook]
#: Signature of the ``wait_until`` fixture.
WaitUntil = Callable[..., Awaitable[None]]


@pytest.fixture
def make_book() -> MakeBook:
    """Provide ``make_book(sequence, depth=10, venue="binance") -> MergedBook``."""
    return _make_book


@pytest.fixture
def wait_until() -> WaitUntil:
    """Provide ``await wait_until(condition, timeout=5.0)``."""
    return _wait_until
