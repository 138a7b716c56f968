"""Kraken WS v1 replay: recorded ``book`` snapshots and updates, native (bytes unchanged).

Recorded: ``wss://ws.kraken.com``, one ``subscribe`` of several pairs to
``{"name":"book","depth":1000}``; book messages
``[channelID, {"as":..,"bs":..}, "book-1000", "XBT/CHF"]`` (snapshot) and
``[channelID, {"a":..}, ({"b":.., "c":crc})?, "book-1000", "XBT/CHF"]``
(updates, ``c`` a CRC32 over the top 10 levels). The protocol is current, so
the recorded bytes (checksums included) are sent unchanged.

Served on ``/``: a ``systemStatus`` on connect; ``subscribe`` /
``unsubscribe`` of ``book`` for recorded pairs (answered by the protocol
module shared with the synthetic server, :mod:`dragonfly.sim.protocols.kraken`)
-> one ``subscriptionStatus``
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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.protocols import kraken
from dragonfly.sim.protocols.kraken import DEFAULT_DEPTH, HEARTBEAT
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    loads,
)


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
        session.send(kraken.system_status())

    def heartbeat(self, session: ReplaySession) -> None:
        """Heartbeat a subscribed client."""
        if session.subs:
            session.send(HEARTBEAT)

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer one client request (:func:`dragonfly.sim.protocols.kraken.answer`)."""

        def on_pair(event: str, pair: str, depth: int) -> tuple[int, int]:
            if event == "subscribe":
                self.subscribe(session, pair)
            else:
                self.unsubscribe(session, pair)
            chan = self.channel_ids.get(pair)
            if chan is None:
                chan = self.channel_ids[pair] = self._next_id
                self._next_id += 1
            recorded = self.depths.get(pair)
            return chan, recorded if recorded is not None else depth

        for reply in kraken.answer(payload, self.knows, on_pair):
            session.send(reply)
