"""One venue's full synthetic book of one instrument, in integer units.

Invariants kept after every step:

* every bid price is below every ask price (a venue never crosses itself);
* each side holds between ``MIN_LEVELS`` and ``MAX_LEVELS`` levels;
* every price is a positive number of ticks, every amount a positive number of lots.
"""

from __future__ import annotations

import heapq
import math
from itertools import pairwise
from operator import sub
from random import Random

from dragonfly.sim.instruments import VenueSpec, pow10

MIN_LEVELS = 120
MAX_LEVELS = 160

#: One level in integer units: (price in ticks, amount in lots).
UnitLevel = tuple[int, int]
#: One level as floats: (price, amount).
FloatLevel = tuple[float, float]


def units_text(units: int, decimals: int) -> str:
    """Print ``units * 10**-decimals`` exactly with ``decimals`` decimals."""
    if decimals == 0:
        return str(units)
    whole, frac = divmod(units, pow10(decimals))
    return f"{whole}.{frac:0{decimals}d}"


def trimmed_text(units: int, decimals: int) -> str:
    """Print ``units * 10**-decimals`` exactly, without trailing zeros (``"30261"``, ``"0.059"``)."""
    text = units_text(units, decimals)
    return text.rstrip("0").rstrip(".") if "." in text else text


class BookChanges:
    """Prices whose amount changed (added, resized or removed) since the watcher last cleared.

    Filled by :meth:`SimBook.step` once per step, by comparing the book before
    and after the step, so a level changed and changed back within one step is
    not listed, while a level changed in any step is, even if a later step
    restored it. Reading the book's current amount of every listed price gives
    exactly the changes between any step boundary since the clear and now.
    """

    def __init__(self) -> None:
        """Start empty."""
        self.bids: set[int] = set()
        self.asks: set[int] = set()

    def __bool__(self) -> bool:
        """Return True if any price changed."""
        return bool(self.bids or self.asks)

    def clear(self) -> None:
        """Forget every listed price."""
        self.bids.clear()
        self.asks.clear()


class SimBook:
    """A venue's book: bids and asks keyed by price in ticks, amounts in lots."""

    def __init__(self, spec: VenueSpec, size_lots: float) -> None:
        """Create an empty book quoted per ``spec`` with typical level ``size_lots``."""
        self.spec = spec
        self.size_lots = size_lots
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        #: Grows by the number of changed levels at every change (Binance-style update id).
        #: Shared by Binance's REST ``lastUpdateId`` and its diff events' ``U``/``u``.
        self.update_id = 0
        #: Wall time of the last change, microseconds since the epoch.
        self.micros = 0
        self._sorted_at = -1
        self._sorted: tuple[list[UnitLevel], list[UnitLevel]] = ([], [])
        self._watchers: list[BookChanges] = []
        # During a step: (bids, asks) price -> amount before the step (None: absent).
        self._before: tuple[dict[int, int | None], dict[int, int | None]] = ({}, {})

    # -- reading ---------------------------------------------------------

    def sorted_levels(self) -> tuple[list[UnitLevel], list[UnitLevel]]:
        """Return (bids best first, asks best first); cached until the next change."""
        if self._sorted_at != self.update_id:
            bids = sorted(self.bids.items(), reverse=True)
            asks = sorted(self.asks.items())
            self._sorted = (bids, asks)
            self._sorted_at = self.update_id
        return self._sorted

    def text_side(self, levels: list[UnitLevel]) -> list[tuple[str, str]]:
        """Print levels as (price, amount) decimal text with the spec's decimals."""
        spec = self.spec
        pd, ad = spec.price_decimals, spec.amount_decimals
        tu, lu = spec.tick_units, spec.lot_units
        text = trimmed_text if spec.trim else units_text
        return [(text(p * tu, pd), text(a * lu, ad)) for p, a in levels]

    def float_side(self, levels: list[UnitLevel]) -> list[FloatLevel]:
        """Return levels as floats, equal to parsing their printed text."""
        spec = self.spec
        p_div = pow10(spec.price_decimals)
        a_div = pow10(spec.amount_decimals)
        # int / int is correctly rounded, exactly as float() of the decimal text.
        return [(p * spec.tick_units / p_div, a * spec.lot_units / a_div) for p, a in levels]

    # -- watching --------------------------------------------------------

    def watch(self) -> BookChanges:
        """Return a new, empty record of the prices every later step changes."""
        changes = BookChanges()
        self._watchers.append(changes)
        return changes

    def unwatch(self, changes: BookChanges) -> None:
        """Stop recording into ``changes`` (no-op if it is not watching)."""
        if changes in self._watchers:
            self._watchers.remove(changes)

    # -- changing --------------------------------------------------------

    def _size(self, rng: Random) -> int:
        return max(1, round(self.size_lots * rng.lognormvariate(0.0, 0.8)))

    def _gap(self, rng: Random) -> int:
        return self.spec.gap_ticks * rng.randint(1, 2)

    def seed(self, mid: float, rng: Random, micros: int) -> None:
        """Fill both sides around ``mid`` (a float price)."""
        best_bid, best_ask = self._touch(mid)
        price = best_bid
        while len(self.bids) < MIN_LEVELS + 10 and price > 0:
            self.bids[price] = self._size(rng)
            price -= self._gap(rng)
        price = best_ask
        while len(self.asks) < MIN_LEVELS + 10:
            self.asks[price] = self._size(rng)
            price += self._gap(rng)
        self.update_id = 1
        self.micros = micros

    def _touch(self, mid: float) -> tuple[int, int]:
        """Return the target best bid and ask ticks for a venue mid."""
        center = mid / self.spec.tick
        best_bid = max(1, math.floor(center - self.spec.spread_ticks / 2))
        best_ask = max(best_bid + 1, math.ceil(center + self.spec.spread_ticks / 2))
        return best_bid, best_ask

    def step(self, mid: float, rng: Random, micros: int) -> int:
        """Move the book toward ``mid`` and change a few levels; return levels changed.

        A level counts once per step however often it was written, and not at
        all if it ends the step as it began (e.g. resized to the same amount).
        ``update_id`` grows by that count, so it moves exactly when the book does.
        """
        # What each written price held before this step (None: absent), so
        # the changes are found without copying and comparing whole sides.
        self._before = ({}, {})
        best_bid, best_ask = self._touch(mid)
        gap = self.spec.gap_ticks
        # Pull the touch to the mid: drop levels through it, refill if it drifted away.
        for price in [p for p in self.bids if p > best_bid]:
            self._del(self.bids, price)
        for price in [p for p in self.asks if p < best_ask]:
            self._del(self.asks, price)
        if not self.bids or max(self.bids) < best_bid - gap:
            self._set(self.bids, best_bid, self._size(rng))
        if not self.asks or min(self.asks) > best_ask + gap:
            self._set(self.asks, best_ask, self._size(rng))
        for _ in range(rng.randint(1, 3)):
            self._mutate(rng, best_bid, best_ask)
        self._fill_holes(self.bids, -1, rng)
        self._fill_holes(self.asks, 1, rng)
        self._refill(rng)
        before_bids, before_asks = self._before
        bids = {p for p, old in before_bids.items() if self.bids.get(p) != old}
        asks = {p for p, old in before_asks.items() if self.asks.get(p) != old}
        changed = len(bids) + len(asks)
        if changed:
            self.update_id += changed
            self.micros = micros
            for watcher in self._watchers:
                watcher.bids |= bids
                watcher.asks |= asks
        return changed

    def _set(self, side: dict[int, int], price: int, amount: int) -> None:
        """Write a level during a step, noting what the price held before it."""
        self._before[side is self.asks].setdefault(price, side.get(price))
        side[price] = amount

    def _del(self, side: dict[int, int], price: int) -> None:
        """Remove a level during a step, noting its amount before it."""
        self._before[side is self.asks].setdefault(price, side[price])
        del side[price]

    def _mutate(self, rng: Random, best_bid: int, best_ask: int) -> int:
        """Resize, delete or add one level near the top of a random side."""
        is_bid = rng.random() < 0.5
        side = self.bids if is_bid else self.asks
        index = min(int(rng.expovariate(1 / 8)), len(side) - 1)
        # The index-th best price: a partial sort (the index is ~8 of ~150 levels).
        price = (heapq.nlargest if is_bid else heapq.nsmallest)(index + 1, side)[index]
        roll = rng.random()
        if roll < 0.5:
            self._set(side, price, self._size(rng))
        elif roll < 0.75 and len(side) > MIN_LEVELS:
            self._del(side, price)
        else:
            # A new level next to the chosen one, never through the touch.
            gap = self.spec.gap_ticks
            new = price + rng.choice((-1, 1)) * rng.randint(1, gap)
            inside = 0 < new <= best_bid if is_bid else new >= best_ask
            if not inside or new in side:
                return 0
            self._set(side, new, self._size(rng))
        return 1

    def _fill_holes(self, side: dict[int, int], outward: int, rng: Random) -> int:
        """Add levels wherever two neighbours in the top MIN_LEVELS are over two gaps apart.

        Without this a trend that reverses leaves a hollow book: levels were
        removed through the touch on the way out and only the touch comes back.
        ``outward`` is -1 for bids (deeper is lower) and +1 for asks.
        """
        gap = self.spec.gap_ticks
        ordered = sorted(side, reverse=outward < 0)[:MIN_LEVELS]
        # The common case in C calls: no two neighbours are over two gaps apart.
        steps = list(map(sub, ordered[1:], ordered))
        if not steps or (max(steps) if outward > 0 else -min(steps)) <= 2 * gap:
            return 0
        changed = 0
        for prev, price in pairwise(ordered):
            while (price - prev) * outward > 2 * gap:
                prev += outward * gap * rng.randint(1, 2)
                if prev <= 0 or (price - prev) * outward <= 0:
                    break
                self._set(side, prev, self._size(rng))
                changed += 1
        return changed

    def _refill(self, rng: Random) -> int:
        """Keep each side between MIN_LEVELS and MAX_LEVELS by the deep end."""
        changed = 0
        while len(self.bids) < MIN_LEVELS:
            price = min(self.bids) - self._gap(rng)
            if price <= 0:
                break
            self._set(self.bids, price, self._size(rng))
            changed += 1
        while len(self.asks) < MIN_LEVELS:
            self._set(self.asks, max(self.asks) + self._gap(rng), self._size(rng))
            changed += 1
        while len(self.bids) > MAX_LEVELS:
            self._del(self.bids, min(self.bids))
            changed += 1
        while len(self.asks) > MAX_LEVELS:
            self._del(self.asks, max(self.asks))
            changed += 1
        return changed
