"""The C speedups against their pure-Python twins, on random input, and on bad input.

The encoder's C twin is also run by every test of tests/serve/test_encode.py
(against the official serializer), as is the merge by tests/core/test_aggregator.py.
"""

from __future__ import annotations

import gc
import math
import os
import re
import struct
import time
import zlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sortedcontainers import SortedDict

from dragonfly import accel
from dragonfly.core import book as book_module
from dragonfly.core.aggregator import STATUS_CODES, Run, merge_side_py, venue_states_py
from dragonfly.core.book import L2Book
from dragonfly.core.checksum import crc32_digits_py, crc32_interleaved_py
from dragonfly.core.health import VenueStatus
from dragonfly.core.liquidity import Fill
from dragonfly.core.listener import check_book_py
from dragonfly.core.types import MergedBook, MergedLevel, VenueBook, VenueState
from dragonfly.core.views import VenueBbo
from dragonfly.serve.encode import encode_summary_pb
from dragonfly.venues.bitstamp import _top_of_side

pytestmark = pytest.mark.skipif(
    accel.speedups is None,
    reason="C speedups not built (no C compiler at install) or DRAGONFLY_PURE_PYTHON set",
)

# Few distinct prices and amounts, so ties across venues are common.
_prices = st.sampled_from([0.5, 1.0, 1.25, 2.0, 2.5, 3.0, 1e-8, 1e8])
_amounts = st.sampled_from([0.1, 1.0, 2.0, 3.0])


@st.composite
def _runs(draw: st.DrawFn, descending: bool) -> list[Run]:
    names = sorted(draw(st.sets(st.sampled_from(["binance", "bitstamp", "kraken", "okx", "é"]), max_size=5)))
    runs = []
    for name in names:
        prices = sorted(draw(st.sets(_prices, max_size=8)), reverse=descending)
        runs.append((name, tuple((p, draw(_amounts)) for p in prices)))
    return runs


@settings(max_examples=500, deadline=None)
@given(st.data(), st.booleans(), st.integers(0, 12))
def test_merge_side_equals_the_python_merge(data: st.DataObject, descending: bool, depth: int) -> None:
    runs = data.draw(_runs(descending))
    assert accel.speedups is not None
    got = accel.speedups.merge_side(runs, depth, descending, MergedLevel)
    assert got == merge_side_py(runs, depth, descending)
    assert all(type(level) is MergedLevel for level in got)


_sides = st.lists(
    st.tuples(
        st.one_of(_prices, st.sampled_from([0.0, -1.0, math.inf, math.nan, 2.0])),
        st.one_of(_amounts, st.sampled_from([0.0, -1.0, math.inf, math.nan])),
    ),
    max_size=6,
).map(tuple)


@settings(max_examples=1000, deadline=None)
@given(_sides, _sides, st.booleans(), st.booleans())
def test_check_book_equals_the_python_check(
    bids: tuple[tuple[float, float], ...], asks: tuple[tuple[float, float], ...], sort_b: bool, sort_a: bool
) -> None:
    # Sorted sides most of the time, so the crossed check is reached too.
    if sort_b:
        bids = tuple(sorted(bids, key=lambda lv: -lv[0] if lv[0] == lv[0] else 0.0))
    if sort_a:
        asks = tuple(sorted(asks, key=lambda lv: lv[0] if lv[0] == lv[0] else 0.0))
    assert accel.speedups is not None
    assert accel.speedups.check_book(bids, asks) == check_book_py(bids, asks)


def test_check_book_refuses_what_is_not_a_book() -> None:
    assert accel.speedups is not None
    for bad in [((1.0,),), (("1", 1.0),), 5]:
        with pytest.raises(TypeError):
            accel.speedups.check_book(bad, ())  # type: ignore[arg-type]


# Number strings: JSON numbers, and strings that are not (spaces, signs, words).
_numbers = st.one_of(
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,6})(\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.text("0123456789.-+eE ", max_size=8),
    st.sampled_from(["nan", "inf", "1e999", "", " 1", "1 ", "01", "1.", ".5"]),
)
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.tuples(_numbers, _numbers), max_size=12),
    st.integers(1, 14),
    st.sampled_from(["]", ",[1]]", "", ",", "]x", ' ,["1","2"]]', ",garbage"]),
)
def test_read_levels_reads_what_the_python_scan_reads(
    levels: list[tuple[str, str]], depth: int, tail: str
) -> None:
    """Same levels as the Python scan, or None; None also for numbers that are not JSON numbers."""
    assert accel.speedups is not None
    payload = ('{"bids":[' + ",".join(f'["{p}","{a}"]' for p, a in levels) + tail).encode()
    got = accel.speedups.read_levels(payload, 8, depth)
    want = _top_of_side(payload, 8, depth)
    if got is None and want is not None:
        # The C reader takes only the JSON number grammar; msgspec is laxer.
        assert any(not _JSON_NUMBER.fullmatch(x) for level in levels[:depth] for x in level)
    else:
        assert got == want


# Decimal strings around the C reader's shortcut (at most 15 significant
# digits and 22 decimals, no exponent) and past it on every side.
_decimals = st.builds(
    lambda sign, whole, frac: f"{sign}{whole}{'.' + frac if frac else ''}",
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"\A[1-9][0-9]{0,19}\Z")),
    st.one_of(st.just(""), st.from_regex(r"\A[0-9]{1,26}\Z")),
)


@settings(max_examples=3000, deadline=None)
@given(_decimals)
def test_read_levels_converts_exactly_as_float_does(text: str) -> None:
    assert accel.speedups is not None
    got = accel.speedups.read_levels(f'[["{text}","{text}"]]'.encode(), 0, 1)
    assert got is not None
    (price, amount), = got
    want = float(text)
    # Bit for bit: the sign of zero too.
    assert struct.pack("<d", price) == struct.pack("<d", want) == struct.pack("<d", amount)


@pytest.mark.parametrize(
    "text",
    [
        "0.04998300", "3.67247565", "0.1", "2.675", "4.35", "0.3", "123456789012345",
        "1234567890123456", "9007199254740993", "0.1234567890123456789", "-0", "-0.0", "0.000",
        "0." + "0" * 21 + "1", "0." + "0" * 22 + "1", "1" + "0" * 22, "99999999999999.9",
        "1e5", "1.5E-7", "0.00000001", "65000.12", "1" + "0" * 40, "-" + "9" * 30 + ".5",
    ],
)
def test_read_levels_converts_edge_numbers_exactly(text: str) -> None:
    assert accel.speedups is not None
    got = accel.speedups.read_levels(f'[["{text}","1"]]'.encode(), 0, 1)
    assert got is not None
    assert struct.pack("<d", got[0][0]) == struct.pack("<d", float(text))


def test_read_levels_bounds() -> None:
    assert accel.speedups is not None
    read = accel.speedups.read_levels
    assert read(b'[["1","2"]]', 0, 5) == ((1.0, 2.0),)
    assert read(b'["1","2"]]', 0, 5) is None  # a side of levels, not a level
    assert read(b'[["1","2"],["0.5","3e2"]]', 0, 1) == ((1.0, 2.0),)
    assert read(b"[]", 0, 5) == ()
    assert read(b'[["1","2"]]', 0, 0) == ()
    for start in (-1, 11, 1):
        assert read(b'[["1","2"]]', start, 5) is None
    assert read(b'[["1","2"', 0, 5) is None  # cut short
    with pytest.raises(TypeError):
        read("[]", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        read(b"[]", 0, -1)


@pytest.mark.parametrize(
    ("runs", "error"),
    [
        ([("a", ((1.0, 1.0),))], None),
        ([("a", ((1.0,),))], TypeError),
        ([("a", (("1", 1.0),))], TypeError),
        ([("a",)], TypeError),
        ([("a", 5)], TypeError),
        (5, TypeError),
    ],
)
def test_merge_side_refuses_what_is_not_a_book(runs: Sequence[Run], error: type[Exception] | None) -> None:
    assert accel.speedups is not None
    if error is None:
        assert accel.speedups.merge_side(runs, 3, True, MergedLevel) == (MergedLevel("a", 1.0, 1.0),)
    else:
        with pytest.raises(error):
            accel.speedups.merge_side(runs, 3, True, MergedLevel)
    with pytest.raises(ValueError):
        accel.speedups.merge_side([], -1, True, MergedLevel)
    with pytest.raises(TypeError):
        accel.speedups.merge_side([], 1, True, dict)


def test_encode_summary_refuses_what_is_not_a_book() -> None:
    assert accel.speedups is not None
    encode = accel.speedups.encode_summary
    book = MergedBook("ETHBTC", 1.0, (MergedLevel("a", 1.0, 2.0),), (), 1, 2, 3, "a", 4)
    assert encode(book, 0, None) == encode_summary_pb(book)
    assert encode(book, 5, lambda: 9) == encode_summary_pb(book._replace(publish_ns=9), 5)
    for bad in [("ETHBTC",), 5, book._replace(bids=((1.0, 2.0),)), book._replace(instrument=b"x")]:
        with pytest.raises(TypeError):
            encode(bad, 0, None)
    with pytest.raises(ValueError, match="uint64 field out of range"):
        encode(book._replace(sequence=-1), 0, None)
    with pytest.raises(ValueError, match="int64 field out of range"):
        encode(book, 2**63, None)
    with pytest.raises(ValueError, match="int64 field out of range"):
        encode(book, 0, lambda: 2**64)
    with pytest.raises(ZeroDivisionError):  # the clock's own error comes through
        encode(book, 0, lambda: 1 // 0)


# Changes to a numeric book: a small price grid so that levels repeat, and
# amount 0 removes one. Each is (is_bid, price tick, amount).
_changes = st.lists(
    st.tuples(st.booleans(), st.integers(1, 60), st.sampled_from([0.0, 0.5, 1.0, 2.5])),
    min_size=10,
    max_size=150,
)


@settings(max_examples=400, deadline=None)
@given(_changes, st.integers(1, 60), st.integers(1, 60), st.integers(4, 12), st.integers(1, 3))
def test_apply_book_and_top_levels_equal_the_python_book(
    changes: list[tuple[bool, int, float]], floor: int, ceiling: int, load: int, batch: int
) -> None:
    """The C apply and top-N read against L2Book's own loops, delta by delta, sublists split small."""
    assert accel.speedups is not None
    c_book, py_book = L2Book(numeric=True), L2Book(numeric=True)
    for b in (c_book, py_book):
        b.bids._list._reset(load)  # short sublists: the top N spans several
        b.asks._list._reset(load)
    for i in range(0, len(changes), batch):
        bids = [(tick / 100, qty) for is_bid, tick, qty in changes[i : i + batch] if is_bid]
        asks = [(tick / 100, qty) for is_bid, tick, qty in changes[i : i + batch] if not is_bid]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(book_module, "_apply_book", accel.speedups.apply_book)
            mp.setattr(book_module, "_top_levels", accel.speedups.top_levels)
            c_hit = c_book.update_numeric(bids, asks, floor / 100, ceiling / 100)
            c_top = [c_book.top(n) for n in (1, load, 3 * load)]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(book_module, "_apply_book", None)
            mp.setattr(book_module, "_top_levels", None)
            py_hit = py_book.update_numeric(bids, asks, floor / 100, ceiling / 100)
            py_top = [py_book.top(n) for n in (1, load, 3 * load)]
        assert c_hit == py_hit
        assert c_top == py_top
        assert list(c_book.bids.items()) == list(py_book.bids.items())
        assert list(c_book.asks.items()) == list(py_book.asks.items())


def test_top_levels_reads_across_sublists() -> None:
    assert accel.speedups is not None
    side: SortedDict[float, tuple[float, float]] = SortedDict()
    side._list._reset(4)  # sublists of 4-8 keys
    accel.speedups.apply_side(side, [(i / 100, 1.0) for i in range(1, 61)], False, 0.0)
    assert len(side._list._lists) > 5
    for n in range(62):
        assert accel.speedups.top_levels(side, n) == tuple(side[k] for k in side.keys()[:n])


def test_apply_side_and_top_levels_refuse_what_is_not_a_book() -> None:
    assert accel.speedups is not None
    apply_side, top_levels = accel.speedups.apply_side, accel.speedups.top_levels
    side: SortedDict[float, tuple[float, float]] = SortedDict()
    for bad in ([[0.1, 1.0]], [(0.1,)], [("0.1", 1.0)], [(0.1, None)], [5]):
        with pytest.raises(TypeError):
            apply_side(side, bad, True, 0.0)  # type: ignore[arg-type]
    assert not side  # nothing half-applied from the refused levels
    with pytest.raises(TypeError):
        apply_side(5, [], True, 0.0)  # type: ignore[arg-type]
    assert apply_side(side, [(0.1, 1.0), (0.2, 0.0)], False, 0.15) is True  # 0.1 <= 0.15
    assert top_levels(side, 0) == () and top_levels(side, 5) == ((0.1, 1.0),)
    with pytest.raises(ValueError):
        top_levels(side, -1)
    with pytest.raises(TypeError):
        top_levels(5, 1)  # type: ignore[arg-type]


def test_apply_book_is_apply_side_on_each_side_and_refuses_what_is_not_a_book() -> None:
    assert accel.speedups is not None
    apply_book, apply_side = accel.speedups.apply_book, accel.speedups.apply_side
    bids: SortedDict[float, tuple[float, float]] = SortedDict()
    asks: SortedDict[float, tuple[float, float]] = SortedDict()
    assert apply_book(bids, asks, [(1.0, 2.0), (0.5, 1.0)], [(2.0, 1.0)], 0.9, 1.5) == 1  # 1.0 >= 0.9
    assert apply_book(bids, asks, [(0.5, 0.0)], [(1.5, 3.0)], 0.9, 1.5) == 2  # 1.5 <= 1.5
    assert apply_book(bids, asks, [(1.0, 3.0)], [(1.5, 0.0)], 1.0, 1.5) == 3
    side_bids: SortedDict[float, tuple[float, float]] = SortedDict()
    side_asks: SortedDict[float, tuple[float, float]] = SortedDict()
    deltas = [([(1.0, 2.0), (0.5, 1.0)], [(2.0, 1.0)]), ([(0.5, 0.0)], [(1.5, 3.0)])]
    for b, a in [*deltas, ([(1.0, 3.0)], [(1.5, 0.0)])]:
        apply_side(side_bids, b, True, 0.0)
        apply_side(side_asks, a, False, 0.0)
    assert list(bids.items()) == list(side_bids.items()) == [(-1.0, (1.0, 3.0))]
    assert list(asks.items()) == list(side_asks.items()) == [(2.0, (2.0, 1.0))]
    with pytest.raises(TypeError):
        apply_book(bids, asks, [(0.7, 1.0), (0.1,)], [(3.0, 1.0)], 0.0, 0.0)
    assert -0.7 in bids and 3.0 not in asks  # the bids before the bad level applied, the asks untouched
    loose: Any = apply_book  # wrong arguments on purpose
    wrong: list[tuple[Any, ...]] = [(5, asks, [], [], 0.0, 0.0), (bids, None, [], [], 0.0, 0.0)]
    for bad_args in [*wrong, (bids, asks, [], [], "x", 0.0)]:
        with pytest.raises(TypeError):
            loose(*bad_args)
    with pytest.raises(TypeError):
        loose(bids, asks, [], [])


def _key_lists(book: L2Book) -> list[object]:
    return [(side._list._lists, side._list._maxes, len(side._list)) for side in (book.bids, book.asks)]


# Price strings written several ways ("0.10", "0.1"), amounts zero or not, some not numbers.
_text_price = st.sampled_from(["0.1", "0.10", "0.2", "0.25", "1", "1.0", "3.5", "12", "0.00001", "99999"])
_text_amount = st.sampled_from(["0", "0.000", "1", "2.5", "0.10000000", "1e3", " 2", "x", "-1", "nan", "inf"])
_text_changes = st.lists(
    st.tuples(
        st.booleans(),
        st.one_of(_text_price, st.integers(1, 60).map(lambda t: f"{t / 100:.2f}")),
        _text_amount,
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=400, deadline=None)
@given(_text_changes, st.integers(1, 60), st.integers(1, 60), st.integers(4, 12), st.integers(1, 4))
def test_apply_text_side_equals_the_python_book(
    changes: list[tuple[bool, str, str]], floor: int, ceiling: int, load: int, batch: int
) -> None:
    """The C apply of venue strings against L2Book.update's own loops: books, strings, key lists, errors."""
    assert accel.speedups is not None
    c_book, py_book = L2Book(), L2Book()
    for b in (c_book, py_book):
        b.bids._list._reset(load)  # short sublists: splits and merges go through sortedcontainers
        b.asks._list._reset(load)
    for i in range(0, len(changes), batch):
        bids = [(p, q) for is_bid, p, q in changes[i : i + batch] if is_bid]
        asks = [(p, q) for is_bid, p, q in changes[i : i + batch] if not is_bid]
        outcomes: list[object] = []
        for b, twin in ((c_book, accel.speedups.apply_text_side), (py_book, None)):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(book_module, "_apply_text_side", twin)
                try:
                    outcomes.append(b.update(bids, asks, floor / 100, ceiling / 100))
                except ValueError as exc:
                    outcomes.append(str(exc))  # the same words, too
        assert outcomes[0] == outcomes[1]
        assert list(c_book.bids.items()) == list(py_book.bids.items())
        assert list(c_book.asks.items()) == list(py_book.asks.items())
        assert c_book.bid_text == py_book.bid_text and c_book.ask_text == py_book.ask_text
        assert _key_lists(c_book) == _key_lists(py_book)
        c_book.bids._list._check()
        c_book.asks._list._check()
    with pytest.MonkeyPatch.context() as mp:
        c_top = c_book.top_text(3 * load)
        mp.setattr(book_module, "_top_levels", None)
        assert c_top == py_book.top_text(3 * load)


def test_apply_side_keeps_sortedcontainers_key_lists() -> None:
    """The numeric apply's own key-list changes leave what SortedDict's methods leave."""
    assert accel.speedups is not None
    c_side: SortedDict[float, tuple[float, float]] = SortedDict()
    py_side: SortedDict[float, tuple[float, float]] = SortedDict()
    for side in (c_side, py_side):
        side._list._reset(4)
    prices = [((i * 37) % 61 + 1) / 100 for i in range(200)]
    for i, price in enumerate(prices):
        level = (price, 0.0 if i % 3 == 0 else 1.0)
        accel.speedups.apply_side(c_side, [level], False, 0.0)
        if level[1]:
            py_side[price] = level
        else:
            py_side.pop(price, None)
        assert (c_side._list._lists, c_side._list._maxes, len(c_side._list)) == (
            py_side._list._lists,
            py_side._list._maxes,
            len(py_side._list),
        )
    c_side._list._check()
    c_side.keys()[3]  # a positional read builds the index; the next change must empty it
    accel.speedups.apply_side(c_side, [(0.615, 1.0)], False, 0.0)
    c_side._list._check()
    assert list(c_side.keys()) == sorted(c_side) and c_side.keys()[-1] == 0.615


def test_apply_text_side_refuses_what_is_not_venue_strings() -> None:
    assert accel.speedups is not None
    apply_text_side = accel.speedups.apply_text_side
    side: SortedDict[float, tuple[float, float]] = SortedDict()
    text: dict[float, tuple[str, str]] = {}
    for bad in ([("0.1",)], [("0.1", 1.0)], [(0.1, "1")], [5], [["0.1"]], [(b"0.1", "1")], ["0.1"]):
        with pytest.raises(TypeError):
            apply_text_side(side, text, bad, True, 0.0)
    with pytest.raises(ValueError, match="could not convert"):
        apply_text_side(side, text, [("0.1", "one")], True, 0.0)
    with pytest.raises(ValueError, match=re.escape("level out of range: price '0', amount '1'")):
        apply_text_side(side, text, [("0", "1")], True, 0.0)
    assert not side and not text
    with pytest.raises(TypeError):
        apply_text_side(side, [], [], True, 0.0)
    # A level is the venue's array: its first two strings are read, as the venue wrote them.
    levels = [["0.10", "2", "0", "4"], ("0.3", "1.50"), ("0.4", "1", 5)]
    assert apply_text_side(side, text, levels, False, 0.2)
    assert list(side.items()) == [(0.1, (0.1, 2.0)), (0.3, (0.3, 1.5)), (0.4, (0.4, 1.0))]
    assert accel.speedups.top_levels(side, 5, text) == (("0.10", "2"), ("0.3", "1.50"), ("0.4", "1"))
    with pytest.raises(TypeError):
        accel.speedups.top_levels(side, 5, [])


# Venue strings: decimals with leading zeros and points in every place, and
# any other text (the checksum covers whatever the venue wrote).
_text = st.one_of(
    st.from_regex(r"\A0*[0-9]{0,6}(\.[0-9]{0,8})?\Z"),
    st.sampled_from(["", ".", "0", "00.000", "0.0105", "é"]),
    st.text(max_size=8),
)
_text_side = st.lists(st.tuples(_text, _text), max_size=30)


@settings(max_examples=1000, deadline=None)
@given(_text_side, _text_side, st.booleans())
def test_crc32_checksums_equal_the_python_twins(
    first: list[tuple[str, str]], second: list[tuple[str, str]], as_tuples: bool
) -> None:
    assert accel.speedups is not None
    a: Sequence[tuple[str, str]] = tuple(first) if as_tuples else first
    assert accel.speedups.crc32_digits(a, second) == crc32_digits_py(a, second)
    assert accel.speedups.crc32_interleaved(a, second) == crc32_interleaved_py(a, second)


def test_crc32_checksums_match_the_documented_examples() -> None:
    """Kraken's rule on its documented shape, OKX's on a hand-written string."""
    assert accel.speedups is not None
    asks = [("0.05005", "0.00000500"), ("0.05010", "0.00000500")]
    bids = [("0.05000", "0.00000500")]
    want = zlib.crc32(b"5005" + b"500" + b"5010" + b"500" + b"5000" + b"500")
    assert accel.speedups.crc32_digits(asks, bids) == crc32_digits_py(asks, bids) == want
    bids2 = [("3366.1", "7.0"), ("3366", "6.0")]
    asks2 = [("3366.8", "9")]
    want2 = zlib.crc32(b"3366.1:7.0:3366.8:9:3366:6.0")
    assert accel.speedups.crc32_interleaved(bids2, asks2) == crc32_interleaved_py(bids2, asks2) == want2


def test_crc32_checksums_refuse_what_is_not_text_levels() -> None:
    assert accel.speedups is not None
    for fn in (accel.speedups.crc32_digits, accel.speedups.crc32_interleaved):
        for bad in ([("1", 2)], [("1",)], [5], [["1", "2"]], [(b"1", "2")], 5):
            with pytest.raises(TypeError):
                fn(bad, [])
        with pytest.raises(UnicodeEncodeError):
            fn([("\ud800", "1")], [])
        assert fn((), []) == zlib.crc32(b"")


# -- venue_states ---------------------------------------------------------------------------


class _Health:
    """A listener's health record, as the aggregator reads it."""

    def __init__(self, data_ns: int, status: VenueStatus) -> None:
        self.data_ns = data_ns
        self.status = status


_NAMES = ("binance", "bitstamp", "bybit", "coinbase", "kraken", "okx")


@st.composite
def _venues(draw: st.DrawFn) -> tuple[list[str], list[VenueBook | None], list[_Health | None], int]:
    n = draw(st.integers(0, len(_NAMES)))
    names = list(_NAMES[:n])
    books: list[VenueBook | None] = []
    healths: list[_Health | None] = []
    for name in names:
        if draw(st.booleans()):
            stamp, seq = draw(st.integers(0, 2**62)), draw(st.integers(0, 99))
            books.append(VenueBook(name, ((1.0, 2.0),), ((3.0, 4.0),), stamp, 7, seq))
        else:
            books.append(None)
        healths.append(
            _Health(draw(st.sampled_from([0, 1, 2**62])), draw(st.sampled_from(list(VenueStatus))))
            if draw(st.booleans())
            else None
        )
    members = draw(st.integers(0, (1 << (2 * n)) - 1)) if n else 0
    return names, books, healths, members


@settings(max_examples=1000, deadline=None)
@given(_venues(), st.integers(0, 2**63))
def test_venue_states_equal_the_python_states(venues: Any, now: int) -> None:
    names, books, healths, members = venues
    assert accel.speedups is not None
    args = (VenueState, names, books, healths, members, now, STATUS_CODES)
    got = accel.speedups.venue_states(*args)
    want = venue_states_py(*args)
    assert got == want
    for g, w in zip(got, want, strict=True):
        assert type(g) is VenueState
        assert [type(x) for x in g] == [type(x) for x in w]  # a status stays an IntEnum where it was one
        assert g.status is w.status or g.status == w.status


def test_venue_states_decline_what_the_twin_must_decide() -> None:
    assert accel.speedups is not None
    states = accel.speedups.venue_states
    book = VenueBook("a", (), (), 5, 1, 2)
    # more than 32 venues, members not an int in [0, 2**64), a book that is not a plain 6-tuple
    assert states(VenueState, ["a"] * 33, [None] * 33, [None] * 33, 0, 9, STATUS_CODES) is None
    for members in (-1, 2**64, True, 1.0):
        assert states(VenueState, ["a"], [book], [None], members, 9, STATUS_CODES) is None
    for bad in ((1, 2, 3), [0, 1, 2, 3, 4, 5], _Indexed(("a", (), (), 5, 1, 2))):
        assert states(VenueState, ["a"], [bad], [None], 1, 9, STATUS_CODES) is None
    # what it takes, the twin takes: a plain tuple of 6 or more items
    assert states(VenueState, ["a"], [("a", (), (), 5, 1, 2, 0)], [None], 1, 9, STATUS_CODES) == (
        VenueState("a", True, int(VenueStatus.LIVE), 5, 4, 2),
    )


class _Indexed(tuple):  # type: ignore[type-arg]
    """A tuple whose items are not what indexing returns."""

    __slots__ = ()

    def __getitem__(self, i: Any) -> Any:
        return 0


class _Meddling:
    """A health whose data_ns empties the aggregator's lists and whose status raises on compare."""

    def __init__(self, victims: list[list[Any]], status: Any) -> None:
        self.victims = victims
        self._status = status

    @property
    def data_ns(self) -> int:
        for victim in self.victims:
            victim.clear()
        return 3

    @property
    def status(self) -> Any:
        return self._status


class _BadEq(int):
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")

    __hash__ = int.__hash__


@pytest.mark.parametrize("status", [VenueStatus.LIVE, _BadEq(1), "live"])
def test_venue_states_survive_healths_that_meddle(status: Any) -> None:
    assert accel.speedups is not None

    def run(fn: Any) -> Any:
        names = ["a", "b"]
        books: list[Any] = [VenueBook("a", (), (), 5, 1, 2), None]
        healths: list[Any] = [None, None]
        healths[0] = _Meddling([names, books, healths], status)
        try:
            return fn(VenueState, names, books, healths, 0, 10, STATUS_CODES)
        except Exception as exc:
            return type(exc)

    got, want = run(accel.speedups.venue_states), run(venue_states_py)
    assert got == want
    if isinstance(status, _BadEq):
        assert got is RuntimeError
    elif status == "live":  # a status of no known kind is written as it is
        assert got[0] == ("a", False, "live", 3, 7, 2)
    else:  # live, out of the merge, with a book: past its limit
        assert got[0] == VenueState("a", False, int(VenueStatus.STALE), 3, 7, 2)


def test_venue_states_refuse_what_is_not_a_venue_list() -> None:
    assert accel.speedups is not None
    twins: list[Any] = [accel.speedups.venue_states, venue_states_py]
    for fn in twins:
        with pytest.raises(ValueError):
            fn(VenueState, ["a", "b"], [None], [None, None], 0, 1, STATUS_CODES)
        with pytest.raises(TypeError):
            fn(VenueState, None, [], [], 0, 1, STATUS_CODES)
        with pytest.raises(TypeError):
            fn(dict, [], [], [], 0, 1, STATUS_CODES)
        with pytest.raises(TypeError):
            fn(VenueState, [], [], [], 0, 1, (1, 2, 3))
        with pytest.raises(AttributeError):
            fn(VenueState, ["a"], [None], [object()], 0, 1, STATUS_CODES)


def _bits(values: Sequence[float]) -> list[bytes]:
    """Each float's bits; every NaN as one (its sign and payload are the FPU's, not a figure)."""
    return [b"nan" if math.isnan(v) else struct.pack("<d", v) for v in values]


_any_float = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(_any_float, _any_float), min_size=1, max_size=120), st.booleans())
def test_side_sums_equal_the_python_sums_bit_for_bit(levels: list[tuple[float, float]], negate: bool) -> None:
    from dragonfly.core.liquidity import side_sums_py

    side = tuple(levels)
    assert accel.speedups is not None
    got = accel.speedups.side_sums(side, negate)
    want = side_sums_py(side, negate)
    assert got is not None
    for mine, theirs in zip(got, want, strict=True):
        assert type(mine) is type(theirs)
        assert _bits(mine) == _bits(theirs)
    if not negate:
        assert all(a is b for a, b in zip(got[0], (p for p, _ in side), strict=True))  # the prices themselves


def test_side_sums_decline_what_the_twin_must_decide() -> None:
    from dragonfly.core.liquidity import side_sums_py

    assert accel.speedups is not None
    sums: Any = accel.speedups.side_sums  # called with what its signature refuses

    class Float(float):
        pass

    for side in (
        (),  # the twin raises: nothing to split
        [(1.0, 2.0)],  # not a tuple
        ((1, 2.0),),  # an int price: the twin's int arithmetic
        ((1.0, Float(2.0)),),
        ((1.0, 2.0, 3.0),),  # the twin raises (zip strict)
        ([1.0, 2.0],),
        (VenueBook("v", (), (), 0, 0, 0),),
        "ab",
    ):
        assert sums(side, True) is None, side
    # Where the twin takes it, it gives what a sum of those objects gives.
    assert side_sums_py(((1, 2.0),), False) == ((1,), [0.0, 2.0], [0.0, 2.0])
    with pytest.raises(ValueError):
        side_sums_py((), True)
    with pytest.raises(TypeError):
        sums(((1.0, 2.0),))

    class Truth:
        def __bool__(self) -> bool:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        sums(((1.0, 2.0),), Truth())


# -- bbo_quotes ------------------------------------------------------------------------------


def _fresh(x: float) -> float:
    """A new float object of x's bits (so that `is` tells the level's own object from an equal one)."""
    return float(struct.unpack("<d", struct.pack("<d", x))[0])


# Few values, so that ties in price and in amount across venues are common; NaN, infinities, -0.0.
_bbo_prices = st.sampled_from([1.0, 1.0, 2.0, 2.0, 3.0, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e-300])
_bbo_amounts = st.sampled_from([0.5, 1.0, 1.0, 2.0, 0.0, -0.0, math.nan, math.inf])
_bbo_side = st.one_of(
    st.just(()),
    st.lists(st.tuples(_bbo_prices, _bbo_amounts), min_size=1, max_size=3).map(
        lambda levels: tuple((_fresh(p), _fresh(a)) for p, a in levels)
    ),
)
_bbo_name = st.one_of(st.sampled_from(_NAMES), st.sampled_from(["", "é", "交易所"]), st.integers(), st.none())


class _PlainTuple(tuple):  # type: ignore[type-arg]
    __slots__ = ()


@st.composite
def _bbo_runs(draw: st.DrawFn) -> tuple[Any, Any]:
    n = draw(st.integers(0, 40))
    bid_runs: list[Any] = []
    ask_runs: list[Any] = []
    for _ in range(n):
        name = draw(_bbo_name)
        bid_runs.append((name, draw(_bbo_side)))
        # The ask run's name is not read (the twin names both sides by the bid run).
        ask_runs.append((draw(st.sampled_from([name, "other"])), draw(_bbo_side)))
    return (
        tuple(bid_runs) if draw(st.booleans()) else bid_runs,
        tuple(ask_runs) if draw(st.booleans()) else ask_runs,
    )


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(
    _bbo_runs(),
    st.sampled_from([(VenueBbo, MergedLevel), (tuple, tuple), (_PlainTuple, MergedLevel)]),
)
def test_bbo_quotes_equal_the_python_quotes(runs: tuple[Any, Any], types: tuple[Any, Any]) -> None:
    from dragonfly.core.bbo import bbo_quotes_py

    bid_runs, ask_runs = runs
    quote_type, level_type = types
    nan = float("nan")  # its own object: an empty side's price is this very one
    assert accel.speedups is not None
    got: Any = accel.speedups.bbo_quotes(bid_runs, ask_runs, quote_type, level_type, nan)
    want: Any = bbo_quotes_py(bid_runs, ask_runs, quote_type, level_type, nan)
    assert got is not None
    assert type(got) is tuple and len(got) == 3 and type(got[0]) is tuple
    quotes, want_quotes = got[0], want[0]
    assert len(quotes) == len(want_quotes)
    quoted = [(b, a) for b, a in zip(bid_runs, ask_runs, strict=True) if b[1] or a[1]]
    for quote, twin, (bid_run, ask_run) in zip(quotes, want_quotes, quoted, strict=True):
        assert type(quote) is quote_type and len(quote) == 5
        assert all(map(_same_value, quote, twin))
        assert quote[0] is bid_run[0]
        for i, side in ((1, bid_run[1]), (3, ask_run[1])):
            if side:  # the first level's own objects
                assert quote[i] is side[0][0] and quote[i + 1] is side[0][1]
            else:  # nan itself, for a +0.0
                assert quote[i] is nan and type(quote[i + 1]) is float
                assert quote[i + 1] == 0.0 and math.copysign(1.0, quote[i + 1]) == 1.0
    for mine, theirs in zip(got[1:], want[1:], strict=True):
        if theirs is None:
            assert mine is None
            continue
        assert type(mine) is level_type and len(mine) == 3
        assert all(a is b for a, b in zip(mine, theirs, strict=True))  # the same name and floats


def test_bbo_quotes_pick_the_best_price_then_the_larger_amount_then_the_first() -> None:
    from dragonfly.core.bbo import bbo_quotes_py

    assert accel.speedups is not None
    nan = float("nan")
    bid_runs: list[Any] = [("a", ((1.0, 1.0),)), ("b", ((2.0, 1.0),)), ("c", ((2.0, 3.0),))]
    ask_runs: list[Any] = [("a", ((5.0, 1.0),)), ("b", ((4.0, 1.0),)), ("c", ((4.0, 2.0),))]
    bid_runs += [("d", ((2.0, 3.0),)), ("e", ())]  # c and d tie: c, the first, is the best
    ask_runs += [("d", ((4.0, 2.0),)), ("e", ())]
    for fn in (accel.speedups.bbo_quotes, bbo_quotes_py):
        quotes, bid, ask = fn(bid_runs, ask_runs, VenueBbo, MergedLevel, nan)
        assert [q.venue for q in quotes] == ["a", "b", "c", "d"]
        assert bid == MergedLevel("c", 2.0, 3.0) and ask == MergedLevel("c", 4.0, 2.0)
    # A first NaN price stays the best (nothing compares above it), as in the twin.
    nan_first = [("a", ((nan, 1.0),)), ("b", ((2.0, 1.0),))]
    got = accel.speedups.bbo_quotes(nan_first, nan_first, VenueBbo, MergedLevel, nan)
    assert got is not None and got[1][0] == got[2][0] == "a"
    assert accel.speedups.bbo_quotes([], (), VenueBbo, MergedLevel, nan) == ((), None, None)
    only_asks = [("a", ())], [("a", ((1.0, 2.0),))]
    assert accel.speedups.bbo_quotes(*only_asks, VenueBbo, MergedLevel, nan) == (
        (VenueBbo("a", nan, 0.0, 1.0, 2.0),),
        None,
        MergedLevel("a", 1.0, 2.0),
    )


class _FloatChild(float):
    pass


class _RunTuple(NamedTuple):
    name: str
    side: tuple[tuple[float, float], ...]


def test_bbo_quotes_decline_what_the_twin_must_decide() -> None:
    from dragonfly.core.bbo import bbo_quotes_py

    assert accel.speedups is not None
    quotes: Any = accel.speedups.bbo_quotes  # called with what its signature refuses
    nan = float("nan")
    good = ("b", ((1.0, 2.0),))
    for bad in (
        ("a", [(1.0, 2.0)]),  # a list side
        ("a", ((1.0, 2.0, 3.0),)),  # a level of 3
        ("a", ((1.0,),)),
        ("a", ([1.0, 2.0],)),  # a list level
        ("a", (_PlainTuple((1.0, 2.0)),)),
        ("a", ((_FloatChild(1.0), 2.0),)),  # a float subclass
        ("a", ((1.0, _FloatChild(2.0)),)),
        ("a", ((1, 2.0),)),  # an int price
        ("a", ((1.0, 2),)),
        ("a", ((True, 2.0),)),
        ["a", ((1.0, 2.0),)],  # a run that is a list
        _RunTuple("a", ((1.0, 2.0),)),  # a NamedTuple run
        ("a", ((1.0, 2.0),), 3),
        ("a",),
        None,
        "ab",
    ):
        for bid_runs, ask_runs in (([good, bad], [good, good]), ([good, good], [good, bad])):
            assert quotes(bid_runs, ask_runs, VenueBbo, MergedLevel, nan) is None, (bid_runs, ask_runs)
        assert quotes([bad], [good], VenueBbo, MergedLevel, nan) is None
    # Struct sequences (hidden fields past the visible ones) as either output type.
    for struct_seq in (time.struct_time, os.stat_result):
        assert quotes([good], [good], struct_seq, MergedLevel, nan) is None
        assert quotes([good], [good], VenueBbo, struct_seq, nan) is None
    # Only a side's first level is read: what follows it may be anything.
    loose: list[Any] = [("a", ((1.0, 2.0), "junk", [1])), ("b", ())]
    asks = [("a", ()), ("b", ((3.0, 1),))]
    assert quotes(loose, [("a", ()), ("b", ())], VenueBbo, MergedLevel, nan) == bbo_quotes_py(
        loose, [("a", ()), ("b", ())], VenueBbo, MergedLevel, nan
    )
    assert quotes(loose, asks, VenueBbo, MergedLevel, nan) is None  # an int amount first on the asks


def test_bbo_quotes_refuse_what_is_not_runs_or_types() -> None:
    assert accel.speedups is not None
    quotes: Any = accel.speedups.bbo_quotes
    nan = float("nan")
    runs = [("a", ((1.0, 2.0),))]
    for bad_type in (dict, list, int, 5, None, "VenueBbo", VenueBbo("a", 1.0, 2.0, 3.0, 4.0)):
        with pytest.raises(TypeError):
            quotes(runs, runs, bad_type, MergedLevel, nan)
        with pytest.raises(TypeError):
            quotes(runs, runs, VenueBbo, bad_type, nan)
    with pytest.raises(ValueError):
        quotes(runs, [], VenueBbo, MergedLevel, nan)
    with pytest.raises(ValueError):
        quotes([], runs, VenueBbo, MergedLevel, nan)
    for bad_runs in (5, None, 1.5):
        with pytest.raises(TypeError):
            quotes(bad_runs, runs, VenueBbo, MergedLevel, nan)
        with pytest.raises(TypeError):
            quotes(runs, bad_runs, VenueBbo, MergedLevel, nan)
    for args in ((), (runs, runs, VenueBbo, MergedLevel), (runs, runs, VenueBbo, MergedLevel, nan, nan)):
        with pytest.raises(TypeError):
            quotes(*args)
    with pytest.raises(TypeError):
        quotes(runs, runs, VenueBbo, MergedLevel, nan=nan)


class _Countdown:
    """Cyclic garbage that, when collected, leaves its successor, and the last one meddles.

    With garbage collected at (nearly) every allocation, countdown k meddles at
    about the k-th allocation inside the C function: each of its copies, the
    zero, the quotes tuple, a quote, a best level, the result.
    """

    def __init__(self, k: int, victims: list[list[Any]]) -> None:
        self.k = k
        self.victims = victims
        self.cycle = self

    def __del__(self) -> None:
        if self.k > 0:
            _Countdown(self.k - 1, self.victims)
            return
        for victim in self.victims:
            victim.clear()
            victim.append(("x", [(1.0, 2.0)]))  # not even a run C takes


def test_bbo_quotes_survive_finalizers_that_empty_the_runs() -> None:
    from dragonfly.core.bbo import bbo_quotes_py

    assert accel.speedups is not None
    nan = float("nan")

    def runs() -> tuple[list[Any], list[Any]]:
        bids: list[Any] = [(f"v{i}", ((_fresh(10.0 - i), 1.0),) if i % 3 else ()) for i in range(6)]
        asks: list[Any] = [(f"v{i}", ((_fresh(11.0 + i), 2.0),) if i % 2 else ()) for i in range(6)]
        return bids, asks

    whole = bbo_quotes_py(*runs(), VenueBbo, MergedLevel, nan)
    seen = []
    old = gc.get_threshold()
    for k in range(16):
        bids, asks = runs()
        gc.collect()
        gc.set_threshold(1, 1, 1)
        try:
            _Countdown(k, [bids, asks])
            try:
                got: Any = accel.speedups.bbo_quotes(bids, asks, VenueBbo, MergedLevel, nan)
            except ValueError:  # one list copied before the finalizer ran, the other after
                got = ValueError
            meddled = len(bids) == 1
        finally:
            gc.set_threshold(*old)
            gc.collect()
        # What the lists held when copied: all of it, or the meddler's run (declined).
        assert got in (whole, None, ValueError), (k, got)
        if got is not None and got is not ValueError:
            assert all(type(q) is VenueBbo for q in got[0])
        seen.append((meddled, got is None or got is ValueError))
    # The finalizer ran before the copies (declined, or copies of two lengths) and
    # after them (during the quotes' allocations: the result is what was copied).
    assert (True, True) in seen and (True, False) in seen, seen


# -- band_figures and fill_figures -------------------------------------------------------------


def _same_figure(got: Any, want: Any, nan: object) -> bool:
    """Equal bit for bit: every float's bits, the types, the nan object itself where the twin puts it."""
    if want is nan:
        return got is nan
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return (math.isnan(got) and math.isnan(want)) or struct.pack("<d", got) == struct.pack("<d", want)
    if isinstance(want, tuple):
        return len(got) == len(want) and all(_same_figure(g, w, nan) for g, w in zip(got, want, strict=True))
    return bool(got == want)


def _assert_same_figures(got: Any, want: Any, nan: object = None) -> None:
    assert got is not None
    assert _same_figure(got, want, nan), (got, want)


_LIQ_NAMES = ("binance", "bitstamp", "bybit", "coinbase", "gemini", "kraken", "okx", "upbit")


@st.composite
def _liquidity_runs(draw: st.DrawFn) -> tuple[list[Run], list[Run]]:
    """1-8 venues, 1-120 levels a side, prices on a coarse grid (venues tie in price), amounts with ties."""
    count = draw(st.integers(1, 8))
    names = sorted(draw(st.sets(st.sampled_from(_LIQ_NAMES), min_size=count, max_size=count)))
    rng = draw(st.randoms(use_true_random=False))
    tick = draw(st.sampled_from([0.5, 0.25, 0.01, 1.0]))
    pool = draw(st.lists(st.sampled_from([0.001, 0.1, 0.3, 0.5, 1.0, 1.5, 7.25]), min_size=1, max_size=4))
    bid_runs: list[Run] = []
    ask_runs: list[Run] = []
    for name in names:
        sides: list[tuple[tuple[float, float], ...]] = []
        for bid in (True, False):
            if draw(st.integers(0, 9)) == 0:
                sides.append(())  # the venue has no such side (SideCache.read leaves it out)
                continue
            n = draw(st.sampled_from([1, 2, 5, 30, 120, rng.randint(1, 120)]))
            ticks = sorted(rng.sample(range(int(n * rng.choice([1.0, 1.5, 3.0])) + 1), n))
            amounts = [rng.choice(pool) if rng.random() < 0.7 else round(rng.uniform(0, 5), 4) for _ in ticks]
            prices = [1000.0 - t * tick if bid else 1000.0 + tick + t * tick for t in ticks]
            sides.append(tuple(zip(prices, amounts, strict=True)))
        bid_runs.append((name, sides[0]))
        ask_runs.append((name, sides[1]))
    return bid_runs, ask_runs


def _merged_sums(runs: list[Run], sell: bool) -> list[float]:
    """The merged order's cumulative amounts, added in that order (quantities that end at a level)."""
    levels = sorted(
        ((-p if sell else p, -a, rank) for rank, (_, side) in enumerate(runs) for p, a in side),
    )
    sums, total = [], 0.0
    for _, minus_amount, _ in levels:
        total += -minus_amount
        sums.append(total)
    return sums


@st.composite
def _quantities(draw: st.DrawFn, runs: list[Run], sell: bool) -> tuple[float, ...]:
    """Shallow, deep (walks of many runs: the bisection ahead), level ends, beyond the books, repeats."""
    sums = _merged_sums(runs, sell)
    total = sums[-1] if sums else 1.0
    kinds = st.one_of(
        st.floats(1e-9, 1.0),
        st.floats(0.0, 1.0).map(lambda f: total * f),
        st.sampled_from(sums or [1.0]),
        st.sampled_from([total, total * (1 - 1e-13), total * (1 + 1e-13), total * 1.5, total * 3, 1e-300]),
        st.sampled_from([0.5, 1.0, 10.0, 100.0]),
    )
    quantities: list[float] = draw(st.lists(kinds, max_size=7))
    repeat = draw(st.booleans())
    if quantities and repeat:
        quantities += draw(st.lists(st.sampled_from(quantities), max_size=3))  # repeats
        quantities = list(draw(st.permutations(quantities)))
    return tuple(float(q) for q in quantities)


def _liq_venues(runs: list[Run], bids: bool) -> Any:
    from dragonfly.core.liquidity import SideCache

    return SideCache(bids=bids).read(runs)


def _fill_args(venues: Any, quantities: tuple[float, ...], sell: bool, nan: float) -> tuple[Any, ...]:
    from dragonfly.core.liquidity import Fill, VenueAmount

    return (venues.names, venues.sides, venues.keys, venues.amounts, venues.notionals, quantities, sell, Fill,
            VenueAmount, nan)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_liquidity_runs(), st.data())
def test_fill_figures_equal_the_python_fills_bit_for_bit(
    runs: tuple[list[Run], list[Run]], data: st.DataObject
) -> None:
    from dragonfly.core.liquidity import fill_figures_py

    assert accel.speedups is not None
    for side_runs, sell in ((runs[0], True), (runs[1], False)):
        quantities = data.draw(_quantities(side_runs, sell))
        nan = float("nan")  # its own object: every nan figure is this very one
        args = _fill_args(_liq_venues(side_runs, sell), quantities, sell, nan)
        got = accel.speedups.fill_figures(*args)
        want = fill_figures_py(*args)
        _assert_same_figures(got, want, nan)
        assert got is not None
        for fill, quantity in zip(got, quantities, strict=True):
            assert fill.quantity is quantity  # the quantity object itself
            assert fill.side == ("sell" if sell else "buy") and type(fill.complete) is bool


@settings(max_examples=200, deadline=None)
@given(_liquidity_runs(), st.lists(st.sampled_from([0.25, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 333.3, 1e4]),
                                   max_size=6, unique=True).map(lambda xs: tuple(sorted(xs))),
       st.sampled_from([1.0, 0.999, 1.001, 1.01, 0.9]))  # fmt: skip
def test_band_figures_equal_the_python_bands_bit_for_bit(
    runs: tuple[list[Run], list[Run]], bands: tuple[float, ...], shift: float
) -> None:
    from dragonfly.core.liquidity import Band, VenueAmount, band_figures_py

    assert accel.speedups is not None
    bids, asks = _liq_venues(runs[0], True), _liq_venues(runs[1], False)
    mids = [shift * 1000.0, 1000.0]
    if bids.names and asks.names:
        mids.append((min(k[0] for k in asks.keys) - min(k[0] for k in bids.keys)) * 0.5)
    for mid in mids:
        args = (bids.names, bids.keys, bids.amounts, asks.names, asks.keys, asks.amounts, mid, bands, Band,
                VenueAmount)  # fmt: skip
        got = accel.speedups.band_figures(*args)
        want = band_figures_py(*args)
        _assert_same_figures(got, want)
        assert got is not None
        assert all(band.bps is bps for band, bps in zip(got, bands, strict=True))


def test_fill_figures_take_the_bisection_ahead_and_the_whole_book() -> None:
    """Six venues interleaved level by level (as the bench's): deep fills, ends at levels, past the books."""
    from dragonfly.core.liquidity import fill_figures_py

    assert accel.speedups is not None
    runs: list[Run] = []
    for rank, name in enumerate(_LIQ_NAMES[:6]):
        side = tuple((100.0 - (6 * i + rank) * 0.01, 1.0 + (i % 3) * 0.5) for i in range(100))
        runs.append((name, side))
    sums = _merged_sums(runs, True)
    total = sums[-1]
    quantities: tuple[float, ...] = (total / 2, 10.0, total * 2, sums[300], sums[301] * (1 + 1e-13), total)
    quantities += (total * 3, 10.0, 1e-12)
    nan = float("nan")
    args = _fill_args(_liq_venues(runs, True), quantities, True, nan)
    got = accel.speedups.fill_figures(*args)
    _assert_same_figures(got, fill_figures_py(*args), nan)
    assert got is not None
    assert got[2].filled == total and not got[2].complete and got[2][2:] == got[6][2:]
    assert got[0].complete and len(got[0].venues) == 6


def test_compute_gives_the_same_figures_with_c_and_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from dragonfly.core import liquidity

    speedups = accel.speedups
    assert speedups is not None

    @settings(max_examples=200, deadline=None)
    @given(_liquidity_runs(), st.lists(st.floats(0.01, 400.0), max_size=5).map(tuple))
    def check(runs: tuple[list[Run], list[Run]], quantities: tuple[float, ...]) -> None:
        figures = []
        for bands, fills in (
            (speedups.band_figures, speedups.fill_figures),
            (liquidity.band_figures_py, liquidity.fill_figures_py),
        ):
            monkeypatch.setattr(liquidity, "band_figures", bands)
            monkeypatch.setattr(liquidity, "fill_figures", fills)
            figures.append(liquidity.compute(*runs, liquidity.DEFAULT_BANDS_BPS, quantities))
        _assert_same_figures(figures[0], figures[1], liquidity._NAN)

    check()


class _SlicedFill(Fill):
    """A fill type whose indexing is its own: fill_figures must decline it."""

    def __getitem__(self, i: Any) -> Any:
        return tuple.__getitem__(self, i)


def test_band_and_fill_figures_decline_what_the_twins_must_decide() -> None:
    from dragonfly.core.liquidity import Band, Fill, VenueAmount, band_figures_py, fill_figures_py

    assert accel.speedups is not None
    fills: Any = accel.speedups.fill_figures  # called with what its signature refuses
    bands: Any = accel.speedups.band_figures
    nan = float("nan")
    side = ((3.0, 1.0), (2.0, 2.0))

    def venue(
        side: Any = side, keys: Any = None, amounts: Any = None, notionals: Any = None
    ) -> list[Any]:
        return [
            side,
            [-3.0, -2.0] if keys is None else keys,
            [0.0, 1.0, 3.0] if amounts is None else amounts,
            [0.0, 3.0, 7.0] if notionals is None else notionals,
        ]

    def fill_args(*venues: list[Any], quantities: Any = (1.0, 5.0), names: Any = None) -> list[Any]:
        return [
            [f"v{i}" for i in range(len(venues))] if names is None else names,
            *([v[j] for v in venues] for j in range(4)),
            quantities, True, Fill, VenueAmount, nan,
        ]  # fmt: skip

    good = fill_args(venue(), venue(keys=(-3.5, -1.0), side=((3.5, 1.0), (1.0, 2.0))))
    _assert_same_figures(fills(*good), fill_figures_py(*good), nan)

    class Float(float):
        pass

    declined = [
        fill_args(venue(keys=[-2.0, -3.0])),  # keys not increasing
        fill_args(venue(keys=[-3.0, -3.0])),
        fill_args(venue(keys=[0.0, 1.0])),  # a best price of 0: the twin divides by it
        fill_args(venue(keys=[-3.0, Float(-2.0)])),
        fill_args(venue(keys=[-3.0, math.inf])),
        fill_args(venue(keys=[-3.0, -2.0, -1.0])),  # one key too many
        fill_args(venue(keys=[-3, -2.0])),  # an int key
        fill_args(venue(keys=(x for x in [-3.0, -2.0]))),
        fill_args(venue(amounts=[0.0, 1.0])),
        fill_args(venue(amounts=[0.0, 1.0, math.nan])),
        fill_args(venue(notionals=[0.0, 3.0, -math.inf])),
        fill_args(venue(notionals=[0.0, 3.0, 7])),
        fill_args(venue(side=list(side))),
        fill_args(venue(side=((3.0, 1.0), (2.0, 2.0, 0.0)))),
        fill_args(venue(side=((3.0, 1.0), [2.0, 2.0]))),
        fill_args(venue(side=((3.0, 1.0), (2.0, 2)))),
        fill_args(venue(side=((3.0, 1.0), (2.0, math.inf)))),
        fill_args(venue(side=((3.0, 1.0), _PlainTuple((2.0, 2.0))))),
        fill_args(venue(side=(), keys=[], amounts=[0.0], notionals=[0.0])),  # no levels
        fill_args(venue(), quantities=[1.0]),  # quantities not a tuple
        fill_args(venue(), quantities=(1.0, math.nan)),
        fill_args(venue(), quantities=(1.0, Float(2.0))),
        fill_args(venue(), quantities=(1.0, 2)),
        fill_args(venue(), names=["a", "b"]),  # lengths differ
        fill_args(*[venue()] * 65),  # more than 64 venues
    ]
    for args in declined:
        assert fills(*args) is None, args
    for types in ((time.struct_time, VenueAmount), (Fill, os.stat_result), (_SlicedFill, VenueAmount)):
        assert fills(*good[:7], *types, nan) is None
    many = fill_args(*[venue()] * 64)
    _assert_same_figures(fills(*many), fill_figures_py(*many), nan)
    # What is taken: nothing to fill, no venues, and any finite numbers the twin takes.
    assert fills(*fill_args(venue(), quantities=())) == ()
    for args in (
        fill_args(quantities=(2.0, 1.0)),
        fill_args(venue(), quantities=(0.0, -1.0, 1e308, 4.0, 4.0, -0.0)),
        fill_args(venue(amounts=[0.0, -1.0, 5.0], notionals=[1e308, 1e308, -1e308])),
        fill_args(venue(keys=(-3.0, 1e300), amounts=[0.0, 0.0, 0.0])),
        fill_args(venue(), names=[None, 5][:1]),
    ):
        _assert_same_figures(fills(*args), fill_figures_py(*args), nan)

    band_args: list[Any] = [["a"], [[-3.0, -2.0]], [[0.0, 1.0, 3.0]], ["a"], [(4.0, 5.0)], [[0.0, 2.0, 3.0]]]
    band_args += [3.5, (10.0, 1000.0), Band, VenueAmount]
    _assert_same_figures(bands(*band_args), band_figures_py(*band_args))
    for i, bad in [
        (1, [[-2.0, -3.0]]), (4, [(5.0, 4.0)]), (2, [[0.0, 1.0]]), (5, [[0.0, 2.0, Float(3.0)]]),
        (0, ["a", "b"]),
        (3, []), (1, [[-3.0, -2.0], [-1.0]]), (6, 3), (6, Float(3.5)), (7, [10.0]), (7, (10.0, 100)),
        (1, [[-3.0, math.nan]]), (4, [[]]), (8, time.struct_time), (9, os.stat_result),
    ]:  # fmt: skip
        args = list(band_args)
        args[i] = bad
        assert bands(*args) is None, (i, bad)
    for mid, bps in ((math.nan, (10.0,)), (math.inf, (1.0,)), (3.5, (math.nan, -5.0, math.inf))):
        args = [*band_args[:6], mid, bps, Band, VenueAmount]
        _assert_same_figures(bands(*args), band_figures_py(*args))
    assert bands(*band_args[:7], (), Band, VenueAmount) == ()


def test_band_and_fill_figures_refuse_wrong_arguments() -> None:
    from dragonfly.core.liquidity import Band, Fill, VenueAmount

    assert accel.speedups is not None
    fills: Any = accel.speedups.fill_figures
    bands: Any = accel.speedups.band_figures
    fill_args = [["a"], [((1.0, 1.0),)], [[-1.0]], [[0.0, 1.0]], [[0.0, 1.0]], (1.0,), True, Fill]
    fill_args += [VenueAmount, 0.0]
    band_args = [["a"], [[-1.0]], [[0.0, 1.0]], ["a"], [[2.0]], [[0.0, 1.0]], 1.5, (10.0,), Band, VenueAmount]
    for fn, args, types in ((fills, fill_args, (7, 8)), (bands, band_args, (8, 9))):
        assert fn(*args) is not None
        for i in types:
            for bad_type in (dict, list, int, 5, None, "Fill", VenueAmount("a", 1.0)):
                bad = list(args)
                bad[i] = bad_type
                with pytest.raises(TypeError):
                    fn(*bad)
        for count in (0, 9, 11):
            with pytest.raises(TypeError):
                fn(*(args * 2)[:count])
        with pytest.raises(TypeError):
            fn(*args[:9], nan=0.0)

    class Truth:
        def __bool__(self) -> bool:
            raise RuntimeError("no")

    with pytest.raises(RuntimeError):  # sell is read first
        fills(*fill_args[:6], Truth(), dict, None, 0.0)
    assert fills(*fill_args[:6], [0], Fill, VenueAmount, 0.0)[0].side == "sell"  # its truth value
    assert fills(*fill_args[:6], "", Fill, VenueAmount, 0.0)[0].side == "buy"


def test_band_and_fill_figures_survive_finalizers_that_empty_the_lists() -> None:
    """Garbage whose finalizer empties the caller's lists at some allocation of the call.

    Everything is read before the first allocation, so the result is always
    what the lists held at the call.
    """
    from dragonfly.core.liquidity import Band, Fill, VenueAmount, band_figures_py, fill_figures_py

    assert accel.speedups is not None
    nan = float("nan")
    runs: list[Run] = [
        (f"v{r}", tuple((100.0 - (3 * i + r) * 0.5, 1.0 + (i % 2)) for i in range(40))) for r in range(3)
    ]
    ask_runs: list[Run] = [
        (f"v{r}", tuple((101.0 + (3 * i + r) * 0.5, 1.0 + (i % 2)) for i in range(40))) for r in range(3)
    ]
    quantities = (5.0, 80.0, 1000.0, 1000.0)

    def lists() -> tuple[Any, Any]:
        bids, asks = _liq_venues(runs, True), _liq_venues(ask_runs, False)
        for venues in (bids, asks):  # fresh inner lists too, emptied with the others
            venues.keys = [list(k) for k in venues.keys]
            venues.amounts = [list(a) for a in venues.amounts]
            venues.notionals = [list(n) for n in venues.notionals]
        return bids, asks

    def victims(bids: Any, asks: Any) -> list[list[Any]]:
        outer = [bids.names, bids.sides, bids.keys, bids.amounts, bids.notionals]
        outer += [asks.names, asks.keys, asks.amounts]
        return [*outer, *bids.keys, *bids.amounts, *bids.notionals, *asks.keys, *asks.amounts]

    bids, asks = lists()
    fill_want = fill_figures_py(*_fill_args(bids, quantities, True, nan))
    band_want = band_figures_py(
        bids.names, bids.keys, bids.amounts, asks.names, asks.keys, asks.amounts, 100.5, (10.0, 100.0), Band,
        VenueAmount,
    )  # fmt: skip
    old = gc.get_threshold()
    meddled = 0
    for k in range(24):
        for which in ("fills", "bands"):
            bids, asks = lists()
            gc.collect()
            gc.set_threshold(1, 1, 1)
            try:
                _Countdown(k, victims(bids, asks))
                if which == "fills":
                    got: Any = accel.speedups.fill_figures(
                        bids.names, bids.sides, bids.keys, bids.amounts, bids.notionals, quantities, True,
                        Fill, VenueAmount, nan,
                    )  # fmt: skip
                else:
                    got = accel.speedups.band_figures(
                        bids.names, bids.keys, bids.amounts, asks.names, asks.keys, asks.amounts, 100.5,
                        (10.0, 100.0), Band, VenueAmount,
                    )  # fmt: skip
                meddled += len(bids.names) == 1
            finally:
                gc.set_threshold(*old)
                gc.collect()
            _assert_same_figures(got, fill_want if which == "fills" else band_want, nan)
    assert meddled > 10  # most finalizers ran inside the call, while its objects were built
