"""A seeded synthetic market: one random-walk mid per instrument, one book per venue.

Each venue quotes around its own mid: the market mid shifted by a static
per-venue bias plus a small mean-reverting wander, so the venues quote
slightly different prices and now and then lock or cross each other (a real
cross-venue state). Given the seed, the sequence of books produced by
``step()`` is fixed; only the wall-clock timestamps vary. Every
(instrument, venue) pair draws from its own generator, so adding a venue or
an instrument does not change the others' paths.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from random import Random

from dragonfly.sim.book import SimBook
from dragonfly.sim.instruments import (
    DEFAULT_INSTRUMENTS,
    DEFAULT_VENUES,
    STYLES,
    VENUES,
    Instrument,
    make_instrument,
)

# Per-step stdev of the log mid, in basis points.
SIGMA_BPS = 0.5
# Pull of the log mid back toward its start, per step (keeps long runs in range).
MID_REVERSION = 1e-3
# Pull of a venue's wander back toward its bias, per step.
VENUE_REVERSION = 0.05


class _Walk:
    """The market mid of one instrument and each venue's offset from it."""

    def __init__(self, instrument: Instrument, venues: tuple[str, ...], seed: int) -> None:
        self.instrument = instrument
        self.rng = Random(f"{seed}/{instrument.name}")
        self.log_move = 0.0  # log(mid / instrument.mid)
        self.wander = dict.fromkeys(venues, 0.0)  # bps, around each venue's bias

    @property
    def mid(self) -> float:
        return self.instrument.mid * math.exp(self.log_move)

    def venue_mid(self, venue: str) -> float:
        bps = STYLES[venue].bias_bps + self.wander[venue]
        return self.mid * (1.0 + bps * 1e-4)

    def step(self, sigma_bps: float) -> None:
        rng = self.rng
        self.log_move = self.log_move * (1 - MID_REVERSION) + rng.gauss(0.0, sigma_bps * 1e-4)
        # Innovation scaled so each wander's stationary stdev is the venue's noise_bps.
        keep = 1 - VENUE_REVERSION
        scale = math.sqrt(1 - keep * keep)
        for venue in self.wander:
            noise = STYLES[venue].noise_bps * scale
            self.wander[venue] = self.wander[venue] * keep + rng.gauss(0.0, noise)


class SyntheticMarket:
    """Deterministic (given ``seed``) books for ``instruments`` on ``venues``."""

    def __init__(
        self,
        instruments: Iterable[str] = DEFAULT_INSTRUMENTS,
        venues: Iterable[str] = DEFAULT_VENUES,
        seed: int = 0,
        *,
        sigma_bps: float = SIGMA_BPS,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """List ``instruments`` (lowercase names) on ``venues``; raise ValueError if unknown."""
        self.venues: tuple[str, ...] = tuple(dict.fromkeys(venues))
        for venue in self.venues:
            if venue not in STYLES:
                raise ValueError(f"unknown venue {venue!r}: expected one of {', '.join(VENUES)}")
        names = tuple(dict.fromkeys(instruments))
        if not names:
            raise ValueError("at least one instrument is required")
        self.instruments: dict[str, Instrument] = {n: make_instrument(n) for n in names}
        self.seed = seed
        self.sigma_bps = sigma_bps
        self.steps = 0
        self._clock_ns = clock_ns
        self._walks = {n: _Walk(i, self.venues, seed) for n, i in self.instruments.items()}
        self._rngs: dict[tuple[str, str], Random] = {}
        self._books: dict[tuple[str, str], SimBook] = {}
        #: Called after every step with the step's wall time in ns (the clock
        #: the books' ``micros`` come from), e.g. a truth record's observer.
        self.observers: list[Callable[[int], None]] = []
        micros = clock_ns() // 1000
        for name, instrument in self.instruments.items():
            for venue in self.venues:
                spec = instrument.specs[venue]
                rng = Random(f"{seed}/{name}/{venue}")
                book = SimBook(spec, instrument.size / spec.lot)
                book.seed(self._walks[name].venue_mid(venue), rng, micros)
                self._rngs[venue, name] = rng
                self._books[venue, name] = book

    def instrument(self, name: str) -> Instrument | None:
        """Return the listed instrument named ``name`` (lowercase), or None."""
        return self.instruments.get(name)

    def book(self, venue: str, instrument: str) -> SimBook:
        """Return ``venue``'s book of ``instrument``; KeyError if not listed."""
        return self._books[venue, instrument]

    def mid(self, instrument: str) -> float:
        """Return the current market mid of ``instrument``."""
        return self._walks[instrument].mid

    def venue_mid(self, venue: str, instrument: str) -> float:
        """Return the mid ``venue`` currently quotes ``instrument`` around."""
        return self._walks[instrument].venue_mid(venue)

    def step(self) -> None:
        """Advance every mid one step and move every venue book after it."""
        now_ns = self._clock_ns()
        micros = now_ns // 1000
        for name, walk in self._walks.items():
            walk.step(self.sigma_bps)
            for venue in self.venues:
                book = self._books[venue, name]
                book.step(walk.venue_mid(venue), self._rngs[venue, name], micros)
        self.steps += 1
        for observer in self.observers:
            observer(now_ns)
