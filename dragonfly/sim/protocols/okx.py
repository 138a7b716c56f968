"""OKX API v5 public WebSocket, ``books`` channel: requests, answers and book frames.

Per OKX's v5 docs ("Websocket", "Order book channel"): on ``/ws/v5/public``
the text ``ping`` is answered ``pong``;
``{"op":"subscribe","args":[{"channel":"books","instId":"ETH-BTC"}]}`` is
answered per argument ``{"event":"subscribe","arg":{..},"connId":..}``, an
argument naming no listed instrument (or another channel here)
``{"event":"error","code":"60018","msg":"Wrong URL or channel:<channel>,instId:<id>
doesn't exist.","connId":..}``;
anything else ``60012`` ("Invalid request"). The ``64008`` notice comes 30 s
before a service upgrade closes the connection.

Frames: ``{"arg":{"channel":"books","instId":ID},"action":"snapshot"|"update",
"data":[{"asks":[[px,sz,"0",n]..],"bids":[..],"ts":MS,"checksum":CRC,"prevSeqId":P,"seqId":S}]}``;
sz "0" removes (n "0"); a snapshot's ``prevSeqId`` is -1; an update's is the
previous message's ``seqId``. The checksum: CRC32 as a signed 32-bit int of
``bidPx:bidSz:askPx:askSz:..`` over the top 25 levels, interleaved, over the
strings as sent (OKX prints them without trailing zeros). It is computed here
with :mod:`zlib` from that rule, not with the client's code. (OKX announced
``checksum`` 0 on ``books`` from 2026-06-23; the simulator still sends it, which a
client must accept either way.)
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence

from dragonfly.sim.protocols import compact

CHANNEL = "books"
#: Levels a side the checksum covers.
CHECKSUM_LEVELS = 25
NOTICE = "The connection will soon be closed for a service upgrade. Please reconnect."
#: Delay between the ``64008`` notice and the close.
NOTICE_GRACE_S = 30.0

#: (channel, instId) -> whether the server serves that book.
Knows = Callable[[str, str], bool]
#: (op, channel, instId): carry out an accepted (un)subscription.
OnArg = Callable[[str, str, str], None]
TextLevel = tuple[str, str]


def error(code: str, msg: str, conn_id: str) -> bytes:
    """Return an ``error`` event."""
    return compact({"event": "error", "code": code, "msg": msg, "connId": conn_id})


def notice(conn_id: str) -> bytes:
    """Return the service-upgrade notice (code 64008)."""
    return compact({"event": "notice", "code": "64008", "msg": NOTICE, "connId": conn_id})


def answer(payload: bytes, conn_id: str, knows: Knows, on_arg: OnArg) -> list[bytes]:
    """Return the answers to one client message, in order, calling ``on_arg`` per valid argument."""
    if payload == b"ping":
        return [b"pong"]
    invalid = error("60012", f"Invalid request: {payload.decode('utf-8', 'replace')}", conn_id)
    try:
        message = json.loads(payload)
    except ValueError:
        return [invalid]
    op = message.get("op") if isinstance(message, dict) else None
    args = message.get("args") if isinstance(message, dict) else None
    if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
        return [invalid]
    answers = []
    for arg in args:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        inst_id = arg.get("instId") if isinstance(arg, dict) else None
        if not isinstance(channel, str) or not isinstance(inst_id, str) or not knows(channel, inst_id):
            answers.append(error("60018", f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist.",
                                 conn_id))
            continue
        on_arg(op, channel, inst_id)
        answers.append(compact({"event": op, "arg": {"channel": channel, "instId": inst_id},
                                "connId": conn_id}))
    return answers


# -- book frames ---------------------------------------------------------------------------


def _side(levels: Sequence[TextLevel]) -> str:
    # [px, sz, deprecated "0", number of orders]; a removed level has no orders.
    return "[" + ",".join(f'["{p}","{s}","0","{0 if s == "0" else 1}"]' for p, s in levels) + "]"


def push(action: str, inst_id: str, bids: Sequence[TextLevel], asks: Sequence[TextLevel],
         ts_ms: int, crc: int, prev_seq: int, seq: int) -> bytes:
    """Return a ``books`` push (``action``: snapshot or update)."""
    return (f'{{"arg":{{"channel":"{CHANNEL}","instId":"{inst_id}"}},"action":"{action}",'
            f'"data":[{{"asks":{_side(asks)},"bids":{_side(bids)},"ts":"{ts_ms}",'
            f'"checksum":{crc},"prevSeqId":{prev_seq},"seqId":{seq}}}]}}').encode()


def checksum(bids: Sequence[TextLevel], asks: Sequence[TextLevel]) -> int:
    """Return OKX's signed CRC32 of the top 25 levels, bid and ask interleaved (levels best first)."""
    parts: list[str] = []
    for i in range(CHECKSUM_LEVELS):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc & 0x80000000 else crc
