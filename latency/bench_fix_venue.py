"""What a FIX venue costs per W on the hot path: framing, decoding, and the library alternative.

Run: ``python -m latency.bench_fix_venue [--rounds 7]``. The message is a
MarketDataSnapshotFullRefresh (W) of a 10+10-level merged book from three
venues exactly as a dragonfly gateway writes it (``dragonfly.fix.mdcodec``,
framed behind a session header: ~1.6 KB, 20 entries, the view's trailer of
venue states). Each figure is the median over rounds of the mean µs per
message, the rounds interleaved so load drift hits every line alike:

* ``FixReader.next``: the framing (BodyLength, CheckSum, every field checked)
  and the split of every field (``dragonfly.fix.codec``);
* ``FixReader.next (lazy)``: the same without the split (``lazy=True``), which
  a FIX venue's session uses: it reads a W's header, the decoder its bytes;
* ``venue decode (fast)``: :func:`dragonfly.fix.venue.make_decoder` on it, the
  W -> ``(bids, asks, seq)`` read the listener calls;
* ``venue decode (general)``: the same W with each entry's size before its
  price, which takes the field-by-field read;
* ``codec group + floats``: the codec's own ``FixMessage.group`` over the
  fields the reader split, and ``float`` of each price and size (what a
  decoder over parsed fields would cost instead of re-reading the bytes);
* ``simplefix parse + entries``: ``simplefix.FixParser`` on the bytes and its
  ``get(tag, nth)`` for every entry (the library the issue names);
* ``whole path``: the bytes into a logged-on initiator session
  (``FixSession.data_received``: framing, sequence and header checks) through
  the :class:`~dragonfly.fix.initiator.FixInitiator` into a feed-like handler
  that decodes the W: what a FIX venue costs per message before the listener.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

import simplefix

from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.fix.codec import FixReader, field, frame
from dragonfly.fix.initiator import FixInitiator
from dragonfly.fix.mdcodec import encode_book
from dragonfly.fix.venue import FixVenue, make_decoder

VENUES = ("binance", "bitstamp", "kraken")


def make_w(depth: int = 10) -> bytes:
    """A gateway's W of a ``depth``+``depth`` merged book, framed with a session header."""
    bids = tuple(MergedLevel(VENUES[i % 3], 0.06827 - i * 1e-5, 1.5 + i * 0.25) for i in range(depth))
    asks = tuple(MergedLevel(VENUES[(i + 1) % 3], 0.06828 + i * 1e-5, 2.5 + i * 0.5) for i in range(depth))
    now = time.time_ns()
    states = tuple(VenueState(v, True, 1, now - 1000, 1000, 0) for v in VENUES)
    book = MergedBook(
        "ethbtc",
        asks[0].price - bids[0].price,
        bids,
        asks,
        1_234_567,
        now - 40_000,
        now,
        "binance",
        99,
        states,
    )
    update = encode_book(book)
    head = b"35=W\x0149=DRAGONFLY\x0156=DRAGONFLY-FEED\x0134=4242\x0152=20261204-05:00:00.000\x01"
    return frame(head + field(262, "ethbtc") + field(55, "ethbtc"), update.tail, update.tail_sum)


def swapped(message: bytes) -> bytes:
    """The same W with each entry's size before its price (the general read)."""
    head, _, rest = message.partition(b"\x01268=")
    body = (b"\x01268=" + rest)[: rest.rfind(b"\x0110=") + 5]
    parts = body.split(b"\x01")
    out: list[bytes] = []
    i = 0
    while i < len(parts):
        if parts[i].startswith(b"270=") and i + 1 < len(parts) and parts[i + 1].startswith(b"271="):
            out += [parts[i + 1], parts[i]]
            i += 2
        else:
            out.append(parts[i])
            i += 1
    inner = head[head.index(b"35=") :] + b"\x01".join(out)
    inner = inner[: inner.rfind(b"\x01") + 1]
    return frame(inner)


class _Transport:
    """Just enough of an asyncio transport for a session that only receives."""

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 9878) if name == "peername" else None

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


class _Feed:
    """The feed's part: decode each W (the listener would then check and forward it)."""

    def __init__(self) -> None:
        self.decode = make_decoder(10)
        self.books = 0

    def on_open(self, conn: object) -> None:
        pass

    def on_frame(self, payload: bytes, recv_ns: int, last_in_buffer: bool) -> None:
        if self.decode(payload) is not None:
            self.books += 1

    def on_close(self, reason: str) -> None:
        pass

    def on_connect_failed(self, reason: str, retry_in: float) -> None:
        pass


def whole_path(message: bytes, n: int) -> Callable[[], object]:
    """Feed ``n`` numbered copies of ``message`` into a logged-on initiator session, one per call."""
    venue = FixVenue("up", "fix://127.0.0.1:9878", sender_comp_id="DRAGONFLY-FEED")
    feed = _Feed()
    conn = FixInitiator(venue.endpoint, feed, venue=venue)
    session = conn._make_session()
    session.connection_made(_Transport())  # type: ignore[arg-type]
    logon = (
        b"35=A\x0149=DRAGONFLY\x0156=DRAGONFLY-FEED\x0134=1\x0152=20261204-05:00:00.000\x0198=0\x01108=5\x01"
    )
    session.data_received(frame(logon))
    assert session.logged_on
    head, _, rest = message.partition(b"\x0134=4242\x01")
    start, body = head[head.index(b"35=") :], rest[: rest.rfind(b"\x0110=") + 1]
    copies = iter([frame(start + b"\x0134=%d\x01" % seq + body) for seq in range(2, n + 3)])
    session.data_received(next(copies))
    assert feed.books == 1 and session.logged_on, "the W did not reach the decoder"

    def receive() -> object:
        session.data_received(next(copies))
        return None

    return receive


def cases(message: bytes, n: int) -> dict[str, Callable[[], object]]:
    reader = FixReader(1 << 20)
    decode = make_decoder(10)
    general = swapped(message)
    reader.feed(general)
    parsed = reader.next()
    assert parsed is not None
    decode_general = make_decoder(10)
    assert decode_general(general)[:2] == decode(message)[:2]  # type: ignore[index]
    members = frozenset({269, 270, 271, 276, 282, 290})

    def read() -> object:
        reader.feed(message)
        return reader.next()

    lazy_reader = FixReader(1 << 20, lazy=True)

    def read_lazy() -> object:
        lazy_reader.feed(message)
        return lazy_reader.next()

    reader.feed(message)
    msg = reader.next()
    assert msg is not None

    def group() -> object:
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for entry in msg.group(268, 269, members):
            level = (float(entry[270]), float(entry[271]))
            (bids if entry[269] == b"0" else asks).append(level)
        return bids, asks

    parser = simplefix.FixParser()

    def library() -> object:
        parser.append_buffer(message)
        m = parser.get_message()
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for n in range(1, int(m.get(268)) + 1):
            level = (float(m.get(270, n)), float(m.get(271, n)))
            (bids if m.get(269, n) == b"0" else asks).append(level)
        return bids, asks

    return {
        "FixReader.next": read,
        "FixReader.next (lazy)": read_lazy,
        "venue decode (fast)": lambda: decode(message),
        "venue decode (general)": lambda: decode_general(general),
        "codec group + floats": group,
        "simplefix parse + entries": library,
        "whole path": whole_path(message, n),
    }


async def _run(args: argparse.Namespace) -> None:
    message = make_w()
    timings: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        funcs = cases(message, args.n)
        for name, func in funcs.items():
            n = args.n // 10 if name.startswith("simplefix") else args.n
            start = time.perf_counter()
            for _ in range(n):
                func()
            timings.setdefault(name, []).append((time.perf_counter() - start) / n * 1e6)
    print(f"W of 10+10 levels, {len(message)} bytes; median of {args.rounds} rounds, µs per message")
    base = statistics.median(timings["venue decode (fast)"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"  {name:28s} {median:8.1f}   {median / base:5.1f}x the fast decode")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--n", type=int, default=2000, help="messages per case per round")
    asyncio.run(_run(p.parse_args()))


if __name__ == "__main__":
    main()
