"""The contract between the generic layers and a venue module.

A venue is data plus pure functions: a frozen :class:`VenueSpec` that says how
to reach it (URLs), how to subscribe (frames), how to keep the connection
alive (pings), how to name an instrument, and how to read its frames. The core
layers (connection, feed subscriber, listener) drive any spec; they never test
a venue's name.

Two functions carry a venue's frames:

* ``make_decoder(depth)`` returns the hot-path decoder for one connection: it
  turns a book frame into ``(bids, asks, seq)`` (top ``depth`` levels, best
  first, floats; ``seq`` the venue's update id of the book, 0 if it sends
  none) and returns ``None`` for a frame that is not a book (an ack, an
  error, a heartbeat), which then goes to ``control``. It raises
  :class:`~dragonfly.core.errors.ParseError` for a frame it cannot read: one
  that is not valid JSON as a whole (even past the levels it reads), whose
  levels are not numbers, or whose update id goes back. The decoder is built
  once per connection so any parser state is reused.
* ``control(payload)`` classifies a non-book frame into a :class:`Control`.
  It is off the hot path and written for clarity.

A connection may carry several symbols (the venue's documented
:class:`Limits` say how many). A snapshot channel then tells each book
frame's symbol with its ``route`` (a cheap byte test, no parsing), and the
feed keeps one listener per symbol. A control frame names the symbol it is
about in :attr:`Control.symbol` wherever the venue's frame allows, so that
a venue refusing one symbol takes only that symbol out.
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from dragonfly.core.diff import DiffChannel
from dragonfly.core.errors import ParseError
from dragonfly.core.health import DEFAULT_LIVENESS, Liveness
from dragonfly.core.transport import ConnectionFactory
from dragonfly.core.types import Side

#: Hot-path decoder: payload -> ``(bids, asks, seq)``, or ``None`` for a non-book frame.
Decoder = Callable[[bytes], "tuple[Side, Side, int] | None"]
#: Hot-path router of a several-symbol snapshot connection: payload ->
#: ``(key, book payload)``, or ``None`` for a frame that is not a book.
Router = Callable[[bytes], "tuple[bytes, bytes] | None"]


class ControlKind(enum.Enum):
    """What a non-book frame means to the feed subscriber."""

    SUBSCRIBED = "subscribed"  #: the venue accepted the subscription
    REJECTED = "rejected"  #: the venue refused the subscription (e.g. unknown instrument)
    HEARTBEAT = "heartbeat"  #: a venue heartbeat; proves the books current where the channel says so
    PONG = "pong"  #: the answer to our own keep-alive: proves the connection, not the books
    RECONNECT = "reconnect"  #: the venue asks the client to reconnect
    ERROR = "error"  #: the venue reports an error that is not a rejection
    UNREADABLE = "unreadable"  #: not the venue's protocol at all (it may have been a lost book frame)
    IGNORED = "ignored"  #: a frame this adapter does not use


class Control(NamedTuple):
    """A classified non-book frame (``symbol`` when the venue names one)."""

    kind: ControlKind
    detail: str = ""
    symbol: str | None = None


def never_back(name: str) -> Callable[[int], int]:
    """Return a check for one connection's update ids: each returned as is, or ParseError if it went back.

    A snapshot channel's frame older than the one before it must never
    replace it (``name`` is the venue's field, for the error). Equal ids
    pass: a venue may resend an unchanged book.
    """
    last = -1

    def newer(update_id: int) -> int:
        nonlocal last
        if update_id < last:
            raise ParseError(f"{name} went back: {update_id} after {last}")
        last = update_id
        return update_id

    return newer


def json_control(classify: Callable[[dict[str, Any]], Control]) -> Callable[[bytes], Control]:
    """Make a venue's control classifier from one that reads a JSON object.

    The returned function parses the frame; an unreadable frame is
    ``UNREADABLE``, JSON that is not an object is ``IGNORED``, and every
    object goes to ``classify``.
    """

    @functools.wraps(classify)
    def control(payload: bytes) -> Control:
        try:
            msg = json.loads(payload)
        except ValueError:
            return Control(ControlKind.UNREADABLE, f"unreadable frame {payload[:100]!r}")
        if not isinstance(msg, dict):
            return Control(ControlKind.IGNORED)
        return classify(msg)

    return control


class Rate(NamedTuple):
    """At most ``events`` events per ``per`` seconds."""

    events: int
    per: float


@dataclass(frozen=True)
class Limits:
    """Limits a venue documents, which the client keeps to (the venue module cites them).

    Attributes:
        connects: connection attempts per IP (shared by every connection of the venue).
        messages: frames the client sends on one connection (subscribe,
            unsubscribe, application pings), where the venue limits them.
        rest: REST requests to the venue (snapshots, symbol checks).
        symbols_per_connection: the most symbols (streams, topics, channels)
            one connection may carry; a topology splits a venue's symbols
            into groups of at most this many, one connection each.
            ``None``: the venue documents no limit (one connection for all).
        args_per_message: the most symbols one subscribe frame may name;
            the venue's ``subscribe`` splits its frames accordingly (``None``:
            no limit, or one symbol per frame by the venue's protocol).
    """

    connects: Rate | None = None
    messages: Rate | None = None
    rest: Rate | None = None
    symbols_per_connection: int | None = None
    args_per_message: int | None = None

    def __post_init__(self) -> None:
        for name in ("symbols_per_connection", "args_per_message"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")


class SymbolCheck(NamedTuple):
    """How to ask a venue's REST API whether it lists a symbol.

    ``path`` is appended to the REST base URL (``{symbol}`` is replaced).
    ``rejects(status, body)`` returns a reason when the answer means the venue
    does not list the symbol, else ``None``.
    """

    path: str
    rejects: Callable[[int, bytes], str | None]


@dataclass(frozen=True)
class SnapshotChannel:
    """A channel that sends the venue's top N whole in every frame.

    Attributes:
        subscribe: venue symbols -> the frames that subscribe one connection to
            them (in order; the feed paces them by ``Limits.messages``).
        make_decoder: depth -> a fresh hot-path :data:`Decoder` for one symbol
            of one connection (it may keep the symbol's last update id).
        max_depth: the deepest top N the channel serves.
        is_book: a cheap test (no parsing) that a frame is a book frame, so a
            book frame followed by another in the same read is never decoded;
            it must never say yes to a control frame. ``None``: decode all.
        liveness: what proves the book current, and for how long (see
            :mod:`dragonfly.core.health`).
        seq_ns: ns per unit of the frames' ``seq`` when it is the venue's clock
            (Bitstamp's microtimestamp: 1000), else 0.
        route: on a connection that carries several symbols, a book frame ->
            ``(key, payload for the decoder)``, or ``None`` for a frame that
            is no book (it then goes to ``control``). Called on the hot path:
            byte tests and one slice at most, no parsing. A key no symbol of
            the connection has is ignored. ``None``: one symbol a connection.
        route_key: venue symbol -> the key ``route`` returns for its frames.
        route_setup: frames sent first on a connection that ``route`` reads,
            before the subscribe frames (Binance: turn on combined payloads).
    """

    subscribe: Callable[[Sequence[str]], Sequence[bytes]]
    make_decoder: Callable[[int], Decoder]
    max_depth: int
    is_book: Callable[[bytes], bool] | None = None
    liveness: Liveness = DEFAULT_LIVENESS
    seq_ns: int = 0
    route: Router | None = None
    route_key: Callable[[str], bytes] | None = None
    route_setup: Sequence[bytes] = ()

    def __post_init__(self) -> None:
        if (self.route is None) != (self.route_key is None):
            raise ValueError("a snapshot channel declares route and route_key together")

    @property
    def multi_symbol(self) -> bool:
        """Whether one connection of this channel can carry several symbols."""
        return self.route is not None


@dataclass(frozen=True)
class VenueSpec:
    """Everything the generic layers need to know about one venue.

    Attributes:
        name: lower-case venue name, used in the merged book and in logs.
        ws_url: the live WebSocket endpoint (the venue's current public docs).
        rest_url: the live REST base URL, or ``None``.
        symbol: instrument (``"ethbtc"``) -> the venue's symbol.
        control: a non-book frame -> :class:`Control`.
        snapshot: the top-N snapshot channel, if the venue has one.
        diff: the incremental (diff) book channel, if supported.
        default_channel: ``"snapshot"`` or ``"diff"``: what to use unless told.
        heartbeat: an application-level keep-alive frame the client must send,
            or ``None`` when WebSocket pings suffice.
        heartbeat_interval: seconds between ``heartbeat`` frames.
        symbol_check: an optional REST probe that tells whether the venue lists
            a symbol (for venues that accept unknown symbols silently).
        subscribe_timeout: seconds to wait for the subscription ack.
        answers_in_order: the venue answers every subscribe frame, one symbol
            each, in the order sent, so a refusal that names no symbol is the
            oldest one not answered yet (Bitstamp).
        overrides: instrument -> venue symbol, where the rule gets it wrong.
        limits: the connection, message and REST limits the venue documents.
        max_message: the largest message accepted from the venue (bytes); a
            bigger one ends the connection.
        connection: how to connect (:mod:`dragonfly.core.transport`); ``None``:
            a WebSocket (:class:`~dragonfly.core.ws.WsConnection`) to ``ws_url``,
            which is then the venue's endpoint in whatever scheme that
            connection reads (``fix://`` for :mod:`dragonfly.fix.initiator`).
        acked_by_book: the venue sends no subscription ack: a symbol's first
            book frame on a connection accepts it (FIX market data answers a
            request with the snapshot itself).
    """

    name: str
    ws_url: str
    rest_url: str | None
    symbol: Callable[[str], str]
    control: Callable[[bytes], Control]
    snapshot: SnapshotChannel | None = None
    diff: DiffChannel | None = None
    default_channel: str = "snapshot"
    heartbeat: bytes | None = None
    heartbeat_interval: float = 15.0
    symbol_check: SymbolCheck | None = None
    subscribe_timeout: float = 10.0
    answers_in_order: bool = False
    overrides: dict[str, str] = field(default_factory=dict)
    limits: Limits = Limits()
    max_message: int = 4 * 1024 * 1024
    connection: ConnectionFactory | None = None
    acked_by_book: bool = False

    def venue_symbol(self, instrument: str) -> str:
        """Map a normalised instrument (``ethbtc``) to this venue's symbol."""
        return self.overrides.get(instrument) or self.symbol(instrument)

    def channel(self, kind: str | None = None) -> str:
        """Resolve ``kind`` (or the default) to a channel this venue has, or raise ValueError."""
        kind = kind or self.default_channel
        if kind not in ("snapshot", "diff"):
            raise ValueError(f"unknown channel kind {kind!r} (snapshot or diff)")
        if (self.snapshot if kind == "snapshot" else self.diff) is None:
            raise ValueError(f"{self.name} has no {kind} channel")
        return kind

    def liveness(self, kind: str) -> Liveness:
        """Return the liveness rule of channel ``kind`` (``"snapshot"`` or ``"diff"``)."""
        channel = self.snapshot if kind == "snapshot" else self.diff
        if channel is None:
            raise ValueError(f"{self.name} has no {kind} channel")
        return channel.liveness
