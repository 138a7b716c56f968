"""The FIX subscriber process: K FIX sessions, each stamping the W messages it receives.

``python -m latency.fix_subscribers --port P --count K --slow 1 --out FILE``

The FIX twin of :mod:`latency.subscribers`, with the same protocol towards
the harness (``ready`` / ``stop`` / ``done`` on stdin and stdout) and the
same :class:`~latency.subscribers.SubscriberLog` output, so the analysis is
the same for both transports. Each subscriber is a FIX 4.4 client on its
own TCP connection: it logs on (dragonfly's codec writes every message it
sends), asks for snapshot + updates of the merged top N (MarketDataRequest,
MarketDepth 0), and records, per MarketDataSnapshotFullRefresh (W), its
receive time (``time.time_ns()`` as the bytes arrive, before they are
framed) and the stamps the W carries (:data:`STAMP_TAGS`). ``--slow N`` of
the K stop reading for ``--slow-pause`` seconds after every read (a client
that falls behind: the server must conflate for it alone).

Why it frames W itself instead of running the session layer
(:class:`dragonfly.fix.session.FixSession`) on them: that reader splits every
field of a message, ~35-75 µs for a 10 + 10 level W (~1.5 KB, ~150 fields) on
this 2-core VM, so 10 subscribers of a relay publishing 500 W/s cost the
subscriber process ~40% of a core and fell behind: the null relay, which
sends every frame, measured a p90 of 300 ms, its subscribers' backlog, not
its own. Like the gRPC subscribers' :class:`latency.wire.StampReader`, this
reads only what it needs: each message is framed by its BodyLength and its
CheckSum verified (a few µs), a W's stamps are found from its end (they
follow the entries), and every other message (Logon, TestRequest, Logout,
Reject, MarketDataRequestReject: rare) is parsed whole by the codec's
:class:`~dragonfly.fix.codec.FixReader`. Sequence numbers are not checked:
a measurement client on loopback, whose server is the one under test.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sys
import time
from typing import Final

from dragonfly.fix.codec import FixError, FixReader, encode, sending_time
from latency.generator import INSTRUMENT
from latency.subscribers import SubscriberLog

#: The gateway's CompID (its default).
TARGET: Final = "DRAGONFLY"
#: HeartBtInt asked for, and how often the client sends a Heartbeat (seconds).
HEARTBEAT_S: Final = 30
#: The largest message accepted (bytes): a 10 + 10 W is ~1.5 KB.
MAX_MESSAGE: Final = 64 * 1024

_START: Final = b"8=FIX.4.4\x019="
_W: Final = b"35=W\x01"


class StampTags:
    """Where a W carries the stamps of an update: the user-defined tags of dragonfly/fix/mdcodec.py."""

    sequence: Final = 20001  #: DFViewSeq
    publish_ns: Final = 20002  #: DFPublishNs
    recv_ns: Final = 20003  #: DFRecvNs
    source_venue: Final = 20004  #: DFSourceVenue
    source_frame: Final = 20005  #: DFSourceFrame


#: The stamps' tags, in the order the gateway writes them, right after the entries.
STAMP_TAGS: Final = (StampTags.sequence, StampTags.publish_ns, StampTags.recv_ns, StampTags.source_venue,
                     StampTags.source_frame)
_FIRST_STAMP: Final = b"\x01%d=" % StampTags.sequence


def market_data_request(req_id: str, instrument: str) -> list[tuple[int, bytes | str | int]]:
    """A MarketDataRequest (V) body: snapshot + updates of ``instrument``'s merged top N, full refresh."""
    return [
        (262, req_id), (263, 1), (264, 0), (265, 0),
        (267, 2), (269, 0), (269, 1),
        (146, 1), (55, instrument),
    ]  # fmt: skip


def stamps(msg: bytes) -> dict[bytes, bytes]:
    """The stamp fields of a W (tag -> value, both bytes), read from the first stamp on."""
    at = msg.rfind(_FIRST_STAMP)
    if at < 0:
        return {}
    out = {}
    for part in msg[at + 1 :].split(b"\x01"):
        tag, _, value = part.partition(b"=")
        if not tag.isdigit() or int(tag) not in STAMP_TAGS:
            break
        out[tag] = value
    return out


class StampClient(asyncio.Protocol):
    """One subscriber's FIX session (see module doc): log on, subscribe, stamp every W."""

    def __init__(
        self,
        sender: str,
        log: SubscriberLog,
        instrument: str,
        first: asyncio.Event,
        opened: asyncio.Event,
        pause: float,
    ) -> None:
        self.sender = sender
        self.log = log
        self.instrument = instrument
        self.first = first
        self.opened = opened
        self.pause = pause
        self.errors: list[str] = []
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._out_seq = 1
        self._venue_ids: dict[bytes, int] = {}
        self._heartbeat: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._tags = tuple(b"%d" % tag for tag in STAMP_TAGS)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport) or hasattr(transport, "pause_reading")
        self.transport = transport  # type: ignore[assignment]
        self.send(b"A", [(98, 0), (108, HEARTBEAT_S), (141, "Y")])
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._beat)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    def send(self, msg_type: bytes, fields: list[tuple[int, bytes | str | int]]) -> None:
        """Send one message with the standard header."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        header: list[tuple[int, bytes | str | int]] = [
            (49, self.sender), (56, TARGET), (34, self._out_seq), (52, sending_time()),
        ]  # fmt: skip
        self._out_seq += 1
        transport.write(encode(msg_type, header + fields))

    def close(self, error: str = "") -> None:
        """Drop the connection, noting ``error`` if any."""
        if error:
            self.errors.append(error)
        if self.transport is not None:
            self.transport.close()

    def _beat(self) -> None:
        self.send(b"0", [])
        self._heartbeat = self._loop.call_later(HEARTBEAT_S, self._beat)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 20:
            if buf[pos : pos + 12] != _START:
                return self.close(f"not a FIX 4.4 message: {bytes(buf[pos : pos + 20])!r}")
            len_end = buf.find(b"\x01", pos + 12, pos + 20)
            digits = bytes(buf[pos + 12 : len_end]) if len_end > 0 else b""
            if not digits.isdigit():
                return self.close(f"unreadable BodyLength: {bytes(buf[pos : pos + 20])!r}")
            trailer = len_end + 1 + int(digits)
            msg_end = trailer + 7  # 10=nnn<SOH>
            if msg_end - pos > MAX_MESSAGE:
                return self.close(f"message of {msg_end - pos} bytes, over {MAX_MESSAGE}")
            if msg_end > end:
                break
            msg = bytes(buf[pos:msg_end])
            body = len_end + 1 - pos
            pos = msg_end
            check = msg[-7:]  # 10=nnn<SOH>
            if check[:3] != b"10=" or not check[3:6].isdigit() or int(check[3:6]) != sum(msg[:-7]) & 0xFF:
                return self.close(f"bad BodyLength or CheckSum: {msg[-40:]!r}")
            if msg[body : body + 5] == _W:
                self._on_w(msg, now)
            else:
                self._on_other(msg)
        del buf[:pos]
        transport = self.transport
        if self.pause and transport is not None and not transport.is_closing() and self.log.recv:
            transport.pause_reading()
            self._loop.call_later(self.pause, self._resume)

    def _resume(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def _on_w(self, msg: bytes, now: int) -> None:
        s = stamps(msg)
        seq_tag, publish_tag, recv_tag, venue_tag, frame_tag = self._tags
        log = self.log
        venue = s.get(venue_tag, b"")
        vid = self._venue_ids.get(venue)
        if vid is None:
            vid = self._venue_ids[venue] = len(log.venues)
            log.venues.append(venue.decode("ascii", "replace"))
        log.recv.append(now)
        log.sequence.append(int(s.get(seq_tag, b"0")))
        log.engine_recv.append(int(s.get(recv_tag, b"0")))
        log.publish.append(int(s.get(publish_tag, b"0")))
        log.venue.append(vid)
        log.frame.append(int(s.get(frame_tag, b"0")))
        self.first.set()

    def _on_other(self, raw: bytes) -> None:
        reader = FixReader(MAX_MESSAGE)
        reader.feed(raw)
        try:
            msg = reader.next()
        except FixError as exc:
            return self.close(f"unreadable message: {exc.reason}")
        if msg is None:
            return self.close(f"unreadable message: {raw[:60]!r}")
        kind = msg.msg_type
        if kind == b"A":
            self.send(b"V", market_data_request("lat-1", self.instrument))
            self.opened.set()
        elif kind == b"1":
            self.send(b"0", [(112, msg.get(112) or b"")])
        elif kind == b"5":
            self.close(f"logged out: {msg.get_str(58)}")
        elif kind in (b"3", b"Y", b"j"):
            self.errors.append(f"{kind.decode()}: {msg.get_str(58)}")


async def run(port: int, count: int, slow: int, pause: float, out: str, ready: str = "first",
              instrument: str = INSTRUMENT) -> int:
    """Run the subscribers until ``stop`` on stdin; write their logs to ``out``."""
    loop = asyncio.get_running_loop()
    logs = [SubscriberLog(slow=i < slow) for i in range(count)]
    firsts = [asyncio.Event() for _ in logs]
    opens = [asyncio.Event() for _ in logs]
    clients = [
        StampClient(f"LAT{i}", log, instrument, f, o, pause if log.slow else 0.0)
        for i, (log, f, o) in enumerate(zip(logs, firsts, opens, strict=True))
    ]
    for client in clients:
        for attempt in range(50):  # the server may still be opening its FIX port
            try:
                await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
    awaited = opens if ready == "open" else firsts
    try:
        await asyncio.wait_for(asyncio.gather(*(ev.wait() for ev in awaited)), 30)
    except TimeoutError:
        errors = [e for c in clients for e in c.errors]
        print(f"no data: {errors[:3]}", flush=True)
        return 1
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    for client in clients:
        client.send(b"5", [])
        client.close()
    errors = [e for c in clients for e in c.errors]
    if errors:
        print(f"subscriber errors: {errors[:3]}", file=sys.stderr, flush=True)
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
