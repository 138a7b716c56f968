"""Fault specs: ``KIND[,key=value]...`` parsed into a :class:`Fault`.

A spec names one way a venue misbehaves and how long or how often:
``count=N`` (the next N frames, requests or connections) or ``for=S``
(everything in the next S seconds). Parsing checks every parameter against
the kind's table below, so a bad spec is one clear ValueError before anything
runs. Values may be percent-escaped (``reason=see%2C%20you``) to carry a comma.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

#: A parsed parameter value.
Value = int | float | str | None


@dataclass(frozen=True)
class Param:
    """One parameter a kind accepts: how to read it, what it means, its default."""

    read: Callable[[str], Value]
    expected: str  # shown when a value cannot be read
    default: Value = None


def _int(low: int, high: int | None = None) -> Callable[[str], Value]:
    def read(text: str) -> Value:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError
        return value
    return read


def _seconds(text: str) -> Value:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError
    return value


def _positive(text: str) -> Value:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError
    return value


def _choice(*choices: str) -> Callable[[str], Value]:
    def read(text: str) -> Value:
        if text not in choices:
            raise ValueError
        return text
    return read


def _text(text: str) -> Value:
    return text


def _decimal(text: str) -> Value:
    # Kept as text: prices are scaled in decimal arithmetic, exactly.
    if not _positive(text):
        raise ValueError
    return text


def _code(text: str) -> Value:
    return None if text == "none" else _int(0, 65535)(text)


COUNT = Param(_int(1), "a whole number >= 1")
FOR = Param(_seconds, "seconds >= 0")
_SIDE = Param(_choice("bid", "ask"), "bid or ask")
MIB = 1024 * 1024
#: Parameters every frame and value kind takes: which frames, and where in the book.
_FRAMES: dict[str, Param] = {"count": COUNT, "for": FOR}


def _value(field_default: str) -> dict[str, Param]:
    return {**_FRAMES, "side": _SIDE,
            "field": Param(_choice("price", "amount"), "price or amount", field_default)}


@dataclass(frozen=True)
class Kind:
    """A fault kind: its one-line description and the parameters it takes."""

    summary: str
    params: Mapping[str, Param]
    #: One-shot kinds apply to one unit unless ``count``/``for`` say otherwise;
    #: the others last until cancelled unless ``for`` says otherwise.
    one_shot: bool = True


_KINDS: dict[str, Kind] = {
    # -- connection ------------------------------------------------------------------
    "drop": Kind("abort every client's TCP connection, no close frame (for=S: also new ones)",
                 {"for": FOR}),
    "close": Kind("send a close frame (code=1000, reason=TEXT; code=none: empty payload), "
                  "then disconnect", {"code": Param(_code, "0-65535 or none", 1000),
                                      "reason": Param(_text, "text"), "for": FOR}),
    "refuse": Kind("answer new WebSocket upgrades with HTTP 503 (status=N)",
                   {"count": COUNT, "for": FOR,
                    "status": Param(_int(400, 599), "an HTTP status 400-599", 503)}),
    "stall": Kind("new connections are upgraded, then never read nor written "
                  "(phase=upgrade: the upgrade is never answered)",
                  {"count": COUNT, "for": FOR,
                   "phase": Param(_choice("open", "upgrade"), "open or upgrade", "open")}),
    "silence": Kind("current clients get nothing (data, replies, pongs); sockets stay open",
                    {"for": FOR}, one_shot=False),
    "pause": Kind("data stops; requests, acks, heartbeats and pings are still answered",
                  {"for": FOR}, one_shot=False),
    "flap": Kind("new connections are closed (1001) after=S seconds (0.05) after subscribing",
                 {"count": COUNT, "for": FOR, "after": Param(_seconds, "seconds >= 0", 0.05)}),
    "delay": Kind("every outgoing frame is delayed by ms=X (100), order kept",
                  {"for": FOR, "ms": Param(_seconds, "milliseconds >= 0", 100.0)}, one_shot=False),
    # -- frames ------------------------------------------------------------------------
    "protocol": Kind("a raw WebSocket protocol violation instead of a book frame "
                     "(variant=masked|opcode|rsv|ping|close|cont)",
                     {**_FRAMES, "variant": Param(
                         _choice("masked", "opcode", "rsv", "ping", "close", "cont"),
                         "masked, opcode, rsv, ping, close or cont", "masked")}),
    "malformed": Kind("the book frame's JSON broken after its first after=N (20) levels of a side",
                      {**_FRAMES, "after": Param(_int(0), "a whole number >= 0", 20)}),
    "truncated": Kind("the book frame cut short", _FRAMES),
    "binary": Kind("a BINARY frame of garbage bytes instead of the book frame", _FRAMES),
    "oversized": Kind("one text frame of bytes=N (16 MiB) instead of the book frame",
                      {**_FRAMES, "bytes": Param(_int(1), "a byte count >= 1", 16 * MIB)}),
    "fragments": Kind("a TEXT frame with fin=0, then 64 KiB continuations that never finish "
                      "(bytes=N: stop after N bytes)",
                      {**_FRAMES, "bytes": Param(_int(1), "a byte count >= 1")}),
    # -- values --------------------------------------------------------------------
    "wrong-types": Kind("a price or amount of the wrong JSON type (as=number|string|null|object)",
                        {**_value("price"), "as": Param(
                            _choice("number", "string", "null", "object"),
                            "number, string, null or object")}),
    "nan": Kind('a price (field=amount: an amount) of "NaN"', _value("price")),
    "negative": Kind("a negative amount (field=price: price)", _value("amount")),
    "zero": Kind("an amount of 0 in a snapshot", {**_FRAMES, "side": _SIDE}),
    "huge": Kind("a price (field=amount: an amount) of 1e308", _value("price")),
    "absurd": Kind("every price multiplied by factor=F (1000): ordered, uncrossed, wrong",
                   {**_FRAMES, "factor": Param(_decimal, "a number > 0", "1000")}),
    "crossed": Kind("a snapshot whose best bid is above its best ask; in a diff, a bid "
                    "inserted above the best ask", _FRAMES),
    # -- sequence and checksum -----------------------------------------------------
    "skip": Kind("drop the next count=N diff events (symbol=S: of one instrument) so the "
                 "sequence jumps", {"count": COUNT, "symbol": Param(_text, "an instrument")}),
    "repeat": Kind("send the next count=N data frames twice", _FRAMES),
    "checksum": Kind("change one level's amount in a checksummed update, keep its checksum",
                     _FRAMES),
    # -- notices -------------------------------------------------------------------
    "notice": Kind("the venue's reconnect notice, then a close after grace=S seconds",
                   {"grace": Param(_seconds, "seconds >= 0")}, one_shot=False),
    # -- REST snapshots ------------------------------------------------------------
    "rest-slow": Kind("snapshot answers come delay=S (5) seconds late",
                      {**_FRAMES, "delay": Param(_seconds, "seconds >= 0", 5.0)}),
    "rest-error": Kind("snapshot requests answered with status=N (429) and the venue's error "
                       "body (retry_after=S: a Retry-After header)",
                       {**_FRAMES, "status": Param(_int(400, 599), "an HTTP status 400-599", 429),
                        "retry_after": Param(_int(0), "whole seconds >= 0")}),
    "rest-stale": Kind("the snapshot of the book as it was age=S (5) seconds ago",
                       {**_FRAMES, "age": Param(_seconds, "seconds >= 0", 5.0)}),
    "rest-future": Kind("the current snapshot stamped ahead=N (1000) updates ahead of the stream",
                        {**_FRAMES, "ahead": Param(_int(1), "a whole number >= 1", 1000)}),
    "rest-headers": Kind("snapshot answers whose header lines never end", _FRAMES),
}

#: Every fault kind with its one-line description.
KINDS: Mapping[str, str] = MappingProxyType({name: kind.summary for name, kind in _KINDS.items()})
#: Kinds applied to book frames on their way to a client.
FRAME_KINDS = frozenset({"protocol", "malformed", "truncated", "binary", "oversized", "fragments",
                         "wrong-types", "nan", "negative", "zero", "huge", "absurd", "crossed",
                         "repeat", "checksum"})
#: Kinds applied to REST snapshot requests.
REST_KINDS = frozenset(k for k in _KINDS if k.startswith("rest-"))


def kind_of(name: str) -> Kind:
    """Return the kind named ``name``; ValueError listing the kinds if unknown."""
    kind = _KINDS.get(name)
    if kind is None:
        raise ValueError(f"unknown fault kind {name!r}: expected one of {', '.join(_KINDS)}")
    return kind


def _read(kind_name: str, name: str, param: Param, raw: object) -> Value:
    if raw is None or (isinstance(raw, (int, float)) and not isinstance(raw, bool)):
        text = "none" if raw is None else str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        raise ValueError(f"{kind_name}: {name} must be {param.expected}, got {raw!r}")
    try:
        return param.read(text)
    except ValueError:
        raise ValueError(f"{kind_name}: {name} must be {param.expected}, got {text!r}") from None


@dataclass(frozen=True)
class Fault:
    """One fault: its kind and the parameters given (read and checked on construction).

    ``Fault("close", {"code": 1000})`` equals ``parse_fault("close,code=1000")``.
    Parameters not given take the kind's defaults through :meth:`get`.
    """

    kind: str
    params: Mapping[str, Value] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the kind and every parameter; keep the parameters read-only."""
        kind = kind_of(self.kind)
        read: dict[str, Value] = {}
        for name, raw in self.params.items():
            param = kind.params.get(name)
            if param is None:
                expected = ", ".join(kind.params) or "none"
                raise ValueError(f"{self.kind}: unknown parameter {name!r} (expected {expected})")
            read[name] = _read(self.kind, name, param, raw)
        if "count" in read and "for" in read:
            raise ValueError(f"{self.kind}: give count= or for=, not both")
        object.__setattr__(self, "params", MappingProxyType(read))

    def __hash__(self) -> int:
        """Hash the kind and parameters."""
        return hash((self.kind, tuple(sorted(self.params.items()))))

    def get(self, name: str) -> Any:
        """Return parameter ``name`` as given, else the kind's default."""
        if name in self.params:
            return self.params[name]
        return _KINDS[self.kind].params[name].default

    @property
    def for_s(self) -> float | None:
        """Return the ``for=`` window in seconds, or None."""
        value = self.params.get("for")
        return None if value is None else float(value)

    @property
    def count(self) -> int | None:
        """Return how many units the fault applies to: None while it lasts (a window or until cancelled)."""
        if "count" in self.params:
            return int(self.params["count"] or 0)
        if self.for_s is not None or not _KINDS[self.kind].one_shot:
            return None
        return 1

    @property
    def spec(self) -> str:
        """Return the spec text that parses back to this fault."""
        parts = [self.kind]
        for name, value in self.params.items():
            if isinstance(value, float):
                text = str(int(value)) if value.is_integer() else repr(value)
            else:
                text = "none" if value is None else str(value)
            parts.append(f"{name}={quote(text, safe='')}")
        return ",".join(parts)

    def __str__(self) -> str:
        """Return the spec text."""
        return self.spec


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[,key=value]...``; ValueError with one line naming what is wrong."""
    text = spec.strip()
    if not text:
        raise ValueError("empty fault spec: expected KIND[,key=value]...")
    name, *items = text.split(",")
    name = name.strip()
    kind_of(name)
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise ValueError(f"{name}: empty parameter in {spec!r}")
        if not sep:
            raise ValueError(f"{name}: parameter {key!r} needs a value ({key}=...)")
        if key in params:
            raise ValueError(f"{name}: parameter {key!r} given twice")
        params[key] = unquote(value.strip())
    return Fault(name, params)


def as_fault(spec: str | Fault) -> Fault:
    """Return ``spec`` parsed, or as is if it already is a Fault."""
    return spec if isinstance(spec, Fault) else parse_fault(spec)
