"""A trading bot that embeds dragonfly: cross-venue spread and the cost of liquidating a position.

    python examples/bot.py [--seconds 10] [--instrument ethbtc] [--quantity 25] [--live]

It runs the engine in its own event loop (no server, no gRPC): a
:class:`~dragonfly.topology.hub.Hub` for one instrument across the venues,
with two views of the same venue connections:

* ``bbo``, read through a synchronous callback on the hot path: each venue's
  best bid and ask and the cross-venue best. When the best bid on one venue is
  above the best ask on another (a crossed market across venues) it says so;
* ``liquidity``, read as an async iterator: what selling ``--quantity`` across
  venues would fetch (average price, worst price, slippage) and who fills it.

Without ``--live`` it starts the venue simulator on loopback first, so it runs
anywhere; with ``--live`` it connects to the venues' public endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from collections.abc import AsyncIterator, Sequence

from dragonfly.core.liquidity import Liquidity
from dragonfly.core.views import BboView
from dragonfly.topology.hub import AggregatorSpec, Hub, VenueEndpoint
from dragonfly.venues import get_venue

LIVE_VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")


class SpreadWatcher:
    """The bot's hot-path logic: called with every BBO update, synchronously."""

    def __init__(self) -> None:
        self.updates = 0
        self.crossed = 0
        self.last: BboView | None = None

    def __call__(self, view: BboView) -> None:
        self.updates += 1
        self.last = view
        if view.best_bid is not None and view.best_ask is not None and view.spread < 0:
            self.crossed += 1  # buy on best_ask.exchange, sell on best_bid.exchange


@contextlib.asynccontextmanager
async def endpoints(live: bool, instrument: str) -> AsyncIterator[list[VenueEndpoint]]:
    """The venues to read: live ones, or the simulator's (started here and stopped after)."""
    if live:
        yield [VenueEndpoint(get_venue(v)) for v in LIVE_VENUES]
        return
    from dragonfly.sim import Simulator
    from dragonfly.sim.simulator import SERVERS

    async with Simulator(list(SERVERS), [instrument], period_s=0.05) as sim:
        yield [VenueEndpoint(get_venue(v), sim.ws_url(v), sim.rest_url(v)) for v in sim.venues]


def describe(liq: Liquidity) -> str:
    fill = liq.sells[0]
    if not fill.filled:
        return f"sell {fill.quantity:g}: no bids"
    venues = ", ".join(f"{v.venue} {v.amount:g}" for v in fill.venues)
    partial = "" if fill.complete else f" (only {fill.filled:g})"
    return (
        f"sell {fill.quantity:g}: avg {fill.average_price:.8g}, worst {fill.worst_price:.8g}, "
        f"slippage {fill.slippage_bps:.2f} bps{partial} [{venues}]"
    )


async def run(seconds: float, instrument: str, quantity: float, live: bool) -> int:
    async with endpoints(live, instrument) as venues:
        hub = Hub(
            [instrument],
            venues,
            aggregators=[
                AggregatorSpec("bbo", "bbo"),
                AggregatorSpec("liquidity", "liquidity", depth=100, quantities=(quantity,)),
            ],
        )
        async with hub:
            watcher = SpreadWatcher()
            hub.on_view(watcher, instrument, "bbo")
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            printed = 0
            views = hub.views(instrument, "liquidity")
            while (left := end - loop.time()) > 0:
                try:
                    liq = await asyncio.wait_for(views.get(), timeout=left)
                except TimeoutError:
                    break
                if liq is None:
                    break
                bbo = watcher.last
                if bbo is not None and bbo.best_bid is not None and bbo.best_ask is not None:
                    spread = (
                        f"best bid {bbo.best_bid.price:.8g} ({bbo.best_bid.exchange}) / best ask "
                        f"{bbo.best_ask.price:.8g} ({bbo.best_ask.exchange})"
                    )
                else:
                    spread = "no cross-venue best yet"
                mid = "n/a" if math.isnan(liq.mid) else f"{liq.mid:.8g}"
                print(f"{instrument} mid {mid}: {spread}; {describe(liq)}", flush=True)
                printed += 1
                await asyncio.sleep(0.5)  # a slow reader: the view conflates to the newest
            print(
                f"done: {watcher.updates} BBO updates ({watcher.crossed} crossed across venues), "
                f"{printed} liquidity lines",
                flush=True,
            )
    return 0 if printed else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--instrument", default="ethbtc")
    parser.add_argument("--quantity", type=float, default=25.0)
    parser.add_argument("--live", action="store_true", help="the live venues instead of the simulator")
    args = parser.parse_args(argv)
    try:
        import uvloop

        return uvloop.run(run(args.seconds, args.instrument, args.quantity, args.live))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
