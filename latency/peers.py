"""Per-message book processing of recorded diffs on every venue: dragonfly against cryptofeed.

    python -m latency.peers [--rounds N] [--venues binance,kraken,...] [--dir RECORDINGS]

What is measured: for each venue, the time to handle one recorded update
frame, from its bytes to an exact book with its top 10 read, in one process,
on one core. Both sides get the same frames, in the same order, from
``../shared/recordings`` (or ``$DRAGONFLY_RECORDINGS``). Snapshots (in-band
snapshot frames, or REST snapshots) are loaded untimed into a fresh book
before every pass; only the update frames are timed, as one pass over all of
them (``perf_counter_ns`` around the pass, divided by the frame count). The
garbage collector runs as it would in production (not forced, not disabled).

- dragonfly: :class:`~dragonfly.core.diff.DiffListener` with the venue's
  ``SPEC.diff`` channel (checksums included; at the recorded depth where the
  venue serves several, see kraken below), fed ``on_frame(payload, i, True)``:
  decode, sequence or checksum check, apply, top 10 of the changed book,
  forward to a slot whose consumer drains it.
- cryptofeed: the venue's feed class driven through its ``message_handler``
  (no network: symbols preloaded as identity mappings, snapshots loaded
  first), with an awaited ``L2_BOOK`` callback reading the top 10 of each
  side. Kraken and OKX run with ``checksum_validation=True`` (a mismatch
  raises ``BadChecksum`` and fails the venue). Optional: skipped with a note
  when cryptofeed is not installed.
- naive (Binance only): ``json.loads``, float dict books, ``sorted`` top 10.

Each contender first runs one untimed warm-up pass. Then rounds are
interleaved, contender by contender (A B C, then C B A, ...): the VM drifts by
tens of percent within minutes, so every contender goes through the same
drift, and the ratio to dragonfly is taken per round. A venue with fewer than
:data:`ROUND_FRAMES` update frames (Binance 177, OKX 287, Bitstamp 615) runs
several passes per turn, each on a fresh book, so that a turn lasts
milliseconds, not a fraction of one. A venue reports each side's median
µs/msg over rounds and the median, min and max of the per-round ratios.

After every pass the final books are compared with dragonfly's, price by
price and amount by amount (floats parsed from the same decimal strings), over
the depth dragonfly keeps (the whole book unless its channel truncates). A
difference is reported as a failure (:attr:`PeerResult.ok`), never averaged
away; so is a dragonfly book that resynchronised or failed a checksum.

Per-venue choices, and why:

- binance: the recorded combined-stream ``depthUpdate`` frames (the protocol
  is current) and the first REST snapshot of each symbol.
- bitstamp: the first REST snapshot of each pair, and only the diffs stamped
  after it (``microtimestamp``). cryptofeed drops older diffs by whole seconds
  (``timestamp``), so it would apply diffs of the snapshot's second that
  dragonfly rightly drops; feeding both only the newer diffs keeps the input
  equal. cryptofeed's snapshot is loaded as its ``_snapshot`` does.
- kraken: the recorded ``book-1000`` frames, unchanged. Both keep the
  recorded depth: dragonfly's channel at depth 1000 (``SPEC.diff.at_depth``,
  as its feed subscribes with ``book_depth=1000``), cryptofeed's default
  ``max_depth=1000``; books compared over the top 1000. dragonfly's default
  depth 100 does not fit these frames: it cuts each side to 100 after every
  update, and a depth-1000 stream never re-sends the levels that later move
  up into the top 100, so its books thin out (91 to 98 bids left of 100 at
  the end of this capture, where cryptofeed's top 100 is full).
- okx: the recorded v5 ``books`` frames (the protocol is current).
- coinbase: the retired Pro ``level2`` capture, translated to Advanced Trade
  ``l2_data`` by :mod:`dragonfly.sim.replay.coinbase`, with ``sequence_num``
  counted as one client sees it (snapshots first, then updates).
  cryptofeed 2.4.1's snapshot handler reads asks as side ``'ask'`` where the
  venue writes ``'offer'``, so it would start every book with no asks: its
  snapshots are loaded straight into its ``OrderBook`` (untimed either way),
  as its handler would with the side named right.
- bybit: the retired v2 ``orderBookL2_25`` captures (two connections),
  translated to v5 ``orderbook.50`` by :mod:`dragonfly.sim.replay.bybit`.
  cryptofeed runs its ``linear`` path (chosen by the connection URL): its
  ``spot`` path renames symbols by a quote-currency regex that has no match
  for BTCUSD and EOSUSD, so it drops their frames, and costs ~2.5 µs/msg more.

cryptofeed version: whatever is installed runs, and the report says which.
On Python 3.11 that is 2.4.1, the newest release that installs there
(2.5.0 requires Python >= 3.12, 3.x >= 3.13).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any

from dragonfly.core.diff import DiffChannel, DiffListener
from dragonfly.core.slots import SlotQueue
from dragonfly.core.types import Level, VenueBook
from dragonfly.recording import (
    RecordedConnection,
    RecordedRest,
    Rest,
    discover,
    read_recording,
    shared_recordings,
)
from dragonfly.sim.replay.base import Frame, Track
from dragonfly.sim.replay.kraken import KrakenTrack
from dragonfly.venues import get_venue

#: Levels a side every contender reads after each message (the published top N).
DEPTH = 10
#: Every venue with a diff channel, in report order.
VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")
#: Why the installed cryptofeed is the one that runs (see module doc).
CRYPTOFEED_WHY = (
    "the newest release that installs on Python 3.11 (cryptofeed 2.5.0 requires Python >= 3.12, 3.x >= 3.13)"
)
#: One line per venue on how its frames were fed (see module doc).
VENUE_NOTES = {
    "binance": "recorded depthUpdate frames and REST snapshots; a naive baseline beside",
    "bitstamp": "REST snapshots; only diffs stamped after them (cryptofeed drops by whole seconds)",
    "kraken": "book-1000 frames, both verify CRC32 and keep the recorded 1000 levels",
    "okx": "books frames, both verify CRC32",
    "coinbase": "Pro level2 translated to Advanced Trade l2_data; cryptofeed's snapshots loaded "
    "directly (2.4.1 drops 'offer' snapshot levels)",
    "bybit": "v2 orderBookL2_25 translated to v5 orderbook.50; cryptofeed on its linear path "
    "(its spot path drops BTCUSD/EOSUSD)",
}


def recordings_dir() -> Path:
    """Where the shared recordings are (a path that may not exist)."""
    return shared_recordings() or Path(__file__).resolve().parents[2] / "shared" / "recordings"


# -- frames ----------------------------------------------------------------------


class MissingRecordingError(Exception):
    """A venue's recordings are not in the directory (the message says which)."""


@dataclass
class Recorded:
    """The Binance diff frames and snapshots of the recording."""

    frames: list[bytes]
    snapshots: dict[str, bytes]  #: exchange symbol (``NKNUSDT``) -> REST body
    exchange_info: bytes


def load(directory: Path) -> Recorded:
    """Read the Binance depthUpdate frames, the snapshots and exchangeInfo."""
    frames = []
    for line in (directory / "BINANCE.ws.1.0").read_bytes().splitlines():
        if b"depthUpdate" in line and b" <- " not in line and b" <-> " not in line:
            frames.append(line.split(b": ", 1)[1])
    snapshots: dict[str, bytes] = {}
    for line in (directory / "BINANCE.http.0.0").read_bytes().splitlines():
        url, _, rest = line.partition(b" -> ")
        if b"symbol=" not in url or b": " not in rest:
            continue
        body = rest.split(b": ", 1)[1]
        symbol = url.split(b"symbol=")[1].split(b"&")[0].decode()
        snapshots.setdefault(symbol, body)  # the first snapshot of each symbol
    info = b""
    for line in (directory / "BINANCE.0").read_bytes().splitlines():
        if b"exchangeInfo" in line:
            info = line.split(b": ", 1)[1]
    return Recorded(frames, snapshots, info)


@dataclass
class VenueFrames:
    """One venue's recorded book traffic, in its current protocol, as both sides get it."""

    venue: str
    symbols: list[str]  #: the venue's symbols, as its frames name them
    updates: list[bytes]  #: timed, in order
    snapshots: list[bytes] = field(default_factory=list)  #: in-band snapshot frames, fed first, untimed
    rest: dict[str, bytes] = field(default_factory=dict)  #: symbol -> REST snapshot body, loaded untimed
    exchange_info: bytes = b""  #: Binance's exchangeInfo (cryptofeed's symbol map)
    depth: int | None = None  #: the book depth subscribed when recording, where the venue serves several
    problems: int = 0  #: recorded lines the translators could not read (skipped)

    def prefix(self, n: int) -> VenueFrames:
        """The same venue with only its first ``n`` update frames (for quick checks)."""
        return replace(self, updates=self.updates[:n])


def _connections(directory: Path, venue: str) -> tuple[list[Path], list[Path]]:
    """The venue's recorded WebSocket connections and REST files in ``directory``."""
    found = discover(directory, on_error=lambda _: None)
    ws = [f.path for f in found if isinstance(f, RecordedConnection) and f.venue == venue]
    http = [f.path for f in found if isinstance(f, RecordedRest) and f.venue == venue]
    return ws, http


def _split(frames: Sequence[Frame], is_snapshot: Callable[[Frame], bool]) -> tuple[list[Frame], list[Frame]]:
    """In-band snapshot frames and update frames, each in recorded order.

    Feeding every snapshot first keeps each symbol's own order (its snapshot
    came before its updates); a second snapshot of a symbol, or an update
    before its symbol's snapshot, cannot be moved out of the timed pass and
    raises ValueError.
    """
    snapshots: list[Frame] = []
    updates: list[Frame] = []
    seen: set[str] = set()
    for frame in frames:
        if is_snapshot(frame):
            if frame.symbol in seen:
                raise ValueError(f"a second snapshot of {frame.symbol}")
            seen.add(frame.symbol)
            snapshots.append(frame)
        elif frame.symbol not in seen:
            raise ValueError(f"an update of {frame.symbol} before its snapshot")
        else:
            updates.append(frame)
    return snapshots, updates


#: A marker only the venue's in-band snapshot frames hold (Coinbase's is in ``Frame.alt``).
_SNAPSHOT_MARK = {"kraken": b'{"as":', "okx": b'"action":"snapshot"', "bybit": b'"type":"snapshot"',
                  "coinbase": b'"type":"snapshot"'}


def load_venue(venue: str, directory: Path | None = None) -> VenueFrames:
    """Read and translate one venue's recordings; MissingRecordingError if they are not there."""
    directory = directory or recordings_dir()
    if not directory.is_dir():
        raise MissingRecordingError(f"recordings not found in {directory}")
    if venue == "binance":
        if not all((directory / n).is_file() for n in ("BINANCE.ws.1.0", "BINANCE.http.0.0", "BINANCE.0")):
            raise MissingRecordingError(f"no BINANCE.ws.1.0, BINANCE.http.0.0 and BINANCE.0 in {directory}")
        rec = load(directory)
        return VenueFrames(venue, list(rec.snapshots), rec.frames, rest=rec.snapshots,
                           exchange_info=rec.exchange_info)
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r} (expected one of {', '.join(VENUES)})")
    ws, http = _connections(directory, venue)
    if not ws or (venue == "bitstamp" and not http):
        raise MissingRecordingError(f"no {venue.upper()}.ws.* {'and .http.* ' if venue == 'bitstamp' else ''}"
                          f"recording in {directory}")
    problems: list[object] = []
    translate: Callable[..., Track] = importlib.import_module(f"dragonfly.sim.replay.{venue}").translate
    frames: list[Frame] = []
    depths: set[int] = set()
    for path in ws:
        track = translate(list(read_recording(path, problems.append)), lambda *p: problems.append(p))
        frames += track.frames
        if isinstance(track, KrakenTrack):
            depths.update(track.depths.values())
    if len(depths) > 1:
        raise ValueError(f"{venue} recorded at several depths: {sorted(depths)}")
    if venue == "bitstamp":
        return _bitstamp(frames, http, len(problems))
    mark = _SNAPSHOT_MARK[venue]
    if venue == "coinbase":
        snaps, ups = _split(frames, lambda f: mark in (f.alt or b""))
        # Frame.data ends just before sequence_num and Frame.alt holds the rest: number the
        # messages as one client sees them, from 0, snapshots first.
        numbered = [b"%s%d%s" % (f.data, seq, f.alt or b"") for seq, f in enumerate(snaps + ups)]
        return VenueFrames(venue, [f.symbol for f in snaps], numbered[len(snaps):], numbered[: len(snaps)],
                           problems=len(problems))
    snaps, ups = _split(frames, lambda f: mark in f.data)
    return VenueFrames(venue, [f.symbol for f in snaps], [f.data for f in ups], [f.data for f in snaps],
                       problems=len(problems), depth=max(depths, default=None))


def _bitstamp(frames: list[Frame], http: list[Path], problems: int) -> VenueFrames:
    """Bitstamp: the first REST snapshot of each pair, and the diffs stamped after it (module doc)."""
    rest: dict[str, bytes] = {}
    for path in http:
        for record in read_recording(path, lambda _: None):
            if isinstance(record, Rest) and "/order_book/" in record.url:
                rest.setdefault(record.url.rstrip("/").rsplit("/", 1)[1], record.body)
    taken = {pair: int(json.loads(body)["microtimestamp"]) for pair, body in rest.items()}
    updates = [f.data for f in frames
               if f.symbol in taken and int(json.loads(f.data)["data"]["microtimestamp"]) > taken[f.symbol]]
    return VenueFrames("bitstamp", list(rest), updates, rest=rest, problems=problems)


# -- contenders ------------------------------------------------------------------

#: A side of a final book, best first: (price, amount) floats.
BookSide = list[Level]
#: Final books by venue symbol: (bids, asks).
Books = dict[str, tuple[BookSide, BookSide]]


@dataclass
class Pass:
    """One prepared pass: ``run`` handles every update frame (timed); then ``books`` reads the result."""

    run: Callable[[], None]
    books: Callable[[], Books]
    #: After the pass: what went wrong inside the contender ("" if nothing), and a note to show.
    check: Callable[[], tuple[str, str]] = lambda: ("", "")


@dataclass
class Contender:
    """A name and a setup that loads the snapshots (untimed) and returns a :class:`Pass`."""

    name: str
    setup: Callable[[], Pass]


class _NoControl:
    """Counts the resynchronisations a listener asks for (a clean pass asks for none)."""

    requests = 0

    def request_snapshot(self, symbol: str) -> None:
        self.requests += 1

    def resubscribe(self, symbol: str) -> None:
        self.requests += 1


def channel_for(frames: VenueFrames) -> DiffChannel:
    """The venue's diff channel, at the recorded depth where it serves several (Kraken; module doc)."""
    channel = get_venue(frames.venue).diff
    if channel is None:
        raise ValueError(f"{frames.venue} has no diff channel")
    if frames.depth is not None and channel.at_depth is not None:
        channel = channel.at_depth(frames.depth)
    return channel


def dragonfly(frames: VenueFrames) -> Contender:
    """dragonfly's DiffListener on the venue's diff channel (:func:`channel_for`; module doc)."""
    venue = frames.venue
    channel = channel_for(frames)
    parse_rest = channel.parse_rest_snapshot
    if frames.rest and parse_rest is None:
        raise ValueError(f"{venue}'s diff channel takes no REST snapshot")

    def setup() -> Pass:
        queue: SlotQueue[VenueBook]

        def take() -> None:  # the consumer takes each book and drops it
            queue.drain()

        queue = SlotQueue(take)
        outputs = {s: queue.producer(s) for s in frames.symbols}
        control = _NoControl()
        listener = DiffListener(venue, channel, outputs, DEPTH, control)
        for i, payload in enumerate(frames.snapshots):
            listener.on_frame(payload, i, True)
        for symbol, body in frames.rest.items():
            assert parse_rest is not None
            listener.on_snapshot(parse_rest(symbol, body))
        updates = frames.updates

        def run() -> None:
            on_frame = listener.on_frame
            for i, payload in enumerate(updates):
                on_frame(payload, i, True)

        def books() -> Books:
            out: Books = {}
            for symbol, sync in listener.syms.items():
                book = sync.book
                out[symbol] = (list(book.top_bids(len(book.bids))), list(book.top_asks(len(book.asks))))
            return out

        def check() -> tuple[str, str]:
            stats = [sync.stats for sync in listener.syms.values()]
            bad = {"resyncs": sum(s.resyncs for s in stats), "gaps": sum(s.gaps for s in stats),
                   "bad checksums": sum(s.checksums_bad for s in stats),
                   "malformed": sum(s.malformed for s in stats) + listener.malformed,
                   "snapshot requests": control.requests}
            problem = ", ".join(f"{n} {what}" for what, n in bad.items() if n)
            verified = sum(s.checksums_ok for s in stats)
            return (f"dragonfly: {problem}" if problem else "",
                    f"checksums verified: {verified}" if channel.checksum is not None else "")

        return Pass(run, books, check)

    return Contender("dragonfly", setup)


def naive(frames: VenueFrames) -> Contender:
    """Binance only: json.loads, dict books of floats, sorted top 10 on every message."""
    if frames.venue != "binance":
        raise ValueError("the naive baseline reads Binance frames only")

    def setup() -> Pass:
        state: dict[str, tuple[dict[float, float], dict[float, float], list[int]]] = {}
        for symbol, body in frames.rest.items():
            snap = json.loads(body)
            state[symbol] = (
                {float(p): float(q) for p, q in snap["bids"]},
                {float(p): float(q) for p, q in snap["asks"]},
                [snap["lastUpdateId"]],
            )
        updates = frames.updates

        def run() -> None:
            for payload in updates:
                ev = json.loads(payload)["data"]
                bids, asks, last = state[ev["s"]]
                if ev["u"] <= last[0]:
                    continue
                last[0] = ev["u"]
                for side, key in ((bids, "b"), (asks, "a")):
                    for p, q in ev[key]:
                        price, amount = float(p), float(q)
                        if amount == 0.0:
                            side.pop(price, None)
                        else:
                            side[price] = amount
                _ = sorted(bids.items(), reverse=True)[:DEPTH], sorted(asks.items())[:DEPTH]

        def books() -> Books:
            return {s: (sorted(b.items(), reverse=True), sorted(a.items())) for s, (b, a, _) in state.items()}

        return Pass(run, books)

    return Contender("naive", setup)


def cryptofeed_version() -> str | None:
    """The installed cryptofeed's version, or None if it is not installed."""
    try:
        return metadata.version("cryptofeed")
    except metadata.PackageNotFoundError:
        return None


class _Conn:
    """What cryptofeed's handlers read of a connection: its address (Bybit picks its path by it)."""

    uuid = "peers"

    def __init__(self, address: str) -> None:
        self.address = address


#: cryptofeed's feed class of each venue (module attribute of ``cryptofeed.exchanges``).
_CRYPTOFEED_CLASS = {"binance": "Binance", "bitstamp": "Bitstamp", "kraken": "Kraken", "okx": "OKX",
                     "coinbase": "Coinbase", "bybit": "Bybit"}
#: Venues whose messages carry a checksum: cryptofeed verifies them (``checksum_validation``).
_CHECKSUMS = ("kraken", "okx")


def cryptofeed(frames: VenueFrames) -> Contender | str:
    """cryptofeed's feed handler of the venue, driven directly; or why it cannot run."""
    version = cryptofeed_version()
    try:
        from cryptofeed import exchanges
        from cryptofeed.defines import L2_BOOK
        from cryptofeed.symbols import Symbols
        from cryptofeed.types import OrderBook
    except ImportError:
        return "cryptofeed not installed (pip install -e .[peers]): row skipped"
    venue = frames.venue
    cls: Any = getattr(exchanges, _CRYPTOFEED_CLASS[venue])
    if venue == "binance":
        mapping, info = cls._parse_symbol_data(json.loads(frames.exchange_info))
        Symbols.set(cls.id, mapping, info)
        std = {exchange: standard for standard, exchange in mapping.items()}
    else:
        Symbols.set(cls.id, {s: s for s in frames.symbols}, {})
        std = {s: s for s in frames.symbols}
    ours = {standard: exchange for exchange, standard in std.items()}
    conn = _Conn("wss://stream.bybit.com/v5/public/linear" if venue == "bybit" else "wss://peers")
    snapshots = [s.decode() for s in frames.snapshots]
    updates = [u.decode() for u in frames.updates]

    async def read_top(book: Any, _receipt: float) -> None:
        b = book.book
        _ = [b.bids.index(i) for i in range(min(DEPTH, len(b.bids)))]
        _ = [b.asks.index(i) for i in range(min(DEPTH, len(b.asks)))]

    def setup() -> Pass:
        feed = cls(symbols=[std[s] for s in frames.symbols], channels=[L2_BOOK],
                   callbacks={L2_BOOK: read_top}, checksum_validation=venue in _CHECKSUMS)

        def order_book(symbol: str, bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]) -> Any:
            return OrderBook(cls.id, symbol, max_depth=feed.max_depth, bids=bids, asks=asks)

        handler = feed.message_handler
        loop = asyncio.new_event_loop()
        if venue == "binance":
            for symbol, body in frames.rest.items():
                snap = json.loads(body, parse_float=Decimal)
                feed.last_update_id[std[symbol]] = snap["lastUpdateId"]
                feed._l2_book[std[symbol]] = order_book(
                    std[symbol], {Decimal(p): Decimal(q) for p, q in snap["bids"]},
                    {Decimal(p): Decimal(q) for p, q in snap["asks"]})
        elif venue == "bitstamp":  # as its _snapshot
            feed.last_update_id = {}
            for symbol, body in frames.rest.items():
                snap = json.loads(body, parse_float=Decimal)
                feed.last_update_id[symbol] = snap["timestamp"]
                feed._l2_book[symbol] = order_book(
                    symbol, {Decimal(p): Decimal(q) for p, q, *_ in snap["bids"]},
                    {Decimal(p): Decimal(q) for p, q, *_ in snap["asks"]})
        elif venue == "coinbase":  # as its _pair_level2_snapshot, reading the venue's 'offer' (module doc)
            for text in snapshots:
                for event in json.loads(text)["events"]:
                    levels = event["updates"]
                    feed._l2_book[event["product_id"]] = order_book(
                        event["product_id"],
                        {Decimal(u["price_level"]): Decimal(u["new_quantity"]) for u in levels
                         if u["side"] == "bid"},
                        {Decimal(u["price_level"]): Decimal(u["new_quantity"]) for u in levels
                         if u["side"] == "offer"})
        else:
            async def load_snapshots() -> None:
                for text in snapshots:
                    await handler(text, conn, 0.0)

            loop.run_until_complete(load_snapshots())

        async def run_all() -> None:
            for i, payload in enumerate(updates):
                await handler(payload, conn, float(i))

        def run() -> None:
            loop.run_until_complete(run_all())

        def books() -> Books:
            loop.close()
            out: Books = {}
            for symbol, book in feed._l2_book.items():
                bids, asks = book.book.bids.to_dict(), book.book.asks.to_dict()
                out[ours.get(symbol, symbol)] = (
                    sorted(((float(p), float(q)) for p, q in bids.items()), reverse=True),
                    sorted((float(p), float(q)) for p, q in asks.items()),
                )
            return out

        note = "checksum_validation" if venue in _CHECKSUMS else ""
        return Pass(run, books, lambda: ("", note))

    return Contender(f"cryptofeed {version}", setup)


# -- runs and results ------------------------------------------------------------


@dataclass
class PeerResult:
    """One contender on one venue: median µs per message and ratio to dragonfly, or why it was skipped."""

    name: str
    us_per_msg: float = float("nan")
    note: str = ""
    venue: str = "binance"
    frames: int = 0  #: update frames timed per pass
    #: Per-round ratio of this contender's time to dragonfly's: (median, min, max); None for dragonfly.
    ratio: tuple[float, float, float] | None = None
    #: False: its final books differed from dragonfly's, or its pass failed (see ``note``).
    ok: bool = True
    passes: int = 1  #: passes over the frames per round (see :data:`ROUND_FRAMES`)


def _level(side: BookSide, i: int) -> str:
    return str(side[i]) if i < len(side) else "none"


def compare(ours: Books, theirs: Books, depth: int | None, name: str) -> list[str]:
    """Where ``theirs`` differs from dragonfly's books over the best ``depth`` levels a side (None: all).

    One line per differing symbol, naming the first level that differs.
    """
    lines = []
    for symbol in sorted(set(ours) | set(theirs)):
        if symbol not in ours or symbol not in theirs:
            lines.append(f"{symbol}: only in {'dragonfly' if symbol in ours else name}'s books")
            continue
        for side, a, b in zip(("bids", "asks"), ours[symbol], theirs[symbol], strict=True):
            a, b = a[:depth], b[:depth]
            if a != b:
                same = (x == y for x, y in zip(a, b, strict=False))
                i = next((k for k, ok in enumerate(same) if not ok), min(len(a), len(b)))
                lines.append(f"{symbol} {side} level {i}: dragonfly {_level(a, i)}, {name} {_level(b, i)} "
                             f"({len(a)} and {len(b)} levels)")
                break
    return lines


#: A round times at least this many update frames per contender: a venue with fewer (Binance,
#: OKX, Bitstamp) runs several passes per round, each on a fresh book, so a round lasts
#: milliseconds rather than a fraction of one.
ROUND_FRAMES = 2000


def passes_per_round(n: int) -> int:
    """Passes of ``n`` update frames in one round (see :data:`ROUND_FRAMES`)."""
    return max(1, math.ceil(ROUND_FRAMES / max(n, 1)))


@dataclass
class _Tally:
    """One contender's ns per round, and what its passes said."""

    ns: list[int] = field(default_factory=list)
    failure: str = ""
    note: str = ""


def _run_pass(contender: Contender, tally: _Tally) -> tuple[int, Books]:
    prepared = contender.setup()
    t0 = time.perf_counter_ns()
    prepared.run()
    elapsed = time.perf_counter_ns() - t0
    books = prepared.books()
    problem, tally.note = prepared.check()
    tally.failure = tally.failure or problem
    return elapsed, books


def _interleaved(contenders: Sequence[Contender], rounds: int, passes: int, depth: int | None
                 ) -> list[_Tally]:
    """Run the contenders in turns, after one untimed warm-up pass each; compare their books.

    Round ``r`` runs them in order, and round ``r + 1`` in reverse, so none
    always follows the same one; each runs ``passes`` passes in its turn. The
    final books of each contender's last pass in a round (and of the warm-up)
    are compared with dragonfly's of the same round (contender 0) over the
    best ``depth`` levels a side.
    """
    tallies = [_Tally() for _ in contenders]
    for r in range(-1, rounds):
        order = list(range(len(contenders)))
        if r % 2:
            order.reverse()
        books: dict[int, Books] = {}
        for i in order:
            total = 0
            for _ in range(1 if r < 0 else passes):
                elapsed, books[i] = _run_pass(contenders[i], tallies[i])
                total += elapsed
            if r >= 0:
                tallies[i].ns.append(total)
        for i in range(1, len(contenders)):
            if not tallies[i].failure:
                diff = compare(books[0], books[i], depth, contenders[i].name)
                if diff:
                    tallies[i].failure = (f"FINAL BOOKS DIFFER from dragonfly's ({len(diff)} symbols): "
                                          + "; ".join(diff))
    return tallies


def run_venue(frames: VenueFrames, rounds: int, contenders: Sequence[Contender] | None = None
              ) -> list[PeerResult]:
    """Time dragonfly, cryptofeed (and the naive baseline on Binance) on one venue's frames.

    ``contenders`` replaces that line-up (dragonfly's first: the others are
    compared with it); a skipped cryptofeed gets a row saying why.
    """
    venue, n = frames.venue, len(frames.updates)
    skipped: list[PeerResult] = []
    if contenders is None:
        contenders = [dragonfly(frames)]
        peer = cryptofeed(frames)
        if isinstance(peer, str):
            skipped.append(PeerResult("cryptofeed", note=peer, venue=venue))
        else:
            contenders.append(peer)
        if venue == "binance":
            contenders.append(naive(frames))
    if not n:
        return [PeerResult(c.name, venue=venue, note="no update frames", ok=False) for c in contenders]
    truncate = channel_for(frames).truncate
    passes = passes_per_round(n)
    tallies = _interleaved(contenders, rounds, passes, truncate)
    equal = f"final books equal ({f'top {truncate}' if truncate else 'all levels'})"
    ours = tallies[0]
    results = []
    for i, (contender, tally) in enumerate(zip(contenders, tallies, strict=True)):
        ratios = [x / b for x, b in zip(tally.ns, ours.ns, strict=True)]
        if tally.failure:
            note = tally.failure
        elif i and ours.failure:  # dragonfly's own books are not exact: nothing compares against them
            note = f"not compared: {ours.failure}"
        else:
            note = "; ".join(x for x in (tally.note, equal if i else "") if x)
        results.append(PeerResult(
            contender.name, statistics.median(tally.ns) / (n * passes) / 1e3, note, venue, n,
            (statistics.median(ratios), min(ratios), max(ratios)) if i else None,
            not (tally.failure or ours.failure), passes,
        ))
    return results[:1] + skipped + results[1:]


def run_peers(runs: int = 30, directory: Path | None = None, venues: Sequence[str] = VENUES
              ) -> tuple[list[PeerResult], int]:
    """Benchmark every venue (``runs`` interleaved rounds each); return the rows and the frames timed.

    A venue whose recordings are missing gets one row saying so; a venue
    whose run raised (a cryptofeed ``BadChecksum``, say) one failed row.
    """
    directory = directory or recordings_dir()
    if not directory.is_dir():
        note = f"recordings not found in {directory}: section skipped"
        return [PeerResult("peers", note=note, venue="-")], 0
    results: list[PeerResult] = []
    total = 0
    for venue in venues:
        try:
            frames = load_venue(venue, directory)
        except MissingRecordingError as exc:
            results.append(PeerResult("-", venue=venue, note=f"{exc}: skipped"))
            continue
        try:
            rows = run_venue(frames, runs)
        except Exception as exc:  # reported as a failed row, not hidden in a traceback mid-report
            rows = [PeerResult("-", venue=venue, note=f"FAILED: {type(exc).__name__}: {exc}", ok=False)]
        total += len(frames.updates)
        results += rows
    return results, total


def failures(results: Sequence[PeerResult]) -> list[str]:
    """One ``FAIL`` line per failed row (empty: every comparison held)."""
    return [f"FAIL {r.venue} {r.name}: {r.note}" for r in results if not r.ok]


def _f(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table_rows(results: Sequence[PeerResult]) -> list[list[str]]:
    """Rows of venue, frames (x passes a turn), implementation, µs/msg, ratio to dragonfly, note."""
    rows = []
    for r in results:
        if r.ratio is not None:
            ratio = f"{r.ratio[0]:.2f} [{r.ratio[1]:.2f}..{r.ratio[2]:.2f}]"
        else:
            ratio = "1.00" if r.name == "dragonfly" and not math.isnan(r.us_per_msg) else "-"
        frames = "-" if not r.frames else f"{r.frames} x{r.passes}" if r.passes > 1 else str(r.frames)
        rows.append([r.venue, frames, r.name, _f(r.us_per_msg, 1), ratio, r.note])
    return rows


#: Column names of :func:`table_rows`.
TABLE_HEAD = ("venue", "frames", "implementation", "µs/msg", "x dragonfly: median [min..max]", "note")


def caption(rounds: int | None = None) -> list[str]:
    """What ran and how the frames were fed: the lines under the table."""
    version = cryptofeed_version()
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version is None:
        lines = [f"cryptofeed is not installed in this Python {py}: only dragonfly ran."]
    else:
        why = CRYPTOFEED_WHY if (version, py) == ("2.4.1", "3.11") else f"the one installed in Python {py}"
        lines = [f"cryptofeed {version} ran: {why}."]
    count = f"{rounds} interleaved rounds" if rounds is not None else "Interleaved rounds"
    lines.append(f"{count} per venue (frames x N: N passes a turn), after a warm-up pass; snapshots untimed, "
                 "update frames timed; x dragonfly: its time / dragonfly's, per round.")
    lines += [f"{venue}: {note}" for venue, note in VENUE_NOTES.items()]
    return lines


def text_table(rows: Sequence[Sequence[str]], head: Sequence[str] = TABLE_HEAD) -> str:
    """Rows as aligned text columns (the last column unpadded)."""
    cells = [list(head), *map(list, rows)]
    widths = [max(len(row[c]) for row in cells) for c in range(len(head) - 1)]
    padded = ([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]] for row in cells)
    return "\n".join("  ".join(row).rstrip() for row in padded)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latency.peers``: print the table; exit 1 if any final books differed."""
    parser = argparse.ArgumentParser(prog="python -m latency.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds per venue (default 11)")
    parser.add_argument("--venues", default=",".join(VENUES),
                        help=f"comma-separated venues (default {','.join(VENUES)})")
    parser.add_argument("--dir", type=Path, default=None, help="the recordings (default: the shared ones)")
    args = parser.parse_args(argv)
    venues = [v.strip().lower() for v in args.venues.split(",") if v.strip()]
    unknown = [v for v in venues if v not in VENUES]
    if unknown or args.rounds < 1:
        parser.error(f"unknown venue(s) {', '.join(unknown)}" if unknown else "--rounds must be >= 1")
    results, total = run_peers(args.rounds, args.dir, venues)
    print(f"per-message diff processing, every venue ({total} recorded update frames)")
    print(text_table(table_rows(results)))
    print()
    print("\n".join(caption(args.rounds)))
    failed = failures(results)
    if failed:
        print()
        print("\n".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
