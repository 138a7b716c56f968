"""What the topology's listener output (a BookTee) and extra views cost, interleaved in one process.

    python -m latency.bench_tee [--rounds 15] [--frames 4000]

Each round times ``latency.bench_hotpath``'s chain (Binance depth20 and
Bitstamp order_book frames -> merged Summary bytes in 10 subscriber queues)
three ways, so all see the same drift of this VM: the listeners wired
straight to the merged-book aggregator (the one-instrument engine before
topologies), through a :class:`~dragonfly.core.tee.BookTee` each (what a hub
builds), and through the tees with a ``bbo`` view attached as well. Prints
the medians (µs per frame) and the median per-round ratios to the first.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any, cast

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.bbo import BboAggregator
from dragonfly.core.fanout import FanOut
from dragonfly.core.listener import TopNListener
from dragonfly.core.slots import SlotProducer
from dragonfly.core.tee import BookTee
from dragonfly.core.types import VenueBook
from dragonfly.serve.server import summary_sink
from dragonfly.venues import binance, bitstamp
from latency.frames import binance_depth20, bitstamp_order_book

DEPTH = 10
VENUES = ["binance", "bitstamp"]


def _chain(mode: str, frames: int) -> list[tuple[TopNListener, bytes]]:
    agg = Aggregator("ethbtc", VENUES, DEPTH)
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    for _ in range(10):
        fanout.subscribe()
    agg.add_sink(summary_sink(fanout))
    outs: dict[str, Any] = dict(agg.producers)
    if mode != "direct":
        tees = {v: BookTee() for v in VENUES}
        for v, tee in tees.items():
            tee.attach(agg.producers[v])
        if mode == "tee+bbo":
            bbo = BboAggregator("ethbtc", VENUES)
            bbo.add_sink(lambda _view: None)
            for v, tee in tees.items():
                tee.attach(bbo.producers[v], 1)
        outs = dict(tees)
    out = {v: cast(SlotProducer[VenueBook], outs[v]) for v in VENUES}
    lb = TopNListener("binance", binance.make_decoder(DEPTH), out["binance"])
    ls = TopNListener("bitstamp", bitstamp.make_decoder(DEPTH), out["bitstamp"])
    work: list[tuple[TopNListener, bytes]] = []
    for fb, fs in zip(binance_depth20(frames // 2), bitstamp_order_book(frames // 2), strict=True):
        work += [(lb, fb), (ls, fs)]
    return work


def _us_per_frame(mode: str, frames: int) -> float:
    work = _chain(mode, frames)
    t0 = time.perf_counter()
    for i, (listener, frame) in enumerate(work):
        listener.on_frame(frame, i, True)
    return (time.perf_counter() - t0) / len(work) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m latency.bench_tee", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--frames", type=int, default=4000)
    args = p.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())
    modes = ("direct", "tee", "tee+bbo")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            times[mode].append(_us_per_frame(mode, args.frames))
    for mode in modes:
        ratios = [t / d for t, d in zip(times[mode], times["direct"], strict=True)]
        print(
            f"{mode:<8} median {statistics.median(times[mode]):6.2f} µs/frame   "
            f"ratio to direct {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
