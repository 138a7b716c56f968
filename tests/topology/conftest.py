"""Helpers for topology tests: hubs on the simulator over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from dragonfly.sim import Simulator
from dragonfly.topology.hub import VenueEndpoint
from dragonfly.venues import get_venue


def endpoints(sim: Simulator, venues: Sequence[str] | None = None) -> list[VenueEndpoint]:
    return [VenueEndpoint(get_venue(v), sim.ws_url(v), sim.rest_url(v)) for v in (venues or sim.venues)]


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
