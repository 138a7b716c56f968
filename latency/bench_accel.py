"""The hot-path chain with the C speedups against pure Python, interleaved in one process.

    python -m latency.bench_accel [--rounds 15] [--frames 4000]

Each round times ``latency.bench_hotpath``'s chain (frame bytes -> merged
Summary bytes in 10 subscriber queues) once with the C level reader, book
check, merge and encoder and once with their pure-Python twins, so both see the same drift of this VM;
prints the medians and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

from dragonfly import accel
from dragonfly.core import aggregator, listener
from dragonfly.serve import encode
from latency.bench_hotpath import bench_frame_to_queue

_BUILT = accel.speedups


def _chain_us(c: bool, frames: int) -> float:
    """µs per frame of the chain, on the C speedups or pure Python (decoders included)."""
    speedups = _BUILT if c else None
    accel.speedups = speedups  # the venue decoders choose when the chain makes them
    aggregator.merge_side = speedups.merge_side if speedups is not None else aggregator.merge_side_py
    listener.check_book = speedups.check_book if speedups is not None else listener.check_book_py
    setattr(encode, "speedups", speedups)  # noqa: B010 (a module global, swapped for the run)
    return bench_frame_to_queue(frames) / frames * 1e6


def main(argv: list[str] | None = None) -> int:
    """Time both chains round by round and print the comparison."""
    p = argparse.ArgumentParser(prog="python -m latency.bench_accel", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--frames", type=int, default=4000)
    args = p.parse_args(argv)
    if _BUILT is None:
        print("C speedups not built (or DRAGONFLY_PURE_PYTHON set): nothing to compare", file=sys.stderr)
        return 1
    asyncio.set_event_loop(asyncio.new_event_loop())  # FanOut subscriptions want a loop
    c_us: list[float] = []
    py_us: list[float] = []
    for _ in range(args.rounds):
        c_us.append(_chain_us(True, args.frames))
        py_us.append(_chain_us(False, args.frames))
    ratios = [c / p for c, p in zip(c_us, py_us, strict=True)]
    print(
        f"frame -> merged bytes queued, µs/frame (median of {args.rounds} rounds): "
        f"C {statistics.median(c_us):.1f}, pure Python {statistics.median(py_us):.1f}; "
        f"C / Python per round: median {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
