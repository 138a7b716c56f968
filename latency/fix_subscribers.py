"""The FIX subscriber process: K FIX sessions, each stamping the W messages it receives.

``python -m latency.fix_subscribers --port P --count K --slow 1 --out FILE``

The FIX twin of :mod:`latency.subscribers`, with the same protocol towards
the harness (``ready`` / ``stop`` / ``done`` on stdin and stdout) and the
same :class:`~latency.subscribers.SubscriberLog` output, so the analysis is
the same for both transports. Each subscriber is a FIX 4.4 initiator
(:class:`dragonfly.fix.session.FixSession`, the codec and session layer the
gateway itself runs) on its own TCP connection: it logs on, asks for
snapshot + updates of the merged top N (MarketDataRequest, MarketDepth 0),
and records, per MarketDataSnapshotFullRefresh (W), its receive time
(``time.time_ns()`` as the bytes arrive, before they are framed) and the
stamps the W carries (:data:`STAMP_TAGS`). ``--slow N`` of the K stop reading
for ``--slow-pause`` seconds after every read (a client that falls behind:
the server must conflate for it alone).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import pickle
import sys
import time
from typing import Final

from dragonfly.fix.codec import FixMessage
from dragonfly.fix.session import FixSession, SessionConfig
from latency.generator import INSTRUMENT
from latency.subscribers import SubscriberLog

#: The gateway's CompID (its default).
TARGET: Final = "DRAGONFLY"


class StampTags:
    """Where a W carries the stamps of an update: the user-defined tags of dragonfly/fix/mdcodec.py."""

    sequence: Final = 20001  #: DFViewSeq
    publish_ns: Final = 20002  #: DFPublishNs
    recv_ns: Final = 20003  #: DFRecvNs
    source_venue: Final = 20004  #: DFSourceVenue
    source_frame: Final = 20005  #: DFSourceFrame


#: The stamps' tags, in the order of a SubscriberLog's columns.
STAMP_TAGS: Final = (StampTags.sequence, StampTags.recv_ns, StampTags.publish_ns, StampTags.source_venue,
                     StampTags.source_frame)


def market_data_request(req_id: str, instrument: str) -> list[tuple[int, bytes | str | int]]:
    """A MarketDataRequest (V) body: snapshot + updates of ``instrument``'s merged top N, full refresh."""
    return [
        (262, req_id), (263, 1), (264, 0), (265, 0),
        (267, 2), (269, 0), (269, 1),
        (146, 1), (55, instrument),
    ]  # fmt: skip


class Recorder:
    """One subscriber's session handler: every W's receive time and stamps into its log."""

    def __init__(
        self, log: SubscriberLog, instrument: str, first: asyncio.Event, opened: asyncio.Event
    ) -> None:
        self.log = log
        self.instrument = instrument
        self.first = first
        self.opened = opened
        self.venue_ids: dict[bytes, int] = {}
        self.errors: list[str] = []

    def on_logon(self, session: FixSession) -> None:
        session.send(b"V", market_data_request("lat-1", self.instrument))
        self.opened.set()

    def on_message(self, session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type != b"W":
            if msg.msg_type == b"Y":
                self.errors.append(f"MarketDataRequestReject: {msg.get_str(58)}")
            return
        assert isinstance(session, StampingSession)
        log = self.log
        get = msg.get
        venue = get(StampTags.source_venue) or b""
        vid = self.venue_ids.get(venue)
        if vid is None:
            vid = self.venue_ids[venue] = len(log.venues)
            log.venues.append(venue.decode("ascii", "replace"))
        log.recv.append(session.read_ns)
        log.sequence.append(int(get(StampTags.sequence) or 0))
        log.engine_recv.append(int(get(StampTags.recv_ns) or 0))
        log.publish.append(int(get(StampTags.publish_ns) or 0))
        log.venue.append(vid)
        log.frame.append(int(get(StampTags.source_frame) or 0))
        self.first.set()

    def on_writable(self, session: FixSession) -> None:
        pass

    def on_close(self, session: FixSession, reason: str) -> None:
        self.errors.append(f"session closed: {reason}")


class StampingSession(FixSession):
    """A FixSession that notes when each read arrived, and reads slowly when told to."""

    def __init__(self, config: SessionConfig, recorder: Recorder, pause: float) -> None:
        super().__init__(config, recorder, "initiator")
        self.read_ns = 0
        self.pause = pause
        self.sock: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "pause_reading")
        self.sock = transport  # type: ignore[assignment]
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.read_ns = time.time_ns()
        super().data_received(data)
        sock = self.sock
        if self.pause and sock is not None and not sock.is_closing() and self.logged_on:
            sock.pause_reading()
            asyncio.get_running_loop().call_later(self.pause, self._resume)

    def _resume(self) -> None:
        sock = self.sock
        if sock is not None and not sock.is_closing():
            sock.resume_reading()


async def run(port: int, count: int, slow: int, pause: float, out: str, ready: str = "first",
              instrument: str = INSTRUMENT) -> int:
    """Run the subscribers until ``stop`` on stdin; write their logs to ``out``."""
    loop = asyncio.get_running_loop()
    logs = [SubscriberLog(slow=i < slow) for i in range(count)]
    firsts = [asyncio.Event() for _ in logs]
    opens = [asyncio.Event() for _ in logs]
    recorders = [Recorder(log, instrument, f, o) for log, f, o in zip(logs, firsts, opens, strict=True)]
    sessions: list[StampingSession] = []
    for i, rec in enumerate(recorders):
        config = SessionConfig(sender_comp_id=f"LAT{i}", target_comp_id=TARGET, heartbeat_s=30)
        pause_s = pause if rec.log.slow else 0.0
        factory = functools.partial(StampingSession, config, rec, pause_s)
        for attempt in range(50):  # the server may still be opening its FIX port
            try:
                _, session = await loop.create_connection(factory, "127.0.0.1", port)
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        sessions.append(session)
    awaited = opens if ready == "open" else firsts
    try:
        await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in awaited)), 30)
    except TimeoutError:
        errors = [e for r in recorders for e in r.errors]
        print(f"no data: {errors[:3]}", flush=True)
        return 1
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for session in sessions:
        session.close("harness stop")
    with open(out, "wb") as fh:
        pickle.dump([vars(log) for log in logs], fh)  # plain dicts: no __main__ classes
    print("done", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run on uvloop."""
    p = argparse.ArgumentParser(prog="python -m latency.fix_subscribers", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True, help="the FIX acceptor's port on 127.0.0.1")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--slow", type=int, default=0, help="how many of the subscribers read rarely")
    p.add_argument("--slow-pause", type=float, default=0.5)
    p.add_argument("--out", required=True)
    p.add_argument("--ready", choices=["first", "open"], default="first",
                   help="say ready once every session delivered a first W (default) or is logged on")
    p.add_argument("--instrument", default=INSTRUMENT)
    args = p.parse_args(argv)
    import uvloop

    return int(uvloop.run(run(args.port, args.count, args.slow, args.slow_pause, args.out, args.ready,
                              args.instrument)))


if __name__ == "__main__":
    sys.exit(main())
