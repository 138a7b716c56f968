"""pyperf: each hot-path stage alone, on real Binance diffs and synthetic snapshot frames.

    python -m latency.bench_stages [pyperf options, e.g. --fast or -o out.json]

Stages: parse a Binance depth20 top 10 (msgspec), parse a Binance diff
(``depthUpdate``, msgspec), apply a diff to an :class:`~dragonfly.core.book.L2Book`,
read its top 10, merge two venues' top 10 (:class:`~dragonfly.core.aggregator.Aggregator`
recompute) and serialize the merged Summary. ``latency.bench_hotpath`` times
them chained, frame to queued bytes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyperf

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.book import L2Book
from dragonfly.core.diff import Delta
from dragonfly.core.types import VenueBook
from dragonfly.serve.encode import encode_summary
from dragonfly.venues import binance
from latency.frames import binance_depth20
from latency.peers import load, recordings_dir

DEPTH = 10


def _loop(fn: Callable[[Any], object], items: Sequence[Any]) -> Callable[[int], float]:
    n = len(items)

    def timed(loops: int) -> float:
        t0 = time.perf_counter()
        for i in range(loops):
            fn(items[i % n])
        return time.perf_counter() - t0

    return timed


def main() -> None:
    """Register and run the stage benchmarks."""
    runner = pyperf.Runner()
    asyncio.set_event_loop(asyncio.new_event_loop())
    depth20 = binance_depth20(200)
    runner.bench_time_func("parse binance depth20 top10", _loop(binance.make_decoder(DEPTH), depth20))
    rec = load(recordings_dir())
    decode = binance.make_diff_decoder()
    runner.bench_time_func("parse binance diff (depthUpdate)", _loop(decode, rec.frames))
    deltas = [e for f in rec.frames for e in (decode(f) or ()) if isinstance(e, Delta)]
    book = L2Book(numeric=True)  # binance's diff channel is numeric
    snap = binance.parse_rest_snapshot("NKNUSDT", rec.snapshots["NKNUSDT"])
    book.load(snap.bids, snap.asks, snap.seq)

    def apply(delta: Delta) -> None:
        book.update_numeric(delta.bids, delta.asks, -math.inf, math.inf)  # type: ignore[arg-type]

    runner.bench_time_func("book apply (one diff)", _loop(apply, deltas))
    runner.bench_time_func("book top10 read (both sides)", _loop(lambda n: book.top(n), [DEPTH]))
    agg = Aggregator("ethbtc", ["binance", "bitstamp"], DEPTH)
    dec = binance.make_decoder(DEPTH)
    books = []
    for i, frame in enumerate(depth20):
        top = dec(frame)
        assert top is not None
        books.append(VenueBook("binance" if i % 2 else "bitstamp", top[0], top[1], i, i))
    producers = agg.producers

    def merge(vb: VenueBook) -> None:
        producers[vb.venue].put(vb)
        agg.recompute()

    for vb in books[:2]:  # a merged book exists even in a worker that runs one benchmark only
        merge(vb)
    assert agg.last is not None
    runner.bench_time_func("merge 2 venues top10", _loop(merge, books))
    runner.bench_time_func("serialize Summary 10+10", _loop(encode_summary, [agg.last]))


if __name__ == "__main__":
    main()
