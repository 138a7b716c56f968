"""The subscriber process: K gRPC BookSummary streams, each stamping what it receives.

``python -m latency.subscribers --target 127.0.0.1:P --count K --slow 1 --out FILE``

Each subscriber is its own grpc.aio channel (its own HTTP/2 connection: a
local subchannel pool stops grpc from sharing one), set up like
``dragonfly.client``'s: ``--window-bytes`` is its flow-control window (default
the client's; ``grpc`` for grpc's auto-tuned one). It records, per message,
its receive time (``time.time_ns()`` right after the read) and the message's
stamps. ``--slow N`` of the K read one message every ``--slow-pause`` seconds
(a client that falls behind: the server must conflate for it alone).

Protocol with the harness: prints ``ready`` on stdout once every stream is
open and has delivered a first message (``--ready open``: once every stream
is open, for a replay that holds its frames until then), records until a line ``stop`` on
stdin (or EOF), then writes a pickle of :class:`SubscriberLog` lists to
``--out`` and prints ``done``.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sys
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from dragonfly.client.__main__ import parse_window
from dragonfly.client.stream import DEFAULT_WINDOW_BYTES, channel_options
from latency.wire import StampReader

METHOD = "/orderbook.OrderbookAggregator/BookSummary"


@dataclass
class SubscriberLog:
    """What one subscriber received: parallel arrays, one entry per message."""

    slow: bool
    venues: list[str] = field(default_factory=list)  #: venue names, indexed by ``venue``
    recv: array[int] = field(default_factory=lambda: array("q"))  #: subscriber receive time
    sequence: array[int] = field(default_factory=lambda: array("q"))
    engine_recv: array[int] = field(default_factory=lambda: array("q"))  #: Summary.recv_ns
    publish: array[int] = field(default_factory=lambda: array("q"))  #: Summary.publish_ns
    venue: array[int] = field(default_factory=lambda: array("b"))
    frame: array[int] = field(default_factory=lambda: array("q"))


async def _subscribe(
    target: str,
    options: tuple[tuple[str, Any], ...],
    log: SubscriberLog,
    first: asyncio.Event,
    opened: asyncio.Event,
    pause: float,
    stop: asyncio.Event,
) -> None:
    reader = StampReader()
    venue_ids: dict[str, int] = {}
    time_ns = time.time_ns
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)(b"")
        await call.initial_metadata()  # the server sends it when the stream opens
        opened.set()
        while not stop.is_set():
            payload: object = await call.read()
            now = time_ns()
            if not isinstance(payload, bytes):  # grpc.aio.EOF: the server ended the stream
                break
            s = reader.read(payload)
            vid = venue_ids.get(s.source_venue)
            if vid is None:
                vid = venue_ids[s.source_venue] = len(log.venues)
                log.venues.append(s.source_venue)
            log.recv.append(now)
            log.sequence.append(s.sequence)
            log.engine_recv.append(s.recv_ns)
            log.publish.append(s.publish_ns)
            log.venue.append(vid)
            log.frame.append(s.source_frame)
            first.set()
            if pause:
                await asyncio.sleep(pause)
        call.cancel()


async def run(
    target: str,
    count: int,
    slow: int,
    pause: float,
    out: str,
    ready: str = "first",
    window_bytes: int | None = DEFAULT_WINDOW_BYTES,
) -> int:
    """Run the subscribers until ``stop`` on stdin; write their logs to ``out``."""
    loop = asyncio.get_running_loop()
    options = (*channel_options(window_bytes), ("grpc.use_local_subchannel_pool", 1))
    stop = asyncio.Event()
    logs = [SubscriberLog(slow=i < slow) for i in range(count)]
    firsts = [asyncio.Event() for _ in logs]
    opens = [asyncio.Event() for _ in logs]
    tasks = [
        asyncio.create_task(_subscribe(target, options, log, ev, op, pause if log.slow else 0.0, stop))
        for log, ev, op in zip(logs, firsts, opens, strict=True)
    ]
    awaited = opens if ready == "open" else firsts
    await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in awaited)), 30)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out, "wb") as fh:
        pickle.dump([vars(log) for log in logs], fh)  # plain dicts: no __main__ classes
    print("done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run on uvloop."""
    p = argparse.ArgumentParser(prog="python -m latency.subscribers")
    p.add_argument("--target", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--slow", type=int, default=0, help="how many of the subscribers read rarely")
    p.add_argument("--slow-pause", type=float, default=0.5)
    p.add_argument("--out", required=True)
    p.add_argument("--ready", choices=["first", "open"], default="first",
                   help="say ready once every stream delivered a first message (default) or is open")
    p.add_argument("--window-bytes", type=parse_window, default=DEFAULT_WINDOW_BYTES, metavar="N|grpc",
                   help=f"each stream's HTTP/2 window (default {DEFAULT_WINDOW_BYTES}, as dragonfly.client)")
    args = p.parse_args(argv)
    import uvloop

    return int(
        uvloop.run(
            run(args.target, args.count, args.slow, args.slow_pause, args.out, args.ready, args.window_bytes)
        )
    )


if __name__ == "__main__":
    sys.exit(main())
