"""Venue parsers against the venues' documented message shapes, and fuzzed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dragonfly.core.diff import Alive, Delta, Reset, Snapshot
from dragonfly.core.errors import ConfigError, ParseError
from dragonfly.core.venue import ControlKind
from dragonfly.venues import VENUES, binance, bitstamp, get_venue

pytestmark = pytest.mark.usefixtures("both_hot_paths")

# The partial book depth payload as documented by Binance (spot, web-socket-streams).
BINANCE_DOC = b"""{
  "lastUpdateId": 160,
  "bids": [["0.0024", "10"]],
  "asks": [["0.0026", "100"]]
}"""

# Bitstamp WebSocket API v2, order_book channel event.
BITSTAMP_DOC = json.dumps(
    {
        "data": {
            "timestamp": "1641343691",
            "microtimestamp": "1641343691123456",
            "bids": [["0.07131000", "1.50000000"], ["0.07130000", "0.25000000"], ["0.07120000", "3"]],
            "asks": [["0.07140000", "2.00000000"], ["0.07150000", "0.10000000"]],
        },
        "channel": "order_book_ethbtc",
        "event": "data",
    }
).encode()


def test_binance_documented_depth_message() -> None:
    decode = binance.make_decoder(10)
    assert decode(BINANCE_DOC) == (((0.0024, 10.0),), ((0.0026, 100.0),), 160)


def test_binance_reads_only_top_n() -> None:
    levels = [[f"{1 - i / 100:.8f}", "1.00000000"] for i in range(20)]
    frame = json.dumps({"lastUpdateId": 1, "bids": levels, "asks": []}).encode()
    bids, asks, seq = binance.make_decoder(5)(frame) or ((), (), 0)
    assert len(bids) == 5 and bids[0] == (1.0, 1.0) and asks == () and seq == 1


# The diff depth event as documented by Binance (spot, "Diff. Depth Stream").
BINANCE_DIFF_DOC = {
    "e": "depthUpdate",
    "E": 1672515782136,
    "s": "BNBBTC",
    "U": 157,
    "u": 160,
    "b": [["0.0024", "10"]],
    "a": [["0.0026", "100"]],
}


def test_binance_documented_diff_event_decodes_to_float_levels() -> None:
    decode = binance.make_diff_decoder()
    raw = json.dumps(BINANCE_DIFF_DOC).encode()
    wrapped = json.dumps({"stream": "bnbbtc@depth@100ms", "data": BINANCE_DIFF_DOC}).encode()
    for frame in (raw, wrapped):
        assert decode(frame) == (Delta("BNBBTC", [(0.0024, 10.0)], [(0.0026, 100.0)], 157, 160),)
    assert decode(b'{"result":null,"id":1}') is None
    snap = binance.parse_rest_snapshot("BNBBTC", BINANCE_DOC)
    assert snap == Snapshot("BNBBTC", [(0.0024, 10.0)], [(0.0026, 100.0)], 160)


@pytest.mark.parametrize("bad", ["NaN", "inf", "-1", "1e999", "", "0x10", "ten"])
def test_binance_diff_numbers_must_be_finite_and_not_negative(bad: str) -> None:
    """The channel is numeric: a level that is no usable number is a parse error, named."""
    event = {**BINANCE_DIFF_DOC, "b": [["0.0024", "10"], ["0.0023", bad]]}
    with pytest.raises(ParseError, match="depthUpdate"):
        binance.make_diff_decoder()(json.dumps(event).encode())
    with pytest.raises(ParseError, match="snapshot"):
        binance.parse_rest_snapshot(
            "BNBBTC", json.dumps({"lastUpdateId": 1, "bids": [[bad, "1"]], "asks": []}).encode()
        )


def test_binance_subscribe_and_control() -> None:
    (frame,) = binance.subscribe("ETHBTC")
    assert json.loads(frame) == {"method": "SUBSCRIBE", "params": ["ethbtc@depth20@100ms"], "id": 1}
    assert binance.make_decoder(10)(b'{"result":null,"id":1}') is None
    assert binance.control(b'{"result":null,"id":1}').kind is ControlKind.SUBSCRIBED
    err = binance.control(b'{"error":{"code":2,"msg":"Invalid request"},"id":1}')
    assert err.kind is ControlKind.REJECTED and "Invalid request" in err.detail
    assert binance.control(b'{"error":{"code":3,"msg":"Invalid JSON"}}').kind is ControlKind.ERROR
    assert binance.SPEC.venue_symbol("ethbtc") == "ETHBTC"


def test_binance_symbol_check() -> None:
    assert (
        binance.symbol_rejected(400, b'{"code":-1121,"msg":"Invalid symbol."}')
        == "not listed (Invalid symbol.)"
    )
    ok = b'{"symbols":[{"symbol":"ETHBTC","status":"TRADING"}]}'
    assert binance.symbol_rejected(200, ok) is None
    halted = b'{"symbols":[{"symbol":"ETHBTC","status":"BREAK"}]}'
    assert binance.symbol_rejected(200, halted) == "not trading (status BREAK)"
    assert binance.symbol_rejected(502, b"<html>") is None  # unknown: not a rejection


def test_bitstamp_documented_order_book_message() -> None:
    bids, asks, seq = bitstamp.make_decoder(2)(BITSTAMP_DOC) or ((), (), 0)
    assert bids == ((0.07131, 1.5), (0.0713, 0.25))
    assert asks == ((0.0714, 2.0), (0.0715, 0.1))
    assert seq == 1641343691123456  # the microtimestamp


def test_bitstamp_subscribe_and_control() -> None:
    (frame,) = bitstamp.subscribe("ethbtc")
    assert json.loads(frame) == {"event": "bts:subscribe", "data": {"channel": "order_book_ethbtc"}}
    decode = bitstamp.make_decoder(10)
    ok = b'{"event":"bts:subscription_succeeded","channel":"order_book_ethbtc","data":{}}'
    assert decode(ok) is None
    assert bitstamp.control(ok).kind is ControlKind.SUBSCRIBED
    bad = b'{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad subscription string."}}'
    assert bitstamp.control(bad)[:2] == (ControlKind.REJECTED, "Bad subscription string.")
    assert (
        bitstamp.control(b'{"event":"bts:request_reconnect","channel":"","data":""}').kind
        is ControlKind.RECONNECT
    )
    hb = b'{"event":"bts:heartbeat","channel":"","data":{"status":"success"}}'
    assert bitstamp.control(hb).kind is ControlKind.PONG  # the answer to our own heartbeat
    assert bitstamp.SPEC.heartbeat is not None and json.loads(bitstamp.SPEC.heartbeat) == {
        "event": "bts:heartbeat"
    }


@pytest.mark.parametrize(
    "frame",
    [
        b"{not json",
        b'{"event":"data","data":{"bids":[["1"]],"asks":[]}}',
        b'{"event":"data","data":{"bids":[["a","1"]],"asks":[]}}',
        b'{"event":"data","data":{"asks":[]}}',
        b'{"event":"data","data":[]}',
        b'{"event":"data","data":{"bids":["12"],"asks":[]}}',  # a string is not a level
    ],
)
def test_bitstamp_malformed_raise_parse_error(frame: bytes) -> None:
    with pytest.raises(ParseError):
        bitstamp.make_decoder(10)(frame)


_decimal = st.decimals(min_value=0, max_value=10**6, places=8, allow_nan=False).map(str)
_bitstamp_side = st.lists(st.tuples(_decimal, _decimal).map(list), max_size=15)


@settings(max_examples=200, deadline=None)
@given(_bitstamp_side, _bitstamp_side, st.integers(1, 12))
def test_bitstamp_byte_scan_reads_what_simdjson_reads(
    bids: list[list[str]], asks: list[list[str]], depth: int
) -> None:
    """The compact frames Bitstamp sends take the byte scan; any other layout takes simdjson."""
    event = {
        "data": {"timestamp": "1", "microtimestamp": "1000001", "bids": bids, "asks": asks},
        "channel": "order_book_ethbtc",
        "event": "data",
    }
    compact = json.dumps(event, separators=(",", ":")).encode()
    spaced = json.dumps(event).encode()  # ", " and ": ": not the scan's shape
    assert compact.endswith(b'"event":"data"}') and bitstamp._scan(compact, depth) is not None
    assert bitstamp._scan(spaced, depth) is None
    decode = bitstamp.make_decoder(depth)
    want = (
        tuple((float(p), float(a)) for p, a in bids[:depth]),
        tuple((float(p), float(a)) for p, a in asks[:depth]),
        1000001,
    )
    assert decode(compact) == decode(spaced) == want


@pytest.mark.parametrize(
    "frame",
    [
        b'{"data":{"bids":[["a","1"]],"asks":[]},"event":"data"}',
        b'{"data":{"bids":[["1"]],"asks":[]},"event":"data"}',
        b'{"data":{"bids":[["1","2","3"]],"asks":[]},"event":"data"}',
        b'{"data":{"bids":[["1","2"]],"asks":[["3","x"]]},"event":"data"}',
        b'{"data":{"bids":[["1","2"]]},"event":"data"}',
        b'{"data":{"bids":[["1","2"]],"asks":["3"]},"event":"data"}',
        b'{"data":{"bids":[["1","2"],"asks":[]},"event":"data"}',
    ],
)
def test_bitstamp_byte_scan_leaves_bad_frames_to_simdjson(frame: bytes) -> None:
    assert bitstamp._scan(frame, 10) is None
    with pytest.raises(ParseError):
        bitstamp.make_decoder(10)(frame)


def test_bitstamp_parser_survives_a_held_proxy() -> None:
    decode = bitstamp.make_decoder(10)
    for _ in range(3):
        with pytest.raises(ParseError):
            decode(b'{"event":"data","data":{"bids":[["a","1"]],"asks":[]}}')
        assert decode(BITSTAMP_DOC) is not None


def test_registry() -> None:
    assert set(VENUES) >= {"binance", "bitstamp"}
    assert get_venue(" Binance ") is binance.SPEC
    with pytest.raises(ConfigError, match="unknown venue 'kraken2'"):
        get_venue("kraken2")


_json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)
_levels = st.lists(
    st.lists(st.one_of(st.text(max_size=10), st.floats(), st.integers()), max_size=3), max_size=6
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda b, a: json.dumps({"lastUpdateId": 1, "bids": b, "asks": a}).encode(), _levels, _levels
        ),
        st.builds(
            lambda b, a: json.dumps({"event": "data", "data": {"bids": b, "asks": a}}).encode(),
            _levels,
            _levels,
        ),
    )
)
def test_fuzz_decoders_parse_or_raise_parse_error(payload: bytes) -> None:
    for spec in VENUES.values():
        if spec.snapshot is not None:
            try:
                result = spec.snapshot.make_decoder(10)(payload)
            except ParseError:
                result = None
            if result is not None:
                bids, asks, seq = result
                assert all(isinstance(p, float) and isinstance(a, float) for p, a in bids + asks)
                assert isinstance(seq, int) and seq >= 0
        if spec.diff is not None:
            try:
                events = spec.diff.make_decoder()(payload)
            except ParseError:
                events = None
            for event in events or ():
                assert isinstance(event, (Snapshot, Delta, Reset, Alive))
        spec.control(payload)  # never raises
