"""Serve ``dragonfly.v1.MarketData`` (dragonfly/protos/dragonfly_v1.proto) over a running topology.

Hosted by :class:`~dragonfly.serve.grpc_service.GrpcService` when it is made
with a :class:`~dragonfly.topology.source.Catalog`: same port, same lock-down
(token on every call, the stream caps count these streams too, the write
watchdog, one conflating subscription per instrument of a stream).

Encode once, share the bytes. A subscription names (instrument, kind, venue
subset), i.e. a :class:`~dragonfly.topology.source.ViewSource`, and a depth.
Per (source, depth) there is one :class:`Feed`: the first stream that needs it
attaches ONE sink to the source, which encodes each view it publishes to
``Update`` bytes (:mod:`dragonfly.serve.v1_encode`) and publishes them to a
:class:`~dragonfly.core.fanout.FanOut`; every later stream of the same key
subscribes to that FanOut; when the last one ends, the sink is removed (and
the source's aggregator detaches from its venues). So an update costs one
encoding per (source, depth), whatever the number of subscribers.

A stream of several instruments holds one subscription per instrument (each
conflates on its own: a busy instrument never pushes another's update out),
read round robin; the feeds wake it through a
:class:`~dragonfly.serve.grpc_service.Wakeup`.

Requests are checked before anything is attached: the token
(``UNAUTHENTICATED``), the caps (``RESOURCE_EXHAUSTED``), then the arguments,
``NOT_FOUND`` for an instrument or venue the topology does not serve and
``INVALID_ARGUMENT`` for a request it cannot serve as asked; the details say
what would work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc.aio

from dragonfly.core.errors import ConfigError, NotFoundError
from dragonfly.core.fanout import FanOut
from dragonfly.serve import dragonfly_v1_pb2 as pb
from dragonfly.serve.grpc_service import Wakeup
from dragonfly.serve.v1_encode import KIND_BOOK, KIND_NAMES, KINDS, BookEncoder, encode_bbo, encode_liquidity

if TYPE_CHECKING:
    from typing import TypeAlias

    from dragonfly.core.fanout import Subscription
    from dragonfly.serve.grpc_service import GrpcService
    from dragonfly.topology.source import Catalog, View, ViewSource

    _Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

__all__ = ["SERVICE", "Feed", "MarketData"]

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["MarketData"].full_name  # "dragonfly.v1.MarketData"

#: An encoder of one (source, depth): the Update bytes of a view, or None to send nothing.
Encoder = Callable[[Any], "bytes | None"]
_SEPARATORS = str.maketrans("", "", "-/_ ")


class _RefusedError(Exception):
    """A request the service will not serve: the status and details to end the call with."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _kind_label(kind: int) -> str:
    return pb.Kind.Name(cast("pb.Kind.ValueType", kind))


def encoder(kind: int, depth: int, source_depth: int) -> Encoder:
    """Return the encoder of ``kind`` views at ``depth`` (book only; 0: all) of a ``source_depth`` source."""
    if kind == KIND_BOOK:
        return BookEncoder(depth, source_depth)
    return encode_bbo if kind == pb.KIND_BBO else encode_liquidity


class Feed:
    """One (source, depth): one sink on the source, each view encoded once, the bytes shared.

    ``readers`` counts the stream subscriptions held; ``encoded`` the views
    encoded (one per view the source published while attached, plus the
    source's latest when attached), ``suppressed`` those left out as
    unchanged at this depth.
    """

    __slots__ = ("depth", "encode", "encoded", "fanout", "readers", "sink", "source", "suppressed", "wakeups")

    def __init__(self, source: ViewSource, depth: int, encode: Encoder) -> None:
        """Prepare the feed; nothing is attached before :meth:`attach`."""
        self.source = source
        self.depth = depth
        self.encode = encode
        self.fanout: FanOut[bytes] = FanOut(maxlen=1)
        self.readers = 0
        self.encoded = 0
        self.suppressed = 0
        #: The streams of several subscriptions that read this feed, to wake after a publish.
        self.wakeups: dict[Wakeup, None] = {}
        # The one bound method given to add_sink and remove_sink (a new one
        # per attribute access would not be the same object).
        self.sink: Callable[[View], None] = self.publish

    def publish(self, view: View) -> None:
        """Encode ``view`` and hand the bytes to every subscriber (the source's sink: synchronous)."""
        self.encoded += 1
        payload = self.encode(view)
        if payload is None:
            self.suppressed += 1
            return
        self.fanout.publish(payload)
        for wakeup in self.wakeups:
            wakeup.wake()

    def attach(self) -> None:
        """Start with the source's latest view, if any, and attach the sink."""
        latest = self.source.latest
        if latest is not None:
            self.publish(latest)
        self.source.add_sink(self.sink)

    def detach(self) -> None:
        """Remove the sink and end the FanOut."""
        self.source.remove_sink(self.sink)
        self.fanout.close()


class MarketData:
    """The ``dragonfly.v1.MarketData`` service of one catalog, hosted by a GrpcService."""

    SERVICE = SERVICE

    def __init__(self, catalog: Catalog, service: GrpcService) -> None:
        """Serve ``catalog`` through ``service`` (its lock-down, queue and streams)."""
        self._catalog = catalog
        self._service = service
        # By (id(source), depth); a Feed holds its source, so the id is not reused meanwhile.
        self._feeds: dict[tuple[int, int], Feed] = {}

    @property
    def feeds(self) -> tuple[Feed, ...]:
        """The feeds attached now (one per (source, depth) with readers)."""
        return tuple(self._feeds.values())

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """Return the generic handler of the service's three methods (streamed bytes pass untouched)."""
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Subscribe": grpc.unary_stream_rpc_method_handler(
                    self._subscribe,
                    request_deserializer=pb.SubscribeRequest.FromString,
                    response_serializer=None,  # already serialized, shared Updates
                ),
                "Snapshot": grpc.unary_unary_rpc_method_handler(
                    self._snapshot,
                    request_deserializer=pb.SnapshotRequest.FromString,
                    response_serializer=None,
                ),
                "ListInstruments": grpc.unary_unary_rpc_method_handler(
                    self._list_instruments,
                    request_deserializer=pb.ListInstrumentsRequest.FromString,
                    response_serializer=pb.InstrumentList.SerializeToString,
                ),
            },
        )

    # ------------------------------------------------------------ requests

    def _instrument(self, name: str) -> str:
        """Return the catalog's name of ``name`` (case and separators ignored), or refuse it."""
        served = self._catalog.instruments
        key = name.strip().lower().translate(_SEPARATORS)
        if key in served:
            return key
        listed = ", ".join(served) or "nothing"
        if not key:
            raise _RefusedError(
                grpc.StatusCode.INVALID_ARGUMENT, f"an instrument name is empty; this server serves {listed}"
            )
        raise _RefusedError(
            grpc.StatusCode.NOT_FOUND, f"unknown instrument {name!r}: this server serves {listed}"
        )

    def _resolve(
        self, instrument: str, kind: int, depth: int, venues: Sequence[str]
    ) -> tuple[ViewSource, int, str]:
        """Return the source, the depth (0 replaced by the source's) and the kind name; or refuse."""
        name = KIND_NAMES.get(kind)
        if name is None:
            expected = ", ".join(_kind_label(k) for k in KIND_NAMES)
            if kind == pb.KIND_UNSPECIFIED:
                raise _RefusedError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"no kind given: set kind to one of {expected}"
                )
            raise _RefusedError(
                grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind {kind}: expected one of {expected}"
            )
        if depth and kind != KIND_BOOK:
            raise _RefusedError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"depth applies to KIND_BOOK only: send depth 0 with {_kind_label(kind)} (got {depth})",
            )
        subset = tuple(sorted({venue.strip().lower() for venue in venues}))
        try:
            source = self._catalog.source(instrument, name, subset)
        except NotFoundError as exc:
            raise _RefusedError(grpc.StatusCode.NOT_FOUND, str(exc)) from None
        except ConfigError as exc:
            raise _RefusedError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        if depth > source.depth:
            raise _RefusedError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"depth {depth} is deeper than the {source.depth} levels a side this server keeps for "
                f"{instrument}: ask for 1 to {source.depth}, or 0 for all of them",
            )
        return source, depth or source.depth, name

    def _targets(self, request: pb.SubscribeRequest) -> list[tuple[ViewSource, int]]:
        """Return (source, depth) of every instrument of ``request``, in its order, duplicates once."""
        if not request.instruments:
            listed = ", ".join(self._catalog.instruments) or "nothing"
            raise _RefusedError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"no instrument given: name one or more in instruments; this server serves {listed}",
            )
        targets: list[tuple[ViewSource, int]] = []
        for instrument in dict.fromkeys(self._instrument(name) for name in request.instruments):
            source, depth, _ = self._resolve(instrument, request.kind, request.depth, request.venues)
            targets.append((source, depth))
        return targets

    # ------------------------------------------------------------ feeds

    def _acquire(self, source: ViewSource, depth: int, kind: int) -> Feed:
        """Return the feed of (source, depth), attached, with one more reader."""
        key = (id(source), depth)
        feed = self._feeds.get(key)
        if feed is None:
            feed = Feed(source, depth, encoder(kind, depth, source.depth))
            feed.attach()
            self._feeds[key] = feed
            log.debug("attached %s %s depth %d", source.instrument, source.kind, depth)
        feed.readers += 1
        return feed

    def _release(self, feed: Feed) -> None:
        """Drop a reader of ``feed``; detach it after the last."""
        feed.readers -= 1
        if feed.readers == 0:
            del self._feeds[id(feed.source), feed.depth]
            feed.detach()
            log.debug("detached %s %s depth %d", feed.source.instrument, feed.source.kind, feed.depth)

    # ------------------------------------------------------------ methods

    async def _subscribe(self, request: pb.SubscribeRequest, context: _Context) -> None:
        """Stream the updates of every instrument of ``request``."""
        service = self._service
        refusal = service.refuse_stream(context)
        if refusal is not None:
            await context.abort(*refusal)  # raises: nothing was attached
        try:
            targets = self._targets(request)
        except _RefusedError as refused:
            await context.abort(refused.code, refused.details)
        # From here to service.stream() registering the stream: no await (see refuse_stream).
        feeds = [self._acquire(source, depth, request.kind) for source, depth in targets]
        wakeup = Wakeup() if len(feeds) > 1 else None
        try:
            subscriptions: list[Subscription[bytes]] = [
                feed.fanout.subscribe(service.queue_len, service.max_lag_ns) for feed in feeds
            ]
            if wakeup is not None:
                for feed in feeds:
                    feed.wakeups[wakeup] = None
            await service.stream(context, subscriptions, wakeup)
        finally:
            for feed in feeds:
                if wakeup is not None:
                    feed.wakeups.pop(wakeup, None)
                self._release(feed)

    async def _snapshot(self, request: pb.SnapshotRequest, context: _Context) -> bytes:
        """Return the view of one instrument made now."""
        refusal = self._service.refuse_call(context)
        if refusal is not None:
            await context.abort(*refusal)
        try:
            instrument = self._instrument(request.instrument)
            source, depth, _ = self._resolve(instrument, request.kind, request.depth, request.venues)
        except _RefusedError as refused:
            await context.abort(refused.code, refused.details)
        # A fresh encoder: no "unchanged" suppression for a one-off.
        payload = encoder(request.kind, depth, 0)(source.current())
        assert payload is not None  # only a suppressing encoder returns None
        return payload

    async def _list_instruments(
        self, _request: pb.ListInstrumentsRequest, context: _Context
    ) -> pb.InstrumentList:
        """Return every instrument with its venues' current state."""
        refusal = self._service.refuse_call(context)
        if refusal is not None:
            await context.abort(*refusal)
        return pb.InstrumentList(
            instruments=[
                pb.Instrument(
                    instrument=info.instrument,
                    kinds=[cast("pb.Kind.ValueType", KINDS[kind]) for kind in info.kinds if kind in KINDS],
                    depth=info.depth,
                    venues=[
                        pb.VenueInfo(
                            venue=venue.venue,
                            symbol=venue.symbol,
                            channel=venue.channel,
                            in_merge=venue.in_merge,
                            status=cast("pb.VenueStatus.ValueType", venue.status),
                            data_ns=venue.data_ns,
                            age_ns=venue.age_ns,
                            stale_after_ns=venue.stale_after_ns,
                            detail=venue.detail,
                        )
                        for venue in info.venues
                    ],
                )
                for info in self._catalog.catalog()
            ]
        )
