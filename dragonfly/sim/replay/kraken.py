"""Kraken WS v1 replay: recorded ``book`` snapshots and updates, native (bytes unchanged).

Recorded: ``wss://ws.kraken.com``, one ``subscribe`` of several pairs to
``{"name":"book","depth":1000}``; book messages
``[channelID, {"as":..,"bs":..}, "book-1000", "XBT/CHF"]`` (snapshot) and
``[channelID, {"a":..}, ({"b":.., "c":crc})?, "book-1000", "XBT/CHF"]``
(updates, ``c`` a CRC32 over the top 10 levels). The protocol is current, so
the recorded bytes (checksums included) are sent unchanged.

Served on ``/``: a ``systemStatus`` on connect; ``subscribe`` /
``unsubscribe`` of ``book`` for recorded pairs -> one ``subscriptionStatus``
per pair carrying the recorded ``channelID``, ``channelName`` and depth.
Any depth Kraken serves (10, 25, 100, 500, 1000) is accepted, but the frames
are the recorded depth's (``book-1000`` here) and the ack says so: a client
keeping a shallower book truncates each side, and may come to miss levels the
deeper recording never re-sends (checksums are over the top 10, so a depth of
100 is safe over these captures, 10 is not). Another depth -> "Subscription
depth not supported"; unknown pair -> "Currency pair not supported <pair>".
``ping`` -> ``pong``; a ``heartbeat`` every second to subscribed clients. The
recorded acks, status and heartbeats are not replayed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    compact,
    loads,
)

DEFAULT_DEPTH = 10
#: The book depths Kraken serves.
DEPTHS = (10, 25, 100, 500, 1000)
HEARTBEAT = b'{"event":"heartbeat"}'


@dataclass
class KrakenTrack(Track):
    """A Kraken connection: also each pair's channel id and recorded depth."""

    channel_ids: dict[str, int] = field(default_factory=dict)
    depths: dict[str, int] = field(default_factory=dict)


def _depth(channel_name: str) -> int | None:
    name, _, depth = channel_name.partition("-")
    return int(depth) if name == "book" and depth.isdigit() else None


def translate(records: Sequence[Record], report: Report) -> KrakenTrack:
    """Keep the recorded book messages; list the pairs subscribed to ``book``."""
    track = KrakenTrack([], [])
    pairs: dict[str, None] = {}
    for record in records:
        if isinstance(record, Sent):
            request = loads(record.payload, report, record.line)
            if not isinstance(request, dict) or request.get("event") != "subscribe":
                continue
            sub = request.get("subscription")
            if isinstance(sub, dict) and sub.get("name") == "book":
                depth = sub.get("depth", DEFAULT_DEPTH)
                for pair in request.get("pair") or ():
                    if isinstance(pair, str):
                        pairs[pair] = None
                        if isinstance(depth, int):
                            track.depths.setdefault(pair, depth)
        elif isinstance(record, Received):
            message = loads(record.payload, report, record.line)
            if isinstance(message, dict):
                if message.get("event") == "subscriptionStatus" and message.get("status") == "subscribed":
                    pair, chan = message.get("pair"), message.get("channelID")
                    depth = _depth(str(message.get("channelName", "")))
                    if isinstance(pair, str) and isinstance(chan, int) and depth is not None:
                        track.channel_ids.setdefault(pair, chan)
                        track.depths[pair] = depth
                continue
            if (not isinstance(message, list) or len(message) < 4 or not isinstance(message[-1], str)
                    or not isinstance(message[-2], str) or not isinstance(message[0], int)):
                continue
            depth = _depth(message[-2])
            if depth is None:
                continue
            pair = message[-1]
            pairs.setdefault(pair, None)
            track.channel_ids.setdefault(pair, message[0])
            track.depths.setdefault(pair, depth)
            track.frames.append(Frame(record.ts, pair, record.payload))
    track.symbols = list(pairs)
    return track


class KrakenReplay(ReplayConnection):
    """A recorded Kraken WS v1 connection."""

    venue = "kraken"
    ws_path = "/"
    heartbeat_s = 1.0
    # No sequence numbers; a CRC32 of the top 10 levels per side on every update.
    capabilities = Capabilities("kraken", checksum_depth=10)

    def __init__(self, name: str, track: KrakenTrack, **kwargs: Any) -> None:
        """Keep the recorded channel ids and depths."""
        super().__init__(name, track, **kwargs)
        self.channel_ids = track.channel_ids
        self.depths = track.depths
        self.book_depth = max(track.depths.values(), default=None)
        self._next_id = max(track.channel_ids.values(), default=0) + 1

    translate = staticmethod(translate)

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Accept the root path only."""
        return ReplaySession(self) if path in ("", "/") else None

    def on_open(self, session: ReplaySession) -> None:
        """Send the systemStatus a live connection starts with."""
        session.send(compact({"connectionID": random.getrandbits(63), "event": "systemStatus",
                              "status": "online", "version": "1.9.0"}))

    def heartbeat(self, session: ReplaySession) -> None:
        """Heartbeat a subscribed client."""
        if session.subs:
            session.send(HEARTBEAT)

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer one client request."""
        try:
            message = json.loads(payload)
        except ValueError:
            session.send(compact({"errorMessage": "Malformed request", "event": "error",
                                  "status": "error"}))
            return
        if not isinstance(message, dict):
            session.send(compact({"errorMessage": "Malformed request", "event": "error",
                                  "status": "error"}))
            return
        event = message.get("event")
        reqid = message.get("reqid")
        if event == "ping":
            session.send(compact(_with_reqid({"event": "pong"}, reqid)))
        elif event in ("subscribe", "unsubscribe"):
            self._subscription(session, event, message, reqid)
        else:
            session.send(compact(_with_reqid({"errorMessage": f"Unsupported event {event}",
                                              "event": "error", "status": "error"}, reqid)))

    def _subscription(self, session: ReplaySession, event: str, message: dict[str, Any],
                      reqid: object) -> None:
        sub = message.get("subscription")
        pairs = message.get("pair")
        if not isinstance(sub, dict) or sub.get("name") != "book":
            name = sub.get("name") if isinstance(sub, dict) else None
            reason = ("Subscription name invalid" if name is not None
                      else "Subscription field must be an object")
            session.send(compact(_with_reqid({"errorMessage": reason, "event": "subscriptionStatus",
                                              "status": "error", "subscription": sub}, reqid)))
            return
        if not isinstance(pairs, list) or not pairs:
            session.send(compact(_with_reqid({"errorMessage": "Pair field must be an array",
                                              "event": "subscriptionStatus", "status": "error",
                                              "subscription": sub}, reqid)))
            return
        depth = sub.get("depth", DEFAULT_DEPTH)
        for pair in pairs:
            recorded = self.depths.get(pair) if isinstance(pair, str) else None
            if not isinstance(pair, str) or not self.knows(pair):
                error = f"Currency pair not supported {pair}"
            elif event == "subscribe" and depth not in DEPTHS:
                error = "Subscription depth not supported"
            else:
                error = None
            if error is not None:
                session.send(compact(_with_reqid(
                    {"errorMessage": error, "event": "subscriptionStatus", "pair": pair,
                     "status": "error", "subscription": {"depth": depth, "name": "book"}}, reqid)))
                continue
            assert isinstance(pair, str)
            if event == "subscribe":
                self.subscribe(session, pair)
                status = "subscribed"
            else:
                self.unsubscribe(session, pair)
                status = "unsubscribed"
            chan = self.channel_ids.get(pair)
            if chan is None:
                chan = self.channel_ids[pair] = self._next_id
                self._next_id += 1
            shown = recorded if recorded is not None else depth
            session.send(compact(_with_reqid(
                {"channelID": chan, "channelName": f"book-{shown}", "event": "subscriptionStatus",
                 "pair": pair, "status": status, "subscription": {"depth": shown, "name": "book"}},
                reqid)))


def _with_reqid(body: dict[str, Any], reqid: object) -> dict[str, Any]:
    if reqid is not None:
        body["reqid"] = reqid
    return body
