"""Compare encode_summary with the generated classes on a 10 + 10 level book.

Run: ``python latency/bench_encode.py [pyperf options, e.g. --fast or -o out.json]``.
Both encoders produce the same bytes (tests/serve/test_encode.py); this
measures what each costs per merged update on the hot path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dragonfly.core.types import MergedBook, MergedLevel
from dragonfly.serve.encode import encode_summary, encode_summary_pb


def make_book(depth: int) -> MergedBook:
    """Return an ETHBTC book of ``depth`` levels a side from three venues."""
    venues = ("binance", "bitstamp", "kraken")
    bids = tuple(MergedLevel(venues[i % 3], 0.06827 - i * 1e-5, 1.5 + i * 0.25) for i in range(depth))
    asks = tuple(MergedLevel(venues[(i + 1) % 3], 0.06828 + i * 1e-5, 2.5 + i * 0.5) for i in range(depth))
    now = time.time_ns()
    return MergedBook("ETHBTC", asks[0].price - bids[0].price, bids, asks, 1_234_567, now - 40_000, now)


def main() -> None:
    """Register and run the benchmarks."""
    runner = pyperf.Runner()
    for depth in (10, 20):
        book = make_book(depth)
        assert encode_summary(book) == encode_summary_pb(book)
        runner.bench_func(f"encode_summary {depth}+{depth}", encode_summary, book)
        runner.bench_func(f"generated classes {depth}+{depth}", encode_summary_pb, book)


if __name__ == "__main__":
    main()
