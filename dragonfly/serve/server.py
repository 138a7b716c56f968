"""The gRPC server process: hub + services (+ simulator with ``--sim``).

Thin wiring around library objects: a :class:`~dragonfly.topology.hub.Hub`
keeps every instrument's venue books and views on shared venue connections;
a sink encodes each merged update of the first instrument once into Summary
bytes for the seed API (``BookSummary``) and publishes them to a
:class:`~dragonfly.core.fanout.FanOut` (:class:`SummaryFanOut`: only while a
BookSummary stream is open); each
:class:`~dragonfly.serve.grpc_service.GrpcService` (one per service of the
topology) streams those bytes, and the ``dragonfly.v1`` views of the
aggregators it exposes, to every subscriber from its own bounded,
conflating queue.
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
from dragonfly.core.errors import DragonflyError
from dragonfly.core.fanout import FanOut, Subscription
from dragonfly.core.types import MergedBook
from dragonfly.fix.gateway import FixGateway
from dragonfly.serve.config import ServeConfig
from dragonfly.serve.encode import encode_summary_queued
from dragonfly.serve.errors import ServeError
from dragonfly.serve.grpc_service import (
    GrpcService,
    load_tls_key_pair,
    raise_open_file_limit,
    read_token_file,
)
from dragonfly.serve.metrics import HubCollector, MetricsServer
from dragonfly.serve.probes import Probes
from dragonfly.topology.expose import Exposed
from dragonfly.topology.hub import Hub, VenueEndpoint

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


class SummaryFanOut(FanOut[bytes]):
    """The seed API's FanOut: each merged book's Summary bytes, encoded only while a stream reads them.

    :meth:`sink` is the seed aggregator's sink. With a BookSummary stream
    open it encodes each book once (``publish_ns`` read as the levels are
    encoded) and publishes the bytes, as :func:`summary_sink` does. With none
    open (a server read only over FIX or ``dragonfly.v1``, say) it keeps only
    the newest book and the time it came, and encodes that one when a stream
    subscribes or ``latest`` is read, stamped with that time: the same bytes
    a subscriber would have been handed, at no cost per update meanwhile (a
    Summary of a 10 + 10 book is ~20 µs of the live FIX path's update).
    """

    __slots__ = ("_book", "_book_ns")

    def __init__(self) -> None:
        """A FanOut of one-update subscriptions (the seed API's queue length is per subscription)."""
        super().__init__(maxlen=1)
        self._book: MergedBook | None = None
        self._book_ns = 0

    def sink(self, book: MergedBook) -> None:
        """Take the seed aggregator's merged book (synchronous, on the hot path)."""
        if self._subscribers:
            self._book = None
            self.publish(encode_summary_queued(book, time.time_ns))
        else:
            self._book = book
            self._book_ns = time.time_ns()

    def subscribe(self, maxlen: int | None = None, max_lag_ns: int | None = None) -> Subscription[bytes]:
        """A new subscription holding the newest Summary (encoded now if it was kept as a book)."""
        self._encode_kept()
        return super().subscribe(maxlen, max_lag_ns)

    @property
    def latest(self) -> bytes | None:
        """The newest Summary, or ``None`` before the first book."""
        self._encode_kept()
        return self._latest

    def _encode_kept(self) -> None:
        book = self._book
        if book is not None:
            self._book = None
            stamp = self._book_ns
            self._latest = encode_summary_queued(book, lambda: stamp)


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


async def _first_books(hub: Hub, timeout: float) -> None:
    """Wait up to ``timeout`` s until every accepted (instrument, venue) has a book."""
    deadline = asyncio.get_running_loop().time() + timeout
    accepted = [(i, v) for i, row in hub.report.items() for v, problem in row.items() if problem is None]
    while not all(hub.tees[key].latest is not None for key in accepted):
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.02)


def _service(cfg: ServeConfig, fanout: FanOut[bytes], catalog: Exposed) -> GrpcService:
    """One gRPC server: the seed API, dragonfly.v1 over ``catalog``, health and reflection."""
    return GrpcService(
        fanout,
        cfg.host,
        cfg.port,
        queue_len=cfg.queue,
        max_lag_ns=round(cfg.max_lag_ms * 1e6),
        tls=cfg.tls,
        token=cfg.token,
        limits=cfg.limits(),
        catalog=catalog,
        probes=Probes(catalog, cfg.instrument),
    )


async def run_server(cfg: ServeConfig, ready: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM, reloading credentials on SIGHUP; return the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = None
    fanout = SummaryFanOut()
    services: list[tuple[ServeConfig, GrpcService]] = []
    gateways: list[FixGateway] = []
    hub: Hub | None = None
    metrics: MetricsServer | None = None
    old_limit, new_limit = raise_open_file_limit()
    if new_limit > old_limit:
        log.info("raised the open-file limit from %d to %d", old_limit, new_limit)
    else:
        log.debug("open-file limit: %d", old_limit)
    try:
        ssl_context = cfg.ssl_context()
        endpoints: list[VenueEndpoint] = []
        sim_venues = [v for v in cfg.venues if v not in cfg.endpoints] if cfg.sim else []
        if sim_venues:
            from dragonfly.sim import Simulator
            from dragonfly.sim.instruments import DEFAULT_INSTRUMENTS, make_instrument

            # The simulated venues list every instrument they can make up a market for;
            # a name they cannot (xyzabc) is unlisted there, as on a live venue.
            listed = []
            for name in cfg.instruments:
                with contextlib.suppress(ValueError):
                    make_instrument(name)
                    listed.append(name)
            sim = Simulator(venues=sim_venues, instruments=listed or DEFAULT_INSTRUMENTS, host="127.0.0.1",
                            period_s=cfg.sim_period)
            await sim.start()
        for name in cfg.venues:
            spec = cfg.venue_spec(name)
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
        hub = Hub(
            cfg.instruments,
            endpoints,
            aggregators=cfg.aggregator_specs(),
            channels=cfg.channels,
            stale_after=cfg.stale_after,
            max_deviation=cfg.max_deviation,
        )
        configs = [cfg, *cfg.services]
        first = Exposed(hub, cfg.inputs)
        # The seed API streams the merged book of the first instrument.
        seed = first.source(cfg.instrument, "book") if "book" in first.kinds(cfg.instrument) else hub.source(
            cfg.instrument, "book"
        )
        seed.add_sink(fanout.sink)
        for service_cfg in configs:
            catalog = first if service_cfg is cfg else Exposed(hub, service_cfg.inputs)
            service = _service(service_cfg, fanout, catalog)
            services.append((service_cfg, service))
            if service_cfg.token_source is not None:
                log.info("%s:%d: bearer token from %s", service_cfg.host, service_cfg.port,
                         service_cfg.token_source)
        ports = [await service.start() for _, service in services]
        # FIX gateways: more services over the same hub (docs/fix.md).
        for fix_cfg in cfg.fix_services:
            gateway = FixGateway(Exposed(hub, fix_cfg.inputs), fix_cfg)
            gateways.append(gateway)
            await gateway.start()
        if cfg.metrics_port is not None:
            named = [(f"{c.host}:{port}", svc) for (c, svc), port in zip(services, ports, strict=True)]
            hub.enable_timing()
            collector = HubCollector(hub, named, loop, gateways)
            metrics = MetricsServer(collector, cfg.metrics_port, cfg.metrics_host)
            log.info("Prometheus metrics on %s", metrics.url)
        # SIGHUP's default action ends the process: reload instead.
        loop.add_signal_handler(signal.SIGHUP, _reload_all, services)
        start = asyncio.create_task(hub.start(wait=cfg.start_timeout))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([start, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not start.done():
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await start
            return 0
        stopper.cancel()
        report = start.result()
        for instrument, row in report.items():
            for name, problem in row.items():
                if problem and not hub.rejected(instrument, name):
                    log.warning("%s on %s: not streaming yet: %s", instrument, name, problem)
        await _first_books(hub, FIRST_BOOK_WAIT)
        where = "simulated" if cfg.sim else "live"
        for line in hub.describe().splitlines():
            log.info("topology: %s", line)
        merged: dict[str, list[str]] = {}
        for instrument, row in report.items():
            merged[instrument] = [
                v for v, p in row.items() if p is None and hub.tees[instrument, v].latest is not None
            ]
            for v, p in row.items():
                if p is None and v not in merged[instrument]:
                    prefix = v if instrument == cfg.instrument else f"{instrument} on {v}"
                    log.warning(
                        "%s: subscribed, but no book yet: it joins the merge with its first sound one",
                        prefix,
                        extra={"instrument": instrument, "venue": v},
                    )
        others = [i for i in cfg.instruments if i != cfg.instrument]
        log.info(
            "serving %s merged top %d from %s (%s) on %s%s; hot path: %s",
            cfg.instrument,
            seed.depth,
            ", ".join(merged[cfg.instrument]) or "no venue yet",
            where,
            ", ".join(
                [f"{c.host}:{port}" for (c, _), port in zip(services, ports, strict=True)]
                + [f"FIX {g.address}" for g in gateways]
            ),
            "".join(
                f"; also {i} from {', '.join(merged[i]) or 'no venue yet'}" for i in others
            ),
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
        if metrics is not None:
            metrics.close()
        for gateway in gateways:
            await gateway.stop()
        for _, service in services:
            await service.stop(grace=1.0)
        if hub is not None:
            await hub.stop()
        fanout.close()
        if sim is not None:
            await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _reload_all(services: list[tuple[ServeConfig, GrpcService]]) -> None:
    for cfg, service in services:
        reload_credentials(cfg, service)
