"""Bybit v5 public WebSocket, ``orderbook.50.<SYMBOL>``: requests, answers and book messages.

Per Bybit's v5 docs ("Connect", "Orderbook"): on ``/v5/public/spot`` (also
``/linear``, ``/inverse``) ``{"op":"subscribe","args":["orderbook.50.ETHBTC"],"req_id":..}``
is answered ``{"success":true,"ret_msg":"subscribe","conn_id":..,"req_id":..,"op":"subscribe"}``;
a request naming any topic that is not a listed symbol at depth 50 fails as a
whole: ``"success":false,"ret_msg":"Invalid symbol :[<topics>]"``, nothing
subscribed. ``{"op":"ping"}`` -> ``"ret_msg":"pong"``.

Messages: ``{"topic":..,"type":"snapshot"|"delta","ts":MS,
"data":{"s":SYM,"b":[[p,s]..],"a":[..],"u":U,"seq":Q},"cts":MS}``; size "0" removes.
``u`` grows by exactly one per message of a symbol, so a client checks deltas
follow on; a snapshot carries the current ``u``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from dragonfly.sim.protocols import compact

DEPTH = 50
PATHS = ("/v5/public/spot", "/v5/public/linear", "/v5/public/inverse")
TextLevel = tuple[str, str]
#: (op, symbol): carry out an accepted (un)subscription of one symbol.
OnSymbol = Callable[[str, str], None]


def topic(symbol: str) -> str:
    """Return the v5 book topic of ``symbol``."""
    return f"orderbook.{DEPTH}.{symbol}"


def topic_symbol(name: str, knows: Callable[[str], bool]) -> str | None:
    """Return the listed symbol a book topic at depth 50 names, or None."""
    prefix = f"orderbook.{DEPTH}."
    symbol = name[len(prefix):] if name.startswith(prefix) else None
    return symbol if symbol is not None and knows(symbol) else None


def answer(payload: bytes, conn_id: str, knows: Callable[[str], bool], on_symbol: OnSymbol) -> bytes:
    """Return the answer to one client message, calling ``on_symbol`` per symbol of a valid request."""
    try:
        message = json.loads(payload)
    except ValueError:
        return compact({"success": False, "ret_msg": "Invalid request: not JSON", "conn_id": conn_id})
    if not isinstance(message, dict):
        message = {}
    op = message.get("op")
    reply: dict[str, Any] = {"success": True, "ret_msg": "", "conn_id": conn_id}
    if "req_id" in message:
        reply["req_id"] = message["req_id"]
    reply["op"] = op
    if op == "ping":
        reply["ret_msg"] = "pong"
    elif op in ("subscribe", "unsubscribe"):
        args = message.get("args")
        names = args if isinstance(args, list) and args else None
        symbols = [topic_symbol(a, knows) if isinstance(a, str) else None for a in names or [None]]
        if names is None or any(s is None for s in symbols):
            bad = ([a for a in args if not isinstance(a, str) or topic_symbol(a, knows) is None]
                   if isinstance(args, list) else [args])
            reply["success"] = False
            reply["ret_msg"] = f"Invalid symbol :[{','.join(str(a) for a in bad)}]"
        else:
            for symbol in symbols:
                assert symbol is not None
                on_symbol(op, symbol)
            reply["ret_msg"] = op if op == "subscribe" else ""
    else:
        reply["success"] = False
        reply["ret_msg"] = f"Invalid op: {op}"
    return compact(reply)


def _side(levels: Sequence[TextLevel]) -> str:
    return "[" + ",".join(f'["{p}","{s}"]' for p, s in levels) + "]"


def message(kind: str, symbol: str, bids: Sequence[TextLevel], asks: Sequence[TextLevel],
            u: int, seq: int, ts_ms: int) -> bytes:
    """Return an order book message (``kind``: snapshot or delta)."""
    return (f'{{"topic":"{topic(symbol)}","type":"{kind}","ts":{ts_ms},'
            f'"data":{{"s":"{symbol}","b":{_side(bids)},"a":{_side(asks)},"u":{u},"seq":{seq}}},'
            f'"cts":{ts_ms}}}').encode()
