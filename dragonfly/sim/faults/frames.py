"""Frame faults: what a book frame on its way to one client becomes.

Each function gets the fault in force, its server's faults, the client and
the frame, and returns the frames to write instead, or None if this frame does
not qualify (the fault then waits for one that does, and is not counted).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from dragonfly.sim.faults import wire
from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.checksum import TopTracker, break_checksum
from dragonfly.sim.faults.shapes import read_book
from dragonfly.sim.faults.values import MUTATIONS, malformed
from dragonfly.sim.peer import OP_BINARY, OP_RAW, OP_TEXT, Peer, Write

if TYPE_CHECKING:
    from dragonfly.sim.faults.faultset import FaultSet

#: (fault in force, its fault set, client, frame) -> frames to write instead, or None.
Reframe = Callable[[ActiveFault, "FaultSet", Peer, bytes], list[Write] | None]


def _protocol(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    return [Write(OP_RAW, wire.violation(active.fault.get("variant"), data))]


def _malformed(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    view = read_book(faults.venue, data)
    broken = malformed(active.fault, view) if view is not None else data[:-1] + b","
    return [Write(OP_TEXT, broken)]


def cut(data: bytes) -> bytes:
    """Return the first half of ``data``, never splitting a UTF-8 character (still valid TEXT)."""
    end = len(data) // 2
    while 0 < end < len(data) and data[end] & 0xC0 == 0x80:
        end -= 1
    return data[:end]


def _truncated(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    return [Write(OP_TEXT, cut(data))]


def _binary(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    return [Write(OP_BINARY, os.urandom(max(len(data), 1)))]


def _oversized(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    size = int(active.fault.get("bytes"))
    # The frame itself, padded with JSON whitespace: only its size is wrong.
    return [Write(OP_TEXT, (data + b" " * max(size - len(data), 0))[:size])]


def _fragments(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    limit = active.fault.get("bytes")
    peer.start_fragments(data, None if limit is None else int(limit))
    return []


def _repeat(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    return [Write(OP_TEXT, data), Write(OP_TEXT, data)]


def _value(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    view = read_book(faults.venue, data)
    if view is None or not MUTATIONS[active.fault.kind](active.fault, view):
        return None
    return [Write(OP_TEXT, view.encode())]


def _checksum(active: ActiveFault, faults: FaultSet, peer: Peer, data: bytes) -> list[Write] | None:
    view = read_book(faults.venue, data)
    depth = faults.target.capabilities.checksum_depth
    if view is None or depth is None:
        return None
    trackers: dict[str, TopTracker] = active.state if active.state is not None else {}
    active.state = trackers
    tracker = trackers.get(view.symbol)
    if tracker is None:
        tracker = TopTracker.rebuilt(faults.venue, depth, faults.target.history(view.symbol))
        trackers[view.symbol] = tracker
    if not break_checksum(tracker, view):
        return None
    return [Write(OP_TEXT, view.encode())]


#: The frame fault of each kind.
REFRAMES: dict[str, Reframe] = {
    "protocol": _protocol, "malformed": _malformed, "truncated": _truncated, "binary": _binary,
    "oversized": _oversized, "fragments": _fragments, "repeat": _repeat, "checksum": _checksum,
    **dict.fromkeys(MUTATIONS, _value),
}
