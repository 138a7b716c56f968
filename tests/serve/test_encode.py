"""encode_summary must produce exactly what the generated classes produce."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dragonfly.core.types import MergedBook, MergedLevel, VenueState
from dragonfly.serve import orderbook_pb2
from dragonfly.serve.encode import append_send_ns, encode_summary, encode_summary_pb, encode_summary_queued

# Text the wire can carry: any code point but lone surrogates (not UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
venues = st.one_of(st.sampled_from(["binance", "bitstamp", "kraken", ""]), texts)
doubles = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 1.7976931348623157e308, math.inf, -math.inf]),
    st.floats(allow_nan=False),
)
levels = st.builds(MergedLevel, venues, doubles, doubles)
sides = st.lists(levels, max_size=50).map(tuple)
int64s = st.one_of(
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 1_700_000_000_000_000_000]),
    st.integers(-(2**63), 2**63 - 1),
)
uint64s = st.one_of(st.sampled_from([0, 1, 127, 128, 2**56, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
states = st.builds(
    VenueState,
    venue=venues,
    in_merge=st.booleans(),
    status=st.integers(0, 8),
    data_ns=int64s,
    age_ns=int64s,
    seq=uint64s,
)
books = st.builds(
    MergedBook,
    instrument=st.one_of(st.just("ETHBTC"), texts),
    spread=st.one_of(doubles, st.just(math.nan)),
    bids=sides,
    asks=sides,
    sequence=uint64s,
    recv_ns=int64s,
    publish_ns=int64s,
    source_venue=st.one_of(st.just(""), venues),
    source_frame=uint64s,
    venues=st.lists(states, max_size=7).map(tuple),
)

EMPTY = MergedBook("", 0.0, (), (), 0, 0, 0)

pytestmark = pytest.mark.usefixtures("both_hot_paths")


def _reference(book: MergedBook, send_ns: int = 0) -> orderbook_pb2.Summary:
    return orderbook_pb2.Summary.FromString(encode_summary_pb(book, send_ns))


@settings(max_examples=400, deadline=None)
@given(book=books, send_ns=int64s)
@example(book=EMPTY, send_ns=0)
@example(book=MergedBook("ETHBTC", math.nan, (), (), 2**64 - 1, -1, 2**63 - 1), send_ns=-(2**63))
@example(
    book=MergedBook("x", -0.0, (MergedLevel("", 0.0, 0.0),), (MergedLevel("é" * 99, -0.0, 0.0),), 1, 0, 0),
    send_ns=0,
)
def test_bytes_equal_official_encoding(book: MergedBook, send_ns: int) -> None:
    ours = encode_summary(book, send_ns)
    # proto3 serialization of known fields is deterministic: same bytes.
    assert ours == encode_summary_pb(book, send_ns)
    decoded = orderbook_pb2.Summary.FromString(ours)
    assert decoded.SerializeToString() == ours
    if not math.isnan(book.spread):
        assert decoded == _reference(book, send_ns)
    else:
        assert math.isnan(decoded.spread)
    assert decoded.instrument == book.instrument
    assert decoded.sequence == book.sequence
    assert [(lv.exchange, lv.price, lv.amount) for lv in decoded.bids] == list(book.bids)
    assert [(lv.exchange, lv.price, lv.amount) for lv in decoded.asks] == list(book.asks)


def test_zero_spread_is_omitted_and_negative_zero_kept() -> None:
    assert encode_summary(EMPTY) == b""
    negative = encode_summary(EMPTY._replace(spread=-0.0))
    assert negative == b"\x09" + struct.pack("<d", -0.0)
    assert math.copysign(1.0, orderbook_pb2.Summary.FromString(negative).spread) == -1.0


def test_nan_spread_round_trips() -> None:
    decoded = orderbook_pb2.Summary.FromString(encode_summary(EMPTY._replace(spread=math.nan)))
    assert math.isnan(decoded.spread)


def test_typical_book() -> None:
    bids = tuple(
        MergedLevel("binance" if i % 2 else "bitstamp", 0.068 - i * 1e-5, 1.5 + i) for i in range(10)
    )
    asks = tuple(MergedLevel("kraken" if i % 2 else "bitstamp", 0.069 + i * 1e-5, 2.5 + i) for i in range(10))
    book = MergedBook("ETHBTC", 0.001, bids, asks, 42, 1_700_000_000_000_000_000, 1_700_000_000_000_050_000)
    # Twice: the second call runs from the per-venue caches.
    for _ in range(2):
        encoded = encode_summary(book)
        assert encoded == encode_summary_pb(book)
    decoded = orderbook_pb2.Summary.FromString(encoded)
    assert decoded.bids[3].exchange == "binance"
    assert decoded.asks[0].price == 0.069
    assert decoded.publish_ns == 1_700_000_000_000_050_000


@given(book=books, send_ns=int64s)
@settings(max_examples=100, deadline=None)
def test_append_send_ns(book: MergedBook, send_ns: int) -> None:
    appended = append_send_ns(encode_summary(book), send_ns)
    if not book.source_venue and not book.source_frame and not book.venues:
        # Field 8 is then the last field: the bytes are the official encoding.
        assert appended == encode_summary(book, send_ns)
    decoded = orderbook_pb2.Summary.FromString(appended)
    assert decoded.send_ns == send_ns
    assert (decoded.source_venue, decoded.source_frame) == (book.source_venue, book.source_frame)
    stamped = append_send_ns(encode_summary(book, 5), send_ns or 5)
    assert orderbook_pb2.Summary.FromString(stamped).send_ns == (send_ns or 5)


@pytest.mark.parametrize(
    "book",
    [
        EMPTY._replace(sequence=-1),
        EMPTY._replace(sequence=2**64),
        EMPTY._replace(recv_ns=2**63),
        EMPTY._replace(publish_ns=-(2**63) - 1),
        EMPTY._replace(venues=(VenueState("a", True, 1, 2**63, 0, 0),)),
        EMPTY._replace(venues=(VenueState("a", True, 1, 0, 0, -1),)),
    ],
)
def test_out_of_range_integers_raise(book: MergedBook) -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_summary(book)


def test_nan_and_infinite_levels_match_official_bytes() -> None:
    levels = (
        MergedLevel("a", math.nan, 1.0),
        MergedLevel("b", math.inf, math.nan),
        MergedLevel("c", -math.inf, 0.0),
    )
    book = MergedBook("X", 1.0, levels, levels[::-1], 7, 1, 2)
    assert encode_summary(book) == encode_summary_pb(book)


@settings(max_examples=200, deadline=None)
@given(first=books, second=books, data=st.data())
def test_reused_prices_with_new_amounts_match_the_reference(
    first: MergedBook, second: MergedBook, data: st.DataObject
) -> None:
    # Encode `first`, then books reusing its exchanges and prices with other
    # amounts: guards any memo of encoded levels (a stale field would differ).
    assert encode_summary(first) == encode_summary_pb(first)
    shuffled = tuple(
        MergedLevel(lv.exchange, lv.price, data.draw(doubles)) if data.draw(st.booleans()) else lv
        for lv in first.bids + first.asks
    )
    for book in (second, first._replace(bids=shuffled, asks=shuffled[::-1])):
        assert encode_summary(book) == encode_summary_pb(book)


def test_a_level_with_a_new_amount_is_re_encoded() -> None:
    old = MergedBook(
        "X", 1.0, (MergedLevel("binance", 0.05, 1.5),), (MergedLevel("kraken", 0.06, 2.0),), 1, 2, 3
    )
    assert encode_summary(old) == encode_summary(old)  # the same book twice: the same bytes
    for amount in (2.5, -0.0, 0.0, math.nan, 1.5):
        new = old._replace(bids=(MergedLevel("binance", 0.05, amount),))
        assert encode_summary(new) == encode_summary_pb(new)
        decoded = orderbook_pb2.Summary.FromString(encode_summary(new)).bids[0]
        assert struct.pack("<d", decoded.amount) == struct.pack("<d", amount)


def test_zero_signs_are_never_confused() -> None:
    for price in (0.0, -0.0, 0.0):
        book = MergedBook("X", 1.0, (MergedLevel("a", price, 1.0),), (MergedLevel("a", price, 1.0),), 1, 2, 3)
        assert encode_summary(book) == encode_summary_pb(book)


@given(book=books, queued_ns=int64s)
@settings(max_examples=100, deadline=None)
def test_encode_summary_queued_is_the_official_encoding_stamped(book: MergedBook, queued_ns: int) -> None:
    encoded = encode_summary_queued(book, lambda: queued_ns)
    assert encoded == encode_summary_pb(book._replace(publish_ns=queued_ns))
