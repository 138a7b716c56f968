"""Where the levels sit in each venue's book frames, so faults can change them in place.

A book frame is parsed into a :class:`BookView`: references to every level's
price and amount inside the parsed JSON, per side, plus whether the frame is a
snapshot and whether it carries a checksum. Changing a level through the view
changes the parsed message; :meth:`BookView.encode` prints it back with the
frame's own separators. One reader per venue frame shape; synthetic and
replayed frames of a venue share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Builds a new level like an existing one: (price, amount) -> level.
Make = Callable[[Any, Any], Any]


@dataclass
class Level:
    """One level inside a parsed frame: the list or object holding it, and its two keys."""

    holder: Any
    price_key: int | str
    amount_key: int | str

    @property
    def price(self) -> Any:
        """Return the price as sent (usually a decimal string)."""
        return self.holder[self.price_key]

    @price.setter
    def price(self, value: Any) -> None:
        self.holder[self.price_key] = value

    @property
    def amount(self) -> Any:
        """Return the amount as sent (usually a decimal string)."""
        return self.holder[self.amount_key]

    @amount.setter
    def amount(self, value: Any) -> None:
        self.holder[self.amount_key] = value


@dataclass
class Side:
    """The levels of one side, best first as sent, and where a new level would go."""

    bid: bool
    levels: list[Level]
    container: list[Any] | None = None  # the JSON list new levels of this side join
    make: Make | None = None


@dataclass
class BookView:
    """A parsed book frame and its levels."""

    root: Any
    symbol: str
    snapshot: bool
    sides: list[Side]  # bids first
    checksummed: bool = False
    spaced: bool = False  # printed with ", " and ": " (synthetic Bitstamp)
    extra: dict[str, Any] = field(default_factory=dict)

    def side(self, bid: bool) -> Side | None:
        """Return the bid or ask side, if the frame has one."""
        return next((s for s in self.sides if s.bid == bid), None)

    def levels(self) -> list[Level]:
        """Return every level, bids first."""
        return [level for side in self.sides for level in side.levels]

    def encode(self) -> bytes:
        """Print the (changed) message back, with the frame's separators."""
        separators = (", ", ": ") if self.spaced else (",", ":")
        return json.dumps(self.root, separators=separators, ensure_ascii=False).encode()


def _pairs(container: object, bid: bool) -> Side:
    """A side kept as ``[[price, amount, ...], ...]``; a new level copies the first one's tail."""
    if not isinstance(container, list):
        return Side(bid, [])
    levels = [Level(lv, 0, 1) for lv in container if isinstance(lv, list) and len(lv) >= 2]
    template = levels[0].holder if levels else ["", ""]

    def make(price: Any, amount: Any) -> Any:
        return [price, amount, *template[2:]]

    return Side(bid, levels, container, make)


def _with_template(sides: list[Side]) -> list[Side]:
    """Let an empty list side build levels like the other side's."""
    tails = [s.levels[0].holder[2:] for s in sides if s.levels]
    for side in sides:
        if not side.levels and side.container is not None and tails:
            tail = list(tails[0])
            side.make = lambda price, amount, tail=tail: [price, amount, *tail]
    return sides


def _binance(obj: Any) -> BookView | None:
    body, symbol = obj, ""
    if isinstance(obj, dict) and "stream" in obj and isinstance(obj.get("data"), dict):
        body, symbol = obj["data"], str(obj["stream"]).split("@")[0]
    if not isinstance(body, dict):
        return None
    if "lastUpdateId" in body:
        bids, asks, snapshot = body.get("bids"), body.get("asks"), True
    elif body.get("e") == "depthUpdate":
        bids, asks, snapshot = body.get("b"), body.get("a"), False
        symbol = str(body.get("s", symbol))
    else:
        return None
    return BookView(obj, symbol.upper(), snapshot, _with_template([_pairs(bids, True), _pairs(asks, False)]))


def _bitstamp(obj: Any) -> BookView | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), dict):
        return None
    channel = str(obj.get("channel", ""))
    kind, _, pair = channel.rpartition("_")
    data = obj["data"]
    if kind not in ("order_book", "diff_order_book"):
        return None
    sides = _with_template([_pairs(data.get("bids"), True), _pairs(data.get("asks"), False)])
    return BookView(obj, pair, kind == "order_book", sides)


def _kraken(obj: Any) -> BookView | None:
    if not (isinstance(obj, list) and len(obj) >= 4 and isinstance(obj[-2], str)
            and obj[-2].startswith("book")):
        return None
    bids: Side | None = None
    asks: Side | None = None
    snapshot = checksummed = False
    for part in obj[1:-2]:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key in ("as", "bs"):
                snapshot = True
            if key in ("a", "as"):
                asks = _pairs(value, False)
            elif key in ("b", "bs"):
                bids = _pairs(value, True)
            elif key == "c":
                checksummed = True
    sides = [bids or Side(True, []), asks or Side(False, [])]
    return BookView(obj, str(obj[-1]), snapshot, _with_template(sides), checksummed)


def _okx(obj: Any) -> BookView | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list) or not obj["data"]:
        return None
    data, arg = obj["data"][0], obj.get("arg")
    if not isinstance(data, dict) or not isinstance(arg, dict):
        return None
    snapshot = obj.get("action") == "snapshot"
    sides = _with_template([_pairs(data.get("bids"), True), _pairs(data.get("asks"), False)])
    return BookView(obj, str(arg.get("instId", "")), snapshot, sides,
                    checksummed=not snapshot and "checksum" in data)


def _coinbase(obj: Any) -> BookView | None:
    events = obj.get("events") if isinstance(obj, dict) else None
    if not isinstance(events, list) or not events or not isinstance(events[0], dict):
        return None
    event = events[0]
    updates = event.get("updates")
    if not isinstance(updates, list):
        return None
    template = next((u for u in updates if isinstance(u, dict)), {})

    def side(name: str) -> Side:
        levels = [Level(u, "price_level", "new_quantity") for u in updates
                  if isinstance(u, dict) and u.get("side") == name]

        def make(price: Any, amount: Any) -> Any:
            return {**template, "side": name, "price_level": price, "new_quantity": amount}

        return Side(name == "bid", levels, updates, make)

    return BookView(obj, str(event.get("product_id", "")), event.get("type") == "snapshot",
                    [side("bid"), side("offer")])


def _bybit(obj: Any) -> BookView | None:
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict) or "b" not in data:
        return None
    sides = _with_template([_pairs(data.get("b"), True), _pairs(data.get("a"), False)])
    return BookView(obj, str(data.get("s", "")), obj.get("type") == "snapshot", sides)


#: The frame reader of each venue.
READERS: dict[str, Callable[[Any], BookView | None]] = {
    "binance": _binance, "bitstamp": _bitstamp, "kraken": _kraken, "okx": _okx,
    "coinbase": _coinbase, "bybit": _bybit,
}


def read_book(venue: str, data: bytes) -> BookView | None:
    """Parse ``data`` as one of ``venue``'s book frames, or return None if it is not one."""
    reader = READERS.get(venue)
    if reader is None:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    view = reader(obj)
    if view is not None:
        view.spaced = b'": ' in data[:200]
    return view
