"""Fixtures for end-to-end tests: the simulator and an engine wired to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.types import MergedBook, MergedLevel
from dragonfly.sim import Simulator
from dragonfly.sim.tls import make_self_signed
from dragonfly.venues import get_venue

PERIOD_S = 0.02


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(venues=["binance", "bitstamp"], instruments=["ethbtc"], seed=3, period_s=PERIOD_S)
    await simulator.start()
    yield simulator
    await simulator.stop()


def endpoints(sim: Simulator, venues: Sequence[str] = ("binance", "bitstamp")) -> list[VenueEndpoint]:
    return [VenueEndpoint(get_venue(v), sim.ws_url(v), sim.rest_url(v)) for v in venues]


@pytest.fixture
async def engine(sim: Simulator) -> AsyncIterator[Engine]:
    eng = Engine("ethbtc", endpoints(sim), depth=10)
    report = await eng.start(wait=10)
    assert report == {"binance": None, "bitstamp": None}
    yield eng
    await eng.stop()


@pytest.fixture(scope="session")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_self_signed(tmp_path_factory.mktemp("tls"))


def reference_merge(
    books: dict[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]], depth: int
) -> tuple[list[MergedLevel], list[MergedLevel]]:
    """The merge rule written out plainly, independent of the aggregator's sort keys."""
    bids = [MergedLevel(v, p, a) for v, (b, _) in books.items() for p, a in b[:depth]]
    asks = [MergedLevel(v, p, a) for v, (_, s) in books.items() for p, a in s[:depth]]
    bids.sort(key=lambda lv: lv.exchange)
    bids.sort(key=lambda lv: lv.amount, reverse=True)
    bids.sort(key=lambda lv: lv.price, reverse=True)
    asks.sort(key=lambda lv: lv.exchange)
    asks.sort(key=lambda lv: lv.amount, reverse=True)
    asks.sort(key=lambda lv: lv.price)
    return bids[:depth], asks[:depth]


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def quiesce(sim: Simulator, engine: Engine) -> MergedBook:
    """Stop the venues publishing, let the last frames land, return the engine's book."""
    for venue in sim.venues:
        sim.pause(venue)
    await asyncio.sleep(0.3)
    book = engine.latest
    assert book is not None
    return book
