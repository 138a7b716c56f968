"""What an idle CPU between frames does to the hot path's cost per frame.

    python -m latency.bench_idle [--frames 3000] [--gap-ms 2]

Runs ``latency.bench_hotpath``'s chain (frame bytes -> merged Summary bytes
in 10 subscriber queues) three ways in one process: frames back to back;
with the thread asleep for ``--gap-ms`` before each frame (as a server at
500 frames/s is between frames); and busy-spinning for that gap instead.
Prints p50 and p99 of the decode alone and of the whole chain per frame, and
of the null relay's work per frame (``latency.relay.Relay.publish``: stamp a
pre-encoded Summary, queue it for 10 subscribers), a few µs of plain Python
that shows how much of the slowdown after a gap any code pays, not only this
chain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from dragonfly.core.fanout import FanOut
from dragonfly.venues import binance, bitstamp
from latency.bench_hotpath import DEPTH, _pipeline
from latency.relay import Relay
from latency.wire import field_bytes


def _pause(mode: str, gap_s: float) -> None:
    if mode == "sleep":
        time.sleep(gap_s)
    elif mode == "spin":
        end = time.perf_counter() + gap_s
        while time.perf_counter() < end:
            pass


def _percentiles(values: list[int]) -> str:
    v = sorted(values)
    return f"p50 {v[len(v) // 2] / 1e3:6.1f} µs  p99 {v[int(len(v) * 0.99)] / 1e3:6.1f} µs"


def run(mode: str, frames: int, gap_s: float) -> tuple[list[int], list[int], list[int]]:
    """Per-frame ns of the decode alone, of the chain and of the relay's work, under ``mode``."""
    work, _, _ = _pipeline()
    relay_out: FanOut[bytes] = FanOut(maxlen=1)
    for _ in range(10):
        relay_out.subscribe()
    relay = Relay(relay_out)
    venue_field = field_bytes(9, b"binance")
    decoders: dict[str, Callable[[bytes], object]] = {
        "binance": binance.make_decoder(DEPTH),
        "bitstamp": bitstamp.make_decoder(DEPTH),
    }
    clock = time.perf_counter_ns
    decode_ns: list[int] = []
    chain_ns: list[int] = []
    relay_ns: list[int] = []
    for i in range(frames):
        listener, frame = work[i % len(work)]
        _pause(mode, gap_s)
        t0 = clock()
        decoders[listener.venue](frame)
        t1 = clock()
        listener.on_frame(frame, i, True)
        t2 = clock()
        # The relay after its own gap: what the chain did just now must not warm it.
        _pause(mode, gap_s)
        t3 = clock()
        relay.publish(venue_field, i, t3)
        t4 = clock()
        if i >= frames // 10:  # past the warm-up
            decode_ns.append(t1 - t0)
            chain_ns.append(t2 - t1)
            relay_ns.append(t4 - t3)
    return decode_ns, chain_ns, relay_ns


def main(argv: list[str] | None = None) -> int:
    """Run the three modes and print their percentiles."""
    p = argparse.ArgumentParser(prog="python -m latency.bench_idle", description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--gap-ms", type=float, default=2.0, help="idle time before each frame (default 2)")
    args = p.parse_args(argv)
    if args.frames < 10 or args.gap_ms < 0:
        p.error("--frames must be at least 10 and --gap-ms not negative")
    asyncio.set_event_loop(asyncio.new_event_loop())  # FanOut subscriptions want a loop
    for mode in ("back to back", "sleep", "spin"):
        decode_ns, chain_ns, relay_ns = run(mode, args.frames, args.gap_ms / 1e3)
        print(
            f"{mode:12}  decode {_percentiles(decode_ns)}   chain {_percentiles(chain_ns)}"
            f"   relay {_percentiles(relay_ns)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
