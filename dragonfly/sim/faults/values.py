"""Value faults: change prices and amounts of a parsed book frame, keeping the rest intact.

Each function takes the fault and a :class:`BookView` and returns True if it
changed the frame (False: this frame does not qualify, e.g. ``zero`` on a
diff). Venues send decimal strings; a changed value keeps the sent type (a
string stays a string) except where the fault is the type itself. Decimal
arithmetic on the strings keeps every unchanged digit exact.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from dragonfly.sim.faults.shapes import BookView, Level
from dragonfly.sim.faults.spec import Fault


def as_decimal(value: Any) -> Decimal | None:
    """Return a sent price or amount as a Decimal, or None if it is not a number."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def is_zero(value: Any) -> bool:
    """Return True for an amount of zero (a removed level in a diff), or an unreadable one."""
    number = as_decimal(value)
    return number is None or number == 0


def bump(value: Any, units: int = 1) -> Any:
    """Add ``units`` steps of the value's last printed decimal (``"0.05"`` -> ``"0.06"``)."""
    number = as_decimal(value)
    if number is None:
        return value
    exponent = number.as_tuple().exponent
    step = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    changed = number + step * units
    return format(changed, "f") if isinstance(value, str) else type(value)(changed)


def _pick(view: BookView, fault: Fault, key: str, live: bool) -> Level | None:
    """Return the best level of the chosen side (or the first side with levels).

    ``live`` skips levels whose ``key`` value is zero (removals in a diff).
    """
    wanted = fault.params.get("side")
    for side in view.sides:
        if wanted is not None and side.bid != (wanted == "bid"):
            continue
        for level in side.levels:
            value = level.price if key == "price" else level.amount
            if not live or not is_zero(value):
                return level
    return None


def _set(level: Level, key: str, value: Any) -> None:
    if key == "price":
        level.price = value
    else:
        level.amount = value


def _get(level: Level, key: str) -> Any:
    return level.price if key == "price" else level.amount


def wrong_types(fault: Fault, view: BookView) -> bool:
    """A price or amount of another JSON type: number for a string (``as=``: any)."""
    key = fault.get("field")
    level = _pick(view, fault, key, live=False)
    if level is None:
        return False
    old = _get(level, key)
    target = fault.get("as") or ("number" if isinstance(old, str) else "string")
    number = as_decimal(old)
    new: Any
    if target == "number":
        new = float(number) if number is not None else 0
    elif target == "string":
        new = str(old)
    elif target == "null":
        new = None
    else:
        new = {"value": old}
    _set(level, key, new)
    return True


def _replace(fault: Fault, view: BookView, key: str, string: Callable[[str], Any],
             number: Callable[[Any], Any]) -> bool:
    """Replace ``key`` of the chosen side's best live level, keeping its JSON type."""
    level = _pick(view, fault, key, live=True)
    if level is None:
        return False
    old = _get(level, key)
    _set(level, key, string(old) if isinstance(old, str) else number(old))
    return True


def nan(fault: Fault, view: BookView) -> bool:
    """A price (or amount) of NaN: the string ``"NaN"`` where the venue sends strings."""
    return _replace(fault, view, fault.get("field"), lambda _: "NaN", lambda _: float("nan"))


def negative(fault: Fault, view: BookView) -> bool:
    """A negative amount (or price), same digits."""
    return _replace(fault, view, fault.get("field"), lambda old: "-" + old.lstrip("-"),
                    lambda old: -abs(old) or -1)


def huge(fault: Fault, view: BookView) -> bool:
    """A price (or amount) of 1e308."""
    return _replace(fault, view, fault.get("field"), lambda _: "1e308", lambda _: 1e308)


def zero(fault: Fault, view: BookView) -> bool:
    """An amount of zero in a snapshot (same decimals: ``"0.00000000"``)."""
    if not view.snapshot:
        return False
    return _replace(fault, view, "amount", _zero_text, lambda _: 0)


def _zero_text(old: str) -> str:
    """Return zero printed with ``old``'s decimals (``"1.50"`` -> ``"0.00"``)."""
    _, dot, decimals = old.partition(".")
    return "0" + dot + "0" * len(decimals)


def absurd(fault: Fault, view: BookView) -> bool:
    """Every price times ``factor``: the book stays ordered and uncrossed, and is wrong."""
    factor = Decimal(str(fault.get("factor")))
    levels = view.levels()
    if not levels:
        return False
    for level in levels:
        number = as_decimal(level.price)
        if number is None:
            continue
        scaled = number * factor
        level.price = format(scaled, "f") if isinstance(level.price, str) else float(scaled)
    return True


def crossed(fault: Fault, view: BookView) -> bool:
    """Snapshot: best bid raised above best ask. Diff: a bid inserted above the best ask.

    In a diff the best ask is not in the frame, so the bid goes one step above
    the highest ask level the diff leaves in the book: the book's best ask is
    at or below that, so the bid crosses whatever the rest of the book is.
    """
    bids, asks = view.side(True), view.side(False)
    if bids is None or asks is None:
        return False
    if view.snapshot:
        if not bids.levels or not asks.levels:
            return False
        bids.levels[0].price = bump(asks.levels[0].price)
        return True
    live = [lv for lv in asks.levels if not is_zero(lv.amount) and as_decimal(lv.price) is not None]
    if not live or bids.container is None or bids.make is None:
        return False
    top = max(live, key=lambda lv: as_decimal(lv.price) or Decimal(0))
    bids.container.insert(0, bids.make(bump(top.price), top.amount))
    return True


def malformed(fault: Fault, view: BookView) -> bytes:
    """Return the frame with its JSON broken at level ``after`` (20) of a side that deep.

    A reader of only the top ``after`` levels parses it; a full parse fails.
    The break drops a closing quote (``"0.05,"1.2"``), a realistic corruption.
    Frames without such a side are broken at their first level, or at the end.
    """
    after = int(fault.get("after"))
    deep = next((s for s in view.sides if len(s.levels) > after), None)
    level = deep.levels[after] if deep is not None else next(iter(view.levels()), None)
    if level is None:
        data = view.encode()
        return data[:-1] + b","
    marker = "\x00dragonfly-malformed\x00"
    price = str(level.price)
    level.price = marker
    data = view.encode()
    return data.replace(json.dumps(marker).encode(), b'"' + price.encode(), 1)


#: The value faults that change a parsed frame in place.
MUTATIONS: dict[str, Callable[[Fault, BookView], bool]] = {
    "wrong-types": wrong_types, "nan": nan, "negative": negative, "zero": zero, "huge": huge,
    "absurd": absurd, "crossed": crossed,
}
