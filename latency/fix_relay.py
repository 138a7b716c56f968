"""The null FIX relay: the transport floor of dragonfly's FIX gateway.

``python -m latency.fix_relay --port P --endpoint binance=ws://.. --endpoint bitstamp=ws://..``

The FIX twin of :mod:`latency.relay`: the same picows client per venue
(:class:`latency.relay.Feed`) subscribes like dragonfly does, and for every
data frame publishes one MarketDataSnapshotFullRefresh (W) to every FIX
session subscribed to it, through the FIX session layer the gateway runs
(:class:`dragonfly.fix.session.FixSession` on a ``loop.create_server``
acceptor: same framing, same per-session header, same write-buffer limits).
It does no book work: the entries are a fixed merged 10 + 10 book encoded
once by the gateway's own encoder (:func:`template`: the same bytes a
dragonfly W of that book has); only the stamps the gateway writes
(:data:`latency.fix_subscribers.STAMP_TAGS`: view sequence, publish and
receive times, source venue and frame) are rendered per frame, once for
every session, and each session writes only its standard header and its
MDReqID and Symbol in front of the shared tail (``send_body``: the tail's
byte sum is computed once), as the gateway does. A session that cannot take more (its transport
above the high-water mark) keeps only the newest W, sent when it drains:
the gateway's slow-reader rule. Its ``publish_ns - recv_ns`` is the relay's
internal hop.

``--decode``: the same probe as :mod:`latency.relay`'s (dragonfly's decoder
on every data frame first; ``python -m latency --paths fix-decode``).

Any client CompID is accepted; it answers a MarketDataRequest (V) for
snapshot + updates (263=1) of anything with the template, and 263=2 ends it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from typing import Final

from dragonfly.core.health import VenueStatus
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.fix.codec import FixMessage, byte_sum, field, fields_bytes
from dragonfly.fix.mdcodec import encode_book
from dragonfly.fix.session import FixSession, SessionConfig
from latency.fix_subscribers import StampTags
from latency.relay import Feed, connect_venues, decoder, frames_per_venue, parse_cli, stop_on_signals

_time_ns = time.time_ns

#: The levels a side of the template book (dragonfly's default depth).
DEPTH: Final = 10
#: The template book's times (2026-01-01, ns): fixed, so it encodes the same every time.
_T0: Final = 1_767_225_600_000_000_000


def template_book(depth: int = DEPTH) -> MergedBook:
    """The book of :func:`template`: :func:`latency.relay.template`'s, both venues live in the merge."""
    venues = ("binance", "bitstamp")
    bids = tuple(MergedLevel(venues[i % 2], 0.05 - i * 1e-5, 1.23456789 + i) for i in range(depth))
    asks = tuple(MergedLevel(venues[(i + 1) % 2], 0.05001 + i * 1e-5, 2.3456789 + i) for i in range(depth))
    now = _T0
    states = tuple(VenueState(v, True, int(VenueStatus.LIVE), now, 1_000_000, 1) for v in venues)
    return MergedBook("ethbtc", asks[0].price - bids[0].price, bids, asks, 1, now, now, "binance", 1, states)


def template(depth: int = DEPTH) -> tuple[bytes, bytes]:
    """The shared part of the W of a merged top-``depth`` book, cut around its stamps.

    Returns (the entries, ending where the stamps start; the venues' states
    after them): the gateway's encoder (:func:`dragonfly.fix.mdcodec.encode_book`)
    on :func:`template_book`.
    """
    tail = encode_book(template_book(depth)).tail
    stamps = tail.index(b"\x0120001=") + 1
    after = tail.index(b"\x0120010=") + 1
    return tail[:stamps], tail[after:]


class FixRelay:
    """Frames in, one shared W tail per frame out to every subscribed session (see module doc)."""

    def __init__(self) -> None:
        self.entries, self.states = template()
        self.fixed_sum = byte_sum(self.entries) + byte_sum(self.states)
        #: Subscribed sessions and the per-session part of their W (MDReqID, Symbol).
        self.sessions: dict[FixSession, bytes] = {}
        #: The newest W of a session that could not take it: (tail, tail byte sum).
        self.pending: dict[FixSession, tuple[bytes, int]] = {}
        self.sequence = 0
        self.frames = 0
        # The gateway's order (dragonfly/fix/mdcodec.py): sequence, publish, receive, venue, frame.
        self._seq_tag = b"%d=" % StampTags.sequence
        self._publish_tag = b"\x01%d=" % StampTags.publish_ns
        self._recv_tag = b"\x01%d=" % StampTags.recv_ns
        self._frame_tag = b"%d=" % StampTags.source_frame

    def venue_field(self, venue: str) -> bytes:
        """How the source venue is written into a W."""
        return field(StampTags.source_venue, venue)

    def stamped(self, venue_field: bytes, frame: int, recv_ns: int, publish_ns: int) -> tuple[bytes, int]:
        """The shared part of a W of the template with these stamps, and its byte sum."""
        stamps = b"".join(
            (
                self._seq_tag, b"%d" % self.sequence, self._publish_tag, b"%d" % publish_ns,
                self._recv_tag, b"%d\x01" % recv_ns, venue_field, self._frame_tag, b"%d\x01" % frame,
            )
        )  # fmt: skip
        return b"".join((self.entries, stamps, self.states)), byte_sum(stamps) + self.fixed_sum

    def publish(self, venue_field: bytes, frame: int, recv_ns: int) -> None:
        """Publish the template stamped for ``frame`` of a venue to every subscribed session (hot path)."""
        self.sequence += 1
        self.frames += 1
        tail, tail_sum = self.stamped(venue_field, frame, recv_ns, _time_ns())
        pending = self.pending
        for session, head in self.sessions.items():
            if session.writable:
                session.send_body(b"W", head, tail, tail_sum)
            else:
                pending[session] = (tail, tail_sum)  # the newest only: older ones are dropped

    # -- SessionHandler ------------------------------------------------------------------------

    def on_logon(self, session: FixSession) -> None:
        pass

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type != b"V":
            return
        req_id = msg.require(262)
        kind = msg.require(263)
        if kind == b"2":
            self._drop(session)
        elif kind == b"1":
            self.sessions[session] = fields_bytes([(262, req_id), (55, msg.get(55) or b"ETHBTC")])
        else:
            text = "the null relay serves snapshot + updates (263=1) only"
            session.send(b"Y", [(262, req_id), (281, 4), (58, text)])

    def on_writable(self, session: FixSession) -> None:
        # Called as the transport drains, before any later publish: a pending W never outlives it.
        waiting = self.pending.pop(session, None)
        head = self.sessions.get(session)
        if waiting is not None and head is not None:
            session.send_body(b"W", head, *waiting)

    def on_close(self, session: FixSession, reason: str) -> None:
        self._drop(session)

    def _drop(self, session: FixSession) -> None:
        self.sessions.pop(session, None)
        self.pending.pop(session, None)


async def run(
    port: int,
    endpoints: dict[str, str],
    subscribe: dict[str, list[bytes]] | None = None,
    decode: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT; ``subscribe``: frames per venue (default: the gRPC relay's).

    ``decode``: run dragonfly's decoder on every data frame first (module doc).
    """
    frames = frames_per_venue(subscribe)
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    relay = FixRelay()
    config = SessionConfig()  # the gateway's defaults: CompID DRAGONFLY, any client
    server = await loop.create_server(lambda: FixSession(config, relay, "acceptor"), "127.0.0.1", port)
    transports = await connect_venues(
        endpoints,
        lambda venue: functools.partial(
            Feed, relay, venue, frames[venue], relay.venue_field(venue), decoder(venue) if decode else None
        ),
    )
    print(f"serving FIX relay on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    for transport in transports:
        transport.disconnect()
    for session in list(relay.sessions):
        session.close("relay stopping")
    server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run the relay on uvloop."""
    args = parse_cli(
        "python -m latency.fix_relay", __doc__.splitlines()[0], argv, "the FIX acceptor's port on 127.0.0.1"
    )
    import uvloop

    return int(uvloop.run(run(args.port, args.endpoints, args.subscribe_frames, args.decode)))


if __name__ == "__main__":
    sys.exit(main())
