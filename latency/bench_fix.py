"""Measure the FIX codec on the hot path: simplefix against ours, and encode-once against per session.

Run: ``python -m latency.bench_fix [--rounds N]``. One process, every case
side by side, medians of ``--rounds`` timing rounds (this 2-core VM drifts up
to 2x between runs: compare the ratios, not the absolute figures).

Cases, on a realistic 10+10-level MarketDataSnapshotFullRefresh (W) of three
venues (1.3 KB with the view sequence, times and venue states):

* encode one W for one session: ``simplefix.FixMessage`` (append_pair per
  field, then ``encode()``), against ours (``mdcodec.encode_book`` then
  ``codec.frame``);
* per book update for N sessions: ours encoding the whole W per session,
  against encoding the shared part once and framing it per session
  (``frame(head, tail, tail_sum)``: only the header and MDReqID/Symbol are
  summed);
* parse one W: ``simplefix.FixParser`` (then reading every entry's fields),
  against ``codec.FixReader`` plus ``FixMessage.group``;
* the latency harness's books in sequence, and quieter ones
  (:func:`quiet_books`: one size a side changed at each update) (:func:`harness_books`: 10 + 10
  levels of one venue, every size new at each update): ``encode_book``
  against the gateway's ``BookEncoder``, which reuses the last update's
  entries and the prices' text, and the floats' formatting alone (``repr``
  of the prices and sizes the last book did not hold: what a C encoder
  calling CPython's ``repr`` would still pay).

Figures of the run written down in ``dragonfly/fix/codec.py`` (python 3.11,
this VM): see its module docstring.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from collections.abc import Callable

import simplefix

from dragonfly.core.aggregator import Aggregator
from dragonfly.core.listener import TopNListener
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.fix import mdcodec
from dragonfly.fix.codec import FixReader, byte_sum, field, frame, sending_time
from dragonfly.fix.mdcodec import BookEncoder, encode_book
from dragonfly.venues import binance
from latency.frames import binance_depth20

VENUES = ("binance", "bitstamp", "kraken")
ENTRY = frozenset({269, 270, 271, 282, 290})


def make_book(depth: int = 10) -> MergedBook:
    """A 3-venue ETHBTC book of ``depth`` levels a side, prices and sizes as venues print them."""
    bids = tuple(
        MergedLevel(VENUES[i % 3], round(0.06827 - i * 1e-5, 8), round(1.5 + i * 0.37, 8))
        for i in range(depth)
    )
    asks = tuple(
        MergedLevel(VENUES[(i + 1) % 3], round(0.06828 + i * 1e-5, 8), round(2.5 + i * 0.53, 8))
        for i in range(depth)
    )
    now = time.time_ns()
    states = tuple(VenueState(v, True, 1, now - 5_000_000, 5_000_000, 1000 + i) for i, v in enumerate(VENUES))
    return MergedBook(
        "ethbtc",
        asks[0].price - bids[0].price,
        bids,
        asks,
        123_456,
        now - 40_000,
        now,
        "binance",
        98_765,
        states,
    )


def head(seq: int) -> bytes:
    return b"35=W\x0149=DRAGONFLY\x0156=CLIENT%d\x0134=%d\x0152=%s\x01" % (seq % 7, seq, sending_time())


PREFIX = field(262, "md-1") + field(55, "ETH/BTC")


def ours_one(book: MergedBook) -> bytes:
    update = encode_book(book)
    return frame(head(1) + PREFIX, update.tail, update.tail_sum)


def simplefix_one(book: MergedBook) -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4")
    msg.append_pair(35, "W")
    msg.append_pair(49, "DRAGONFLY")
    msg.append_pair(56, "CLIENT")
    msg.append_pair(34, 1)
    msg.append_pair(52, sending_time())
    msg.append_pair(262, "md-1")
    msg.append_pair(55, "ETH/BTC")
    msg.append_pair(268, len(book.bids) + len(book.asks))
    for entry_type, side in ((0, book.bids), (1, book.asks)):
        for position, (venue, price, amount) in enumerate(side, 1):
            msg.append_pair(269, entry_type)
            msg.append_pair(270, repr(price))
            msg.append_pair(271, repr(amount))
            msg.append_pair(282, venue)
            msg.append_pair(290, position)
    msg.append_pair(20001, book.sequence)
    msg.append_pair(20002, book.publish_ns)
    msg.append_pair(20003, book.recv_ns)
    msg.append_pair(20010, len(book.venues))
    for state in book.venues:
        msg.append_pair(20011, state.venue)
        msg.append_pair(20012, "Y" if state.in_merge else "N")
        msg.append_pair(20013, "LIVE")
        msg.append_pair(20014, state.data_ns)
        msg.append_pair(20015, state.age_ns)
    out: bytes = msg.encode()
    return out


def per_session(book: MergedBook, sessions: int) -> None:
    for seq in range(sessions):
        update = encode_book(book)
        frame(head(seq) + PREFIX, update.tail, update.tail_sum)


def shared(book: MergedBook, sessions: int) -> None:
    update = encode_book(book)
    tail, tail_sum = update.tail, update.tail_sum
    for seq in range(sessions):
        frame(head(seq) + PREFIX, tail, tail_sum)


def parse_ours(raw: bytes) -> int:
    reader = FixReader()
    reader.feed(raw)
    msg = reader.next()
    assert msg is not None
    return len(msg.group(268, 269, ENTRY))


def parse_simplefix(raw: bytes) -> int:
    parser = simplefix.FixParser()
    parser.append_buffer(raw)
    msg = parser.get_message()
    count = 0
    # Read the entries as a book reader must: every field, in order.
    for tag, _value in msg.pairs:
        if tag == b"269":
            count += 1
    return count


def harness_books(count: int = 400) -> list[MergedBook]:
    """The merged books the latency harness's gateway encodes, in order.

    Its generator's Binance frames through the listener and the merge: the
    Bitstamp frames it sends carry a 2023 ``microtimestamp``, so the freshness
    rule keeps Bitstamp out of the merge there and every update is a book of
    Binance's levels alone, each frame with new sizes at every level.
    """
    agg = Aggregator("ethbtc", ["binance", "bitstamp"], 10)
    books: list[MergedBook] = []
    agg.add_sink(books.append)
    listener = TopNListener("binance", binance.make_decoder(10), agg.producers["binance"])
    for i, payload in enumerate(binance_depth20(count)):
        listener.on_frame(payload, i + 1, True)
    return books


def quiet_books(count: int = 400) -> list[MergedBook]:
    """:func:`make_book` updated ``count`` times, one level a side getting a new size each time.

    A market between busy moments, as a venue's diffs describe it: most
    levels of a merged top 10 stay as they were from one update to the next.
    """
    rng = random.Random(1)
    book = make_book()
    out = []
    for sequence in range(count):
        sides = []
        for side in (book.bids, book.asks):
            levels = list(side)
            i = rng.randrange(len(levels))
            venue, price, amount = levels[i]
            levels[i] = MergedLevel(venue, price, round(amount + rng.uniform(-1, 1), 8) or 0.5)
            sides.append(tuple(levels))
        book = book._replace(bids=sides[0], asks=sides[1], sequence=sequence)
        out.append(book)
    return out


def new_floats(books: list[MergedBook]) -> list[list[float]]:
    """Per book, the prices and sizes of its levels that the book before it did not hold."""
    out: list[list[float]] = []
    seen: set[MergedLevel] = set()
    for book in books:
        levels = set(book.bids) | set(book.asks)
        out.append([x for level in levels - seen for x in level[1:]])
        seen = levels
    return out


def encode_cases(label: str, books: list[MergedBook], rounds: int) -> None:
    """Time encode_book against the BookEncoder on ``books`` in order, interleaved; print medians."""
    fresh = new_floats(books)
    n = len(books)

    def plain() -> None:
        for b in books:
            encode_book(b)

    def cached() -> None:
        encode = BookEncoder(0, 10)
        for b in books:
            encode(b)

    def cached_py() -> None:
        # The BookEncoder without the C entry writer (its pure-Python path).
        kept, mdcodec._fix_entries = mdcodec._fix_entries, None
        try:
            cached()
        finally:
            mdcodec._fix_entries = kept

    def formatting() -> None:
        for floats in fresh:
            for x in floats:
                repr(x)

    new_share = sum(len(f) for f in fresh) / sum(2 * (len(b.bids) + len(b.asks)) for b in books)
    # Interleaved, one batch of each case a round: the VM drifts within seconds.
    cases = {"plain": plain, "cached": cached, "cached_py": cached_py, "repr": formatting}
    per: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds * 3):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            per[name].append((time.perf_counter() - start) / n * 1e6)
    pe, ce, cp, fe = (statistics.median(per[k]) for k in cases)
    gain = statistics.median(p / c for p, c in zip(per["plain"], per["cached"], strict=True))
    c_gain = statistics.median(p / c for p, c in zip(per["cached_py"], per["cached"], strict=True))
    print(
        f"{label} ({n}, {new_share:.0%} of levels new per update): encode_book {pe:5.1f} µs   "
        f"BookEncoder {ce:5.1f} µs ({gain:3.1f}x, per round)   its Python entries {cp:5.1f} µs "
        f"(C {c_gain:3.1f}x faster, per round)   repr of the new floats alone {fe:4.1f} µs"
    )


def timed(fn: Callable[[], object], rounds: int, number: int) -> float:
    """Median seconds per call over ``rounds`` rounds of ``number`` calls."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    """Run every case and print medians (µs) and ratios."""
    parser = argparse.ArgumentParser(prog="python -m latency.bench_fix", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="timing rounds per case (default 9)")
    args = parser.parse_args(argv)
    book = make_book()
    raw = ours_one(book)
    check = simplefix.FixParser()
    check.append_buffer(raw)
    assert check.get_message() is not None and parse_ours(raw) == parse_simplefix(raw) == 20
    print(f"W of 10+10 levels, 3 venues: {len(raw)} bytes; medians of {args.rounds} rounds")
    sf = timed(lambda: simplefix_one(book), args.rounds, 2000)
    us = timed(lambda: ours_one(book), args.rounds, 2000)
    print(
        f"encode one W      simplefix {sf * 1e6:7.1f} µs   ours {us * 1e6:7.1f} µs   "
        f"simplefix/ours {sf / us:4.1f}x"
    )
    for sessions in (1, 10, 100):
        number = max(20, 2000 // sessions)
        whole = timed(functools.partial(per_session, book, sessions), args.rounds, number)
        once = timed(functools.partial(shared, book, sessions), args.rounds, number)
        print(
            f"{sessions:3d} sessions/update  whole W each {whole * 1e6:8.1f} µs   encode once + frame "
            f"{once * 1e6:8.1f} µs   ratio {whole / once:4.1f}x"
        )
    tail = encode_book(book).tail
    summed = timed(lambda: byte_sum(tail), args.rounds, 5000)
    print(f"byte sum of the shared part ({len(tail)} bytes), saved per session: {summed * 1e6:.1f} µs")
    for label, books in (("harness books", harness_books()), ("quiet books", quiet_books())):
        encode_cases(label, books, args.rounds)
    psf = timed(lambda: parse_simplefix(raw), args.rounds, 2000)
    pus = timed(lambda: parse_ours(raw), args.rounds, 2000)
    print(
        f"parse one W       simplefix {psf * 1e6:7.1f} µs   ours {pus * 1e6:7.1f} µs   "
        f"simplefix/ours {psf / pus:4.1f}x"
    )


if __name__ == "__main__":
    main()
