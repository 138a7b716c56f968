"""L2Book: exact levels, the venue's strings, and the fast top-N read."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.book import L2Book

prices = st.integers(1, 400).map(lambda i: f"{i / 100:.2f}")
amounts = st.one_of(st.just("0"), st.integers(1, 50).map(str))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), prices, amounts), max_size=300), st.integers(1, 30))
def test_top_equals_a_plain_sort(changes: list[tuple[bool, str, str]], n: int) -> None:
    book = L2Book()
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for is_bid, price, amount in changes:
        (book.set_bid if is_bid else book.set_ask)(price, amount)
        side = bids if is_bid else asks
        if float(amount) == 0:
            side.pop(float(price), None)
        else:
            side[float(price)] = float(amount)
    want_bids = tuple(sorted(bids.items(), reverse=True)[:n])
    want_asks = tuple(sorted(asks.items())[:n])
    assert book.top(n) == (want_bids, want_asks)
    assert book.crossed() == bool(bids and asks and max(bids) >= min(asks))


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
