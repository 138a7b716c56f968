"""The gRPC server process: engine + service (+ simulator with ``--sim``).

Thin wiring around library objects: :class:`~dragonfly.core.engine.Engine`
keeps the merged book, a sink encodes each merged update once into Summary
bytes and publishes them to a :class:`~dragonfly.core.fanout.FanOut`, and
:class:`~dragonfly.serve.grpc_service.GrpcService` streams those bytes to
every subscriber from its own bounded, conflating queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable

from dragonfly import accel
from dragonfly.core.engine import Engine, VenueEndpoint
from dragonfly.core.errors import DragonflyError
from dragonfly.core.fanout import FanOut
from dragonfly.core.types import MergedBook
from dragonfly.serve.config import ServeConfig
from dragonfly.serve.encode import encode_summary_queued
from dragonfly.serve.grpc_service import GrpcService
from dragonfly.venues import get_venue

log = logging.getLogger("dragonfly.serve")


def summary_sink(fanout: FanOut[bytes]) -> Callable[[MergedBook], None]:
    """Encode each merged book once and hand the same bytes to every subscriber.

    ``publish_ns`` on the wire is the time the levels were encoded, just
    before the bytes are queued (see :func:`encode_summary_queued`).
    """
    publish = fanout.publish
    time_ns = time.time_ns

    def sink(book: MergedBook) -> None:
        publish(encode_summary_queued(book, time_ns))

    return sink


async def run_server(cfg: ServeConfig, ready: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = None
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    service = GrpcService(
        fanout, cfg.host, cfg.port, queue_len=cfg.queue, max_lag_ns=round(cfg.max_lag_ms * 1e6)
    )
    engine: Engine | None = None
    try:
        port = await service.start()
        ssl_context = cfg.ssl_context()
        endpoints: list[VenueEndpoint] = []
        sim_venues = [v for v in cfg.venues if v not in cfg.endpoints] if cfg.sim else []
        if sim_venues:
            from dragonfly.sim import Simulator

            sim = Simulator(venues=sim_venues, host="127.0.0.1", period_s=cfg.sim_period)
            await sim.start()
        for name in cfg.venues:
            spec = get_venue(name)
            if name in cfg.endpoints:
                ws_url: str | None = cfg.endpoints[name]
            elif sim is not None:
                ws_url = sim.ws_url(name)
            else:
                ws_url = None
            rest_url = cfg.rest_endpoints.get(name)
            if rest_url is None and sim is not None and name in sim_venues:
                rest_url = sim.rest_url(name)
            endpoints.append(VenueEndpoint(spec, ws_url, rest_url, ssl_context))
        engine = Engine(cfg.instrument, endpoints, depth=cfg.depth, channels=cfg.channels)
        engine.add_sink(summary_sink(fanout))
        start = asyncio.create_task(engine.start(wait=cfg.start_timeout))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([start, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await start
            return 0
        stopper.cancel()
        report = start.result()
        for name, problem in report.items():
            if problem:
                log.warning("%s: not streaming yet: %s", name, problem)
        live = [n for n, p in report.items() if p is None]
        where = "simulated" if cfg.sim else "live"
        log.info(
            "serving %s merged top %d from %s (%s) on %s:%d; hot path: %s",
            cfg.instrument,
            cfg.depth,
            ", ".join(live) or "no venue yet",
            where,
            cfg.host,
            port,
            "C speedups" if accel.ACTIVE else "pure Python (C speedups not built or disabled)",
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
        return 0
    except DragonflyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await service.stop(grace=1.0)
        if engine is not None:
            await engine.stop()
        fanout.close()
        if sim is not None:
            await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
