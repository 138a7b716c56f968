"""Bybit replay: the retired ``orderBookL2_25`` topics served as v5 ``orderbook.50``.

Recorded (retired): ``wss://stream.bybit.com/realtime`` (inverse) and
``/realtime_public`` (USDT perpetuals), ``subscribe`` to
``orderBookL2_25.<SYM>``; a snapshot, then deltas with ``delete`` /
``update`` / ``insert`` entries ``{"price","symbol","id","side","size"}``
keyed by level ``id``. The two endpoints differ in shape: ``/realtime``
puts the snapshot levels straight in ``data`` and numbers (ids, sequence,
time) as JSON numbers; ``/realtime_public`` nests them in
``data.order_book`` and quotes ids, sequence and time. Sizes are JSON
numbers in both. Trades and the recorded acks are not replayed.

Translation, one v5 message per recorded book message:
``{"topic":"orderbook.50.<SYM>","type":"snapshot"|"delta","ts":T,"data":{"s":SYM,"b":[[p,s]],"a":[[p,s]],"u":U,"seq":Q},"cts":T}``

* ``Buy`` levels -> ``b``, ``Sell`` -> ``a``; a snapshot's bids best (highest)
  first, asks lowest first; a delta lists its levels in recorded order
  (delete, update, insert), one per price, the last operation winning;
* ``delete`` -> size ``"0"``; ``update`` / ``insert`` -> the new size;
  entries without a price take it from an id -> price map kept per symbol;
* prices are the recorded strings; sizes the recorded number's JSON text
  (``13.329999`` stays ``"13.329999"``);
* ``u`` is 1 for the snapshot and +1 per delta message of the symbol;
  ``seq`` is the recorded ``cross_seq``; ``ts`` and ``cts`` are the recorded
  ``timestamp_e6`` in milliseconds (else the receive time);
* deltas recorded before a symbol's first snapshot are dropped (they cannot
  be applied); a later recorded snapshot restarts ``u`` at 1, as a v5
  service restart does.

Served on ``/v5/public/spot`` (also ``/linear``, ``/inverse``):
``{"op":"subscribe"|"unsubscribe","args":["orderbook.50.<SYM>"],"req_id":..}``
-> ``{"success":true,"ret_msg":"subscribe",..}``; a topic that is not a
recorded symbol at depth 50 -> ``"success":false,"ret_msg":"Invalid symbol
:[<topic>]"`` and nothing subscribed; ``{"op":"ping"}`` -> pong.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.protocols import bybit
from dragonfly.sim.protocols.bybit import topic
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    compact,
    loads,
)

OLD_TOPIC = "orderBookL2_25."
SIDES = {"Buy": "b", "Sell": "a"}


def _text(value: object) -> str | None:
    # Numbers were parsed as their JSON text (parse_int/parse_float=str), strings kept.
    return value if isinstance(value, str) else None


class _Book:
    """What translation keeps per symbol: level prices by id and the next ``u``."""

    def __init__(self) -> None:
        self.prices: dict[str, str] = {}
        self.update_id = 0


class Translator:
    """Turns one connection's recorded book messages into v5 messages, in order."""

    def __init__(self, report: Report) -> None:
        """Report problems (line, reason) to ``report``."""
        self.report = report
        self.books: dict[str, _Book] = {}

    def message(self, message: dict[str, Any], ts: float, line: int) -> Frame | None:
        """Translate one recorded message, or return None if it is not a usable book message."""
        name = message.get("topic")
        if not isinstance(name, str) or not name.startswith(OLD_TOPIC):
            return None
        symbol = name[len(OLD_TOPIC):]
        kind = message.get("type")
        data = message.get("data")
        if kind == "snapshot":
            levels = data.get("order_book") if isinstance(data, dict) else data
            if not isinstance(levels, list):
                self.report(line, f"{name}: snapshot without levels")
                return None
            book = self.books[symbol] = _Book()
            bids, asks = self._snapshot(book, levels, line)
        elif kind == "delta":
            book_or_none = self.books.get(symbol)
            if book_or_none is None or not isinstance(data, dict):
                return None  # before the first snapshot: cannot be applied
            book = book_or_none
            bids, asks = self._delta(book, data, line)
        else:
            return None
        book.update_id += 1
        stamp = _text(message.get("timestamp_e6"))
        ms = int(stamp) // 1000 if stamp is not None and stamp.isdigit() else int(ts * 1000)
        seq_text = _text(message.get("cross_seq"))
        seq = int(seq_text) if seq_text is not None and seq_text.lstrip("-").isdigit() else 0
        body = {"topic": topic(symbol), "type": kind, "ts": ms,
                "data": {"s": symbol, "b": bids, "a": asks, "u": book.update_id, "seq": seq},
                "cts": ms}
        return Frame(ts, symbol, compact(body))

    def _level(self, book: _Book, entry: object, line: int, deleted: bool
               ) -> tuple[str, str, str] | None:
        """Return (side key, price, size) of one recorded entry, updating the id map."""
        if not isinstance(entry, dict):
            return None
        side_name = entry.get("side")
        side = SIDES.get(side_name) if isinstance(side_name, str) else None
        level_id = _text(entry.get("id"))
        price = _text(entry.get("price"))
        if price is None and level_id is not None:
            price = book.prices.get(level_id)
        if side is None or price is None:
            self.report(line, f"book entry without a known side or price: {entry}")
            return None
        if deleted:
            if level_id is not None:
                book.prices.pop(level_id, None)
            return side, price, "0"
        size = _text(entry.get("size"))
        if size is None:
            self.report(line, f"book entry without a size: {entry}")
            return None
        if level_id is not None:
            book.prices[level_id] = price
        return side, price, size

    def _snapshot(self, book: _Book, levels: list[Any], line: int
                  ) -> tuple[list[list[str]], list[list[str]]]:
        sides: dict[str, dict[str, str]] = {"b": {}, "a": {}}
        for entry in levels:
            level = self._level(book, entry, line, deleted=False)
            if level is not None:
                sides[level[0]][level[1]] = level[2]
        bids = sorted(sides["b"].items(), key=lambda pq: float(pq[0]), reverse=True)
        asks = sorted(sides["a"].items(), key=lambda pq: float(pq[0]))
        return [[p, s] for p, s in bids], [[p, s] for p, s in asks]

    def _delta(self, book: _Book, data: dict[str, Any], line: int
               ) -> tuple[list[list[str]], list[list[str]]]:
        sides: dict[str, dict[str, str]] = {"b": {}, "a": {}}
        for op in ("delete", "update", "insert"):
            for entry in data.get(op) or ():
                level = self._level(book, entry, line, deleted=op == "delete")
                if level is not None:
                    changed = sides[level[0]]
                    changed.pop(level[1], None)  # last operation wins, in its place
                    changed[level[1]] = level[2]
        return [[p, s] for p, s in sides["b"].items()], [[p, s] for p, s in sides["a"].items()]


def translate(records: Sequence[Record], report: Report) -> Track:
    """Translate the recorded order book messages; list the symbols subscribed."""
    symbols: dict[str, None] = {}
    frames: list[Frame] = []
    translator = Translator(report)
    for record in records:
        if isinstance(record, Sent):
            request = loads(record.payload, report, record.line)
            if isinstance(request, dict) and request.get("op") == "subscribe":
                for arg in request.get("args") or ():
                    if isinstance(arg, str) and arg.startswith(OLD_TOPIC):
                        symbols[arg[len(OLD_TOPIC):]] = None
        elif isinstance(record, Received) and b'"orderBookL2_25.' in record.payload:
            try:
                message = json.loads(record.payload, parse_float=str, parse_int=str)
            except ValueError as exc:
                report(record.line, f"not JSON: {exc}")
                continue
            frame = translator.message(message, record.ts, record.line) if isinstance(message, dict) else None
            if frame is not None:
                symbols.setdefault(frame.symbol, None)
                frames.append(frame)
    return Track(frames, list(symbols))


class BybitSession(ReplaySession):
    """A v5 client: its connection id."""

    def __init__(self, conn: ReplayConnection) -> None:
        """Bind to ``conn``."""
        super().__init__(conn)
        self.conn_id = str(uuid.uuid4())


class BybitReplay(ReplayConnection):
    """A recorded Bybit connection, served as v5 public."""

    venue = "bybit"
    # ``u`` grows by one per delta of a symbol.
    capabilities = Capabilities("bybit", sequenced=True)
    ws_path = "/v5/public/spot"

    translate = staticmethod(translate)

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Accept the v5 public spot, linear and inverse endpoints."""
        if path.rstrip("/") in bybit.PATHS:
            return BybitSession(self)
        return None

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer ping and (un)subscribe requests (:func:`dragonfly.sim.protocols.bybit.answer`)."""
        assert isinstance(session, BybitSession)

        def on_symbol(op: str, symbol: str) -> None:
            if op == "subscribe":
                self.subscribe(session, symbol)
            else:
                self.unsubscribe(session, symbol)

        session.send(bybit.answer(payload, session.conn_id, self.knows, on_symbol))
