"""Helpers for topology tests: hubs on the simulator over real loopback sockets."""

from __future__ import annotations

from collections.abc import Sequence

from dragonfly.sim import Simulator
from dragonfly.topology.hub import VenueEndpoint
from dragonfly.venues import get_venue

from ..integration.conftest import wait_until

__all__ = ["endpoints", "wait_until"]


def endpoints(sim: Simulator, venues: Sequence[str] | None = None) -> list[VenueEndpoint]:
    return [VenueEndpoint(get_venue(v), sim.ws_url(v), sim.rest_url(v)) for v in (venues or sim.venues)]
