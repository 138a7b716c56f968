"""``python -m dragonfly.record OUTDIR --venue V --instrument I``: capture a venue's traffic.

Runs the real feed (subscribe frames, REST snapshots, reconnects) against the
live venue or any endpoint, and writes every WebSocket frame both ways and
every REST snapshot in the recording format of ``../shared/recordings``, so
the capture replays with ``python -m dragonfly.replay OUTDIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
from pathlib import Path

from dragonfly import __version__
from dragonfly.core.errors import ConfigError, DragonflyError
from dragonfly.core.feed import Feed
from dragonfly.core.slots import SlotProducer, SlotQueue
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.types import VenueBook
from dragonfly.record.tap import RecordingTap, next_paths
from dragonfly.venues import get_venue


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dragonfly.record", description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="folder to write VENUE.ws.N.0 and VENUE.http.N.0 into")
    p.add_argument("--venue", required=True, help="venue to record")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--instrument", action="append", default=[], help="instrument, e.g. ethbtc (repeatable)"
    )
    what.add_argument("--symbol", action="append", default=[], help="the venue's own symbol (repeatable)")
    p.add_argument("--channel", choices=["snapshot", "diff"], default="diff", help="channel (default diff)")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--endpoint", default=None, help="WebSocket URL (default: the live venue)")
    p.add_argument(
        "--rest-endpoint", default=None, help="REST base URL (default: live, or the endpoint's host)"
    )
    p.add_argument("--ca-file", default=None, help="trust this certificate for wss:// and https://")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


async def record(args: argparse.Namespace) -> int:
    spec = get_venue(args.venue)
    symbols = list(args.symbol) or [spec.venue_symbol(normalise_instrument(i)) for i in args.instrument]
    if args.channel == "snapshot" and len(symbols) != 1:
        raise ConfigError("the snapshot channel records one symbol per connection")
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    ws_path, http_path = next_paths(args.outdir, spec.name)
    tap = RecordingTap(ws_path, http_path)
    outputs: dict[str, SlotProducer[VenueBook] | None] = dict.fromkeys(symbols)
    if args.channel == "snapshot":
        # The snapshot listener needs a slot to publish to; nothing reads it here.
        outputs = {symbols[0]: SlotQueue[VenueBook](lambda: None).producer(spec.name)}
    feed = Feed(
        spec,
        outputs,
        channel=args.channel,
        ws_url=args.endpoint,
        rest_url=args.rest_endpoint,
        ssl_context=ctx,
        tap=tap,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(feed.run())
    print(f"recording {spec.name} {', '.join(symbols)} into {ws_path} and {http_path}", file=sys.stderr)
    try:
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([task, waiter], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done() and feed.outcome.done() and feed.outcome.result():
            print(f"error: {feed.outcome.result()}", file=sys.stderr)
            return 1
    finally:
        feed.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tap.close()
    print(f"recorded {tap.frames} frames and {tap.snapshots} REST snapshots", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import uvloop

    try:
        return uvloop.run(record(args))
    except (DragonflyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
