"""Whether a venue's book may be published: its status, its freshness, its liveness rule.

A book is published (is "in the merge") only while it is both *exact* (every
update applied, nothing missed) and *fresh*: something the venue sent proved
it current less than its channel's ``stale_after`` ago. What counts as proof
is the channel's :class:`Liveness`:

* ``CADENCE``: the venue pushes the book at a fixed cadence, changed or not
  (Binance ``depth20@100ms``): every book frame proves it, and silence for a
  few periods means the feed is dead.
* ``HEARTBEAT``: the venue sends heartbeats on the connection that it
  promises only when nothing else is pending (Kraken), or that share the
  book messages' gap-checked sequence (Coinbase): a heartbeat proves that
  every book of the connection is current.
* ``PINGS``: the book channel pushes only on change and nothing else proves
  it: a silent channel may be a quiet market or a dead feed. Such a channel
  gets a longer ``stale_after``, and the book leaves the merge once it has
  been silent that long (it comes back with the next update it can prove).

A proof's time is when it was received, or, where the venue stamps its
frames with its own clock (Bitstamp's ``microtimestamp``: a channel's
``seq_ns``) and that stamp is older, the stamp: a feed delayed in transit
shows its true age. (A venue clock behind ours makes its books look older,
never fresher.) Binance's depth frames carry no time: a Binance feed delayed
in transit cannot be told from a timely one.

The listeners (layer 3) own one health record per venue book (the
:class:`Health` protocol) and keep ``data_ns`` and ``status`` current; the
feed's watchdog withdraws a book whose proof has aged past ``stale_after``;
the aggregator reads the records when it publishes, so every merged update
says which venues are in it and how old each one's data is.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class VenueStatus(enum.IntEnum):
    """Where one venue's book of one instrument stands (the wire enum ``VenueStatus``)."""

    UNKNOWN = 0  #: nothing known yet
    LIVE = 1  #: exact and fresh: in the merge
    CONNECTING = 2  #: no connection: connecting, or waiting to reconnect
    SYNCING = 3  #: connected, but no trusted book yet (subscribing, waiting for a snapshot, resynchronising)
    STALE = 4  #: nothing proved the book current within its channel's stale_after
    BAD_DATA = 5  #: the venue's frames for it are unreadable or unsound
    OUTLIER = 6  #: its mid is far from the other venues' (see the aggregator's sanity rule)
    REJECTED = 7  #: the venue does not list the instrument
    STOPPED = 8  #: the feed was stopped


class LivenessKind(enum.Enum):
    """How a channel proves that a silent book is still current (module doc)."""

    CADENCE = "cadence"
    HEARTBEAT = "heartbeat"
    PINGS = "pings"


@dataclass(frozen=True)
class Liveness:
    """A channel's liveness rule: what proves a book current, and for how long.

    Attributes:
        kind: what proves the book current (see the module doc).
        stale_after: seconds after the last proof at which the book leaves the merge.
        basis: where the rule comes from (the venue's documentation), for the reader.
    """

    kind: LivenessKind
    stale_after: float
    basis: str = ""

    def __post_init__(self) -> None:
        if not self.stale_after > 0:
            raise ValueError(f"stale_after must be positive, got {self.stale_after!r}")

    def with_stale_after(self, seconds: float) -> Liveness:
        """Return this rule with ``stale_after`` overridden (an operator's choice)."""
        return Liveness(self.kind, seconds, f"{self.basis} (stale_after overridden: {seconds:g} s)")


#: The rule of a channel that declares none: only pings, a minute of silence.
DEFAULT_LIVENESS = Liveness(LivenessKind.PINGS, 60.0, "no rule declared")


class Health(Protocol):
    """One venue book's publishable state, as the aggregator reads it."""

    #: The venue name.
    venue: str
    #: Wall time (``time.time_ns()``) of the newest proof that the book is current; 0: none.
    data_ns: int
    #: Where the book stands.
    status: VenueStatus
    #: Age in ns after which the book must not be published (its channel's ``stale_after``).
    stale_after_ns: int
    #: Why the book is out when it is (empty while live).
    detail: str
