"""A catalog whose view sources the test drives: publish() calls every sink, as an aggregator does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dragonfly.core.errors import ConfigError, NotFoundError
from dragonfly.core.liquidity import Band, Fill, Liquidity, VenueAmount
from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.core.views import BboView, VenueBbo
from dragonfly.topology.source import InstrumentInfo, View, ViewSink

VENUES = ("binance", "bitstamp", "kraken")
INSTRUMENTS = ("ethbtc", "btcusdt")
DEPTH = 10


def states(out: str = "") -> tuple[VenueState, ...]:
    now = time.time_ns()
    return tuple(
        VenueState(venue, venue != out, 1 if venue != out else 4, now - 1000, 1000, 7 + i)
        for i, venue in enumerate(VENUES)
    )


def make_book(instrument: str, sequence: int, top: float = 1.0, depth: int = DEPTH) -> MergedBook:
    """A book; ``top`` is the best bid's amount, ``sequence`` the deepest bid's amount."""
    bids = tuple(
        MergedLevel(VENUES[i % 3], 0.05 - i * 1e-5, float(sequence) if i == depth - 1 else top + i)
        for i in range(depth)
    )
    asks = tuple(MergedLevel(VENUES[(i + 1) % 3], 0.0501 + i * 1e-5, 2.0 + i) for i in range(depth))
    now = time.time_ns()
    return MergedBook(instrument, 1e-4, bids, asks, sequence, now - 500, now, "kraken", sequence, states())


def make_bbo(instrument: str, sequence: int) -> BboView:
    quotes = (
        VenueBbo("binance", 100.0, 1.0 + sequence, 101.0, 2.0),
        VenueBbo("bitstamp", 99.5, 3.0, float("nan"), 0.0),  # an empty offer side
    )
    now = time.time_ns()
    return BboView(
        instrument,
        1.0,
        MergedLevel("binance", 100.0, 1.0 + sequence),
        MergedLevel("binance", 101.0, 2.0),
        quotes,
        sequence,
        now - 500,
        now,
        "binance",
        1,
        states(),
    )


def make_liquidity(instrument: str, sequence: int) -> Liquidity:
    parts = (VenueAmount("binance", 1.5), VenueAmount("kraken", 2.5))
    bands = (Band(10.0, 4.0, 6.0 + sequence, parts, parts[:1]),)
    sells = (Fill("sell", 1.0, 1.0, 99.5, 99.0, 50.0, parts, True),)
    buys = (Fill("buy", 100.0, 6.0, float("nan"), float("nan"), float("nan"), (), False),)
    now = time.time_ns()
    return Liquidity(instrument, 100.5, bands, sells, buys, sequence, now - 500, now, "okx", 2, states())


MAKERS = {"book": make_book, "bbo": make_bbo, "liquidity": make_liquidity}


@dataclass(eq=False)
class FakeSource:
    instrument: str
    kind: str
    depth: int = DEPTH
    latest: View | None = None
    sinks: list[ViewSink] = field(default_factory=list)
    attached: int = 0

    @property
    def venue_names(self) -> tuple[str, ...]:
        return VENUES

    def current(self) -> View:
        return MAKERS[self.kind](self.instrument, 1000)  # type: ignore[operator]

    def add_sink(self, sink: ViewSink) -> None:
        self.attached += 1
        self.sinks.append(sink)

    def remove_sink(self, sink: ViewSink) -> None:
        self.sinks.remove(sink)

    def publish(self, view: View) -> None:
        self.latest = view
        for sink in tuple(self.sinks):
            sink(view)


class FakeCatalog:
    """Two instruments; ``kinds`` served (default: all)."""

    def __init__(self, kinds: Sequence[str] = ("book", "bbo", "liquidity")) -> None:
        self.kinds = tuple(kinds)
        self.sources: dict[tuple[str, str], FakeSource] = {}

    @property
    def instruments(self) -> tuple[str, ...]:
        return INSTRUMENTS

    def catalog(self) -> tuple[InstrumentInfo, ...]:
        return ()

    def source(self, instrument: str, kind: str, venues: Sequence[str] = ()) -> FakeSource:
        if instrument not in INSTRUMENTS:
            raise NotFoundError(
                f"unknown instrument {instrument!r}: this server serves {', '.join(INSTRUMENTS)}"
            )
        if kind not in self.kinds:
            raise ConfigError(f"view kind {kind!r} is not served for {instrument}")
        key = (instrument, kind)
        if key not in self.sources:
            self.sources[key] = FakeSource(instrument, kind)
        return self.sources[key]
