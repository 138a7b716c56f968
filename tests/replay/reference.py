"""Independent reference order books rebuilt from raw recorded venue traffic.

This module is the oracle the project's venue adapters are checked against, so it
deliberately imports nothing from ``dragonfly`` and uses only the standard library.
It favours clarity over speed: prices are keyed by ``Decimal``, and every level keeps
the venue's own price and amount strings exactly as last received.

Recording format (see the recordings' README.md):

* ``VENUE.ws.N.0`` -- one WebSocket connection per file::

      URL <-> ts          connection opened
      URL <- ts: {...}    frame the client sent
      ts: {...}           frame the client received

* ``VENUE.http.N.0`` -- REST responses, ``URL -> ts: body``.

All timestamps are the capturing client's receive times, so merging the files of a
venue by timestamp (keeping each file's own order) reproduces the order in which a
client saw WebSocket frames and REST snapshots.

Stats, per venue (:class:`RefStats`):

* ``messages`` -- order-book messages seen: WebSocket book frames plus REST snapshots;
* ``applied`` -- of those, how many changed a book (snapshots used, updates applied);
* ``gaps`` -- sequence breaks detected (the book is dropped until a new snapshot);
* ``resyncs`` -- books (re)built from a snapshot after a gap, a bad checksum, or while a
  book for that symbol already existed;
* ``checksums_ok`` / ``checksums_bad`` -- venue checksums verified (Kraken, OKX).

A book that is invalid at the end of the recording (gap or bad checksum with no later
snapshot) is left out of the result, as is a symbol that never got a snapshot.
"""

from __future__ import annotations

import bisect
import heapq
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")

Level = tuple[str, str]


# --------------------------------------------------------------------------- public API


def recordings_dir() -> Path | None:
    """The recordings directory: ``$DRAGONFLY_RECORDINGS``, else ``../shared/recordings``."""
    candidates: list[Path] = []
    env = os.environ.get("DRAGONFLY_RECORDINGS")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "recordings")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class RefBook:
    """A final book: full depth the rules leave, best first, venue strings as received."""

    venue: str
    symbol: str
    bids: list[Level]
    asks: list[Level]


@dataclass
class RefStats:
    """Counters of one venue's replay (see the module docstring)."""

    messages: int = 0
    applied: int = 0
    gaps: int = 0
    resyncs: int = 0
    checksums_ok: int = 0
    checksums_bad: int = 0


def reference_books(directory: Path, venue: str) -> tuple[dict[str, RefBook], RefStats]:
    """Replay every recording of ``venue`` in ``directory``; return final books and stats."""
    replays: dict[str, Callable[[Path], _Replay]] = {
        "binance": _replay_binance,
        "bitstamp": _replay_bitstamp,
        "kraken": _replay_kraken,
        "okx": _replay_okx,
        "coinbase": _replay_coinbase,
        "bybit": _replay_bybit,
    }
    if venue not in replays:
        raise ValueError(f"unknown venue {venue!r}; expected one of {VENUES}")
    replay = replays[venue](Path(directory))
    books = {
        symbol: RefBook(venue, symbol, book.bids.levels(), book.asks.levels())
        for symbol, book in sorted(replay.books.items())
        if book is not None
    }
    return books, replay.stats


def kraken_checksum(bids: list[Level], asks: list[Level]) -> int:
    """Kraken WS v1 book checksum of best-first levels, as an unsigned CRC32.

    Source: docs.kraken.com "Spot Websockets (v1) Book Checksum": top 10 asks sorted
    low to high, then top 10 bids sorted high to low; for each level the price with
    "." removed and leading zeros stripped, then the volume formatted the same way,
    all concatenated; CRC32 of that string compared as an unsigned 32-bit integer.
    """

    def fmt(text: str) -> str:
        return text.replace(".", "").lstrip("0")

    text = "".join(fmt(price) + fmt(volume) for price, volume in asks[:10] + bids[:10])
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def okx_checksum(bids: list[Level], asks: list[Level]) -> int:
    """OKX v5 order book checksum of best-first levels, as a signed 32-bit CRC32.

    Source: OKX v5 API docs, WebSocket "Order book channel" -> "Checksum": take the
    best 25 bids and asks; for i in 0..24 append "bidPx:bidSz" if bid i exists, then
    "askPx:askSz" if ask i exists; join with ":"; CRC32 interpreted as a signed int32.
    """
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    value = zlib.crc32(":".join(parts).encode()) & 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


# ------------------------------------------------------------------------ book structure


class _Side:
    """One side of a book: Decimal price -> (price string, amount string)."""

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self._levels: dict[Decimal, Level] = {}
        self._prices: list[Decimal] = []  # ascending

    def __len__(self) -> int:
        return len(self._levels)

    def set(self, price: str, amount: str) -> None:
        """Set a level to an absolute amount; a zero amount removes the level."""
        key = Decimal(price)
        if Decimal(amount) == 0:
            self.delete(key)
            return
        if key not in self._levels:
            bisect.insort(self._prices, key)
        self._levels[key] = (price, amount)

    def delete(self, key: Decimal) -> None:
        """Remove a level if present (removing an unknown level is not an error)."""
        if self._levels.pop(key, None) is not None:
            del self._prices[bisect.bisect_left(self._prices, key)]

    def best(self, n: int) -> list[Level]:
        """The best ``n`` levels, best first."""
        keys = self._prices[::-1][:n] if self.descending else self._prices[:n]
        return [self._levels[k] for k in keys]

    def truncate(self, depth: int) -> None:
        """Drop the worst levels beyond ``depth``."""
        while len(self._prices) > depth:
            worst = self._prices.pop(0 if self.descending else -1)
            del self._levels[worst]

    def levels(self) -> list[Level]:
        """All levels, best first."""
        return self.best(len(self._prices))


class _Book:
    """Bids (best = highest) and asks (best = lowest)."""

    def __init__(self) -> None:
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)

    @classmethod
    def from_levels(cls, bids: Iterable[Any], asks: Iterable[Any]) -> _Book:
        """A book from ``[price, amount, ...]`` rows (extra fields ignored)."""
        book = cls()
        for row in bids:
            book.bids.set(row[0], row[1])
        for row in asks:
            book.asks.set(row[0], row[1])
        return book


@dataclass
class _Replay:
    """Result of one venue replay: ``None`` marks a symbol whose book is invalid."""

    books: dict[str, _Book | None] = field(default_factory=dict)
    stats: RefStats = field(default_factory=RefStats)


# -------------------------------------------------------------------- recording reader


@dataclass(frozen=True)
class _Line:
    """One recorded line: ``kind`` is "open", "sent", "recv" or "http"."""

    ts: float
    kind: str
    url: str
    body: str
    source: str


def _read_file(path: Path) -> Iterator[_Line]:
    """Lines of one recording file; received frames carry their connection's URL."""
    url = ""
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if not line.strip():
                continue  # the recordings end with an empty line
            if line[0].isdigit():
                ts, _, body = line.partition(": ")
                yield _Line(float(ts), "recv", url, body, path.name)
                continue
            target, _, rest = line.partition(" ")
            arrow, _, rest = rest.partition(" ")
            if arrow == "<->":
                url = target
                yield _Line(float(rest), "open", target, "", path.name)
            else:
                ts, _, body = rest.partition(": ")
                kind = {"<-": "sent", "->": "http"}[arrow]
                yield _Line(float(ts), kind, target, body, path.name)


def _timeline(directory: Path, venue: str, http: bool = False) -> Iterator[_Line]:
    """All WebSocket (and optionally REST) lines of a venue, merged by receive time.

    heapq.merge keeps each file's own order, which is the order the client saw.
    """
    prefix = venue.upper()
    files = sorted(directory.glob(f"{prefix}.ws.*"))
    if http:
        files += sorted(directory.glob(f"{prefix}.http.*"))
    return heapq.merge(*(_read_file(f) for f in files), key=lambda line: line.ts)


def _received(lines: Iterable[_Line], **loads: Any) -> Iterator[tuple[_Line, Any]]:
    """Received frames, decoded."""
    for line in lines:
        if line.kind == "recv":
            yield line, json.loads(line.body, **loads)


# ------------------------------------------------------------------------------ Binance


@dataclass
class _BinanceSymbol:
    """Sync state of one Binance symbol."""

    book: _Book | None = None
    snapshot_id: int = 0  # lastUpdateId of the snapshot in use
    last_u: int = 0  # u of the last applied event
    bridged: bool = False  # has the first event after the snapshot been applied?
    pending: list[dict[str, Any]] = field(default_factory=list)  # buffered while unsynced
    ever_synced: bool = False


def _replay_binance(directory: Path) -> _Replay:
    """Binance spot diff depth stream + REST snapshots.

    Source: Binance Spot API docs, "How to manage a local order book correctly"
    (web-socket-streams.md, 2021 wording):

    1. open the ``<symbol>@depth`` stream and buffer the events;
    2. get a snapshot from ``/api/v3/depth?symbol=X&limit=1000``;
    3. drop any event where ``u <= lastUpdateId`` of the snapshot;
    4. the first processed event must have ``U <= lastUpdateId+1 AND u >= lastUpdateId+1``;
    5. each new event's ``U`` must equal the previous event's ``u + 1``;
    6. event quantities are absolute; quantity 0 removes the level (removing a level
       that is not in the book is normal).

    Recording specifics: a snapshot becomes available at its REST line's receive time;
    events received before it are buffered. A failed bridge (4) or a broken chain (5) is
    a gap: the book is dropped and events are buffered again until the next recorded
    snapshot of that symbol (a resync). A snapshot arriving while a book is valid is
    not needed and is ignored. No truncation: the REST snapshot is capped at 1000
    levels, and diffs may add levels beyond its window.
    """
    replay = _Replay()
    stats = replay.stats
    symbols: dict[str, _BinanceSymbol] = {}

    def invalidate(state: _BinanceSymbol, event: dict[str, Any]) -> None:
        stats.gaps += 1
        state.book = None
        state.pending = [event]

    def on_event(state: _BinanceSymbol, event: dict[str, Any]) -> None:
        first, final = int(event["U"]), int(event["u"])
        if state.book is None:
            state.pending.append(event)
            return
        if final <= state.snapshot_id:
            return  # rule 3: already contained in the snapshot
        if not state.bridged:
            if not first <= state.snapshot_id + 1 <= final:
                invalidate(state, event)  # rule 4 fails: events missing after the snapshot
                return
            state.bridged = True
        elif first != state.last_u + 1:
            invalidate(state, event)  # rule 5 fails
            return
        for price, amount in event["b"]:
            state.book.bids.set(price, amount)
        for price, amount in event["a"]:
            state.book.asks.set(price, amount)
        state.last_u = final
        stats.applied += 1

    def on_snapshot(state: _BinanceSymbol, body: dict[str, Any]) -> None:
        if state.book is not None:
            return
        if state.ever_synced:
            stats.resyncs += 1
        state.ever_synced = True
        state.book = _Book.from_levels(body["bids"], body["asks"])
        state.snapshot_id = int(body["lastUpdateId"])
        state.bridged = False
        stats.applied += 1
        pending, state.pending = state.pending, []
        for event in pending:
            on_event(state, event)

    for line in _timeline(directory, "binance", http=True):
        if line.kind == "http":
            parts = urlsplit(line.url)
            if not parts.path.endswith("/depth"):
                continue
            body = json.loads(line.body)
            if not isinstance(body, dict) or "lastUpdateId" not in body:
                continue  # an error response
            symbol = parse_qs(parts.query)["symbol"][0]
            stats.messages += 1
            on_snapshot(symbols.setdefault(symbol, _BinanceSymbol()), body)
        elif line.kind == "recv":
            msg = json.loads(line.body)
            data = msg.get("data", msg) if isinstance(msg, dict) else None  # combined or raw
            if not isinstance(data, dict) or data.get("e") != "depthUpdate":
                continue  # bookTicker, kline, aggTrade, subscription replies
            stats.messages += 1
            on_event(symbols.setdefault(data["s"], _BinanceSymbol()), data)

    replay.books = {symbol: state.book for symbol, state in symbols.items()}
    return replay


# ----------------------------------------------------------------------------- Bitstamp


@dataclass
class _BitstampPair:
    """Sync state of one Bitstamp pair."""

    book: _Book | None = None
    snapshot_mt: int = 0  # microtimestamp of the REST snapshot
    pending: list[dict[str, Any]] = field(default_factory=list)


def _replay_bitstamp(directory: Path) -> _Replay:
    """Bitstamp ``diff_order_book_<pair>`` + REST ``/api/v2/order_book/<pair>``.

    Sources: Bitstamp WebSocket API v2 (www.bitstamp.net/websocket/v2/): the
    ``diff_order_book`` channel carries changed levels with ``timestamp`` and
    ``microtimestamp``; REST ``/api/v2/order_book/<pair>`` returns the book with its
    ``microtimestamp``. Bitstamp documents no sequence numbers, so the rule is: seed
    from the snapshot and apply only diffs whose ``microtimestamp`` is greater than
    the snapshot's; amounts are absolute and 0 removes the level. Gaps cannot be
    detected. Diffs received before the snapshot's receive time are buffered.

    Recording note: the client fetched all ten snapshots before it read any diff
    frame, so every diff is received after every snapshot; the diffs' own
    microtimestamps decide which are already in the snapshot.
    """
    replay = _Replay()
    stats = replay.stats
    pairs: dict[str, _BitstampPair] = {}

    def on_diff(state: _BitstampPair, data: dict[str, Any]) -> None:
        if state.book is None:
            state.pending.append(data)
            return
        if int(data["microtimestamp"]) <= state.snapshot_mt:
            return  # already reflected in the snapshot
        for row in data["bids"]:
            state.book.bids.set(row[0], row[1])
        for row in data["asks"]:
            state.book.asks.set(row[0], row[1])
        stats.applied += 1

    for line in _timeline(directory, "bitstamp", http=True):
        if line.kind == "http":
            path = urlsplit(line.url).path.rstrip("/")
            if "/order_book/" not in path:
                continue
            body = json.loads(line.body)
            if not isinstance(body, dict) or "microtimestamp" not in body:
                continue
            state = pairs.setdefault(path.rsplit("/", 1)[1], _BitstampPair())
            stats.messages += 1
            if state.book is not None:
                continue  # a valid book needs no second snapshot
            state.book = _Book.from_levels(body["bids"], body["asks"])
            state.snapshot_mt = int(body["microtimestamp"])
            stats.applied += 1
            pending, state.pending = state.pending, []
            for data in pending:
                on_diff(state, data)
        elif line.kind == "recv":
            msg = json.loads(line.body)
            channel = msg.get("channel", "") if isinstance(msg, dict) else ""
            if msg.get("event") != "data" or not channel.startswith("diff_order_book_"):
                continue  # trades, subscription acknowledgements
            stats.messages += 1
            on_diff(pairs.setdefault(channel.removeprefix("diff_order_book_"), _BitstampPair()), msg["data"])

    replay.books = {pair: state.book for pair, state in pairs.items()}
    return replay


# ------------------------------------------------------------------------------- Kraken


def _replay_kraken(directory: Path) -> _Replay:
    """Kraken WebSocket v1 ``book`` channel.

    Sources: Kraken WebSockets API v1 docs ("book" channel) and the guide "Spot
    Websockets (v1) Book Checksum" (docs.kraken.com):

    * snapshot ``[channelID, {"as": [...], "bs": [...]}, "book-N", pair]``;
    * update ``[channelID, {"a": [...]}, {"b": [...]}?, "book-N", pair]``, the last dict
      may carry ``"c"``, the CRC32 checksum; levels are ``[price, volume, ts]`` with an
      optional 4th ``"r"`` (republish, applied like any update);
    * apply the levels in the order received; volume 0 deletes the level;
    * after each update, truncate each side to the subscribed depth (no delete is sent
      for levels pushed out of scope);
    * then verify the checksum (:func:`kraken_checksum`). A mismatch means the local
      book diverged and the documented remedy is to resubscribe, so the book is dropped
      until a new snapshot arrives.

    channelID -> pair/depth comes from ``subscriptionStatus`` events of the same
    connection; the pair element at the end of the frame is the fallback.
    """
    replay = _Replay()
    stats = replay.stats
    channels: dict[tuple[str, int], tuple[str, int]] = {}  # (file, chanId) -> (pair, depth)

    for line, msg in _received(_timeline(directory, "kraken")):
        if isinstance(msg, dict):
            if msg.get("event") == "subscriptionStatus" and msg.get("status") == "subscribed":
                subscription = msg.get("subscription", {})
                if subscription.get("name") == "book":
                    depth = int(subscription.get("depth", 10))  # Kraken's default depth is 10
                    channels[(line.source, int(msg["channelID"]))] = (msg["pair"], depth)
            continue
        if not isinstance(msg, list) or len(msg) < 4 or not str(msg[-2]).startswith("book"):
            continue
        pair, depth = channels.get((line.source, int(msg[0])), (msg[-1], 0))
        if not depth:
            depth = int(str(msg[-2]).partition("-")[2] or 10)
        stats.messages += 1
        parts = [part for part in msg[1:-2] if isinstance(part, dict)]
        if any("as" in part or "bs" in part for part in parts):
            if pair in replay.books:
                stats.resyncs += 1
            book = _Book()
            for part in parts:
                for row in part.get("as", []):
                    book.asks.set(row[0], row[1])
                for row in part.get("bs", []):
                    book.bids.set(row[0], row[1])
            book.asks.truncate(depth)
            book.bids.truncate(depth)
            replay.books[pair] = book
            stats.applied += 1
            continue
        current = replay.books.get(pair)
        if current is None:
            continue  # no snapshot yet, or invalidated by a bad checksum
        checksum: str | None = None
        for part in parts:
            for row in part.get("a", []):
                current.asks.set(row[0], row[1])
            for row in part.get("b", []):
                current.bids.set(row[0], row[1])
            checksum = part.get("c", checksum)
        current.asks.truncate(depth)
        current.bids.truncate(depth)
        stats.applied += 1
        if checksum is None:
            continue
        if kraken_checksum(current.bids.best(10), current.asks.best(10)) == int(checksum):
            stats.checksums_ok += 1
        else:
            stats.checksums_bad += 1
            replay.books[pair] = None
    return replay


# ---------------------------------------------------------------------------------- OKX


OKX_BOOK_CHANNELS = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})


def _replay_okx(directory: Path) -> _Replay:
    """OKX v5 public ``books`` channel (snapshot + incremental updates).

    Source: OKX v5 API docs, WebSocket public channel "Order book channel":

    * ``action`` "snapshot" seeds the book, "update" changes it; rows are
      ``[price, size, "0", numOrders]``; size is absolute and "0" deletes the level;
    * where ``seqId``/``prevSeqId`` are present, an update's ``prevSeqId`` must equal the
      previous message's ``seqId`` (equal seqId/prevSeqId = no change; after a sequence
      reset seqId may drop below prevSeqId, the chaining rule still holds); otherwise a
      gap: the book is dropped until the next snapshot;
    * after each message, verify ``checksum`` with :func:`okx_checksum` (only when it is
      non-zero: OKX announced that the field will read 0 once deprecated). A mismatch
      means resubscribe: the book is dropped until the next snapshot.

    The recording (2022-05) predates seqId/prevSeqId, so only checksums apply to it.
    """
    replay = _Replay()
    stats = replay.stats
    last_seq: dict[str, int | None] = {}

    for _line, msg in _received(_timeline(directory, "okx")):
        if not isinstance(msg, dict) or "data" not in msg or "action" not in msg:
            continue  # subscribe acknowledgements, other frame kinds
        arg = msg.get("arg", {})
        if arg.get("channel") not in OKX_BOOK_CHANNELS:
            continue  # tickers, trades
        inst = arg["instId"]
        for data in msg["data"]:
            stats.messages += 1
            seq = data.get("seqId")
            if msg["action"] == "snapshot":
                if inst in replay.books:
                    stats.resyncs += 1
                book = _Book.from_levels(data["bids"], data["asks"])
                replay.books[inst] = book
            else:
                current = replay.books.get(inst)
                if current is None:
                    continue  # no snapshot yet, or invalidated
                prev = data.get("prevSeqId")
                expected = last_seq.get(inst)
                if prev is not None and expected is not None and int(prev) != expected:
                    stats.gaps += 1
                    replay.books[inst] = None
                    continue
                for row in data["bids"]:
                    current.bids.set(row[0], row[1])
                for row in data["asks"]:
                    current.asks.set(row[0], row[1])
                book = current
            last_seq[inst] = int(seq) if seq is not None else None
            stats.applied += 1
            checksum = int(data.get("checksum") or 0)
            if checksum == 0:
                continue
            if okx_checksum(book.bids.best(25), book.asks.best(25)) == checksum:
                stats.checksums_ok += 1
            else:
                stats.checksums_bad += 1
                replay.books[inst] = None
    return replay


# ----------------------------------------------------------------------------- Coinbase


def _replay_coinbase(directory: Path) -> _Replay:
    """Coinbase (old Pro feed, retired) ``level2`` channel.

    Source: Coinbase Pro WebSocket feed docs, "The level2 channel": a ``snapshot``
    message (``bids``/``asks`` as ``[price, size]``) then ``l2update`` messages whose
    ``changes`` are ``[side, price, size]``; side "buy" is a bid, "sell" an ask; size is
    the new absolute size at that price, and a size of zero (sent as "0", "0.00",
    "0.00000000", ...) removes the level. The channel has no sequence numbers, so gaps
    cannot be detected. Updates before a product's snapshot are ignored.
    """
    replay = _Replay()
    stats = replay.stats
    for _line, msg in _received(_timeline(directory, "coinbase")):
        if not isinstance(msg, dict):
            continue
        kind = msg.get("type")
        if kind == "snapshot":
            product = msg["product_id"]
            stats.messages += 1
            if product in replay.books:
                stats.resyncs += 1
            replay.books[product] = _Book.from_levels(msg["bids"], msg["asks"])
            stats.applied += 1
        elif kind == "l2update":
            stats.messages += 1
            book = replay.books.get(msg["product_id"])
            if book is None:
                continue
            for side, price, size in msg["changes"]:
                (book.bids if side == "buy" else book.asks).set(price, size)
            stats.applied += 1
    return replay


# -------------------------------------------------------------------------------- Bybit


def _replay_bybit(directory: Path) -> _Replay:
    """Bybit (retired v2 ``/realtime`` and ``/realtime_public``) ``orderBookL2_25.<SYM>``.

    Source: Bybit API v2 docs (inverse and USDT perpetual), WebSocket
    "orderBookL2_25": a ``snapshot`` then ``delta`` messages with ``delete``, ``update``
    and ``insert`` lists of ``{price, symbol, id, side, size}``; ``id`` identifies the
    price level, side "Buy" is a bid and "Sell" an ask. delete removes the level,
    update/insert set its size (a zero size would remove it).

    Recording specifics: the USDT endpoint's snapshot is ``data.order_book`` (ids as
    strings); the inverse endpoint's snapshot is a plain list ``data`` (ids as ints),
    and its deltas add ``transactTimeE6``. Sizes are JSON numbers (ints, or floats such
    as 89.799995), so frames are decoded with the numbers' literal text kept as the
    level's amount string. Continuity: there is no ``update_id``; ``cross_seq`` is a
    shared matching-engine sequence, increasing per topic but not contiguous (steps of
    1 to 300+, and equal values across different topics), so gaps cannot be detected;
    only monotonicity is checked: a delta whose ``cross_seq`` does not increase counts
    as a gap and drops the book until the next snapshot.
    """
    replay = _Replay()
    stats = replay.stats
    last_seq: dict[str, int] = {}
    id_price: dict[tuple[str, str], str] = {}

    def side_of(book: _Book, entry: dict[str, Any]) -> _Side:
        return book.bids if entry["side"] == "Buy" else book.asks

    def price_of(symbol: str, entry: dict[str, Any]) -> str:
        key = (symbol, str(entry["id"]))
        if "price" in entry:
            id_price[key] = entry["price"]
            return str(entry["price"])
        return id_price[key]

    lines = _timeline(directory, "bybit")
    for _line, msg in _received(lines, parse_float=str, parse_int=str):
        topic = msg.get("topic", "") if isinstance(msg, dict) else ""
        if not topic.startswith("orderBookL2_25."):
            continue  # trades, subscription replies
        symbol = topic.partition(".")[2]
        stats.messages += 1
        seq = int(msg["cross_seq"]) if "cross_seq" in msg else None
        data = msg["data"]
        if msg["type"] == "snapshot":
            if symbol in replay.books:
                stats.resyncs += 1
            book = _Book()
            rows = data["order_book"] if isinstance(data, dict) else data
            for entry in rows:
                side_of(book, entry).set(price_of(symbol, entry), str(entry["size"]))
            replay.books[symbol] = book
        elif msg["type"] == "delta":
            current = replay.books.get(symbol)
            if current is None:
                continue
            if seq is not None and symbol in last_seq and seq <= last_seq[symbol]:
                stats.gaps += 1
                replay.books[symbol] = None
                continue
            for entry in data.get("delete", []):
                side_of(current, entry).delete(Decimal(price_of(symbol, entry)))
            for op in ("update", "insert"):
                for entry in data.get(op, []):
                    side_of(current, entry).set(price_of(symbol, entry), str(entry["size"]))
        else:
            continue
        if seq is not None:
            last_seq[symbol] = seq
        stats.applied += 1
    return replay
