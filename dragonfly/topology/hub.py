"""The running topology: venue connections shared by every instrument, aggregators fed by tees.

A :class:`Hub` is the engine for several instruments and venues (the
one-instrument :class:`~dragonfly.core.engine.Engine` is a hub too). It holds
no global state and runs in the caller's event loop; two hubs in one process
are independent. The graph it builds::

    venue: Feed per connection (its symbols: every instrument the venue lists,
           split where the venue's limits require) -> its listener
        -> BookTee per (instrument, venue)           frames decoded once
        -> SlotQueue of each attached aggregator     (MPSC, conflating)
        -> Aggregator kind: book | bbo | liquidity   (one per instrument and view)
        -> sinks: services' encoders, FanOuts of views, a bot's callbacks

Aggregators are of two sorts. Those the topology declares
(:class:`AggregatorSpec`) are built at once; any other view (another venue
subset, another kind) is built the first time someone asks for it
(:meth:`Hub.source`) and kept. Either sort is attached to its tees only while
it has a sink, so a view nobody reads costs nothing per frame.

Each venue book holds as many levels as the deepest consumer needs
(:attr:`Hub.book_depth`): the deepest ``book`` or ``liquidity`` aggregator,
capped for a snapshot channel at what the channel serves. A diff channel's
listener forwards per frame only as deep as the attached views that
recompute on every change read (``book``; ``bbo`` reads one level); a
``liquidity`` view reads its levels on demand when it recomputes
(:mod:`dragonfly.core.tee`), so its depth costs nothing per frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast

from dragonfly.core.aggregator import MAX_DEVIATION, Aggregator, BaseAggregator
from dragonfly.core.backoff import RateLimit
from dragonfly.core.bbo import BboAggregator
from dragonfly.core.diff import DiffListener
from dragonfly.core.errors import ConfigError, NotFoundError, SubscribeError
from dragonfly.core.fanout import FanOut, Subscription
from dragonfly.core.feed import Feed, FeedState
from dragonfly.core.health import VenueStatus
from dragonfly.core.liquidity import DEFAULT_BANDS_BPS, check_bands, check_quantities
from dragonfly.core.liquidity_agg import MIN_INTERVAL, LiquidityAggregator
from dragonfly.core.listener import TopNListener
from dragonfly.core.slots import SlotProducer
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.tee import BookTee
from dragonfly.core.timing import Histogram
from dragonfly.core.types import VenueBook, check_depth
from dragonfly.core.venue import Rate, VenueSpec
from dragonfly.core.views import KINDS, VenueBbo
from dragonfly.topology.source import InstrumentInfo, VenueInfo, View, ViewSink

log = logging.getLogger("dragonfly.topology")

#: Levels a side a liquidity view reads unless its spec says otherwise.
LIQUIDITY_DEPTH = 100


@dataclass(frozen=True)
class VenueEndpoint:
    """A venue and where to reach it (``None``: the venue's live endpoints)."""

    spec: VenueSpec
    ws_url: str | None = None
    rest_url: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)


@dataclass(frozen=True)
class AggregatorSpec:
    """An aggregator the topology declares (one per instrument it covers).

    Attributes:
        name: unique in the topology; services name the aggregators they expose.
        kind: ``book`` (merged top N), ``bbo`` or ``liquidity``.
        instruments: the instruments it covers (empty: all of the topology's).
        venues: the venues it reads (empty: all that list the instrument).
        depth: ``book``: merged levels a side; ``liquidity``: levels a side read
            from each venue; ``bbo``: ignored (one level).
        bands_bps: ``liquidity``: band half-widths around the mid, in basis points.
        quantities: ``liquidity``: the quantities whose fill cost it publishes.
        min_interval_ms: at most one view per this many ms (the books conflate
            meanwhile; a venue leaving the merge is never held back); ``None``:
            the kind's default (0 for ``book`` and ``bbo``, 50 for ``liquidity``).
    """

    name: str
    kind: str = "book"
    instruments: tuple[str, ...] = ()
    venues: tuple[str, ...] = ()
    depth: int = 10
    bands_bps: tuple[float, ...] = DEFAULT_BANDS_BPS
    quantities: tuple[float, ...] = ()
    min_interval_ms: float | None = None

    def check(self) -> None:
        """Raise :class:`ConfigError` naming this aggregator when a field is wrong."""
        where = f"aggregator {self.name!r}"
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: unknown kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        check_depth(self.depth, f"{where}: depth")
        interval = self.min_interval_ms
        if interval is not None and not 0 <= interval <= 60_000:
            raise ConfigError(f"{where}: min_interval_ms must be from 0 to 60000, got {interval!r}")
        if self.kind == "liquidity":
            try:
                check_bands(self.bands_bps)
                check_quantities(self.quantities)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

    @property
    def min_interval(self) -> float:
        """Seconds between two views at the least (the kind's default unless set)."""
        if self.min_interval_ms is not None:
            return self.min_interval_ms / 1000
        return MIN_INTERVAL if self.kind == "liquidity" else 0.0


#: What a topology builds when it declares no aggregator: the merged top 10.
DEFAULT_AGGREGATORS = (AggregatorSpec("book", "book"),)


class AggregatorSource:
    """One aggregator of one instrument and its tees: a :class:`~dragonfly.topology.source.ViewSource`.

    Attached to its tees while it has a sink (or is pinned); detached, it
    forgets its books and costs nothing.
    """

    def __init__(
        self,
        aggregator: BaseAggregator[Any],
        tees: Mapping[str, BookTee],
        name: str = "",
        depths: Mapping[str, int] | None = None,
        on_attach: Callable[[AggregatorSource], None] | None = None,
    ) -> None:
        self.aggregator = aggregator
        # Told whenever it attaches or detaches (the hub retunes its listeners' depth).
        self._on_attach = on_attach
        #: The declaring spec's name, or ``""`` for a view built on request.
        self.name = name
        self._tees = dict(tees)
        if aggregator.on_demand:
            for venue, tee in self._tees.items():
                aggregator.read_with(venue, tee.read)
        # Per venue, the levels it reads when its listener forwards more (0: all it gets).
        self._depths = dict(depths or {})
        self._attached = False
        self._pins = 0
        self._fanout: FanOut[Any] | None = None

    @property
    def instrument(self) -> str:
        return self.aggregator.instrument

    @property
    def kind(self) -> str:
        return self.aggregator.kind

    @property
    def depth(self) -> int:
        return self.aggregator.depth

    @property
    def venue_names(self) -> tuple[str, ...]:
        return self.aggregator.venue_names

    @property
    def latest(self) -> View | None:
        return self.aggregator.last

    @property
    def attached(self) -> bool:
        """Whether frames reach this aggregator now."""
        return self._attached

    def add_sink(self, sink: ViewSink) -> None:
        self.aggregator.add_sink(sink)
        self._attach()

    def remove_sink(self, sink: ViewSink) -> None:
        self.aggregator.remove_sink(sink)
        self._maybe_detach()

    def pin(self) -> None:
        """Keep it attached without a sink (its ``latest`` stays current)."""
        self._pins += 1
        self._attach()

    def current(self) -> View:
        """The view of the current books: the newest published, or one made now if out of date."""
        agg = self.aggregator
        if self._attached and agg.last is not None and not agg.queue._dirty:
            return agg.last
        was = self._attached
        self._attach()
        try:
            agg.refresh()
            view = agg.last
        finally:
            if not was:
                self._maybe_detach()
        assert view is not None
        return view

    def subscribe(self, maxlen: int = 1) -> Subscription[Any]:
        """A bounded, conflating subscription to this view (kept attached from then on)."""
        if self._fanout is None:
            self._fanout = FanOut(maxlen=1)
            self.add_sink(self._fanout.publish)
        return self._fanout.subscribe(maxlen)

    def close(self) -> None:
        """End every subscription and detach."""
        if self._fanout is not None:
            self._fanout.close()
        self._detach()

    def _attach(self) -> None:
        if self._attached:
            return
        self._attached = True
        producers = self.aggregator.producers
        if self._on_attach is not None:
            self._on_attach(self)  # deepen the listeners first: it starts from books deep enough
        aggregator = self.aggregator
        for venue, tee in self._tees.items():
            if aggregator.on_demand:
                tee.attach(producers[venue], aggregator.depth, on_demand=True)
            else:
                tee.attach(producers[venue], self._depths.get(venue, 0))

    def _maybe_detach(self) -> None:
        if self._attached and not self.aggregator.sinks and not self._pins:
            self._detach()

    def _detach(self) -> None:
        if not self._attached:
            return
        self._attached = False
        producers = self.aggregator.producers
        for venue, tee in self._tees.items():
            tee.detach(producers[venue])
        self.aggregator.reset()
        if self._on_attach is not None:
            self._on_attach(self)


def split_symbols(symbols: Sequence[str], per_connection: int | None) -> list[list[str]]:
    """Split a venue's symbols into connections of at most ``per_connection`` (``None``: one)."""
    if not symbols:
        return []
    size = len(symbols) if per_connection is None else max(1, per_connection)
    return [list(symbols[i : i + size]) for i in range(0, len(symbols), size)]


def _shared(rate: Rate | None) -> RateLimit | None:
    return None if rate is None else RateLimit(rate.events, rate.per)


class Hub:
    """Keep the books of ``instruments`` across ``venues`` and the views of them (module doc).

    Options as :class:`~dragonfly.core.engine.Engine`'s, for every instrument:
    ``channels`` (venue -> ``snapshot`` | ``diff``), ``stale_after`` (venue
    -> seconds), ``max_deviation`` (the sanity rule, 0: off), the WebSocket
    ping timing; ``aggregators`` declares the views built at once.
    """

    def __init__(
        self,
        instruments: Sequence[str],
        venues: Sequence[VenueEndpoint | VenueSpec],
        *,
        aggregators: Sequence[AggregatorSpec] = DEFAULT_AGGREGATORS,
        channels: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        stale_after: Mapping[str, float] | None = None,
        max_deviation: float = MAX_DEVIATION,
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
    ) -> None:
        if isinstance(instruments, str):
            instruments = [instruments]
        names_given = [normalise_instrument(i) for i in instruments]
        if not names_given:
            raise ConfigError("no instrument given")
        if len(set(names_given)) != len(names_given):
            raise ConfigError(f"an instrument is listed twice: {', '.join(names_given)}")
        #: The instruments, normalised, in the order given (the first is the seed API's).
        self.instruments: tuple[str, ...] = tuple(names_given)
        endpoints = [v if isinstance(v, VenueEndpoint) else VenueEndpoint(v) for v in venues]
        if not endpoints:
            raise ConfigError("no venues given")
        venue_names = [e.spec.name for e in endpoints]
        if len(set(venue_names)) != len(venue_names):
            raise ConfigError(f"a venue is listed twice: {', '.join(venue_names)}")
        self.venues: tuple[str, ...] = tuple(venue_names)
        channels = dict(channels or {})
        unknown = set(channels) - set(venue_names)
        if unknown:
            raise ConfigError(f"a channel is given for {', '.join(sorted(unknown))}, not among the venues")
        self.channels: dict[str, str] = {}
        for e in endpoints:
            try:
                self.channels[e.spec.name] = e.spec.channel(channels.get(e.spec.name))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        stale_after = dict(stale_after or {})
        unknown = set(stale_after) - set(venue_names)
        if unknown:
            raise ConfigError(f"stale_after is given for {', '.join(sorted(unknown))}, not among the venues")
        for name, seconds in stale_after.items():
            if not seconds > 0:
                raise ConfigError(f"stale_after of {name} must be positive, got {seconds!r}")
        if not max_deviation >= 0:
            raise ConfigError(f"max_deviation must be >= 0 (0: off), got {max_deviation!r}")
        if not (0 < ping_reply <= ping_idle):
            raise ConfigError(f"need 0 < ping_reply <= ping_idle, got {ping_reply!r} and {ping_idle!r}")
        self.stale_after = stale_after
        self.max_deviation = max_deviation
        self._endpoints = {e.spec.name: e for e in endpoints}
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._ping = (ping_idle, ping_reply)
        self.specs = self._check_aggregators(aggregators)
        #: Levels a side each listener forwards: the deepest consumer's need.
        self.book_depth = max([s.depth for s in self.specs if s.kind != "bbo"] + [1])
        for e in endpoints:
            snap = e.spec.snapshot
            if self.channels[e.spec.name] == "snapshot" and snap is not None:
                for s in self.specs:
                    if s.kind == "book" and s.depth > snap.max_depth and self._reads(s, e.spec.name):
                        raise ConfigError(
                            f"depth {s.depth} is deeper than {e.spec.name}'s snapshot channel "
                            f"({snap.max_depth} levels); use its diff channel"
                        )
        #: One tee per (instrument, venue): the listener's output.
        self.tees: dict[tuple[str, str], BookTee] = {
            (i, v): BookTee() for i in self.instruments for v in self.venues
        }
        #: Every connection of each venue.
        self.connections: dict[str, list[Feed]] = {}
        # (instrument, venue) -> the feed carrying it, and the venue's symbol.
        self._feed_of: dict[tuple[str, str], Feed] = {}
        self.symbols: dict[tuple[str, str], str] = {
            (i, e.spec.name): e.spec.venue_symbol(i) for i in self.instruments for e in endpoints
        }
        # Whether views time their tick-to-queue (enable_timing).
        self._timing = False
        # Levels a side the views attached now read on every change, and whether
        # one attached reads on demand, per (instrument, venue) (see _retune).
        self._need: dict[tuple[str, str], int] = {}
        self._deep: dict[tuple[str, str], bool] = {}
        # Sources: declared ones by (instrument, name), and every one by (instrument, kind, venues).
        self._declared: dict[tuple[str, str], AggregatorSource] = {}
        self._sources: dict[tuple[str, str, tuple[str, ...]], AggregatorSource] = {}
        for spec in self.specs:
            for instrument in spec.instruments or self.instruments:
                source = self._build(instrument, spec.kind, spec.venues or self.venues, spec, spec.name)
                self._declared[instrument, spec.name] = source
                subset = () if set(spec.venues) in (set(), set(self.venues)) else spec.venues
                self._sources.setdefault((instrument, spec.kind, subset), source)
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        #: Per (instrument, venue): None once the venue accepted it, else why not (after start()).
        self.report: dict[str, dict[str, str | None]] = {}

    # -- building ----------------------------------------------------------------

    def _check_aggregators(self, aggregators: Sequence[AggregatorSpec]) -> tuple[AggregatorSpec, ...]:
        if not aggregators:
            raise ConfigError("no aggregator declared")
        seen: set[str] = set()
        out = []
        for spec in aggregators:
            spec.check()
            if spec.name in seen:
                raise ConfigError(f"two aggregators are named {spec.name!r}")
            seen.add(spec.name)
            instruments = tuple(normalise_instrument(i) for i in spec.instruments)
            for name in instruments:
                if name not in self.instruments:
                    raise ConfigError(
                        f"aggregator {spec.name!r}: instrument {name!r} is not among the instruments "
                        f"({', '.join(self.instruments)})"
                    )
            for venue in spec.venues:
                if venue not in self.venues:
                    raise ConfigError(
                        f"aggregator {spec.name!r}: venue {venue!r} is not among the venues "
                        f"({', '.join(self.venues)})"
                    )
            depth = 1 if spec.kind == "bbo" else spec.depth
            out.append(
                AggregatorSpec(
                    spec.name,
                    spec.kind,
                    instruments,
                    tuple(sorted(spec.venues)),
                    depth,
                    tuple(spec.bands_bps),
                    tuple(spec.quantities),
                    spec.min_interval_ms,
                )
            )
        return tuple(out)

    @staticmethod
    def _reads(spec: AggregatorSpec, venue: str) -> bool:
        return not spec.venues or venue in spec.venues

    def _build(
        self,
        instrument: str,
        kind: str,
        venues: Sequence[str],
        spec: AggregatorSpec | None = None,
        name: str = "",
    ) -> AggregatorSource:
        names = list(venues)
        aggregator: BaseAggregator[Any]
        template = spec or self._template(instrument, kind)
        pace = template.min_interval if template is not None else AggregatorSpec("", kind).min_interval
        if kind == "book":
            depth = spec.depth if spec is not None else self._deepest(instrument, "book", 10)
            aggregator = Aggregator(
                instrument, names, depth, max_deviation=self.max_deviation, min_interval=pace
            )
        elif kind == "bbo":
            aggregator = BboAggregator(instrument, names, max_deviation=self.max_deviation, min_interval=pace)
        else:
            aggregator = LiquidityAggregator(
                instrument,
                names,
                template.depth if template is not None else min(self.book_depth, LIQUIDITY_DEPTH),
                bands=template.bands_bps if template is not None else DEFAULT_BANDS_BPS,
                quantities=template.quantities if template is not None else (),
                max_deviation=self.max_deviation,
                min_interval=pace,
            )
        tees = {v: self.tees[instrument, v] for v in names}
        # A view shallower than what a listener forwards reads only its own top
        # levels: it hears of a book only when those changed (BookTee).
        depths = {
            v: aggregator.depth
            for v in names
            if aggregator.depth < self._forward_depth(self._endpoints[v].spec)
        }
        if self._timing:
            aggregator.timing = Histogram()
        source = AggregatorSource(aggregator, tees, name, depths, self._retune)
        self._watch(source)
        return source

    def _watch(self, source: AggregatorSource) -> None:
        """Let ``source``'s aggregator read each venue book's health (once the feeds exist)."""
        instrument = source.instrument
        for venue in source.venue_names:
            feed = self._feed_of.get((instrument, venue))
            if feed is not None:
                source.aggregator.watch(venue, feed.health(self.symbols[instrument, venue]))

    def _retune(self, changed: AggregatorSource) -> None:
        """Set each diff listener of ``changed``'s venues to the depth its attached views read.

        A listener forwards as deep as the deepest view reading it now on
        every change, not as deep as any declared one: a deep view nobody
        reads must not make every frame cost a deeper top-N read and compare,
        and a view that reads on demand (``liquidity``) reads its own levels
        when it recomputes (the listener then forwards its deep changes too).
        Snapshot channels keep their decoders' depth.
        """
        instrument = changed.instrument
        for venue in changed.venue_names:
            attached = [
                s
                for s in self._all_sources()
                if s.attached and s.instrument == instrument and venue in s.venue_names
            ]
            self._need[instrument, venue] = max(
                (s.depth for s in attached if not s.aggregator.on_demand), default=1
            )
            self._deep[instrument, venue] = any(s.aggregator.on_demand for s in attached)
            feed = self._feed_of.get((instrument, venue))
            if feed is not None:
                self._tune(feed)

    def _tune(self, feed: Feed) -> None:
        listener = feed.listener
        if isinstance(listener, DiffListener):
            venue = feed.name
            keys = [(i, venue) for i in self.instruments if self.symbols[i, venue] in feed.symbols]
            listener.set_deep(any(self._deep.get(key, False) for key in keys))
            listener.set_depth(max((self._need.get(key, 1) for key in keys), default=1))

    def _all_sources(self) -> list[AggregatorSource]:
        return list({id(s): s for s in (*self._declared.values(), *self._sources.values())}.values())

    def _template(self, instrument: str, kind: str) -> AggregatorSpec | None:
        for spec in self.specs:
            if spec.kind == kind and (not spec.instruments or instrument in spec.instruments):
                return spec
        return None

    def _deepest(self, instrument: str, kind: str, default: int) -> int:
        depths = [
            s.depth
            for s in self.specs
            if s.kind == kind and (not s.instruments or instrument in s.instruments)
        ]
        return max(depths) if depths else min(default, self.book_depth)

    def _forward_depth(self, spec: VenueSpec) -> int:
        """Levels a side its listener forwards at most (diff: the deepest view read on every change)."""
        if self.channels[spec.name] == "snapshot":
            return self._listener_depth(spec)
        return max([s.depth for s in self.specs if s.kind == "book"] + [1])

    def _listener_depth(self, spec: VenueSpec) -> int:
        snap = spec.snapshot
        if self.channels[spec.name] == "snapshot" and snap is not None:
            return min(self.book_depth, snap.max_depth)
        return self.book_depth

    def _per_connection(self, spec: VenueSpec) -> int | None:
        """How many symbols one connection of ``spec`` may carry (``None``: any number)."""
        snap = spec.snapshot
        if self.channels[spec.name] == "snapshot" and snap is not None and not snap.multi_symbol:
            return 1  # its frames do not say which symbol they are
        return spec.limits.symbols_per_connection

    # -- consuming ---------------------------------------------------------------

    def source(self, instrument: str, kind: str = "book", venues: Sequence[str] = ()) -> AggregatorSource:
        """The view of ``instrument`` and ``kind`` over ``venues`` (empty: all); built on first use."""
        name = self._instrument(instrument)
        if kind not in KINDS:
            raise ConfigError(f"unknown view kind {kind!r}: expected one of {', '.join(KINDS)}")
        chosen = tuple(sorted(dict.fromkeys(v.strip().lower() for v in venues)))
        for venue in chosen:
            if venue not in self.venues:
                raise NotFoundError(
                    f"unknown venue {venue!r} for {name}: this topology reads {', '.join(self.venues)}"
                )
        if set(chosen) == set(self.venues):
            chosen = ()  # every venue: the same view as asking for none
        key = (name, kind, chosen)
        source = self._sources.get(key)
        if source is None:
            source = self._build(name, kind, chosen or self.venues)
            self._sources[key] = source
        return source

    def declared(self, name: str, instrument: str | None = None) -> AggregatorSource:
        """The declared aggregator ``name`` of ``instrument`` (default: the first it covers)."""
        for (inst, agg), source in self._declared.items():
            if agg == name and (instrument is None or inst == normalise_instrument(instrument)):
                return source
        raise NotFoundError(
            f"no aggregator {name!r}"
            + (f" for {instrument}" if instrument else "")
            + f": declared are {', '.join(s.name for s in self.specs)}"
        )

    def views(
        self, instrument: str | None = None, kind: str = "book", venues: Sequence[str] = (), maxlen: int = 1
    ) -> Subscription[Any]:
        """Subscribe to the views of ``instrument`` (default: the first): an async iterator.

        A slow reader gets the newest ``maxlen`` (bounded, conflating).
        """
        return self.source(instrument or self.instruments[0], kind, venues).subscribe(maxlen)

    def on_view(
        self, callback: Callable[[Any], None], instrument: str | None = None, kind: str = "book",
        venues: Sequence[str] = (),
    ) -> Callable[[], None]:
        """Call ``callback(view)`` synchronously on the hot path for every view; return the undo."""
        source = self.source(instrument or self.instruments[0], kind, venues)
        source.add_sink(callback)
        return lambda: source.remove_sink(callback)

    def venue_book(self, venue: str, instrument: str | None = None) -> VenueBook | None:
        """``venue``'s current book of ``instrument`` as its listener forwards it (``None``: none now).

        A diff channel's book is read as deep as the deepest view attached
        now reads (its best level at least; a view read on demand included,
        from the book itself); a snapshot channel's, as deep as the deepest
        declared view (at most what the channel serves).
        """
        name = self._instrument(instrument or self.instruments[0])
        tee = self.tees.get((name, venue))
        if tee is None:
            raise NotFoundError(f"unknown venue {venue!r}: this topology reads {', '.join(self.venues)}")
        deep = tee.deep
        if not deep:
            return tee.latest
        return tee.read(max(deep, self._need.get((name, venue), 1)))

    def venue_bbo(self, venue: str, instrument: str | None = None) -> VenueBbo | None:
        """``venue``'s current best bid and ask of ``instrument`` (``None``: no book now)."""
        book = self.venue_book(venue, instrument)
        if book is None:
            return None
        nan = float("nan")
        bid = book.bids[0] if book.bids else (nan, 0.0)
        ask = book.asks[0] if book.asks else (nan, 0.0)
        return VenueBbo(venue, bid[0], bid[1], ask[0], ask[1])

    def _instrument(self, instrument: str) -> str:
        try:
            name = normalise_instrument(instrument)
        except ConfigError as exc:
            raise NotFoundError(str(exc)) from None
        if name not in self.instruments:
            raise NotFoundError(
                f"unknown instrument {instrument!r}: this topology serves {', '.join(self.instruments)}"
            )
        return name

    # -- life cycle --------------------------------------------------------------

    async def start(self, wait: float = 10.0) -> dict[str, dict[str, str | None]]:
        """Connect every venue; wait up to ``wait`` s for each to accept or reject each instrument.

        Returns ``{instrument: {venue: None (subscribed) | reason}}``. An
        instrument a venue does not list is skipped for that venue (one log
        line); raises :class:`SubscribeError` only when no venue lists any
        instrument (the hub is stopped then).
        """
        if self._started:
            raise RuntimeError("already started")
        self._started = True
        for venue, endpoint in self._endpoints.items():
            spec = endpoint.spec
            symbols = {self.symbols[i, venue]: i for i in self.instruments}
            if len(symbols) != len(self.instruments):
                raise ConfigError(f"two instruments map to one {venue} symbol: {', '.join(self.instruments)}")
            connect_limit = _shared(spec.limits.connects)
            rest_limit = _shared(spec.limits.rest)
            feeds = self.connections[venue] = []
            for group in split_symbols(list(symbols), self._per_connection(spec)):
                feed = Feed(
                    spec,
                    # A tee speaks the SlotProducer protocol (put, withdraw, end_burst).
                    {s: cast(SlotProducer[VenueBook], self.tees[symbols[s], venue]) for s in group},
                    depth=self._listener_depth(spec),
                    channel=self.channels[venue],
                    instrument=",".join(symbols[s] for s in group),
                    ws_url=endpoint.ws_url,
                    rest_url=endpoint.rest_url,
                    ssl_context=endpoint.ssl_context or self._ssl_context,
                    connect_timeout=self._connect_timeout,
                    ping_idle=self._ping[0],
                    ping_reply=self._ping[1],
                    stale_after=self.stale_after.get(venue),
                    connect_limit=connect_limit,
                    rest_limit=rest_limit,
                )
                feeds.append(feed)
                listener = feed.listener
                for s in group:
                    self._feed_of[symbols[s], venue] = feed
                    if isinstance(listener, DiffListener):
                        # Its books hold more than it forwards: a deep view reads them there.
                        self.tees[symbols[s], venue].reader = listener.reader(s)
                self._tune(feed)
                self._tasks.append(asyncio.create_task(feed.run(), name=f"feed-{venue}-{len(feeds)}"))
        for source in self._sources.values():
            self._watch(source)
        await asyncio.wait([self._answer(i, v) for i in self.instruments for v in self.venues], timeout=wait)
        self.report = {
            i: {v: self._outcome(i, v) for v in self.venues} for i in self.instruments
        }
        for instrument, venues in self.report.items():
            for venue, problem in venues.items():
                if problem is not None and self.rejected(instrument, venue):
                    log.warning(
                        "%s: skipped for %s: %s",
                        instrument,
                        venue,
                        problem,
                        extra={"instrument": instrument, "venue": venue},
                    )
        if all(self.rejected(i, v) for i in self.instruments for v in self.venues):
            reasons = sorted({str(self._outcome(i, v)) for i in self.instruments for v in self.venues})
            await self.stop()
            raise SubscribeError("; ".join(reasons))
        return self.report

    def _answer(self, instrument: str, venue: str) -> asyncio.Future[str | None]:
        return self._feed_of[instrument, venue].outcomes[self.symbols[instrument, venue]]

    def _outcome(self, instrument: str, venue: str) -> str | None:
        answer = self._answer(instrument, venue)
        if answer.done():
            return answer.result()
        return self._feed_of[instrument, venue].last_error or "no answer yet"

    def rejected(self, instrument: str, venue: str) -> bool:
        """Whether ``venue`` refused ``instrument`` (it does not list it)."""
        answer = self._answer(instrument, venue)
        return answer.done() and answer.result() is not None

    async def stop(self) -> None:
        """Disconnect every venue and end every subscription."""
        for feeds in self.connections.values():
            for feed in feeds:
                feed.stop()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("feed task failed", exc_info=task.exception())
        self._tasks.clear()
        for source in self._sources.values():
            source.close()

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- state -------------------------------------------------------------------

    def feed(self, venue: str, instrument: str | None = None) -> Feed:
        """The connection carrying ``instrument`` (default: the first) on ``venue``."""
        name = self._instrument(instrument or self.instruments[0])
        try:
            return self._feed_of[name, venue]
        except KeyError:
            raise NotFoundError(f"no {venue} connection for {name} (not started?)") from None

    def enable_timing(self) -> None:
        """Have every view, now and to come, count its tick-to-queue in a histogram (for metrics)."""
        self._timing = True
        for source in self._all_sources():
            if source.aggregator.timing is None:
                source.aggregator.timing = Histogram()

    def feeds_by_book(self) -> dict[tuple[str, str], Feed]:
        """(instrument, venue) -> the connection carrying that book (after start())."""
        return dict(self._feed_of)

    @property
    def sources(self) -> tuple[AggregatorSource, ...]:
        """Every view source built so far."""
        return tuple(self._all_sources())

    def catalog(self) -> tuple[InstrumentInfo, ...]:
        """Every instrument with its venues' current state."""
        now = time.time_ns()
        out = []
        for instrument in self.instruments:
            venues = []
            for venue in self.venues:
                symbol = self.symbols[instrument, venue]
                feed = self._feed_of.get((instrument, venue))
                if feed is None:
                    venues.append(
                        VenueInfo(venue, symbol, self.channels[venue], False, 0, 0, 0, 0, "not started")
                    )
                    continue
                health = feed.health(symbol)
                status = health.status
                detail = health.detail if status is not VenueStatus.LIVE else ""
                if self.rejected(instrument, venue):
                    status = VenueStatus.REJECTED
                    detail = str(self._outcome(instrument, venue))
                data_ns = health.data_ns
                venues.append(
                    VenueInfo(
                        venue,
                        symbol,
                        feed.kind,
                        self.tees[instrument, venue].latest is not None and status is VenueStatus.LIVE,
                        int(status),
                        data_ns,
                        now - data_ns if data_ns else 0,
                        health.stale_after_ns,
                        detail,
                    )
                )
            kinds = tuple(k for k in KINDS if any(s.kind == k for s in self.specs)) or KINDS
            out.append(InstrumentInfo(instrument, tuple(venues), kinds, self.book_depth))
        return tuple(out)

    def status(self) -> dict[str, dict[str, dict[str, object]]]:
        """Per instrument and venue: state and counters, for logs and health checks."""
        out: dict[str, dict[str, dict[str, object]]] = {}
        now = time.time_ns()
        for instrument in self.instruments:
            rows = out[instrument] = {}
            for venue in self.venues:
                feed = self._feed_of.get((instrument, venue))
                if feed is None:
                    continue
                symbol = self.symbols[instrument, venue]
                health = feed.health(symbol)
                lst = feed.listener
                row: dict[str, object] = {
                    "symbol": symbol,
                    "connection": self.connections[venue].index(feed),
                    "state": feed.state.value,
                    "channel": feed.kind,
                    "in_merge": health.status is VenueStatus.LIVE,
                    "status": health.status.name.lower(),
                    "data_age_s": (now - health.data_ns) / 1e9 if health.data_ns else None,
                    "stale_after_s": health.stale_after_ns / 1e9,
                    "frames": lst.frames,
                    "malformed": lst.malformed,
                    "connects": feed.stats.connects,
                    "disconnects": feed.stats.disconnects,
                    "connect_failures": feed.stats.connect_failures,
                    "oversized": feed.conn.oversized,
                    "resubscribes": feed.stats.resubscribes,
                    "rest_failures": feed.stats.rest_failures,
                    "rest_throttled": feed.stats.rest_throttled,
                    "last_error": feed.last_error,
                }
                if feed.state is FeedState.REJECTED or self.rejected(instrument, venue):
                    row["status"] = "rejected"
                if isinstance(lst, TopNListener):
                    row["stales"] = lst.stales
                if isinstance(lst, DiffListener):
                    sync = lst.syms.get(symbol)
                    if sync is not None:
                        row.update(sync=sync.state.value, **dataclasses.asdict(sync.stats))
                rows[venue] = row
        return out

    def describe(self) -> str:
        """The graph, one line per part (what a user checks a topology file against)."""
        lines = [f"instruments: {', '.join(self.instruments)}"]
        for venue in self.venues:
            feeds = self.connections.get(venue)
            groups = [f.symbols for f in feeds] if feeds else split_symbols(
                [self.symbols[i, venue] for i in self.instruments],
                self._per_connection(self._endpoints[venue].spec),
            )
            depth = self._listener_depth(self._endpoints[venue].spec)
            lines.append(
                f"venue {venue} ({self.channels[venue]} channel, up to {depth} levels): "
                f"{len(groups)} connection(s): " + "; ".join(", ".join(g) for g in groups)
            )
        for spec in self.specs:
            lines.append(
                f"aggregator {spec.name}: {spec.kind}"
                + (f" depth {spec.depth}" if spec.kind != "bbo" else "")
                + f" of {', '.join(spec.instruments or self.instruments)}"
                + f" over {', '.join(spec.venues or self.venues)}"
            )
        return "\n".join(lines)


def all_endpoints(specs: Iterable[VenueSpec]) -> list[VenueEndpoint]:
    """Live endpoints of ``specs``."""
    return [VenueEndpoint(s) for s in specs]
