"""One module per venue protocol, shared by the synthetic servers and the replay.

Each module holds what the venue's WebSocket speaks, independent of where the
book comes from: how a client request is read and answered (acks, errors,
pings), and how the venue's frames are printed (book snapshots and updates,
checksums, heartbeats, notices). No I/O: a server calls in with what it knows
(which symbols it lists, what a subscription does) and sends what comes back.

* :mod:`~dragonfly.sim.protocols.kraken`: Kraken WebSocket v1 ``book``;
* :mod:`~dragonfly.sim.protocols.okx`: OKX v5 public ``books``;
* :mod:`~dragonfly.sim.protocols.coinbase`: Coinbase Advanced Trade ``level2``;
* :mod:`~dragonfly.sim.protocols.bybit`: Bybit v5 public ``orderbook.50``.

The synthetic servers (``dragonfly.sim.<venue>``) and the replay connections
(``dragonfly.sim.replay.<venue>``) both answer clients through these.
"""

from __future__ import annotations

import json


def compact(obj: object) -> bytes:
    """Encode ``obj`` as compact JSON (no spaces), like most venues print it."""
    return json.dumps(obj, separators=(",", ":")).encode()
