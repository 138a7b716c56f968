"""What an operator's tools ask a server: gRPC health checking and server reflection.

Health (``grpc.health.v1.Health``, the standard service that load balancers,
Kubernetes' gRPC probes and ``grpc_health_probe`` speak), per service name:

* ``orderbook.OrderbookAggregator`` (the seed API): ``SERVING`` while at least
  one venue's book of the first instrument is in the merge (LIVE), else
  ``NOT_SERVING``: the stream it serves would carry no levels;
* ``dragonfly.v1.MarketData``: ``SERVING`` while at least one instrument it
  exposes has a venue in the merge;
* each exposed instrument by its name (``ethbtc``): that instrument alone;
* ``""`` (the server as a whole): as ``dragonfly.v1.MarketData``.

Statuses are re-read from the topology's catalog every
:data:`HEALTH_PERIOD` seconds (Watch callers hear of a change then) and all
go ``NOT_SERVING`` when the server shuts down. Reflection
(``grpc.reflection.v1alpha.ServerReflection``) lists both APIs and the health
service and describes their messages, so ``grpcurl -plaintext HOST:PORT list``
and ``describe`` work with no proto file at hand (the ``.proto`` files also
ship in the package, ``dragonfly/protos``).

Neither asks for the bearer token: a probe carries none, and what they tell
(whether books are flowing; the public schema) is no market data.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]  # re-exported _async
from grpc_reflection.v1alpha import reflection

from dragonfly.core.health import VenueStatus
from dragonfly.serve import dragonfly_v1_pb2, orderbook_pb2
from dragonfly.topology.source import Catalog

log = logging.getLogger("dragonfly.serve.probes")

#: Seconds between two readings of the venues' state for the health service.
HEALTH_PERIOD = 0.5
SEED_SERVICE = orderbook_pb2.DESCRIPTOR.services_by_name["OrderbookAggregator"].full_name
V1_SERVICE = dragonfly_v1_pb2.DESCRIPTOR.services_by_name["MarketData"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_LIVE = int(VenueStatus.LIVE)


def serving(catalog: Catalog, seed_instrument: str | None) -> dict[str, bool]:
    """Each health service name -> whether it is serving now (see the module doc)."""
    live = {
        info.instrument: any(v.in_merge or v.status == _LIVE for v in info.venues)
        for info in catalog.catalog()
    }
    anything = any(live.values())
    out = {"": anything, V1_SERVICE: anything, **live}
    if seed_instrument is not None:
        out[SEED_SERVICE] = live.get(seed_instrument, False)
    return out


class Probes:
    """The health and reflection services of one gRPC server."""

    def __init__(self, catalog: Catalog, seed_instrument: str | None) -> None:
        self.catalog = catalog
        self.seed_instrument = seed_instrument
        self.health = health_aio.HealthServicer()
        self._task: asyncio.Task[None] | None = None
        self._last: dict[str, bool] = {}

    def register(self, server: grpc.aio.Server) -> None:
        """Add both services to ``server`` (before it starts)."""
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [SEED_SERVICE, V1_SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, server)

    async def start(self) -> None:
        """Set every status now and keep them current."""
        await self.update()
        self._task = asyncio.create_task(self._loop(), name="dragonfly health")

    async def update(self) -> None:
        """Read the venues' state and set each service's status."""
        now = serving(self.catalog, self.seed_instrument)
        for name, ok in now.items():
            if self._last.get(name) is not ok:
                await self.health.set(name, _SERVING if ok else _NOT_SERVING)
                if name:
                    log.info("health: %s is %s", name, "SERVING" if ok else "NOT_SERVING")
        self._last = now

    async def stop(self) -> None:
        """Stop updating and answer NOT_SERVING for everything from now on."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.health.enter_graceful_shutdown()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_PERIOD)
            try:
                await self.update()
            except Exception:  # never let the probe die with the server up
                log.exception("health: cannot read the venues' state")
