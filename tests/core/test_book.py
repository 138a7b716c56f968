"""L2Book: exact levels, the venue's strings, and the fast top-N read."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.book import ASKS, BIDS, L2Book

# The numeric book's apply and top-N read on their C twins and on Python.
pytestmark = pytest.mark.usefixtures("both_hot_paths")

prices = st.integers(1, 400).map(lambda i: f"{i / 100:.2f}")
amounts = st.one_of(st.just("0"), st.integers(1, 50).map(str))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), prices, amounts), max_size=300), st.integers(1, 30))
def test_top_equals_a_plain_sort(changes: list[tuple[bool, str, str]], n: int) -> None:
    book = L2Book()
    numeric = L2Book(numeric=True)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for is_bid, price, amount in changes:
        (book.set_bid if is_bid else book.set_ask)(price, amount)
        level = [(float(price), float(amount))]
        numeric.update_numeric(level if is_bid else [], [] if is_bid else level, math.inf, -math.inf)
        side = bids if is_bid else asks
        if float(amount) == 0:
            side.pop(float(price), None)
        else:
            side[float(price)] = float(amount)
    want_bids = tuple(sorted(bids.items(), reverse=True)[:n])
    want_asks = tuple(sorted(asks.items())[:n])
    assert book.top(n) == numeric.top(n) == (want_bids, want_asks)
    assert book.crossed() == numeric.crossed() == bool(bids and asks and max(bids) >= min(asks))


def test_top_is_right_across_many_sublists() -> None:
    """Deep books split the sorted keys into sublists: the fast path must notice."""
    rng = random.Random(3)
    book = L2Book()
    levels = {round(rng.uniform(1, 1000), 2) for _ in range(20_000)}
    for p in levels:
        book.set_ask(f"{p:.2f}", "1")
    for p in sorted(levels)[:5000:2]:  # thin out the head so the first sublist shrinks
        book.set_ask(f"{p:.2f}", "0")
    remaining = sorted(set(levels) - set(sorted(levels)[:5000:2]))
    for n in (1, 10, 100, 3000):
        assert [p for p, _ in book.top(n)[1]] == remaining[:n]


def test_keeps_the_venue_strings() -> None:
    book = L2Book()
    book.load([("0.10", "1.50")], [("0.2", "3")], 7)
    book.set_bid("0.1", "2.0")  # the same price written differently is the same level
    assert book.top_text(5) == ([("0.1", "2.0")], [("0.2", "3")])
    assert book.seq == 7 and len(book) == 2


def test_a_numeric_book_keeps_floats_only() -> None:
    book = L2Book(numeric=True)
    book.load([(0.1, 1.5), (0.09, 0.0)], [(0.2, 3.0)], 7)  # a zero amount is no level
    assert book.top(5) == (((0.1, 1.5),), ((0.2, 3.0),)) and book.seq == 7
    # The bounds say which side a change reached within the published top N.
    assert book.update_numeric([(0.05, 1.0)], [], 0.1, 0.2) == 0
    assert book.update_numeric([(0.1, 0.0)], [(0.25, 1.0)], 0.1, 0.2) == BIDS
    assert book.update_numeric([], [(0.2, 4.0)], 0.1, 0.2) == ASKS
    assert book.top(5) == (((0.05, 1.0),), ((0.2, 4.0), (0.25, 1.0)))
    book.truncate(1)
    assert book.top(5) == (((0.05, 1.0),), ((0.2, 4.0),))
    with pytest.raises(ValueError, match="numeric book keeps no venue strings"):
        book.top_text(5)
    assert not book.bid_text and not book.ask_text
