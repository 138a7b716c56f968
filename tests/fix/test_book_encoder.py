"""The gateway's BookEncoder: per-level cached entries give exactly encode_book's bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.fix import mdcodec
from dragonfly.fix.codec import byte_sum
from dragonfly.fix.mdcodec import BID, OFFER, BookEncoder, encode_book

VENUES = ("binance", "bitstamp", "kraken")
# Few distinct values, so levels recur and move between positions from one book to the next;
# some outside the plain range (an exponent in repr, a zero of either sign) take the slow path.
PRICES = (0.06827, 0.06828, 0.0683, 0.068271, 0.1, 0.3, 68270.5, 1e-05, 1.5e16, 0.0, -0.0)
AMOUNTS = (1.5, 2.25, 0.001, 1234.56789, 3.0, 0.0001, 5e-07, 2e16)

levels = st.builds(MergedLevel, st.sampled_from(VENUES), st.sampled_from(PRICES), st.sampled_from(AMOUNTS))
sides = st.lists(levels, max_size=12).map(tuple)
states = st.lists(st.booleans(), min_size=3, max_size=3).map(
    lambda flags: tuple(
        VenueState(v, f, 1, 1_000 + i, 5, i) for i, (v, f) in enumerate(zip(VENUES, flags, strict=True))
    )
)


def _book(sequence: int, bids: tuple[MergedLevel, ...], asks: tuple[MergedLevel, ...],
          venues: tuple[VenueState, ...]) -> MergedBook:
    return MergedBook(
        "ethbtc", 0.0, bids, asks, sequence, 10 + sequence, 5 + sequence, "kraken", sequence, venues
    )


@given(
    books=st.lists(st.tuples(sides, sides, states), min_size=1, max_size=12),
    depth=st.sampled_from((0, 1, 3, 10)),
    types=st.sampled_from(((BID, OFFER), (BID,), (OFFER,))),
    cache_max=st.sampled_from((2, 2048)),
)
@settings(max_examples=300, deadline=None)
def test_each_update_is_encode_books_bytes(
    books: list[tuple[tuple[MergedLevel, ...], tuple[MergedLevel, ...], tuple[VenueState, ...]]],
    depth: int,
    types: tuple[bytes, ...],
    cache_max: int,
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mdcodec, "_CACHE_MAX", cache_max)  # 2: the cache is cleared over and over
        encode = BookEncoder(depth, 10, types)
        last = None
        for sequence, (bids, asks, venues) in enumerate(books, 1):
            book = _book(sequence, bids, asks, venues)
            update = encode(book)
            key = (bids[:depth], asks[:depth], [s[1:3] for s in venues]) if depth else None
            if 0 < depth < 10 and key == last:
                assert update is None
                continue
            last = key
            assert update is not None
            assert update == encode_book(book, depth, types)
            assert update.tail_sum == byte_sum(update.tail)


def test_a_level_that_moves_keeps_its_text_and_takes_its_new_position() -> None:
    a, b, c = (MergedLevel("binance", 0.0683, 1.0), MergedLevel("kraken", 0.0682, 2.0),
               MergedLevel("bitstamp", 0.0681, 3.0))
    venues = (VenueState("binance", True, 1, 0, 0, 0),)
    encode = BookEncoder(0, 10)
    encode(_book(1, (a, b), (), venues))
    update = encode(_book(2, (c, a, b), (), venues))
    assert update is not None
    assert update.tail.startswith(
        b"268=3\x01269=0\x01270=0.0681\x01271=3.0\x01282=bitstamp\x01290=1\x01"
        b"269=0\x01270=0.0683\x01271=1.0\x01282=binance\x01290=2\x01"
        b"269=0\x01270=0.0682\x01271=2.0\x01282=kraken\x01290=3\x01"
    )
