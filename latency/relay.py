"""The null relay: the transport floor dragonfly is measured against.

``python -m latency.relay --port P --endpoint binance=ws://.. --endpoint bitstamp=ws://..``

A picows client per venue subscribes like dragonfly does, and for every data
frame publishes one Summary to the same gRPC service dragonfly uses
(:class:`~dragonfly.serve.grpc_service.GrpcService`, same
``orderbook.OrderbookAggregator/BookSummary``, same per-subscriber conflating
queue), so the same subscriber client reads both. It does no book work: the
levels are a fixed, pre-encoded merged 10 + 10 book of dragonfly's size; only
the stamps (``sequence``, ``recv_ns``, ``publish_ns``, ``source_venue``,
``source_frame``) are appended per frame, and the one bytes object is shared
by every subscriber. Its ``publish_ns - recv_ns`` is the relay's internal hop.

``--decode`` makes it a probe of the floor rather than the floor: every data
frame is first decoded by dragonfly's own decoder of the venue's channel (the
one ``python -m dragonfly.serve`` runs on these frames: Binance's depth20 and
Bitstamp's order book, top 10, with the C speedups where built) and the result
dropped. No gateway can skip that step, so ``relay-decode`` against ``relay``
(``python -m latency --paths grpc-decode``) measures how much of the 1.1x
budget the decode alone takes, live.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
import sys
import time
from collections.abc import Callable
from typing import Protocol

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from dragonfly.core.fanout import FanOut
from dragonfly.core.types import MergedBook, MergedLevel
from dragonfly.serve.config import DEFAULT_MAX_LAG_MS, DEFAULT_QUEUE
from dragonfly.serve.encode import encode_summary
from dragonfly.serve.grpc_service import GrpcService
from dragonfly.venues import get_venue
from latency.wire import field_bytes, field_varint

_TEXT = WSMsgType.TEXT
_time_ns = time.time_ns

SUBSCRIBE = {
    "binance": b'{"method":"SUBSCRIBE","params":["ethbtc@depth20@100ms"],"id":1}',
    "bitstamp": b'{"event":"bts:subscribe","data":{"channel":"order_book_ethbtc"}}',
}


def template(instrument: str = "ETHBTC", depth: int = 10) -> bytes:
    """A merged top-``depth`` Summary without stamps, the size dragonfly publishes."""
    venues = ("binance", "bitstamp")
    bids = tuple(MergedLevel(venues[i % 2], 0.05 - i * 1e-5, 1.23456789 + i) for i in range(depth))
    asks = tuple(MergedLevel(venues[(i + 1) % 2], 0.05001 + i * 1e-5, 2.3456789 + i) for i in range(depth))
    book = MergedBook(instrument, asks[0].price - bids[0].price, bids, asks, 0, 0, 0)
    return encode_summary(book)


class Relay:
    """Frames in, one shared Summary per frame out (see module doc)."""

    def __init__(self, fanout: FanOut[bytes]) -> None:
        self.fanout = fanout
        self.body = template()
        self.sequence = 0
        self.frames = 0

    def publish(self, venue_field: bytes, frame: int, recv_ns: int) -> None:
        """Publish the template stamped for ``frame`` of a venue (hot path)."""
        self.sequence += 1
        self.frames += 1
        self.fanout.publish(
            b"".join(
                (
                    self.body,
                    field_varint(5, self.sequence),
                    field_varint(6, recv_ns),
                    field_varint(7, _time_ns()),
                    venue_field,
                    field_varint(10, frame),
                )
            )
        )


class Publisher(Protocol):
    """What a venue feed hands each data frame to: this relay, or the FIX one (latency.fix_relay)."""

    def publish(self, venue_field: bytes, frame: int, recv_ns: int) -> None:
        """Publish one update stamped for ``frame`` of a venue (hot path)."""


class Feed(WSListener):
    """One venue connection of a null relay: subscribes, then publishes once per data frame."""

    def __init__(
        self,
        relay: Publisher,
        venue: str,
        subscribe: list[bytes],
        venue_field: bytes = b"",
        decode: Callable[[bytes], object] | None = None,
    ) -> None:
        self.relay = relay
        self.venue = venue
        self.subscribe = subscribe
        #: How the venue's name is written into an update (default: Summary field 9).
        self.venue_field = venue_field or field_bytes(9, venue.encode())
        #: ``--decode``: dragonfly's decoder, run on every data frame first (module doc).
        self.decode = decode
        self.count = 0
        #: Data frames the decoder refused (``--decode``; 0 on the harness's frames).
        self.undecoded = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        for frame in self.subscribe:
            transport.send(_TEXT, frame)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not _TEXT:
            return
        recv_ns = _time_ns()
        self.count += 1
        if self.count > 1:  # frame 1 is the subscription ack
            decode = self.decode
            if decode is not None:
                try:
                    decode(frame.get_payload_as_bytes())
                except Exception:  # a probe: count it, publish anyway (the floor's cadence)
                    self.undecoded += 1
            self.relay.publish(self.venue_field, self.count, recv_ns)


#: The depth dragonfly's server reads by default (``python -m dragonfly.serve``).
DECODE_DEPTH = 10


def decoder(venue: str) -> Callable[[bytes], object]:
    """dragonfly's decoder of ``venue``'s snapshot channel (what its server reads in the harness)."""
    channel = get_venue(venue).snapshot
    if channel is None:
        raise SystemExit(f"--decode: {venue} has no snapshot channel")
    return channel.make_decoder(DECODE_DEPTH)


# -- what both null relays (this one and latency.fix_relay) run and parse -----------------


def frames_per_venue(subscribe: dict[str, list[bytes]] | None) -> dict[str, list[bytes]]:
    """The frames each venue is sent on connecting: ``subscribe``'s, else :data:`SUBSCRIBE`'s."""
    return {v: [f] for v, f in SUBSCRIBE.items()} | (subscribe or {})


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (a relay serves until then)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def connect_venues(
    endpoints: dict[str, str], listener: Callable[[str], Callable[[], WSListener]]
) -> list[WSTransport]:
    """Connect to every venue's ``endpoints`` URL with the listener ``listener(venue)`` makes."""
    transports = []
    for venue, url in endpoints.items():
        make = listener(venue)
        # picows calls a factory with (request, response) if it takes two arguments: this one takes one.
        transport, _ = await ws_connect(lambda f=make: f(), url)
        transports.append(transport)
    return transports


def parse_cli(
    prog: str, description: str, argv: list[str] | None, port_help: str | None = None
) -> argparse.Namespace:
    """A relay's command line: ``port``, ``endpoints`` and ``subscribe_frames`` (dicts), ``decode``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--port", type=int, required=True, help=port_help)
    p.add_argument("--endpoint", action="append", default=[], metavar="VENUE=URL")
    p.add_argument("--subscribe", action="append", default=[], metavar="VENUE=FRAME",
                   help="a frame to send on connecting to VENUE (repeatable; default: its ethbtc book)")
    p.add_argument("--decode", action="store_true",
                   help="decode every data frame with dragonfly's decoder first (a probe of the floor)")
    args = p.parse_args(argv)
    args.endpoints = dict(e.split("=", 1) for e in args.endpoint)
    args.subscribe_frames = {}
    for item in args.subscribe:
        venue, _, frame = item.partition("=")
        args.subscribe_frames.setdefault(venue, []).append(frame.encode())
    return args


async def run(
    port: int,
    endpoints: dict[str, str],
    subscribe: dict[str, list[bytes]] | None = None,
    decode: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT; ``subscribe``: frames per venue (default :data:`SUBSCRIBE`).

    ``decode``: run dragonfly's decoder on every data frame first (module doc).
    """
    frames = frames_per_venue(subscribe)
    stop = stop_on_signals()
    fanout: FanOut[bytes] = FanOut(maxlen=1)
    # The subscriber queue policy of dragonfly's server defaults (same queue, same lag bound).
    service = GrpcService(
        fanout, "127.0.0.1", port, queue_len=DEFAULT_QUEUE, max_lag_ns=round(DEFAULT_MAX_LAG_MS * 1e6)
    )
    await service.start()
    relay = Relay(fanout)
    transports = await connect_venues(
        endpoints,
        lambda venue: functools.partial(
            Feed, relay, venue, frames[venue], decode=decoder(venue) if decode else None
        ),
    )
    print(f"serving relay on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    for transport in transports:
        transport.disconnect()
    await service.stop(grace=0.5)
    fanout.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the relay on uvloop."""
    args = parse_cli("python -m latency.relay", __doc__.splitlines()[0], argv)
    import uvloop

    return int(uvloop.run(run(args.port, args.endpoints, args.subscribe_frames, args.decode)))


if __name__ == "__main__":
    sys.exit(main())
