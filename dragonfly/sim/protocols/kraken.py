"""Kraken WebSocket API v1, ``book`` channel: requests, answers and book frames.

Per Kraken's v1 docs ("Book", "Spot Websockets (v1) Book Checksum",
"heartbeat"): on ``/`` a connection starts with a ``systemStatus``;
``{"event":"subscribe","pair":[..],"subscription":{"name":"book","depth":N}}``
(depth 10, 25, 100, 500 or 1000; default 10) is answered per pair with a
``subscriptionStatus`` carrying the channel id and ``book-N``; an unknown pair
with ``"status":"error","errorMessage":"Currency pair not supported <pair>"``.
``{"event":"ping"}`` -> ``{"event":"pong"}`` (``reqid`` echoed); the server
sends ``{"event":"heartbeat"}`` when a connection had no data for about a second.

Frames: ``[chanId, {"as":[[p,v,ts]..],"bs":[..]}, "book-N", PAIR]`` (snapshot,
asks then bids, best first) and ``[chanId, {"a":[..]}, {"b":[..],"c":CRC}, "book-N", PAIR]``
(update; one dict when one side changed; the checksum in the last dict). Volume
0 removes; the venue sends no removal for a level pushed out of the depth, the
client cuts each side. ``ts`` is ``seconds.micros``. The checksum: CRC32
(unsigned, decimal text) of the top 10 asks then top 10 bids, each price and
volume as sent with ``.`` removed and leading zeros stripped. It is computed
here with :mod:`zlib` from that rule, not with the client's code, so the
simulator checks the client rather than mirroring it.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from dragonfly.sim.protocols import compact

DEFAULT_DEPTH = 10
#: The book depths Kraken serves.
DEPTHS = (10, 25, 100, 500, 1000)
#: Levels a side the checksum covers.
CHECKSUM_LEVELS = 10
HEARTBEAT = b'{"event":"heartbeat"}'
MALFORMED = b'{"errorMessage":"Malformed request","event":"error","status":"error"}'

#: (event, pair, depth) -> (channel id, depth shown in the ack), or an error message:
#: what a server does on one pair of a valid (un)subscribe request.
OnPair = Callable[[str, str, int], "tuple[int, int] | str"]
#: One level as printed: (price, volume).
TextLevel = tuple[str, str]


def system_status() -> bytes:
    """Return the ``systemStatus`` a connection starts with."""
    return compact({"connectionID": random.getrandbits(63), "event": "systemStatus",
                    "status": "online", "version": "1.9.0"})


def _with_reqid(body: dict[str, Any], reqid: object) -> bytes:
    if reqid is not None:
        body["reqid"] = reqid
    return compact(body)


def answer(payload: bytes, knows: Callable[[str], bool], on_pair: OnPair) -> list[bytes]:
    """Return the answers to one client message, in order, calling ``on_pair`` per valid pair."""
    try:
        message = json.loads(payload)
    except ValueError:
        return [MALFORMED]
    if not isinstance(message, dict):
        return [MALFORMED]
    event = message.get("event")
    reqid = message.get("reqid")
    if event == "ping":
        return [_with_reqid({"event": "pong"}, reqid)]
    if event in ("subscribe", "unsubscribe"):
        return _subscription(event, message, reqid, knows, on_pair)
    return [_with_reqid({"errorMessage": f"Unsupported event {event}", "event": "error",
                         "status": "error"}, reqid)]


def _subscription(event: str, message: dict[str, Any], reqid: object,
                  knows: Callable[[str], bool], on_pair: OnPair) -> list[bytes]:
    sub = message.get("subscription")
    pairs = message.get("pair")
    if not isinstance(sub, dict) or sub.get("name") != "book":
        name = sub.get("name") if isinstance(sub, dict) else None
        reason = ("Subscription name invalid" if name is not None
                  else "Subscription field must be an object")
        return [_with_reqid({"errorMessage": reason, "event": "subscriptionStatus",
                             "status": "error", "subscription": sub}, reqid)]
    if not isinstance(pairs, list) or not pairs:
        return [_with_reqid({"errorMessage": "Pair field must be an array",
                             "event": "subscriptionStatus", "status": "error",
                             "subscription": sub}, reqid)]
    depth = sub.get("depth", DEFAULT_DEPTH)
    answers = []
    for pair in pairs:
        error: str | None = None
        done: tuple[int, int] | str = ""
        if not isinstance(pair, str) or not knows(pair):
            error = f"Currency pair not supported {pair}"
        elif event == "subscribe" and depth not in DEPTHS:
            error = "Subscription depth not supported"
        else:
            done = on_pair(event, pair, depth)
            if isinstance(done, str):
                error = done
        if error is not None:
            answers.append(_with_reqid(
                {"errorMessage": error, "event": "subscriptionStatus", "pair": pair,
                 "status": "error", "subscription": {"depth": depth, "name": "book"}}, reqid))
            continue
        assert not isinstance(done, str)
        chan, shown = done
        status = "subscribed" if event == "subscribe" else "unsubscribed"
        answers.append(_with_reqid(
            {"channelID": chan, "channelName": f"book-{shown}", "event": "subscriptionStatus",
             "pair": pair, "status": status, "subscription": {"depth": shown, "name": "book"}},
            reqid))
    return answers


# -- book frames ---------------------------------------------------------------------------


def stamp(micros: int) -> str:
    """Return a level timestamp: seconds with six decimals (``1618678133.924027``)."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def _side(levels: Sequence[TextLevel], ts: str) -> str:
    return "[" + ",".join(f'["{p}","{v}","{ts}"]' for p, v in levels) + "]"


def snapshot_frame(chan: int, depth: int, pair: str, bids: Sequence[TextLevel],
                   asks: Sequence[TextLevel], ts: str) -> bytes:
    """Return a book snapshot (asks then bids, best first), every level stamped ``ts``."""
    return (f'[{chan},{{"as":{_side(asks, ts)},"bs":{_side(bids, ts)}}},'
            f'"book-{depth}","{pair}"]').encode()


def update_frame(chan: int, depth: int, pair: str, bids: Sequence[TextLevel],
                 asks: Sequence[TextLevel], ts: str, crc: int) -> bytes:
    """Return a book update; both sides present -> two dicts, the checksum in the second."""
    tail = f'"book-{depth}","{pair}"]'
    if asks and bids:
        return (f'[{chan},{{"a":{_side(asks, ts)}}},{{"b":{_side(bids, ts)},"c":"{crc}"}},'
                f'{tail}').encode()
    key, levels = ("a", asks) if asks else ("b", bids)
    return f'[{chan},{{"{key}":{_side(levels, ts)},"c":"{crc}"}},{tail}'.encode()


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum(bids: Sequence[TextLevel], asks: Sequence[TextLevel]) -> int:
    """Return Kraken's CRC32 of the top 10 asks then the top 10 bids (levels best first)."""
    top = [*asks[:CHECKSUM_LEVELS], *bids[:CHECKSUM_LEVELS]]
    return zlib.crc32("".join(_digits(p) + _digits(v) for p, v in top).encode())
