"""How old the books a reader sees are, for each client HTTP/2 window.

    python -m latency.bench_window [--rate 1000] [--pause-ms 20] [--seconds 3] [--rounds 3]
                                   [--windows grpc,4096,2048,1024,0]

A real GrpcService publishes ~620-byte updates (the size of a top-10 Summary)
at ``--rate`` per second, stamped with their publish time. For each window
(``dragonfly.client.stream.channel_options``) two readers subscribe at once:
a slow one that sleeps ``--pause-ms`` after every read, and a fast one that
reads as it can. Printed per window: the age of what each reader read (p50 and
p99, µs; the slow reader's first half-second is skipped, while its backlog
builds) and how many updates the fast one got. Server and readers share one
event loop, so the fast reader's ages include that; compare windows with each
other, in the same run (rounds alternate the windows).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time

import grpc.aio

from dragonfly.client.__main__ import parse_window
from dragonfly.client.stream import channel_options
from dragonfly.core.fanout import FanOut
from dragonfly.serve.grpc_service import GrpcService

METHOD = "/orderbook.OrderbookAggregator/BookSummary"
_SIZE = 620
_SETTLE_S = 0.5


async def _read(target: str, window: int | None, pause: float, seconds: float, ages: list[float]) -> None:
    """Read for ``seconds``, recording each update's age (µs); sleep ``pause`` after each read."""
    async with grpc.aio.insecure_channel(target, options=channel_options(window)) as channel:
        call = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)(b"")
        start = time.monotonic()
        end = start + seconds
        while time.monotonic() < end:
            payload = await call.read()
            if not isinstance(payload, bytes):
                raise RuntimeError("the stream ended")
            if time.monotonic() - start >= (_SETTLE_S if pause else 0.0):
                ages.append((time.time_ns() - struct.unpack_from("<q", payload)[0]) / 1e3)
            if pause:
                await asyncio.sleep(pause)
        call.cancel()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(rate: float, pause: float, seconds: float, rounds: int, windows: list[int | None]) -> str:
    """Measure every window ``rounds`` times, alternating; return the table."""
    fanout: FanOut[bytes] = FanOut()
    service = GrpcService(fanout, "127.0.0.1", 0)
    target = f"127.0.0.1:{await service.start()}"
    pad = b"\0" * (_SIZE - 8)

    async def publish() -> None:
        due = time.perf_counter()
        while True:
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            fanout.publish(struct.pack("<q", time.time_ns()) + pad)

    publisher = asyncio.create_task(publish())
    slow: dict[int | None, list[float]] = {w: [] for w in windows}
    fast: dict[int | None, list[float]] = {w: [] for w in windows}
    try:
        for _ in range(rounds):
            for w in windows:
                await asyncio.gather(
                    _read(target, w, pause, seconds, slow[w]), _read(target, w, 0.0, seconds, fast[w])
                )
    finally:
        publisher.cancel()
        await service.stop(grace=0.1)
    lines = [
        f"{rate:.0f} updates/s of {_SIZE} bytes; slow reader sleeps {pause * 1e3:g} ms per read; "
        f"{rounds} x {seconds:g} s per window",
        f"{'window':>8}  {'slow age p50':>13} {'p99':>11}  {'fast age p50':>13} {'p99':>8}  "
        f"{'fast reads':>10}",
    ]
    for w in windows:
        s, f = slow[w], fast[w]
        lines.append(
            f"{'grpc' if w is None else w:>8}  {_pct(s, 0.5):>13.0f} {_pct(s, 0.99):>11.0f}  "
            f"{_pct(f, 0.5):>13.0f} {_pct(f, 0.99):>8.0f}  {len(f):>10}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run on uvloop, print the table."""
    p = argparse.ArgumentParser(prog="python -m latency.bench_window", description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=1000.0, help="updates published per second")
    p.add_argument("--pause-ms", type=float, default=20.0, help="the slow reader's sleep after each read")
    p.add_argument("--seconds", type=float, default=3.0, help="per window and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--windows", default="grpc,4096,2048,1024,0", help="bytes, or 'grpc' for grpc's own")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.pause_ms < 0 or args.seconds <= _SETTLE_S or args.rounds < 1:
        p.error(f"need --rate > 0, --pause-ms >= 0, --seconds > {_SETTLE_S} and --rounds >= 1")
    try:
        windows = [parse_window(w) for w in args.windows.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(f"--windows: {exc}")
    import uvloop

    print(uvloop.run(run(args.rate, args.pause_ms / 1e3, args.seconds, args.rounds, windows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
