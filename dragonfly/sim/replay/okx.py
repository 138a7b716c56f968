"""OKX v5 public replay: recorded ``books`` snapshots and updates, native (bytes unchanged).

Recorded: ``wss://ws.okx.com:8443/ws/v5/public``, ``subscribe`` to
``tickers``, ``trades`` and ``books``; book messages
``{"arg":{"channel":"books","instId":..},"action":"snapshot"|"update","data":[{asks,bids,ts,checksum}]}``
(this 2022 capture predates ``prevSeqId`` / ``seqId``). The protocol is
current, so the recorded bytes (checksums included) are sent unchanged.

Served on ``/ws/v5/public``: ``{"op":"subscribe"|"unsubscribe","args":[{"channel","instId"}]}``
-> one ``{"event":"subscribe","arg":{..},"connId":..}`` per arg for the
recorded book channel of a recorded instrument, else
``{"event":"error","code":"60018",..}``; text ``ping`` -> ``pong``. Tickers,
trades and the recorded acks are not replayed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dragonfly.recording import Received, Record, Sent
from dragonfly.sim.faults.target import Capabilities
from dragonfly.sim.peer import Peer
from dragonfly.sim.protocols import okx
from dragonfly.sim.replay.base import (
    Frame,
    ReplayConnection,
    ReplaySession,
    Report,
    Track,
    loads,
)

#: Order book channels of the v5 public API.
BOOK_CHANNELS = frozenset({"books", "books5", "books-l2-tbt", "books50-l2-tbt", "bbo-tbt"})


@dataclass
class OkxTrack(Track):
    """An OKX connection: also each instrument's recorded book channel."""

    channels: dict[str, str] = field(default_factory=dict)


def translate(records: Sequence[Record], report: Report) -> OkxTrack:
    """Keep the recorded book messages; list the instruments subscribed to a book channel."""
    track = OkxTrack([], [])
    inst: dict[str, None] = {}
    for record in records:
        if isinstance(record, Sent):
            request = loads(record.payload, report, record.line)
            if not isinstance(request, dict) or request.get("op") != "subscribe":
                continue
            for arg in request.get("args") or ():
                if isinstance(arg, dict) and arg.get("channel") in BOOK_CHANNELS:
                    inst_id = arg.get("instId")
                    if isinstance(inst_id, str):
                        inst[inst_id] = None
                        track.channels.setdefault(inst_id, arg["channel"])
        elif isinstance(record, Received) and record.payload.startswith(b'{"arg"'):
            message = loads(record.payload, report, record.line)
            arg = message.get("arg") if isinstance(message, dict) else None
            if not isinstance(arg, dict) or arg.get("channel") not in BOOK_CHANNELS:
                continue
            inst_id = arg.get("instId")
            if not isinstance(inst_id, str) or "data" not in message:
                continue
            inst.setdefault(inst_id, None)
            track.channels.setdefault(inst_id, arg["channel"])
            track.frames.append(Frame(record.ts, inst_id, record.payload))
    track.symbols = list(inst)
    return track


class OkxSession(ReplaySession):
    """An OKX client: its connection id."""

    def __init__(self, conn: ReplayConnection) -> None:
        """Bind to ``conn``."""
        super().__init__(conn)
        self.conn_id = secrets.token_hex(4)


class OkxReplay(ReplayConnection):
    """A recorded OKX v5 public connection."""

    venue = "okx"
    ws_path = "/ws/v5/public"
    # This capture predates seqId/prevSeqId; a CRC32 of the top 25 levels per side.
    capabilities = Capabilities("okx", checksum_depth=25, notice=True)
    # The notice comes 30 seconds before a service upgrade closes the connection.
    notice_grace_s = okx.NOTICE_GRACE_S

    def __init__(self, name: str, track: OkxTrack, **kwargs: Any) -> None:
        """Keep the recorded channel of each instrument."""
        super().__init__(name, track, **kwargs)
        self.channels = track.channels

    translate = staticmethod(translate)

    def open_session(self, path: str, query: dict[str, str]) -> ReplaySession | None:
        """Accept the public endpoint only."""
        return OkxSession(self) if path.rstrip("/") == self.ws_path else None

    def notice_frame(self, peer: Peer) -> bytes:
        """Return the service-upgrade notice (code 64008) with the client's connection id."""
        assert isinstance(peer, OkxSession)
        return okx.notice(peer.conn_id)

    def on_message(self, session: ReplaySession, payload: bytes) -> None:
        """Answer ``ping`` and (un)subscribe requests (:func:`dragonfly.sim.protocols.okx.answer`)."""
        assert isinstance(session, OkxSession)

        def knows(channel: str, inst_id: str) -> bool:
            return self.channels.get(inst_id) == channel  # only the recorded channel

        def on_arg(op: str, channel: str, inst_id: str) -> None:
            if op == "subscribe":
                self.subscribe(session, inst_id)
            else:
                self.unsubscribe(session, inst_id)

        for reply in okx.answer(payload, session.conn_id, knows, on_arg):
            session.send(reply)
