"""The whole chain on loopback, read by a real gRPC client: simulated venues -> engine -> server -> client.

A :class:`Stack` runs the venue simulator, an :class:`Engine` on it, the gRPC
service and a grpc.aio client that records every ``Summary`` it receives.
Tests inject faults into the simulator and assert on what the client saw.
Every Summary received is also checked against what must always hold
(:meth:`Stack.check_every_summary`): no venue in the merge older than its
freshness limit, no level of a venue that is not in the merge, no unsound
level (not finite, not positive, out of order, a venue crossed against
itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.fanout import FanOut
from dragonfly.core.health import VenueStatus
from dragonfly.core.venue import VenueSpec
from dragonfly.serve import orderbook_pb2, orderbook_pb2_grpc
from dragonfly.serve.grpc_service import GrpcService
from dragonfly.serve.server import summary_sink
from dragonfly.sim import Simulator
from dragonfly.venues import get_venue

from .conftest import reference_merge

#: Freshness limit of every venue in these tests (seconds): short, so tests are quick.
STALE_AFTER = 0.5
#: Publish cadence of the simulated venues.
PERIOD_S = 0.02

LIVE = VenueStatus.LIVE


@dataclass
class Received:
    """One Summary as the client got it."""

    at: float  # loop time
    summary: orderbook_pb2.Summary

    def state(self, venue: str) -> orderbook_pb2.VenueState:
        for state in self.summary.venues:
            if state.venue == venue:
                return state
        raise AssertionError(f"{venue} not in the update's venue states: {self.summary.venues}")

    def in_merge(self, venue: str) -> bool:
        return self.state(venue).in_merge

    def levels_of(self, venue: str) -> list[orderbook_pb2.Level]:
        return [lv for lv in (*self.summary.bids, *self.summary.asks) if lv.exchange == venue]


@dataclass
class Stack:
    sim: Any  # a Simulator, or a ReplaySimulator
    engine: Engine
    service: GrpcService
    port: int
    stale_after: Mapping[str, float]
    received: list[Received] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @property
    def last(self) -> Received:
        assert self.received, "no update received yet"
        return self.received[-1]

    async def until(
        self, predicate: Callable[[Received], bool], what: str, timeout: float = 10.0, *, since: int = 0
    ) -> Received:
        """Wait for an update (from index ``since`` on) for which ``predicate`` holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        seen = since
        while True:
            while seen < len(self.received):
                update = self.received[seen]
                seen += 1
                if predicate(update):
                    return update
            if asyncio.get_running_loop().time() > deadline:
                last = self.received[-1].summary if self.received else None
                latest = self.engine.latest
                raise AssertionError(
                    f"timed out waiting for {what}: {len(self.received)} updates received, the last "
                    f"#{last.sequence if last else None} with {list(last.venues) if last else None}; "
                    f"the engine's latest #{latest.sequence if latest else None}; "
                    f"engine status {self.engine.status()}"
                )
            await asyncio.sleep(0.005)

    async def withdrawn_then_back(
        self, venue: str, statuses: Sequence[VenueStatus], timeout: float = 10.0
    ) -> tuple[Received, Received]:
        """Wait until ``venue`` leaves the merge with one of ``statuses``, then comes back live."""
        mark = len(self.received)
        wanted = {int(s) for s in statuses}
        gone = await self.until(
            lambda r: not r.in_merge(venue) and r.state(venue).status in wanted,
            f"{venue} withdrawn as {', '.join(s.name for s in statuses)}",
            timeout,
            since=mark,
        )
        back = await self.until(
            lambda r: r.in_merge(venue) and r.state(venue).status == LIVE,
            f"{venue} back in the merge",
            timeout,
            since=self.received.index(gone),
        )
        return gone, back

    def check_every_summary(self) -> None:
        """Assert what must hold of every update the client received (module doc)."""
        for received in self.received:
            summary = received.summary
            states = {s.venue: s for s in summary.venues}
            for venue, state in states.items():
                if state.in_merge:
                    limit_ns = self.stale_after[venue] * 1e9
                    assert state.data_ns > 0 and state.age_ns <= limit_ns, (venue, state, "stale as fresh")
            for side, better in ((summary.bids, lambda a, b: a > b), (summary.asks, lambda a, b: a < b)):
                prev: dict[str, float] = {}
                for level in side:
                    assert states[level.exchange].in_merge, (level, "a level of a venue out of the merge")
                    assert math.isfinite(level.price) and level.price > 0, level
                    assert math.isfinite(level.amount) and level.amount > 0, level
                    if level.exchange in prev:
                        assert better(prev[level.exchange], level.price), (level, "out of order")
                    prev[level.exchange] = level.price
            for venue in states:
                bids = [lv.price for lv in summary.bids if lv.exchange == venue]
                asks = [lv.price for lv in summary.asks if lv.exchange == venue]
                if bids and asks:
                    assert bids[0] < asks[0], (venue, "crossed against itself", summary)

    def merged_equals_what_the_venues_sent(self) -> None:
        """The engine's latest book is the merge of the books the simulator last sent."""
        latest = self.engine.latest
        assert latest is not None
        books = {}
        for venue in self.engine.feeds:
            sent = self.sim.last_sent(venue, self.engine.instrument)
            if sent is not None and latest_in_merge(latest, venue):
                books[venue] = sent
        bids, asks = reference_merge(books, self.engine.depth)
        assert (list(latest.bids), list(latest.asks)) == (bids, asks)


def latest_in_merge(book: object, venue: str) -> bool:
    return any(s.venue == venue and s.in_merge for s in book.venues)  # type: ignore[attr-defined]


async def _read(stack: Stack) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.port}") as channel:
        call = orderbook_pb2_grpc.OrderbookAggregatorStub(channel).BookSummary(orderbook_pb2.Empty())
        loop = asyncio.get_running_loop()
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for summary in call:
                stack.received.append(Received(loop.time(), summary))


@contextlib.asynccontextmanager
async def serving(
    sim: Any, endpoints: Sequence[VenueEndpoint], stale_after: float, **engine_options: Any
) -> AsyncIterator[Stack]:
    """Run an engine on ``endpoints``, the gRPC service and a reading client, until every venue is in."""
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    service = GrpcService(fanout, "127.0.0.1", 0, queue_len=64)
    port = await service.start()
    limits = {e.spec.name: stale_after for e in endpoints}
    instrument = engine_options.pop("instrument", "ethbtc")
    engine = Engine(instrument, endpoints, depth=10, stale_after=limits, **engine_options)
    engine.add_sink(summary_sink(fanout))
    stack = Stack(sim, engine, service, port, limits)
    stack.reader = asyncio.create_task(_read(stack))
    try:
        report = await engine.start(wait=10)
        assert all(problem is None for problem in report.values()), report
        await stack.until(lambda r: all(r.in_merge(v) for v in limits), "every venue in the merge")
        yield stack
        stack.check_every_summary()
    finally:
        stack.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stack.reader
        await engine.stop()
        await service.stop(grace=0.1)


@contextlib.asynccontextmanager
async def running_stack(
    venues: Sequence[str] = ("binance", "bitstamp"),
    *,
    stale_after: float = STALE_AFTER,
    extra: Callable[[Simulator], Sequence[VenueEndpoint]] = lambda sim: (),
    specs: Mapping[str, VenueSpec] | None = None,
    **engine_options: Any,
) -> AsyncIterator[Stack]:
    """Run simulator, engine, service and client; stop them all on the way out.

    ``extra(sim)`` gives more venues for the engine (another name on a
    simulated venue's protocol, say); ``specs`` replaces venues' specs (a
    shorter subscribe timeout, say); the rest goes to the Engine.
    """
    chosen = specs or {}
    async with Simulator(venues=list(venues), instruments=["ethbtc"], seed=7, period_s=PERIOD_S) as sim:
        endpoints = [
            VenueEndpoint(chosen.get(v) or get_venue(v), sim.ws_url(v), sim.rest_url(v)) for v in venues
        ]
        async with serving(sim, [*endpoints, *extra(sim)], stale_after, **engine_options) as stack:
            yield stack


def recordings_dir() -> Path | None:
    """The recordings directory: ``$DRAGONFLY_RECORDINGS``, else ``../shared/recordings``."""
    env = os.environ.get("DRAGONFLY_RECORDINGS")
    beside = Path(__file__).resolve().parents[3] / "shared" / "recordings"
    for candidate in ([Path(env)] if env else []) + [beside]:
        if candidate.is_dir():
            return candidate
    return None


@contextlib.asynccontextmanager
async def running_replay_stack(
    recordings: Path, venue: str, instrument: str, *, stale_after: float = 5.0
) -> AsyncIterator[Stack]:
    """The same chain on a venue's recorded traffic (the replay server), at the recorded pace."""
    from dragonfly.sim.replay import ReplaySimulator

    async with ReplaySimulator(recordings, venues=[venue], pace=1.0) as sim:
        spec = get_venue(venue)
        (conn,) = [c for c in sim.connections_of(venue) if spec.venue_symbol(instrument) in c.symbols]
        endpoint = VenueEndpoint(spec, conn.ws_url, conn.rest_url)
        async with serving(sim, [endpoint], stale_after, instrument=instrument) as stack:
            yield stack


async def quiet(stack: Stack, seconds: float = 0.3) -> None:
    """Stop the venues publishing for a moment, so the last frames land (no staleness: short)."""
    for venue in stack.sim.venues:
        stack.sim.pause(venue)
    await asyncio.sleep(seconds)


def now_ns() -> int:
    return time.time_ns()
