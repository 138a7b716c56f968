"""What a service sees of a running topology: its catalog and its view sources.

A service (gRPC today, FIX next) never reaches into feeds or aggregators: it
asks the :class:`Catalog` (the running :class:`~dragonfly.topology.hub.Hub`)
for the instruments and venues it serves, and for a :class:`ViewSource` of
one (instrument, kind, venue subset). A source is one aggregator; a service
encodes each update it publishes once per (kind, depth) and shares the bytes
among its subscribers. An aggregator costs nothing per frame while no sink
is attached (it is detached from the listeners then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

#: A view: a MergedBook, a BboView or a Liquidity (dragonfly.core.views / liquidity).
View = object
ViewSink = Callable[[Any], None]


class VenueInfo(NamedTuple):
    """One venue's state for one instrument, as a catalog call reports it.

    ``status`` is a :class:`~dragonfly.core.health.VenueStatus` value;
    ``data_ns`` the wall time of the newest proof its book is current (0: none
    yet) and ``age_ns`` how old that proof is now; ``detail`` says why a venue
    is out (its last error or rejection), empty when it is live.
    """

    venue: str
    symbol: str
    channel: str
    in_merge: bool
    status: int
    data_ns: int
    age_ns: int
    stale_after_ns: int
    detail: str


class InstrumentInfo(NamedTuple):
    """An instrument the topology serves: its venues and the aggregator kinds it has."""

    instrument: str
    venues: tuple[VenueInfo, ...]
    kinds: tuple[str, ...]
    depth: int


class ViewSource(Protocol):
    """One aggregator's output: its newest view, a view made now, and its sinks."""

    @property
    def instrument(self) -> str:
        """The normalised instrument (``ethbtc``)."""

    @property
    def kind(self) -> str:
        """``book``, ``bbo`` or ``liquidity``."""

    @property
    def depth(self) -> int:
        """The deepest view this source makes (levels a side; what requests may ask up to)."""

    @property
    def venue_names(self) -> tuple[str, ...]:
        """The venues it reads, in name order."""

    @property
    def latest(self) -> View | None:
        """The newest view published, or ``None`` before the first (or while detached)."""

    def current(self) -> View:
        """A view made now from the venues' current books (for a unary call)."""

    def add_sink(self, sink: ViewSink) -> None:
        """Call ``sink(view)`` synchronously for every view published from now on (keep it fast)."""

    def remove_sink(self, sink: ViewSink) -> None:
        """Stop calling ``sink``; the last one removed detaches the aggregator."""


class Catalog(Protocol):
    """What a service may ask of a running topology."""

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instruments served, in the order given (the first is the seed API's)."""

    def catalog(self) -> tuple[InstrumentInfo, ...]:
        """Every instrument with its venues' current state."""

    def source(self, instrument: str, kind: str, venues: Sequence[str] = ()) -> ViewSource:
        """The view source of ``instrument`` and ``kind`` over ``venues`` (empty: all of them).

        Raises :class:`~dragonfly.core.errors.NotFoundError` for an instrument
        or venue it does not serve, :class:`~dragonfly.core.errors.ConfigError`
        for an unknown kind. The same arguments return the same source.
        """
