"""The engine: venue feeds for one instrument, merged into one top-N book.

The one-instrument, one-view case of :class:`~dragonfly.topology.hub.Hub`
(several instruments and views on shared venue connections): the library
object the single-instrument CLIs and a simple bot use. It holds no global
state and runs inside the caller's event loop::

    engine = Engine("ethbtc", [VenueEndpoint(binance.SPEC), VenueEndpoint(bitstamp.SPEC)])
    await engine.start()
    async for book in engine.books():   # MergedBook, newest first when behind
        ...
    await engine.stop()

Wiring (the hub's, with one ``book`` aggregator)::

    WsConnection -> Feed -> TopNListener (snapshot channel) or DiffListener (diff channel)
        -> BookTee --SlotQueue (MPSC, conflating)--> Aggregator
        --> sinks: FanOut[MergedBook] (SPMC, bounded, conflating) and any callback

``channels={"binance": "diff"}`` picks a venue's channel (default: the venue's own).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence

from dragonfly.core.aggregator import MAX_DEVIATION, Aggregator
from dragonfly.core.fanout import Subscription
from dragonfly.core.feed import Feed
from dragonfly.core.symbols import normalise_instrument
from dragonfly.core.types import MergedBook, check_depth
from dragonfly.core.venue import VenueSpec
from dragonfly.topology.hub import AggregatorSpec, Hub, VenueEndpoint

__all__ = ["Engine", "VenueEndpoint", "normalise_instrument"]


class Engine(Hub):
    """Keep the merged top-N book of ``instrument`` across ``venues`` (see module doc).

    ``stale_after`` overrides, per venue name, how many seconds a book may go
    without proof that it is current before it leaves the merge (each
    channel's default is in its venue module); ``max_deviation`` is the
    aggregator's cross-venue sanity bound (0: off); ``ping_idle`` and
    ``ping_reply`` time the WebSocket pings that find a silent connection.
    """

    def __init__(
        self,
        instrument: str,
        venues: Sequence[VenueEndpoint | VenueSpec],
        *,
        depth: int = 10,
        channels: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 10.0,
        stale_after: Mapping[str, float] | None = None,
        max_deviation: float = MAX_DEVIATION,
        ping_idle: float = 20.0,
        ping_reply: float = 10.0,
    ) -> None:
        check_depth(depth)
        super().__init__(
            [instrument],
            venues,
            aggregators=(AggregatorSpec("book", "book", depth=depth),),
            channels=channels,
            ssl_context=ssl_context,
            connect_timeout=connect_timeout,
            stale_after=stale_after,
            max_deviation=max_deviation,
            ping_idle=ping_idle,
            ping_reply=ping_reply,
        )
        self.instrument = self.instruments[0]
        self.depth = depth
        self._book = self.declared("book")
        # Always attached: ``latest`` and the sinks see every update.
        self._book.pin()
        #: The merged-book aggregator.
        self.aggregator: Aggregator = self._book.aggregator  # type: ignore[assignment]

    @property
    def feeds(self) -> dict[str, Feed]:
        """Each venue's feed (after start())."""
        return {venue: feeds[0] for venue, feeds in self.connections.items() if feeds}

    def add_sink(self, sink: Callable[[MergedBook], None]) -> None:
        """Call ``sink(book)`` synchronously for every merged update (keep it fast)."""
        self._book.add_sink(sink)

    def books(self, maxlen: int = 1) -> Subscription[MergedBook]:
        """Subscribe to merged updates; a slow reader gets the newest ``maxlen``."""
        return self._book.subscribe(maxlen)

    @property
    def latest(self) -> MergedBook | None:
        """The last merged book published, or ``None`` before the first."""
        return self.aggregator.last

    async def start(self, wait: float = 10.0) -> dict[str, str | None]:  # type: ignore[override]
        """Connect every venue; wait up to ``wait`` s for each to accept or reject.

        Returns ``{venue: None (subscribed) | reason}``; a venue still
        connecting after ``wait`` reports its last error and keeps trying in
        the background. Raises :class:`SubscribeError` when every venue
        rejected the instrument (the engine is stopped then).
        """
        report = await super().start(wait)
        return report[self.instrument]

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    def status(self) -> dict[str, dict[str, object]]:  # type: ignore[override]
        """Per-venue state and counters, for logs and health checks."""
        return super().status()[self.instrument]
