"""A FIX 4.4 market-data venue: its settings, its frames and its :class:`VenueSpec`.

A FIX venue is *configured*, not one of the registry's venues: the user
names it and gives its endpoint (``--fix-venue upstream=fix://host:port``,
or ``[venues.upstream] kind = "fix"`` in a topology file), and
:func:`fix_venue_spec` turns that into a spec the generic layers drive like
any other. Its connection is the FIX initiator of :mod:`dragonfly.fix.initiator`
(the spec's ``connection``); everything below is data and pure functions.

Frames (what the initiator hands the feed: whole FIX messages, header to
CheckSum, already framed and checksummed by :mod:`dragonfly.fix.codec`):

* Subscribe: one MarketDataRequest (V) per symbol (a venue refusing one
  refuses only that one): SubscriptionRequestType 1 (snapshot + updates),
  MarketDepth ``market_depth`` (0: the venue's full book, which for a
  dragonfly gateway is its merged top N), MDUpdateType 0 (full refresh),
  MDEntryTypes bid and offer, and MDReqID = the symbol, so every answer
  names the symbol it is about.
* Book: MarketDataSnapshotFullRefresh (W), routed by its MDReqID (262) on a
  connection that carries several symbols. Its bid (269=0) and offer
  (269=1) entries become the book's sides in the order sent (best first;
  the listener refuses a book out of order), prices and sizes read with
  ``float`` from FIX's decimal strings, as every venue's decoder reads its
  numbers. Adjacent entries at one price are summed into one level: a
  dragonfly gateway sends its merged book, where two venues may quote the
  same price, and a venue book has one level a price. A venue book has no
  per-level originator, so the upstream's MDEntryOriginator (282) is not
  kept: every level is this venue's. The book's ``seq`` is the upstream's
  view sequence where the W carries it (:data:`SEQ_TAG`), else 0.
* No ack: FIX answers a MarketDataRequest with the snapshot itself, so a
  symbol's first W is its ack (``VenueSpec.acked_by_book``). A
  MarketDataRequestReject (Y) names the symbol in its MDReqID: that symbol
  is ``REJECTED`` (one log line), the others carry on. A
  BusinessMessageReject (j) of a V is a refusal too.
* Heartbeat (0) proves every book of the connection current (below).

Liveness (:mod:`dragonfly.core.health`): a FIX acceptor sends a Heartbeat
whenever it has sent nothing for HeartBtInt seconds, on the same ordered,
sequence-checked stream as the books, and a dragonfly gateway sends a W
whenever its merged book changes and keeps that book honest itself (a stale
upstream venue leaves the upstream's merge, which is a change). So a
Heartbeat, or any W, proves that every book of the connection is current
(``HEARTBEAT`` liveness); the initiator sends a TestRequest when the venue
has been silent for HeartBtInt plus a margin and ends the session when that
goes unanswered. A book nothing proved current for ``2 x HeartBtInt``
(:func:`stale_after`) leaves the merge; ``--stale-after`` overrides it.

A merged upstream book can be crossed or locked (its venues quote through
each other), which a single venue's book never is: the listener's rule, which
this venue kind does not change, takes a crossed W as unsound and keeps the
book out of the merge until the upstream uncrosses.

Parsing W on the hot path (``python -m latency.bench_fix_venue``: a
gateway's 10+10-level W of three venues, ~1.4 KB; medians in one run on the
shared 2-core VM under load, so read the ratios): one ``re.findall`` picks
every entry written 269, 270, 271 with plain decimals out in C, then
``float`` each: ~22 µs there. Any other layout takes a field-by-field read
(~1.7x). ``simplefix.FixParser`` with ``get(tag, n)`` per entry is ~40x. The
initiator's session reads a W's header only, so its reader checks every
field but splits none (``FixReader(lazy=True)``, ~0.8x the decode against
~3.1x with the split); the whole path, bytes into the session to the decoded
book, is ~1.8x the decode (~41 µs there; 5.6x with the split).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from dragonfly.core.errors import ConfigError, ParseError
from dragonfly.core.health import Liveness, LivenessKind
from dragonfly.core.transport import ConnectionFactory
from dragonfly.core.types import MAX_DEPTH, Side
from dragonfly.core.venue import (
    Control,
    ControlKind,
    Decoder,
    Limits,
    Rate,
    SnapshotChannel,
    VenueSpec,
    never_back,
)

#: The CompID a dragonfly gateway answers to (its default).
DEFAULT_TARGET = "DRAGONFLY"
#: Our CompID unless configured (a dragonfly gateway accepts any by default).
DEFAULT_SENDER = "DRAGONFLY-FEED"
#: HeartBtInt we ask for, seconds.
DEFAULT_HEARTBEAT = 5
#: The largest FIX message accepted from a venue: a W of 2 x 5000 levels at
#: ~60 bytes an entry is ~600 KB.
MAX_MESSAGE = 1024 * 1024
#: The user-defined tag in which a dragonfly gateway's W carries its view sequence.
SEQ_TAG = b"20001"
#: URL schemes: plain TCP and TLS.
SCHEMES = ("fix", "fixs")
#: Keys of a ``--fix-venue`` URL's query string.
QUERY_KEYS = ("sender", "target", "heartbeat", "username", "password_file", "depth")

_SOH = b"\x01"
_COMP_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
_VALUE = re.compile(r"^[\x20-\x7e]{1,64}$")
# One entry field of a W: MDEntryType, MDEntryPx, MDEntrySize (module doc).
_ENTRY = re.compile(rb"\x01(269|270|271)=([^\x01]*)")
# One bid or offer entry as FIX's field order writes it, plain decimals only.
_ADJACENT = re.compile(rb"\x01269=([01])\x01270=([0-9.]{1,40})\x01271=([0-9.]{1,40})(?=\x01)")
# A FIX Price/Qty as a book holds it: unsigned, no exponent.
_DECIMAL = re.compile(rb"^[0-9]{0,30}\.?[0-9]{0,30}$")
_SEQ = re.compile(rb"\x01" + SEQ_TAG + rb"=([0-9]{1,18})\x01")


@dataclass(frozen=True)
class FixVenue:
    """One configured FIX venue (see the module doc and docs/fix.md).

    Attributes:
        name: the venue's name in the merge and in logs (the user's choice).
        endpoint: ``fix://host:port`` (TCP) or ``fixs://host:port`` (TLS).
        sender_comp_id: our SenderCompID (49).
        target_comp_id: the venue's CompID, our TargetCompID (56).
        heartbeat: HeartBtInt (108) asked for in Logon, seconds.
        username: Username (553) in Logon, if the venue wants one.
        password: Password (554) in Logon (read from a file, never a flag).
        market_depth: MarketDepth (264) asked for: 0 the full book, N the top N.
        symbols: instrument -> the venue's Symbol (55) where it is not the instrument name.
    """

    name: str
    endpoint: str
    sender_comp_id: str = DEFAULT_SENDER
    target_comp_id: str = DEFAULT_TARGET
    heartbeat: int = DEFAULT_HEARTBEAT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    market_depth: int = 0
    symbols: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_endpoint(self.endpoint)
        comp_ids = {"sender_comp_id": self.sender_comp_id, "target_comp_id": self.target_comp_id}
        for key, comp_id in comp_ids.items():
            if not _COMP_ID.match(comp_id):
                raise ConfigError(f"{key}: expected 1 to 64 printable characters, no spaces, got {comp_id!r}")
        if not 1 <= self.heartbeat <= 3600:
            raise ConfigError(f"heartbeat: expected seconds from 1 to 3600, got {self.heartbeat!r}")
        if not 0 <= self.market_depth <= MAX_DEPTH:
            raise ConfigError(f"market_depth: expected 0 to {MAX_DEPTH}, got {self.market_depth!r}")
        values = {"username": self.username, "password": self.password}
        values.update({f"symbols.{k}": v for k, v in self.symbols.items()})
        for key, text in values.items():
            if text is not None and not _VALUE.match(text):
                shown = "(hidden)" if key == "password" else repr(text)
                raise ConfigError(f"{key}: expected 1 to 64 printable characters, got {shown}")

    @property
    def host(self) -> str:
        return parse_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        return parse_endpoint(self.endpoint)[1]

    @property
    def tls(self) -> bool:
        """Whether the endpoint is ``fixs://`` (TLS)."""
        return parse_endpoint(self.endpoint)[2]


def parse_endpoint(url: str) -> tuple[str, int, bool]:
    """``fix://host:port`` -> ``(host, port, tls)``; :class:`ConfigError` for anything else."""
    expected = f"expected fix://host:port (or fixs:// for TLS), got {url!r}"
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(expected) from None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(expected)
    return parts.hostname, port, parts.scheme == "fixs"


def parse_fix_venue(value: str, read_file: Callable[[str], str]) -> FixVenue:
    """Read ``--fix-venue NAME=fix://host:port[?sender=..&target=..&heartbeat=..]`` (docs/fix.md).

    ``password_file`` is read with ``read_file`` (stripped of its newline).
    """
    name, sep, url = value.partition("=")
    name = name.strip().lower()
    if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
        raise ConfigError(
            f"--fix-venue expects NAME=fix://host:port with a name like 'upstream', got {value!r}"
        )
    base, _, query = url.strip().partition("?")
    options: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True, strict_parsing=False).items():
        if key not in QUERY_KEYS:
            raise ConfigError(
                f"--fix-venue {name}: unknown option {key!r} (expected one of {', '.join(QUERY_KEYS)})"
            )
        options[key] = values[-1]
    try:
        heartbeat = int(options.get("heartbeat", DEFAULT_HEARTBEAT))
        depth = int(options.get("depth", 0))
    except ValueError:
        raise ConfigError(f"--fix-venue {name}: heartbeat and depth are whole numbers: {value!r}") from None
    password_file = options.get("password_file")
    try:
        return FixVenue(
            name,
            base,
            sender_comp_id=options.get("sender", DEFAULT_SENDER),
            target_comp_id=options.get("target", DEFAULT_TARGET),
            heartbeat=heartbeat,
            username=options.get("username"),
            password=read_file(password_file) if password_file else None,
            market_depth=depth,
        )
    except ConfigError as exc:
        raise ConfigError(f"--fix-venue {name}: {exc}") from None


def stale_after(heartbeat: float) -> float:
    """Seconds after the last proof at which a FIX venue's book leaves the merge (module doc)."""
    return 2.0 * heartbeat


# -- frames -------------------------------------------------------------------


def market_data_request(symbol: str, market_depth: int) -> bytes:
    """The body of one MarketDataRequest (V) for ``symbol`` (MsgType first; the session adds the header)."""
    return _SOH.join(
        (
            b"35=V",
            b"262=" + symbol.encode(),
            b"263=1",  # snapshot + updates
            b"264=" + str(market_depth).encode(),
            b"265=0",  # full refresh
            b"267=2",
            b"269=0",
            b"269=1",
            b"146=1",
            b"55=" + symbol.encode(),
        )
    ) + _SOH


def subscribe(symbols: Sequence[str], *, market_depth: int = 0) -> Sequence[bytes]:
    """One MarketDataRequest per symbol (module doc)."""
    return [market_data_request(s, market_depth) for s in symbols]


def msg_type(payload: bytes) -> bytes:
    """The MsgType (35) of a framed message (the third field, by FIX's rule), or ``b""``."""
    at = payload.find(b"\x0135=", 0, 40)
    if at < 0:
        return b""
    end = payload.find(_SOH, at + 4)
    return payload[at + 4 : end] if end > 0 else b""


def is_book(payload: bytes) -> bool:
    """Whether ``payload`` is a MarketDataSnapshotFullRefresh (W): a byte test, no parsing."""
    # BeginString (10 bytes) and BodyLength (at most 10) come first: 35= starts within 22.
    return payload.find(b"\x0135=W\x01", 0, 32) >= 0


def route(payload: bytes) -> tuple[bytes, bytes] | None:
    """A W -> ``(its MDReqID, the W)``; ``None`` for any other message (hot path, no parsing)."""
    if payload.find(b"\x0135=W\x01", 0, 32) < 0:
        return None
    at = payload.find(b"\x01262=")
    if at < 0:
        return b"", payload  # no MDReqID: no symbol of ours, dropped and counted
    end = payload.find(_SOH, at + 5)
    return payload[at + 5 : end], payload


def route_key(symbol: str) -> bytes:
    """The MDReqID of ``symbol``'s request, which ``route`` returns for its W."""
    return symbol.encode()


def make_decoder(depth: int) -> Decoder:
    """Build the W decoder of one symbol of one connection (module doc)."""
    newer = never_back("the upstream view sequence")
    fast = _ADJACENT.findall
    search_seq = _SEQ.search

    def decode(payload: bytes) -> tuple[Side, Side, int] | None:
        if payload.find(b"\x0135=W\x01", 0, 32) < 0:
            return None
        count_at = payload.find(b"\x01268=")
        if count_at < 0:
            raise ParseError("W without NoMDEntries (268)")
        count_end = payload.find(_SOH, count_at + 5)
        count_text = payload[count_at + 5 : count_end]
        if not count_text.isdigit() or len(count_text) > 9:
            raise ParseError(f"W with NoMDEntries {count_text[:20]!r}")
        count = int(count_text)
        # Fast path: every entry a bid or offer written 269, 270, 271 with
        # plain decimals (how a dragonfly gateway, and FIX's field order,
        # write them); anything else takes the general read, which says
        # what is wrong.
        rows = fast(payload, count_end)
        if len(rows) != count:
            rows = _entries(payload, count_end, count)
        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        try:
            for kind, px, qty in rows:
                side = bids if kind == b"0" else asks if kind == b"1" else None
                if side is None:
                    continue  # another entry type (a trade, say): not the book
                price = float(px)
                amount = float(qty)
                if side and side[-1][0] == price:
                    side[-1] = (price, side[-1][1] + amount)  # one level a price (module doc)
                else:
                    side.append((price, amount))
        except ValueError:
            raise ParseError(f"W entry price {px[:24]!r} or size {qty[:24]!r} is not a decimal") from None
        found = search_seq(payload, count_end)
        seq = newer(int(found.group(1))) if found is not None else 0
        return tuple(bids[:depth]), tuple(asks[:depth]), seq

    return decode


def _entries(payload: bytes, start: int, count: int) -> list[tuple[bytes, bytes, bytes]]:
    """Read W entries field by field: ``(MDEntryType, MDEntryPx, MDEntrySize)`` each (the slow path)."""
    rows: list[tuple[bytes, bytes, bytes]] = []
    kind = px = qty = b""
    for tag, value in _ENTRY.findall(payload, start):
        if tag == b"269":
            if kind:
                rows.append(_checked(kind, px, qty))
            kind, px, qty = value or b"?", b"", b""
        elif not kind:
            raise ParseError(f"W entry field {tag.decode()} before its MDEntryType (269)")
        elif tag == b"270":
            px = value
        else:
            qty = value
    if kind:
        rows.append(_checked(kind, px, qty))
    if len(rows) != count:
        raise ParseError(f"W says NoMDEntries={count} but carries {len(rows)} entries")
    return rows


def _checked(kind: bytes, px: bytes, qty: bytes) -> tuple[bytes, bytes, bytes]:
    if kind not in (b"0", b"1"):
        return kind, px, qty  # not a book entry: skipped whatever it holds
    if not (_DECIMAL.match(px) and _DECIMAL.match(qty)):
        raise ParseError(
            f"W entry without a decimal MDEntryPx (270) and MDEntrySize (271): {px[:24]!r}, {qty[:24]!r}"
        )
    return kind, px, qty


# -- control ------------------------------------------------------------------

#: MDReqRejReason (281) values (FIX 4.4).
REJECT_REASONS = {
    "0": "unknown symbol",
    "1": "duplicate MDReqID",
    "2": "insufficient bandwidth",
    "3": "insufficient permissions",
    "4": "unsupported SubscriptionRequestType",
    "5": "unsupported MarketDepth",
    "6": "unsupported MDUpdateType",
    "7": "unsupported AggregatedBook",
    "8": "unsupported MDEntryType",
    "9": "unsupported TradingSessionID",
    "A": "unsupported Scope",
    "B": "unsupported OpenCloseSettlFlag",
    "C": "unsupported MDImplicitDelete",
}


def fields(payload: bytes) -> dict[bytes, bytes]:
    """Every ``tag=value`` of a message (the last of a repeated tag): off the hot path."""
    out: dict[bytes, bytes] = {}
    for item in payload.split(_SOH):
        tag, sep, value = item.partition(b"=")
        if sep:
            out[tag] = value
    return out


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")[:200]


def control(payload: bytes) -> Control:
    """Classify a message that is not a W: Heartbeat, rejects, anything else (module doc)."""
    kind = msg_type(payload)
    if kind in (b"0", b"1"):
        # Heartbeat or TestRequest: received in sequence, after every W sent before it.
        return Control(ControlKind.HEARTBEAT)
    if kind == b"W":
        return Control(ControlKind.IGNORED)  # a W no symbol of the connection asked for
    f = fields(payload)
    if kind == b"Y":
        reason = _text(f.get(b"281"))
        why = REJECT_REASONS.get(reason, f"MDReqRejReason {reason}" if reason else "no reason given")
        text = _text(f.get(b"58"))
        detail = f"MarketDataRequestReject: {why}" + (f" ({text})" if text else "")
        req = f.get(b"262")
        return Control(ControlKind.REJECTED, detail, req.decode("utf-8", "replace") if req else None)
    if kind == b"j":
        text = _text(f.get(b"58")) or "no text"
        if f.get(b"372") == b"V":
            ref = f.get(b"379")
            symbol = ref.decode("utf-8", "replace") if ref else None
            return Control(ControlKind.REJECTED, f"BusinessMessageReject of the request: {text}", symbol)
        return Control(ControlKind.ERROR, f"BusinessMessageReject: {text}")
    if kind == b"3":
        return Control(
            ControlKind.ERROR,
            f"session Reject of our message {_text(f.get(b'45'))}: {_text(f.get(b'58')) or 'no text'} "
            f"(SessionRejectReason {_text(f.get(b'373')) or '-'})",
        )
    if kind == b"X":
        # We asked for full refreshes (265=0): an incremental one we do not
        # apply leaves every book of the connection unknown.
        return Control(ControlKind.UNREADABLE, "MarketDataIncrementalRefresh (X) received; only W is read")
    return Control(ControlKind.IGNORED)


# -- the spec -------------------------------------------------------------------


def fix_venue_spec(venue: FixVenue, connection: ConnectionFactory | None = None) -> VenueSpec:
    """The spec of a configured FIX venue (``connection``: the initiator, by default)."""
    if connection is None:
        from dragonfly.fix.initiator import initiator_for

        connection = initiator_for(venue)
    overrides = dict(venue.symbols)
    return VenueSpec(
        name=venue.name,
        ws_url=venue.endpoint,
        rest_url=None,
        symbol=_same,
        control=control,
        snapshot=SnapshotChannel(
            subscribe=functools.partial(subscribe, market_depth=venue.market_depth),
            make_decoder=make_decoder,
            max_depth=MAX_DEPTH,
            is_book=is_book,
            liveness=Liveness(
                LivenessKind.HEARTBEAT,
                stale_after(venue.heartbeat),
                f"a FIX Heartbeat or W at least every HeartBtInt ({venue.heartbeat} s)",
            ),
            route=route,
            route_key=route_key,
        ),
        default_channel="snapshot",
        # Long enough for an upstream that has no book yet when we subscribe.
        subscribe_timeout=30.0,
        overrides=overrides,
        # Our own bounds (a FIX venue documents its own; these are polite defaults):
        # 30 connection attempts a minute, 50 requests a second.
        limits=Limits(connects=Rate(30, 60.0), messages=Rate(50, 1.0)),
        max_message=MAX_MESSAGE,
        connection=connection,
        acked_by_book=True,
    )


def _same(instrument: str) -> str:
    return instrument
