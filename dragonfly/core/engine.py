"""The engine: venue feeds for one instrument, merged into one top-N book.

The engine is the library object that the server, the CLIs and a trading bot
all use. It holds no global state and runs inside the caller's event loop::

    engine = Engine("ethbtc", [VenueEndpoint(binance.SPEC), VenueEndpoint(bitstamp.SPEC)])
    await engine.start()
    async for book in engine.books():   # MergedBook, newest first when behind
        ...
    await engine.stop()

Wiring (one topology; others are other wirings of the same parts)::

    WsConnection -> Feed -> TopNListener (snapshot channel) or DiffListener (diff channel)
        --SlotQueue (MPSC, conflating)--> Aggregator
        --> sinks: FanOut[MergedBook] (SPMC, bounded, conflating) and any callback

``channels={"binance": "diff"}`` picks a venue's channel (default: the venue's own).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dragonfly.core.aggregator import MAX_DEVIATION, Aggregator
from dragonfly.core.diff import DiffListener
from dragonfly.core.errors import ConfigError, SubscribeError
from dragonfly.core.fanout import FanOut, Subscription
from dragonfly.core.feed import Feed
from dragonfly.core.listener import TopNListener
from dragonfly.core.types import MergedBook, check_depth
from dragonfly.core.venue import VenueSpec

log = logging.getLogger("dragonfly.engine")

_INSTRUMENT = re.compile(r"^[a-z0-9]{2,32}$")


def normalise_instrument(text: str) -> str:
    """Return the normalised instrument name: ``"ETH/BTC"`` -> ``"ethbtc"``."""
    name = re.sub(r"[\s/_\-]", "", text).lower()
    if not _INSTRUMENT.match(name):
        raise ConfigError(
            f"invalid instrument {text!r}: expected letters and digits like 'ethbtc' or 'ETH/BTC'"
        )
    return name


@dataclass(frozen=True)
class VenueEndpoint:
    """A venue and where to reach it (``None``: the venue's live endpoints)."""

    spec: VenueSpec
    ws_url: str | None = None
    rest_url: str | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)


class Engine:
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
        self.instrument = normalise_instrument(instrument)
        endpoints = [v if isinstance(v, VenueEndpoint) else VenueEndpoint(v) for v in venues]
        if not endpoints:
            raise ConfigError("no venues given")
        names = [e.spec.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ConfigError(f"a venue is listed twice: {', '.join(names)}")
        check_depth(depth)
        channels = dict(channels or {})
        unknown = set(channels) - set(names)
        if unknown:
            raise ConfigError(f"a channel is given for {', '.join(sorted(unknown))}, not among the venues")
        self.channels: dict[str, str] = {}
        for e in endpoints:
            try:
                kind = e.spec.channel(channels.get(e.spec.name))
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self.channels[e.spec.name] = kind
            snap = e.spec.snapshot
            if kind == "snapshot" and snap is not None and depth > snap.max_depth:
                raise ConfigError(
                    f"depth {depth} is deeper than {e.spec.name}'s snapshot channel "
                    f"({snap.max_depth} levels); use its diff channel"
                )
        stale_after = dict(stale_after or {})
        unknown = set(stale_after) - set(names)
        if unknown:
            raise ConfigError(f"stale_after is given for {', '.join(sorted(unknown))}, not among the venues")
        for name, seconds in stale_after.items():
            if not seconds > 0:
                raise ConfigError(f"stale_after of {name} must be positive, got {seconds!r}")
        if not max_deviation >= 0:
            raise ConfigError(f"max_deviation must be >= 0 (0: off), got {max_deviation!r}")
        self.depth = depth
        #: Per-venue overrides of the channels' ``stale_after`` (seconds).
        self.stale_after = stale_after
        self._endpoints = endpoints
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        if not (0 < ping_reply <= ping_idle):
            raise ConfigError(f"need 0 < ping_reply <= ping_idle, got {ping_reply!r} and {ping_idle!r}")
        self._ping = (ping_idle, ping_reply)
        self.aggregator = Aggregator(self.instrument, names, depth, max_deviation=max_deviation)
        self._fanout: FanOut[MergedBook] = FanOut(maxlen=1)
        self.aggregator.add_sink(self._fanout.publish)
        self.feeds: dict[str, Feed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- consuming ---------------------------------------------------------

    def add_sink(self, sink: Callable[[MergedBook], None]) -> None:
        """Call ``sink(book)`` synchronously for every merged update (keep it fast)."""
        self.aggregator.add_sink(sink)

    def books(self, maxlen: int = 1) -> Subscription[MergedBook]:
        """Subscribe to merged updates; a slow reader gets the newest ``maxlen``."""
        return self._fanout.subscribe(maxlen)

    @property
    def latest(self) -> MergedBook | None:
        """The last merged book published, or ``None`` before the first."""
        return self.aggregator.last

    # -- life cycle --------------------------------------------------------

    async def start(self, wait: float = 10.0) -> dict[str, str | None]:
        """Connect every venue; wait up to ``wait`` s for each to accept or reject.

        Returns ``{venue: None (subscribed) | reason}``; a venue still
        connecting after ``wait`` reports its last error and keeps trying in
        the background. Raises :class:`SubscribeError` when every venue
        rejected the instrument (the engine is stopped then).
        """
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        for endpoint in self._endpoints:
            spec = endpoint.spec
            feed = Feed(
                spec,
                {spec.venue_symbol(self.instrument): self.aggregator.producers[spec.name]},
                depth=self.depth,
                channel=self.channels[spec.name],
                instrument=self.instrument,
                ws_url=endpoint.ws_url,
                rest_url=endpoint.rest_url,
                ssl_context=endpoint.ssl_context or self._ssl_context,
                connect_timeout=self._connect_timeout,
                ping_idle=self._ping[0],
                ping_reply=self._ping[1],
                stale_after=self.stale_after.get(spec.name),
            )
            self.aggregator.watch(spec.name, feed.health(feed.symbol))
            self.feeds[spec.name] = feed
            self._tasks.append(asyncio.create_task(feed.run(), name=f"feed-{spec.name}"))
        outcomes = [f.outcome for f in self.feeds.values()]
        await asyncio.wait(outcomes, timeout=wait)
        report: dict[str, str | None] = {}
        for name, feed in self.feeds.items():
            if feed.outcome.done():
                report[name] = feed.outcome.result()
            else:
                report[name] = feed.last_error or "no answer yet"
        rejected = [f for f in self.feeds.values() if f.outcome.done() and f.outcome.result()]
        if len(rejected) == len(self.feeds):
            await self.stop()
            raise SubscribeError("; ".join(str(f.outcome.result()) for f in rejected))
        return report

    async def stop(self) -> None:
        """Disconnect every venue and end every subscription to :meth:`books`."""
        for feed in self.feeds.values():
            feed.stop()
        if self._tasks:
            done, pending = await asyncio.wait(self._tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("feed task failed", exc_info=task.exception())
        self._tasks.clear()
        self._fanout.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def status(self) -> dict[str, dict[str, object]]:
        """Per-venue state and counters, for logs and health checks."""
        out: dict[str, dict[str, object]] = {}
        for name, feed in self.feeds.items():
            lst = feed.listener
            health = feed.health(feed.symbol)
            out[name] = {
                "state": feed.state.value,
                "channel": feed.kind,
                "in_merge": lst.has_book,
                "status": health.status.name.lower(),
                "data_age_s": (time.time_ns() - health.data_ns) / 1e9 if health.data_ns else None,
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
            if isinstance(lst, TopNListener):
                out[name]["stales"] = lst.stales
            if isinstance(lst, DiffListener):
                for sync in lst.syms.values():
                    out[name].update(sync=sync.state.value, **dataclasses.asdict(sync.stats))
        return out
