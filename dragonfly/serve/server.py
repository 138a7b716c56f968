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
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import (
    GrpcService,
    load_tls_key_pair,
    raise_open_file_limit,
    read_token_file,
)
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


def reload_credentials(cfg: ServeConfig, service: GrpcService) -> None:
    """Re-read the token file and the TLS key pair into ``service`` (SIGHUP); log what changed.

    What cannot be loaded is logged as an error and the service keeps what it
    has. New calls and new connections get the new token and certificate;
    open streams and connections keep going.
    """
    if cfg.token_file is None and cfg.tls_cert is None:
        log.info("SIGHUP: nothing to reload (no --token-file, no --tls-cert)")
    if cfg.token_file is not None:
        try:
            token = read_token_file(cfg.token_file)
        except ServeError as exc:
            log.error("SIGHUP: %s; keeping the current token", exc)
        else:
            if service.set_token(token):
                log.info("SIGHUP: new token from %s, required on every call from now on", cfg.token_file)
            else:
                log.info("SIGHUP: token in %s unchanged", cfg.token_file)
    elif cfg.token is not None:
        log.info("SIGHUP: the token comes from %s, which cannot change: kept", cfg.token_source)
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        old = service.tls
        try:
            pair = load_tls_key_pair(cfg.tls_cert, cfg.tls_key)
        except ServeError as exc:
            log.error("SIGHUP: %s; keeping the current TLS certificate", exc)
            return
        if service.set_tls(pair):
            log.info(
                "SIGHUP: new TLS certificate from %s (SHA-256 %s, was %s), presented to new connections",
                cfg.tls_cert,
                pair.fingerprint,
                old.fingerprint if old is not None else "none",
            )
        else:
            log.info("SIGHUP: TLS certificate and key in %s and %s unchanged", cfg.tls_cert, cfg.tls_key)


#: Seconds the start-up line waits for subscribed venues' first books.
FIRST_BOOK_WAIT = 3.0


async def _first_books(engine: Engine, venues: list[str], timeout: float) -> None:
    """Wait up to ``timeout`` s until every venue of ``venues`` has a book in the merge."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not all(engine.feeds[n].listener.has_book for n in venues):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.02)


async def run_server(cfg: ServeConfig, ready: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM, reloading credentials on SIGHUP; return the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = None
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    service = GrpcService(
        fanout,
        cfg.host,
        cfg.port,
        queue_len=cfg.queue,
        max_lag_ns=round(cfg.max_lag_ms * 1e6),
        tls=cfg.tls,
        token=cfg.token,
        limits=cfg.limits(),
    )
    # SIGHUP's default action ends the process: reload instead.
    loop.add_signal_handler(signal.SIGHUP, reload_credentials, cfg, service)
    old_limit, new_limit = raise_open_file_limit()
    if new_limit > old_limit:
        log.info("raised the open-file limit from %d to %d", old_limit, new_limit)
    else:
        log.debug("open-file limit: %d", old_limit)
    if cfg.token_source is not None:
        log.info("bearer token from %s", cfg.token_source)
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
        engine = Engine(
            cfg.instrument,
            endpoints,
            depth=cfg.depth,
            channels=cfg.channels,
            stale_after=cfg.stale_after,
            max_deviation=cfg.max_deviation,
        )
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
        # A venue that acked but sends no book is not serving: say which are in the merge.
        subscribed = [n for n, p in report.items() if p is None]
        await _first_books(engine, subscribed, FIRST_BOOK_WAIT)
        merged = [n for n in subscribed if engine.feeds[n].listener.has_book]
        waiting = [n for n in subscribed if n not in merged]
        where = "simulated" if cfg.sim else "live"
        log.info(
            "serving %s merged top %d from %s (%s) on %s:%d; hot path: %s",
            cfg.instrument,
            cfg.depth,
            ", ".join(merged) or "no venue yet",
            where,
            cfg.host,
            port,
            "C speedups" if accel.ACTIVE else "pure Python (C speedups not built or disabled)",
        )
        for name in waiting:
            log.warning("%s: subscribed, but no book yet: it joins the merge with its first sound one", name)
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
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
