"""Replay server: recorded venue traffic served over loopback in each venue's current protocol.

One loopback port per recorded WebSocket connection (``VENUE.ws.N.M``), the
venue's recorded REST snapshots (``VENUE.http.N.M``) on a REST port of its own
and on the same port. Faults apply per connection or per venue
(``ReplaySimulator.fault("okx", "checksum")``; see ``docs/faults.md``).
Feed clients run unchanged against it, only their address changed:

    async with ReplaySimulator("../shared/recordings", venues=["binance"]) as replay:
        for conn in replay.connections:
            print(conn.venue, conn.ws_url, conn.rest_url, conn.symbols)

A client subscribes with the venue's current subscribe frame, gets the
venue's ack and then the recorded book frames of its symbols, in recorded
order (other channels and the recorded acks are skipped). Retired recorded
protocols are translated (Coinbase Pro ``level2`` -> Advanced Trade
``l2_data``; Bybit ``orderBookL2_25`` -> v5 ``orderbook.50``); one module per
venue states its mapping. Streaming position is kept per connection, per
symbol: a reconnecting client continues from where the replay is (see
``base``). Independent of the rest of dragonfly except ``dragonfly.recording``.

Command line: ``python -m dragonfly.sim.replay DIR [--venues ..] [--pace X]``.
"""

from dragonfly.sim.replay.base import Frame, ReplayConnection, ReplaySession
from dragonfly.sim.replay.simulator import CONNECTIONS, ReplaySimulator

__all__ = ["CONNECTIONS", "Frame", "ReplayConnection", "ReplaySession", "ReplaySimulator"]
