"""Per-message book processing of real Binance diffs: dragonfly, cryptofeed and a naive baseline.

Input: the ``depthUpdate`` frames of ``BINANCE.ws.1.0`` (combined-stream
format, four symbols) and the REST snapshots of ``BINANCE.http.0.0``, from
``../shared/recordings`` (or ``$DRAGONFLY_RECORDINGS``). Each contender loads
the snapshots, then handles every frame once, in order; only the frames are
timed. A run is repeated (a fresh book each time) and the median taken.

- dragonfly: ``dragonfly.venues.binance.SPEC.diff`` decoder +
  :class:`~dragonfly.core.diff.DiffListener`, fed ``on_frame(payload, recv_ns,
  True)``: decode, sequence check, apply, top 10 of the changed book, forward.
- cryptofeed: its ``Binance.message_handler`` (``json.loads`` with ``Decimal``,
  ``_book``: update-id check, ``Decimal`` levels into its C ``order_book``,
  awaited callbacks), with a callback reading the top 10 of each side.
  Optional: skipped with a note when cryptofeed is not installed.
- naive: ``json.loads``, float dict books, ``sorted`` top 10 on every message.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dragonfly.core.diff import DiffListener
from dragonfly.core.slots import SlotQueue
from dragonfly.core.types import VenueBook
from dragonfly.recording import shared_recordings
from dragonfly.venues import binance

DEPTH = 10


def recordings_dir() -> Path:
    """Where the shared recordings are (a path that may not exist)."""
    return shared_recordings() or Path(__file__).resolve().parents[2] / "shared" / "recordings"


@dataclass
class Recorded:
    """The Binance diff frames and snapshots of the recording."""

    frames: list[bytes]
    snapshots: dict[str, bytes]  #: exchange symbol (``NKNUSDT``) -> REST body
    exchange_info: bytes


def load(directory: Path) -> Recorded:
    """Read the depthUpdate frames, the snapshots and exchangeInfo."""
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
class PeerResult:
    """Median µs per message of one contender, or why it was skipped."""

    name: str
    us_per_msg: float = float("nan")
    note: str = ""


class _NoControl:
    requests = 0

    def request_snapshot(self, symbol: str) -> None:
        self.requests += 1

    def resubscribe(self, symbol: str) -> None:
        self.requests += 1


#: A contender: its name, and a setup that returns one timed pass over the frames.
Setup = Callable[[], Callable[[], None]]


def _interleaved(contenders: list[tuple[str, Setup]], runs: int, n: int) -> list[PeerResult]:
    """Time the contenders in turns, round by round (A B C A B C ...).

    The VM drifts by tens of percent within minutes; alternating puts every
    contender through the same drift, and the ratio to dragonfly is taken per
    round (median of the rounds), not between medians taken minutes apart.
    """
    samples: list[list[float]] = [[] for _ in contenders]
    for _ in range(runs):
        for i, (_, setup) in enumerate(contenders):
            go = setup()
            t0 = time.perf_counter_ns()
            go()
            samples[i].append((time.perf_counter_ns() - t0) / n / 1e3)
    base = samples[0]
    results = []
    for (name, _), own in zip(contenders, samples, strict=True):
        ratio = statistics.median(x / b for x, b in zip(own, base, strict=True))
        note = f"{ratio:.2f}x dragonfly, per-round median" if own is not base else ""
        results.append(PeerResult(name, statistics.median(own), note))
    return results


def bench_dragonfly(rec: Recorded) -> tuple[str, Setup]:
    """dragonfly's Binance diff adapter and DiffListener."""
    channel = binance.SPEC.diff
    assert channel is not None and channel.parse_rest_snapshot is not None
    parse_snap = channel.parse_rest_snapshot
    frames = rec.frames

    def setup() -> Callable[[], None]:
        queue: SlotQueue[VenueBook] = SlotQueue(lambda: None)

        def take() -> None:  # the consumer takes each book and drops it
            queue.drain()

        queue._on_ready = take
        outputs = {s: queue.producer(s) for s in rec.snapshots}
        listener = DiffListener("binance", channel, outputs, DEPTH, _NoControl())
        for symbol, body in rec.snapshots.items():
            listener.on_snapshot(parse_snap(symbol, body))

        def go() -> None:
            on_frame = listener.on_frame
            for i, payload in enumerate(frames):
                on_frame(payload, i, True)

        return go

    return "dragonfly (msgspec + DiffListener)", setup


def bench_naive(rec: Recorded) -> tuple[str, Setup]:
    """json.loads, dict books of floats, sorted top 10 on every message."""
    frames = rec.frames

    def setup() -> Callable[[], None]:
        books: dict[str, tuple[dict[float, float], dict[float, float], list[int]]] = {}
        for symbol, body in rec.snapshots.items():
            snap = json.loads(body)
            books[symbol] = (
                {float(p): float(q) for p, q in snap["bids"]},
                {float(p): float(q) for p, q in snap["asks"]},
                [snap["lastUpdateId"]],
            )

        def go() -> None:
            for payload in frames:
                ev = json.loads(payload)["data"]
                bids, asks, last = books[ev["s"]]
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

        return go

    return "naive (json.loads, dict, sorted)", setup


def bench_cryptofeed(rec: Recorded) -> tuple[str, Setup] | PeerResult:
    """cryptofeed's Binance handler driven directly (no network: symbols and snapshots preloaded)."""
    name = "cryptofeed (Binance.message_handler)"
    try:
        from decimal import Decimal

        from cryptofeed.defines import L2_BOOK
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbols
        from cryptofeed.types import OrderBook
    except ImportError:
        return PeerResult(name, note="cryptofeed not installed (pip install cryptofeed): row skipped")
    syms, info = Binance._parse_symbol_data(json.loads(rec.exchange_info))
    Symbols.set(Binance.id, syms, info)
    std = {v: k for k, v in syms.items()}
    frames = [f.decode() for f in rec.frames]

    async def read_top(book: Any, _receipt: float) -> None:
        b = book.book
        _ = [b.bids.index(i) for i in range(min(DEPTH, len(b.bids)))]
        _ = [b.asks.index(i) for i in range(min(DEPTH, len(b.asks)))]

    def setup() -> Callable[[], None]:
        symbols = [std[s] for s in rec.snapshots]
        feed = Binance(symbols=symbols, channels=[L2_BOOK], callbacks={L2_BOOK: read_top})
        for symbol, body in rec.snapshots.items():
            snap = json.loads(body, parse_float=Decimal)
            pair = std[symbol]
            feed.last_update_id[pair] = snap["lastUpdateId"]
            feed._l2_book[pair] = OrderBook(
                feed.id,
                pair,
                max_depth=feed.max_depth,
                bids={Decimal(p): Decimal(q) for p, q in snap["bids"]},
                asks={Decimal(p): Decimal(q) for p, q in snap["asks"]},
            )

        async def run_all() -> None:
            handler = feed.message_handler
            for i, payload in enumerate(frames):
                await handler(payload, None, float(i))

        loop = asyncio.new_event_loop()

        def go() -> None:
            loop.run_until_complete(run_all())
            loop.close()

        return go

    return name, setup


def run_peers(runs: int = 30, directory: Path | None = None) -> tuple[list[PeerResult], int]:
    """Benchmark every contender; return the results and the number of frames."""
    directory = directory or recordings_dir()
    if not (directory / "BINANCE.ws.1.0").exists():
        return [PeerResult("peers", note=f"recordings not found in {directory}: section skipped")], 0
    rec = load(directory)
    crypto = bench_cryptofeed(rec)
    contenders = [bench_dragonfly(rec)] + ([crypto] if isinstance(crypto, tuple) else []) + [bench_naive(rec)]
    results = _interleaved(contenders, runs, len(rec.frames))
    if isinstance(crypto, PeerResult):  # skipped, with the reason
        results.insert(1, crypto)
    return results, len(rec.frames)
