"""The gateway's BookEncoder: per-level cached entries give exactly encode_book's bytes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly import accel
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


def _c_entries() -> object:
    if accel.speedups is None:
        pytest.skip("C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set")
    return accel.speedups.fix_entries


@pytest.mark.parametrize("path", ["c", "python"])
@given(
    books=st.lists(st.tuples(sides, sides, states), min_size=1, max_size=12),
    depth=st.sampled_from((0, 1, 3, 10)),
    types=st.sampled_from(((BID, OFFER), (BID,), (OFFER,))),
    cache_max=st.sampled_from((2, 2048)),
)
@settings(max_examples=300, deadline=None)
def test_each_update_is_encode_books_bytes(
    path: str,
    books: list[tuple[tuple[MergedLevel, ...], tuple[MergedLevel, ...], tuple[VenueState, ...]]],
    depth: int,
    types: tuple[bytes, ...],
    cache_max: int,
) -> None:
    """The encoder's entries written by C or by the cached Python are encode_book's (pure Python)."""
    entries = _c_entries() if path == "c" else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mdcodec, "_fix_entries", entries)
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


def _outcome(fn: Callable[..., object], *args: object) -> tuple[str, object]:
    try:
        return "ok", fn(*args)
    except TypeError:
        return "raise", TypeError


class _Sub(tuple):  # type: ignore[type-arg]
    __slots__ = ()


def test_the_c_entries_are_their_twins_and_the_python_encoders_bytes() -> None:
    """C ``fix_entries`` against ``fix_entries_py`` on random and ill-formed sides (the fuzzer's, briefly)."""
    c_entries = _c_entries()
    rng = random.Random(7)
    venues = {name: mdcodec._venue(name) for name in VENUES}
    odd: list[object] = [
        1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 0.0, -0.0, -1.0, math.inf, math.nan, 5e-324,
        1, True, "1.0", None, 2**53, 1e300,
    ]
    declined = written = 0
    for _ in range(4000):
        side: list[object] = []
        for _ in range(rng.choice((0, 1, 3, 10, 20))):
            price: object = round(rng.uniform(1e-4, 1e5), rng.randint(0, 10))
            amount: object = round(rng.uniform(1e-4, 1e4), rng.randint(0, 8))
            venue: object = rng.choice(VENUES)
            if rng.random() < 0.03:
                price = rng.choice(odd)
            if rng.random() < 0.03:
                amount = rng.choice(odd)
            if rng.random() < 0.02:
                venue = rng.choice(("unknown", b"binance", 5))
            level: object = rng.choice((MergedLevel, lambda *a: a, lambda *a: _Sub(a)))(venue, price, amount)
            if rng.random() < 0.01:
                level = rng.choice(((venue, price), [venue, price, amount], None, (venue, price, amount, 1)))
            side.append(level)
        levels: object = tuple(side) if rng.random() < 0.98 else side
        entry_type = rng.choice((BID, OFFER))
        got = _outcome(c_entries, levels, entry_type, venues)
        want = _outcome(mdcodec.fix_entries_py, levels, entry_type, venues)
        assert got == want, (levels, got, want)
        if got[0] == "ok" and got[1] is not None:
            written += 1
            parts: list[bytes] = []
            count = mdcodec._levels(parts, entry_type, levels)  # type: ignore[arg-type]
            assert got[1] == (b"".join(parts), count)
        elif got[0] == "ok":
            declined += 1
    assert written > 2000 and declined > 500  # both outcomes were exercised
    assert _outcome(c_entries, (), BID, {"x": "not bytes"}) == ("ok", (b"", 0))
    bad_field = (MergedLevel("x", 1.0, 1.0),)
    assert _outcome(c_entries, bad_field, BID, {"x": "282=x"}) == ("raise", TypeError)
    for args in ((bad_field, "0", venues), (bad_field, BID, [])):
        assert _outcome(c_entries, *args) == ("raise", TypeError)


def test_the_c_float_text_is_repr() -> None:
    """The C writer's shortcut for short decimals writes exactly what repr does, or falls back to it."""
    c_entries = _c_entries()
    rng = random.Random(11)
    field = {"v": b"282=v\x01"}
    floats: list[float] = [
        1e-4, 0.00010000000000000002, 0.1, 0.2, 0.3, 0.30000000000000004, 1.0, 2.675, 123.456,
        4503599627370496.5, 4503599627370497.0, 9007199254740991.0, 9007199254740992.0, 9007199254740994.0,
        9999999999999998.0, 0.069999999, 68270.5,
    ]
    for _ in range(20000):
        x = round(rng.uniform(1e-4, 1e5), rng.randint(0, 12))
        floats += [x, math.nextafter(x, 0.0), math.nextafter(x, math.inf), rng.uniform(1e-4, 10.0)]
        floats.append(10 ** rng.uniform(-4, 16))
        floats.append(rng.randint(1, 10 ** rng.randint(1, 17)) / 10 ** rng.randint(0, 20))
    levels = tuple(MergedLevel("v", x, 1.0) for x in floats if 1e-4 <= x < 1e16)
    written = c_entries(levels, BID, field)
    assert written is not None and written[1] == len(levels)
    texts = [entry.split(b"\x01")[0] for entry in written[0].split(b"269=0\x01")[1:]]
    assert texts == [b"270=%r" % level.price for level in levels]
