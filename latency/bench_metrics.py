"""What metrics add to the hot path, interleaved in one process.

    python -m latency.bench_metrics [--rounds 11]

Metrics count nothing per frame (the collector reads existing counters when
scraped); the one new piece of work is the tick-to-queue histogram, one
observation per view published. Each round times a merged-book recompute and
publish (6 venues x 10 levels, one venue's book changing) with the histogram
off and on, and prints the medians and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import timeit
from collections.abc import Callable

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.timing import Histogram
from dragonfly.core.types import VenueBook

VENUES = ["binance", "bitstamp", "bybit", "coinbase", "kraken", "okx"]


def _publish(timed: bool) -> Callable[[], None]:
    agg = Aggregator("ethbtc", VENUES, 10)
    agg.add_sink(lambda _view: None)
    if timed:
        agg.timing = Histogram()
    producers = [agg.producers[v] for v in VENUES]
    books = [
        [
            VenueBook(
                v,
                tuple((100 - i * 0.01 - k * 1e-4, 1.0 + k) for i in range(10)),
                tuple((101 + i * 0.01 + k * 1e-4, 1.0) for i in range(10)),
                1,
            )
            for k in range(2)
        ]
        for v in VENUES
    ]
    for producer, pair in zip(producers, books, strict=True):
        producer.put(pair[0])
    producers[0].end_burst()
    flip = [0]

    def one() -> None:
        flip[0] ^= 1
        producers[0].put(books[0][flip[0]])
        producers[0].end_burst()

    return one


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m latency.bench_metrics", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())
    off, on = _publish(False), _publish(True)
    times_off: list[float] = []
    times_on: list[float] = []
    for _ in range(args.rounds):
        times_off.append(min(timeit.repeat(off, number=5000, repeat=3)) / 5000 * 1e6)
        times_on.append(min(timeit.repeat(on, number=5000, repeat=3)) / 5000 * 1e6)
    ratio = statistics.median(b / a for a, b in zip(times_off, times_on, strict=True))
    print(
        f"merged-book recompute + publish, µs: metrics off {statistics.median(times_off):.2f}, "
        f"on {statistics.median(times_on):.2f}; on / off per round: median {ratio:.3f}"
    )


if __name__ == "__main__":
    main()
