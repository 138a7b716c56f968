"""A QuickFIX/C++ initiator for the interop tests: an independent FIX engine as the gateway's client.

QuickFIX validates every message it receives against its own FIX 4.4 data
dictionary before the application sees it; a message it cannot accept never
reaches :meth:`QuickFixClient.fromApp` but makes it send a session-level
Reject (3) or drop the message and log why in its event log. The dictionary
is the ``FIX44.xml`` the quickfix wheel installs plus the gateway's documented
user-defined fields (:data:`GATEWAY_FIELDS`, :func:`gateway_dictionary`), as
any client of a venue with custom tags loads them: with the stock file and
QuickFIX's defaults (ValidateUserDefinedFields=Y) every W is rejected with
"Invalid tag number" for 20001. So the tests assert on three records: the messages each way
(:attr:`QuickFixClient.sent`, :attr:`QuickFixClient.received`), and the event
log (:meth:`QuickFixClient.events`).

QuickFIX runs its own threads and calls the application from them; the
callbacks only copy what they need into plain Python objects under a lock and
notify a condition, and every wait of the test thread has a timeout, so a
test fails instead of hanging.
"""

from __future__ import annotations

import contextlib
import sysconfig
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import quickfix as fix  # type: ignore[import-untyped]
import quickfix44 as fix44  # type: ignore[import-untyped]

SOH = "\x01"
#: The gateway's CompID when none is configured (issue 14).
GATEWAY_COMP_ID = "DRAGONFLY"


def data_dictionary() -> Path:
    """The FIX 4.4 data dictionary the quickfix wheel installs (``<prefix>/share/quickfix/FIX44.xml``)."""
    path = Path(sysconfig.get_path("data")) / "share" / "quickfix" / "FIX44.xml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not installed with quickfix (python3 dev.py interop installs it)")
    return path


#: The gateway's user-defined fields (dragonfly/fix/mdcodec.py, docs/fix.md) as a client declares them:
#: (number, name, type, where). Nanosecond times are STRING: QuickFIX's INT is 32 bits.
#: where: ``entry`` (in NoMDEntries), ``body`` (the W's body), or the NUMINGROUP it belongs to.
GATEWAY_FIELDS: tuple[tuple[int, str, str, str], ...] = (
    (20020, "DFBandBps", "FLOAT", "entry"),
    (20021, "DFFillQty", "QTY", "entry"),
    (20022, "DFWorstPx", "PRICE", "entry"),
    (20023, "DFSlippageBps", "FLOAT", "entry"),
    (20024, "DFFillComplete", "BOOLEAN", "entry"),
    (20025, "DFMid", "PRICE", "body"),
    (20001, "DFViewSeq", "INT", "body"),
    (20002, "DFPublishNs", "STRING", "body"),
    (20003, "DFRecvNs", "STRING", "body"),
    (20004, "DFSourceVenue", "STRING", "body"),
    (20005, "DFSourceFrame", "STRING", "body"),
    (20010, "DFNoVenues", "NUMINGROUP", "body"),
    (20011, "DFVenue", "STRING", "DFNoVenues"),
    (20012, "DFVenueInMerge", "BOOLEAN", "DFNoVenues"),
    (20013, "DFVenueStatus", "STRING", "DFNoVenues"),
    (20014, "DFVenueDataNs", "STRING", "DFNoVenues"),
    (20015, "DFVenueAgeNs", "STRING", "DFNoVenues"),
)


def gateway_dictionary(dest: Path) -> Path:
    """Write FIX44.xml with the gateway's user-defined fields declared in W (:data:`GATEWAY_FIELDS`)."""
    tree = ET.parse(data_dictionary())
    root = tree.getroot()
    fields = root.find("fields")
    message = root.find("messages/message[@msgtype='W']")
    entries = root.find("components/component[@name='MDFullGrp']/group[@name='NoMDEntries']")
    assert fields is not None and message is not None and entries is not None, "unexpected FIX44.xml"
    groups: dict[str, ET.Element] = {}
    for number, name, kind, where in GATEWAY_FIELDS:
        ET.SubElement(fields, "field", number=str(number), name=name, type=kind)
        if kind == "NUMINGROUP":
            groups[name] = ET.SubElement(message, "group", name=name, required="N")
            continue
        parent = {"entry": entries, "body": message}.get(where) or groups[where]
        ET.SubElement(parent, "field", name=name, required="N")
    tree.write(dest, encoding="utf-8", xml_declaration=True)
    return dest


@dataclass(frozen=True)
class Entry:
    """One MDEntry of a W: type ``0`` bid or ``1`` offer."""

    type: str
    price: float
    size: float
    originator: str | None
    position: int | None  #: MDEntryPositionNo (290): the level, 1 = best
    condition: str | None  #: QuoteCondition (276): D consolidated best, C a venue's best (BBO view)
    band_bps: float | None = None  #: DFBandBps (20020): a liquidity band's width
    fill_qty: float | None = None  #: DFFillQty (20021): a liquidity fill's quantity asked
    fill_complete: str | None = None  #: DFFillComplete (20024)


@dataclass(frozen=True)
class Snapshot:
    """One MarketDataSnapshotFullRefresh (W) as received."""

    req_id: str | None
    symbol: str
    entries: tuple[Entry, ...]
    seq_num: int
    view_seq: int | None  #: DFViewSeq (20001)
    at: float  #: time.monotonic() when received

    @property
    def bids(self) -> list[Entry]:
        """The bid entries in message order."""
        return [e for e in self.entries if e.type == "0"]

    @property
    def asks(self) -> list[Entry]:
        """The offer entries in message order."""
        return [e for e in self.entries if e.type == "1"]


@dataclass(frozen=True)
class Raw:
    """One message either way: its MsgType, its fields in wire order, and its text."""

    msg_type: str
    fields: tuple[tuple[int, str], ...]
    text: str
    at: float

    def get(self, tag: int) -> str | None:
        """The first value of ``tag``, or None."""
        for t, v in self.fields:
            if t == tag:
                return v
        return None


def _fields(text: str) -> tuple[tuple[int, str], ...]:
    out = []
    for part in text.split(SOH):
        if part:
            tag, _, value = part.partition("=")
            out.append((int(tag), value))
    return tuple(out)


def _optional(group: fix.FieldMap, tag: int) -> str | None:
    return group.getField(tag) if group.isSetField(tag) else None


def _snapshot(message: fix.Message) -> Snapshot:
    """Read a W through QuickFIX's own group API (the message is parsed with the dictionary)."""
    count = int(message.getField(268))
    entries = []
    for i in range(1, count + 1):
        group = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()  # fresh: no field of the last entry
        message.getGroup(i, group)
        entries.append(
            Entry(
                group.getField(269),
                float(group.getField(270)) if group.isSetField(270) else float("nan"),
                float(group.getField(271)) if group.isSetField(271) else float("nan"),
                _optional(group, 282),
                int(group.getField(290)) if group.isSetField(290) else None,
                _optional(group, 276),
                float(group.getField(20020)) if group.isSetField(20020) else None,
                float(group.getField(20021)) if group.isSetField(20021) else None,
                _optional(group, 20024),
            )
        )
    view_seq = _optional(message, 20001)
    return Snapshot(
        _optional(message, 262),
        message.getField(55),
        tuple(entries),
        int(message.getHeader().getField(34)),
        int(view_seq) if view_seq is not None else None,
        time.monotonic(),
    )


@dataclass
class Record:
    """Everything the client saw, appended from QuickFIX's threads under :attr:`QuickFixClient.cond`."""

    sent: list[Raw] = field(default_factory=list)
    received: list[Raw] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    logons: int = 0
    logouts: int = 0
    errors: list[str] = field(default_factory=list)  #: exceptions raised inside a callback


class QuickFixClient(fix.Application):  # type: ignore[misc]
    """A QuickFIX initiator session to the gateway on ``port`` (see module doc)."""

    def __init__(
        self, port: int, sender: str, workdir: Path, *, heartbeat: int = 30, reset_on_logon: bool = False
    ) -> None:
        super().__init__()
        self.port = port
        self.sender = sender
        self.workdir = workdir
        self.heartbeat = heartbeat
        self.reset_on_logon = reset_on_logon
        self.cond = threading.Condition()
        self.record = Record()
        self.session_id: fix.SessionID | None = None
        self._initiator: fix.SocketInitiator | None = None
        self._req = 0

    # -- QuickFIX callbacks (its threads) ------------------------------------------------------

    def _guard(self, what: Callable[[], None]) -> None:
        try:
            with self.cond:
                what()
                self.cond.notify_all()
        except Exception as exc:  # a callback must never throw into QuickFIX: record it instead
            with self.cond:
                self.record.errors.append(f"{type(exc).__name__}: {exc}")
                self.cond.notify_all()

    def _raw(self, message: fix.Message) -> Raw:
        text = message.toString()
        fields = _fields(text)
        msg_type = next(v for t, v in fields if t == 35)
        return Raw(msg_type, fields, text, time.monotonic())

    def onCreate(self, session_id: fix.SessionID) -> None:  # noqa: N802 (QuickFIX's names)
        self.session_id = session_id

    def onLogon(self, session_id: fix.SessionID) -> None:  # noqa: N802
        def logon() -> None:
            self.record.logons += 1

        self._guard(logon)

    def onLogout(self, session_id: fix.SessionID) -> None:  # noqa: N802
        def logout() -> None:
            self.record.logouts += 1

        self._guard(logout)

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        self._guard(lambda: self.record.sent.append(self._raw(message)))

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        self._guard(lambda: self.record.sent.append(self._raw(message)))

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        self._guard(lambda: self.record.received.append(self._raw(message)))

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        def received() -> None:
            raw = self._raw(message)
            self.record.received.append(raw)
            if raw.msg_type == "W":
                self.record.snapshots.append(_snapshot(message))

        self._guard(received)

    # -- the test thread -----------------------------------------------------------------------

    def settings(self) -> str:
        """The session settings (QuickFIX's INI format)."""
        return "\n".join(
            (
                "[DEFAULT]",
                "ConnectionType=initiator",
                "ReconnectInterval=1",
                "StartTime=00:00:00",
                "EndTime=00:00:00",
                "UseDataDictionary=Y",
                f"DataDictionary={gateway_dictionary(self.workdir / 'FIX44-dragonfly.xml')}",
                f"FileLogPath={self.workdir}",
                "LogoutTimeout=5",
                f"ResetOnLogon={'Y' if self.reset_on_logon else 'N'}",
                "[SESSION]",
                "BeginString=FIX.4.4",
                f"SenderCompID={self.sender}",
                f"TargetCompID={GATEWAY_COMP_ID}",
                "SocketConnectHost=127.0.0.1",
                f"SocketConnectPort={self.port}",
                f"HeartBtInt={self.heartbeat}",
                "",
            )
        )

    def start(self, timeout: float = 10.0) -> None:
        """Connect and log on; AssertionError (with the event log) if not logged on in ``timeout``."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = fix.SessionSettings()
        settings.setFromString(self.settings())
        self._initiator = fix.SocketInitiator(
            self, fix.MemoryStoreFactory(), settings, fix.FileLogFactory(settings)
        )
        self._initiator.start()
        self.wait(lambda r: r.logons >= 1, timeout, "logged on")

    def stop(self) -> None:
        """Stop the initiator (a Logout first if still logged on); idempotent."""
        initiator, self._initiator = self._initiator, None
        if initiator is not None:
            initiator.stop()

    def __enter__(self) -> QuickFixClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, done: Callable[[Record], bool], timeout: float, what: str) -> None:
        """Block until ``done(record)`` holds (checked under the lock), or fail saying ``what``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not done(self.record):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"not {what} within {timeout:g} s; callback errors {self.record.errors}; "
                        f"received {[r.msg_type for r in self.record.received][-20:]}, the last: "
                        f"{[r.text.replace(SOH, '|')[:300] for r in self.record.received[-2:]]}; "
                        f"event log:\n{self.events()[-3000:]}"
                    )
                self.cond.wait(left)

    def snapshot_count(self) -> int:
        """How many W have arrived so far."""
        with self.cond:
            return len(self.record.snapshots)

    def snapshots(self, req_id: str | None = None, since: int = 0) -> list[Snapshot]:
        """The W received (from index ``since``), those answering ``req_id`` if given."""
        with self.cond:
            found = self.record.snapshots[since:]
        return [s for s in found if req_id is None or s.req_id == req_id]

    def received(self, msg_type: str) -> list[Raw]:
        """The messages of ``msg_type`` received so far."""
        with self.cond:
            return [r for r in self.record.received if r.msg_type == msg_type]

    def sent(self, msg_type: str) -> list[Raw]:
        """The messages of ``msg_type`` sent so far (by the test or by QuickFIX itself)."""
        with self.cond:
            return [r for r in self.record.sent if r.msg_type == msg_type]

    def events(self) -> str:
        """QuickFIX's event log of this session (what it dropped or rejected, and why)."""
        logs = sorted(self.workdir.glob("*.event.current.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)

    def send(self, message: fix.Message) -> None:
        """Send an application or admin message on the session."""
        assert self.session_id is not None
        if not fix.Session.sendToTarget(message, self.session_id):
            raise AssertionError(f"QuickFIX did not send {message.toString()!r}")

    def next_req_id(self) -> str:
        """A fresh MDReqID."""
        self._req += 1
        return f"{self.sender}-{self._req}"

    def request(
        self,
        symbols: Sequence[str],
        *,
        subscription: str = "1",
        depth: int = 0,
        req_id: str | None = None,
        view: str | None = None,
    ) -> str:
        """Send a MarketDataRequest (V) for bids and offers of ``symbols``; return its MDReqID.

        ``subscription``: SubscriptionRequestType 0 snapshot, 1 snapshot + updates, 2 unsubscribe
        (then ``req_id`` is the request to end). Full refresh (MDUpdateType 0). ``view``: the
        gateway's DFView (20000): book, bbo or liquidity (default: by MarketDepth).
        """
        req_id = req_id or self.next_req_id()
        message = fix44.MarketDataRequest()
        message.setField(fix.MDReqID(req_id))
        message.setField(fix.SubscriptionRequestType(subscription))
        message.setField(fix.MarketDepth(depth))
        message.setField(fix.MDUpdateType(0))
        if view is not None:
            message.setField(fix.StringField(20000, view))
        for entry_type in ("0", "1"):
            types = fix44.MarketDataRequest.NoMDEntryTypes()
            types.setField(fix.MDEntryType(entry_type))
            message.addGroup(types)
        for symbol in symbols:
            related = fix44.MarketDataRequest.NoRelatedSym()
            related.setField(fix.Symbol(symbol))
            message.addGroup(related)
        self.send(message)
        return req_id

    def test_request(self, test_id: str) -> None:
        """Send a TestRequest (1) with TestReqID ``test_id``."""
        message = fix44.TestRequest()
        message.setField(fix.TestReqID(test_id))
        self.send(message)

    def logout(self, timeout: float = 10.0) -> None:
        """Log out and wait for the gateway's Logout and QuickFIX's onLogout."""
        assert self.session_id is not None
        session = fix.Session.lookupSession(self.session_id)
        assert session is not None
        with self.cond:
            logouts, answers = self.record.logouts, sum(m.msg_type == "5" for m in self.record.received)
        session.logout("done")
        self.wait(
            lambda r: r.logouts > logouts and sum(m.msg_type == "5" for m in r.received) > answers,
            timeout,
            "logged out (a Logout from the gateway, then onLogout)",
        )

    def logon_again(self, timeout: float = 10.0) -> None:
        """Log the same QuickFIX session on again (after :meth:`logout`) and wait for it."""
        assert self.session_id is not None
        session = fix.Session.lookupSession(self.session_id)
        assert session is not None
        with self.cond:
            logons = self.record.logons
        session.logon()
        self.wait(lambda r: r.logons > logons, timeout, "logged on again")

    def rejects(self) -> list[Raw]:
        """Session Rejects (3) and BusinessMessageRejects (j), either way."""
        with self.cond:
            both = [*self.record.sent, *self.record.received]
        return [r for r in both if r.msg_type in ("3", "j")]

    def problems(self) -> list[str]:
        """What must not happen in a clean session: rejects, callback errors, messages QuickFIX dropped."""
        out = [f"reject {r.text.replace(SOH, '|')}" for r in self.rejects()]
        with self.cond:
            out += [f"callback error {e}" for e in self.record.errors]
        dropped = ("Invalid message", "rejected", "Message Rejected", "Unsupported", "incorrect",
                   "Sending time accuracy problem", "MsgSeqNum too")
        out += [f"event {line}" for line in self.events().splitlines() if any(d in line for d in dropped)]
        return out


@contextlib.contextmanager
def session(
    port: int, sender: str, workdir: Path, *, heartbeat: int = 30, reset_on_logon: bool = False
) -> Iterator[QuickFixClient]:
    """A logged-on client that is always stopped afterwards."""
    client = QuickFixClient(port, sender, workdir, heartbeat=heartbeat, reset_on_logon=reset_on_logon)
    try:
        client.start()
        yield client
    finally:
        client.stop()
