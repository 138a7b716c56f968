"""The faults in force on one venue server or replayed connection, and where they act.

A :class:`FaultSet` belongs to one server (a synthetic venue's, or one
replayed connection's). It keeps the faults in force in per-hook lists, so
every hook is one empty-list test while nothing is in force, and answers the
hooks the server and its clients call:

* the upgrade router: ``refuse`` and ``stall`` (:meth:`upgrade`);
* a client just connected or subscribed: ``drop``/``close`` windows, ``flap``;
* a frame leaving for a client (:class:`~dragonfly.sim.peer.Peer`):
  ``silence``, the frame faults, ``delay``;
* the publisher: ``pause``, ``skip``; the REST port: ``rest-*``;
* ``GET /dragonfly/faults`` on any port of the server (:meth:`control`).

``drop``, ``close`` and ``notice`` act on the current clients when applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict
from picows import WSCloseCode, WSUpgradeResponse, WSUpgradeResponseWithListener

from dragonfly.sim.faults.active import ActiveFault
from dragonfly.sim.faults.frames import REFRAMES
from dragonfly.sim.faults.spec import FRAME_KINDS, REST_KINDS, Fault, as_fault
from dragonfly.sim.faults.target import FaultTarget, check_supported
from dragonfly.sim.http import HttpReply, json_reply, phrase, to_picows

if TYPE_CHECKING:
    from dragonfly.sim.peer import Peer, Write

#: The control endpoint's path on every venue port.
CONTROL_PATH = "/dragonfly/faults"

_HOOKS: dict[str, str] = {
    "refuse": "upgrades", "stall": "upgrades", "drop": "opens", "close": "opens", "flap": "opens",
    "silence": "silences", "pause": "pauses", "delay": "delays", "skip": "skips",
    **dict.fromkeys(FRAME_KINDS, "framers"), **dict.fromkeys(REST_KINDS, "rests"),
}


class HeldUpgrade(WSUpgradeResponse):
    """A 101 answer picows accepts and never writes: the client waits for it forever."""

    def __init__(self) -> None:
        """Build an empty 101 response."""
        self.version = b"HTTP/1.1"
        self.status = HTTPStatus.SWITCHING_PROTOCOLS
        self.headers = CIMultiDict[str]()
        self.body = None

    def to_bytes(self) -> bytearray:
        """Write nothing."""
        return bytearray()


class FaultSet:
    """The faults in force on one server, by the hook they act at."""

    def __init__(self, target: FaultTarget) -> None:
        """Serve ``target``'s hooks; no fault is in force."""
        self.target = target
        self.venue = target.capabilities.venue
        #: Every fault in force, oldest first.
        self.active: list[ActiveFault] = []
        self.upgrades: list[ActiveFault] = []
        self.opens: list[ActiveFault] = []
        self.silences: list[ActiveFault] = []
        self.framers: list[ActiveFault] = []
        self.delays: list[ActiveFault] = []
        self.pauses: list[ActiveFault] = []
        self.skips: list[ActiveFault] = []
        self.rests: list[ActiveFault] = []
        #: Some fault acts on frames leaving for clients (the one test on the hot path).
        self.egress = False
        #: Set while no ``pause`` is in force.
        self.unpaused = asyncio.Event()
        self.unpaused.set()

    # -- applying ------------------------------------------------------------------

    def add(self, spec: str | Fault) -> ActiveFault:
        """Apply ``spec`` now; ValueError if it does not parse or the venue cannot show it."""
        fault = as_fault(spec)
        check_supported(fault, self.target.capabilities)
        active = ActiveFault(fault)
        hook = _HOOKS.get(fault.kind)
        self.active.append(active)
        if hook is not None:
            getattr(self, hook).append(active)
        self._refresh()
        active.on_end(self._ended)
        if fault.for_s is not None:
            timer = asyncio.get_running_loop().call_later(fault.for_s, active.end)
            active.on_end(lambda _: timer.cancel())
        self._start(active)
        return active

    def clear(self) -> int:
        """End every fault in force; return how many."""
        ended = list(self.active)
        for active in ended:
            active.cancel()
        return len(ended)

    def _ended(self, active: ActiveFault) -> None:
        for hooked in (self.active, self.upgrades, self.opens, self.silences, self.framers,
                       self.delays, self.pauses, self.skips, self.rests):
            if active in hooked:
                hooked.remove(active)
        self._refresh()

    def _refresh(self) -> None:
        self.egress = bool(self.silences or self.framers or self.delays)
        if self.pauses:
            self.unpaused.clear()
        else:
            self.unpaused.set()

    def _start(self, active: ActiveFault) -> None:
        """Act on the current clients for the kinds that do so when applied."""
        fault = active.fault
        peers = list(self.target.sessions)
        if fault.kind == "silence":
            active.state = set(peers)
        elif fault.kind in ("drop", "close"):
            for peer in peers:
                self._end_peer(fault, peer)
            active.hit(len(peers))
            if fault.for_s is None:
                active.end()
        elif fault.kind == "notice":
            self._notice(active, peers)

    def _end_peer(self, fault: Fault, peer: Peer) -> None:
        if fault.kind == "drop":
            peer.abort()
        else:
            reason = fault.get("reason")
            peer.close(fault.get("code"), reason or "")

    def _notice(self, active: ActiveFault, peers: list[Peer]) -> None:
        sent = [p for p in peers if self._send_notice(p)]
        grace = active.fault.get("grace")
        delay = self.target.notice_grace_s if grace is None else float(grace)

        def close() -> None:
            for peer in sent:
                if peer in self.target.sessions:
                    peer.close(WSCloseCode.SERVICE_RESTART, "reconnect")
            active.end()

        timer = asyncio.get_running_loop().call_later(delay, close)
        active.on_end(lambda _: timer.cancel())
        active.hit(len(sent))
        if active.active and not sent:
            active.end()

    def _send_notice(self, peer: Peer) -> bool:
        frame = self.target.notice_frame(peer)
        return frame is not None and peer.send(frame)

    # -- hooks -----------------------------------------------------------------------

    def upgrade(self, path: str, query: dict[str, str],
                open_session: Callable[[str, dict[str, str]], Peer | None]
                ) -> Peer | WSUpgradeResponseWithListener | None:
        """Answer a WebSocket upgrade: refused, stalled, or the venue's own session (None: 404)."""
        for active in self.upgrades:
            if active.fault.kind == "refuse":
                active.hit()
                status = int(active.fault.get("status"))
                return to_picows(HttpReply(status, phrase(status).encode(), "text/plain; charset=utf-8"))
            session = open_session(path, query)
            if session is None:
                return None
            session.stalled = True
            active.hit()
            if active.fault.get("phase") == "upgrade":
                return WSUpgradeResponseWithListener(HeldUpgrade(), session)
            return session
        return open_session(path, query)

    def opened(self, peer: Peer) -> None:
        """Apply the open-time faults to a client that just connected."""
        for active in list(self.opens):
            fault = active.fault
            if fault.kind == "flap":
                if peer.flap_after is None:
                    peer.flap_after = float(fault.get("after"))
                    active.hit()
            else:
                active.hit()
                self._end_peer(fault, peer)
                return

    def subscribed(self, peer: Peer) -> None:
        """Schedule a flapping client's close once it has subscribed."""
        after = peer.flap_after
        if after is not None:
            peer.flap_after = None
            asyncio.get_running_loop().call_later(after, peer.close, WSCloseCode.GOING_AWAY, "")

    def silenced(self, peer: Peer) -> bool:
        """Return True (and count it) if a frame for ``peer`` must not go out."""
        for active in self.silences:
            if peer in active.state:
                active.hit()
                return True
        return False

    def reframe(self, peer: Peer, data: bytes) -> list[Write] | None:
        """Return what book frame ``data`` becomes for ``peer``, or None if no fault takes it."""
        for active in list(self.framers):
            writes = REFRAMES[active.fault.kind](active, self, peer, data)
            if writes is not None:
                active.hit()
                return writes
        return None

    def delay_s(self) -> float:
        """Return the delay of an outgoing frame (and count it)."""
        active = self.delays[0]
        active.hit()
        return float(active.fault.get("ms")) / 1000.0

    @property
    def pausing(self) -> bool:
        """Return True while data must not be published."""
        return bool(self.pauses)

    def paused_round(self) -> None:
        """Count one publishing round held back by ``pause``."""
        self.pauses[0].hit()

    def skip(self, symbol: str) -> bool:
        """Return True (and count it) if the next diff event of ``symbol`` must be dropped."""
        for active in self.skips:
            wanted = active.fault.get("symbol")
            if wanted is None or wanted.lower() == symbol.lower():
                active.hit()
                return True
        return False

    # -- control endpoint ---------------------------------------------------------

    def control(self, path: str, query: dict[str, str]) -> HttpReply | None:
        """Answer ``GET /dragonfly/faults[?spec=..]`` and ``/clear``; None for other paths."""
        path = path.rstrip("/")
        if path == CONTROL_PATH + "/clear":
            return json_reply({"cleared": self.clear()})
        if path != CONTROL_PATH:
            return None
        spec = query.get("spec")
        if spec is None:
            listing: list[dict[str, Any]] = [a.as_json() for a in self.active]
            return json_reply({"venue": self.venue, "faults": listing})
        try:
            active = self.add(spec)
        except ValueError as exc:
            return json_reply({"error": str(exc)}, 400)
        return json_reply({"kind": active.fault.kind, "id": active.id})
