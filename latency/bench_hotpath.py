"""pyperf: the hot path from frame bytes to serialized merged update in subscriber queues.

    python -m latency.bench_hotpath [pyperf options, e.g. --fast or -o out.json]

Each iteration hands one venue frame (alternating Binance depth20 and Bitstamp
order_book, with a top of book that changes every frame, so every frame goes
the whole way) to the feed listener, which decodes the top 10, detects the
change, merges both venues, encodes the Summary once and publishes the bytes
to 10 subscriber queues. Stages are also timed alone for the breakdown; the
encoder twice, on one book (levels all cached) and on the pipeline's updates in
turn (about half the levels new each time).
"""

from __future__ import annotations

import asyncio
import time

import pyperf

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.fanout import FanOut
from dragonfly.core.listener import TopNListener
from dragonfly.core.types import MergedBook
from dragonfly.serve.encode import encode_summary
from dragonfly.serve.server import summary_sink
from dragonfly.venues import binance, bitstamp
from latency.frames import binance_depth20, bitstamp_order_book

DEPTH = 10
FRAMES = 200


def _pipeline() -> tuple[list[tuple[TopNListener, bytes]], Aggregator, FanOut[bytes]]:
    agg = Aggregator("ethbtc", ["binance", "bitstamp"], DEPTH)
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    for _ in range(10):
        fanout.subscribe()
    agg.add_sink(summary_sink(fanout))
    lb = TopNListener("binance", binance.make_decoder(DEPTH), agg.producers["binance"])
    ls = TopNListener("bitstamp", bitstamp.make_decoder(DEPTH), agg.producers["bitstamp"])
    work: list[tuple[TopNListener, bytes]] = []
    for fb, fs in zip(binance_depth20(FRAMES), bitstamp_order_book(FRAMES), strict=True):
        work += [(lb, fb), (ls, fs)]
    return work, agg, fanout


def bench_frame_to_queue(loops: int) -> float:
    work, _, _ = _pipeline()
    n = len(work)
    t0 = time.perf_counter()
    for i in range(loops):
        listener, frame = work[i % n]
        listener.on_frame(frame, i, True)
    return time.perf_counter() - t0


def bench_stage(loops: int, fn_args: tuple[object, ...]) -> float:
    fn, items = fn_args
    n = len(items)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for i in range(loops):
        fn(items[i % n])  # type: ignore[operator,index]
    return time.perf_counter() - t0


def main() -> None:
    runner = pyperf.Runner()
    # FanOut subscriptions want a running loop for their waiters; none wait here.
    asyncio.set_event_loop(asyncio.new_event_loop())
    runner.bench_time_func("hotpath frame->merged bytes queued (2 venues, 10 subs)", bench_frame_to_queue)
    runner.bench_time_func(
        "parse binance depth20 top10 (msgspec)",
        bench_stage,
        (binance.make_decoder(DEPTH), binance_depth20(FRAMES)),
    )
    runner.bench_time_func(
        "parse bitstamp order_book top10 (byte scan + msgspec)",
        bench_stage,
        (bitstamp.make_decoder(DEPTH), bitstamp_order_book(FRAMES)),
    )
    work, agg, _ = _pipeline()
    updates: list[MergedBook] = []
    agg.add_sink(updates.append)
    for listener, frame in work:
        listener.on_frame(frame, 0, True)
    assert agg.last is not None
    # The same book again and again (a best case: branch predictors and caches warm).
    runner.bench_time_func("encode Summary 10+10 levels", bench_stage, (encode_summary, [agg.last]))
    # The pipeline's own updates in turn: about half the levels are new each time.
    runner.bench_time_func("encode Summary 10+10, successive updates", bench_stage, (encode_summary, updates))


if __name__ == "__main__":
    main()
