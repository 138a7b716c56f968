"""Embedded venue simulator: loopback servers speaking real venue protocols.

Each venue (Binance spot, Bitstamp, Kraken v1, OKX v5, Coinbase Advanced
Trade, Bybit v5 spot) gets a local WebSocket + REST server on one port, fed
by a seeded synthetic market, so feed clients run offline with only their
address changed; one connection serves any number of instruments. Each venue's
protocol (requests, answers, frames) is one module of
``dragonfly.sim.protocols`` shared with the replay server where both speak it.
Independent of the rest of dragonfly by design: it is the reference the clients
are tested against.

    async with Simulator(["binance", "bitstamp"], ["ethbtc"], period_s=0.02) as sim:
        url = sim.ws_url("binance")          # ws://127.0.0.1:PORT/ws
        ...
        bids, asks = sim.last_sent("binance", "ethbtc") or ([], [])

Faults (a venue that drops, stalls, goes silent, sends bad frames or bad REST
answers) are applied per venue, from Python, over HTTP or from the command
line; see ``dragonfly.sim.faults`` and ``docs/faults.md``:

        fault = sim.fault("binance", "silence,for=5")

With ``truth_s`` the simulator records what every venue book was at every
position its frames carry (``dragonfly.sim.truth``), so a client's book can
be checked against the venue's real one, and when that stopped being true:

    async with Simulator(["binance"], ["ethbtc"], truth_s=120) as sim:
        state = sim.truth("binance", "ethbtc", last_update_id)   # TruthState | None
        state.bids, state.asks, state.valid_from_ns, state.valid_until_ns

Command line: ``python -m dragonfly.sim --help``.
"""

from dragonfly.sim.market import SyntheticMarket
from dragonfly.sim.server import VenueConfig
from dragonfly.sim.simulator import Simulator

__all__ = ["Simulator", "SyntheticMarket", "VenueConfig"]
