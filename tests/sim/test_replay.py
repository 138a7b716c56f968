"""The replay server on the shared recordings: real sockets, a plain picows probe per venue.

Expected frames are picked out of the recording files here with plain text
matching, independently of ``dragonfly.recording`` and the translators.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dragonfly.recording import shared_recordings
from dragonfly.sim.probe import Probe, connect, http_get
from dragonfly.sim.replay import ReplaySimulator

RECORDINGS = shared_recordings()
pytestmark = pytest.mark.skipif(
    RECORDINGS is None,
    reason="shared recordings not found: set DRAGONFLY_RECORDINGS or put them in ../shared/recordings",
)
_RECEIVED = re.compile(rb"^([0-9]+(?:\.[0-9]+)?): (.*)$")


def recorded(name: str, marker: bytes) -> list[bytes]:
    """Payloads of the received lines of ``name`` that contain ``marker``, in file order."""
    assert RECORDINGS is not None
    out = []
    for line in (RECORDINGS / name).read_bytes().split(b"\n"):
        match = _RECEIVED.match(line)
        if match and marker in match.group(2):
            out.append(match.group(2))
    return out


@pytest.fixture
async def replay(request: pytest.FixtureRequest) -> AsyncIterator[ReplaySimulator]:
    """The replay server of the venue named by the test's ``venue`` parameter."""
    assert RECORDINGS is not None
    simulator = ReplaySimulator(RECORDINGS, venues=[request.param])
    await simulator.start()
    yield simulator
    await simulator.stop()


async def book_frames(probe: Probe, count: int, is_book: Callable[[bytes], bool],
                      timeout: float = 5.0) -> list[bytes]:
    """Receive ``count`` book frames, skipping others (heartbeats)."""
    frames: list[bytes] = []
    while len(frames) < count:
        frame = await probe.recv(timeout)
        if is_book(frame):
            frames.append(frame)
    return frames


async def assert_nothing_more(probe: Probe, is_book: Callable[[bytes], bool]) -> None:
    with pytest.raises(TimeoutError):
        while True:
            frame = await probe.recv(0.3)
            assert not is_book(frame), frame[:200]


# -- per venue: subscribe, ack, every recorded book frame in order -------------------------


@dataclass(frozen=True)
class Case:
    """What one venue's probe sends and expects."""

    venue: str
    file: str
    symbol: str
    subscribe: dict[str, Any]
    ack: dict[str, Any]  # items the ack must include
    marker: bytes  # picks the symbol's book frames out of the recording


CASES = [
    Case("binance", "BINANCE.ws.1.0", "NKNUSDT",
         {"method": "SUBSCRIBE", "params": ["nknusdt@depth@100ms"], "id": 1},
         {"result": None, "id": 1}, b'"stream":"nknusdt@depth@100ms"'),
    Case("bitstamp", "BITSTAMP.ws.1.0", "ethusd",
         {"event": "bts:subscribe", "data": {"channel": "diff_order_book_ethusd"}},
         {"event": "bts:subscription_succeeded", "channel": "diff_order_book_ethusd"},
         b'"channel":"diff_order_book_ethusd","event":"data"'),
    Case("kraken", "KRAKEN.ws.50.0", "XBT/CHF",
         {"event": "subscribe", "pair": ["XBT/CHF"], "subscription": {"name": "book", "depth": 1000}},
         {"event": "subscriptionStatus", "status": "subscribed", "pair": "XBT/CHF", "channelID": 464,
          "channelName": "book-1000"},
         b'"book-1000","XBT/CHF"]'),
    Case("okx", "OKX.ws.1.0", "BTC-USDT",
         {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]},
         {"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}},
         b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action"'),
    Case("coinbase", "COINBASE.ws.28.0", "SKL-USD",
         {"type": "subscribe", "channel": "level2", "product_ids": ["SKL-USD"]},
         {"channel": "subscriptions", "sequence_num": 0,
          "events": [{"subscriptions": {"level2": ["SKL-USD"]}}]},
         b'"product_id":"SKL-USD","'),
    Case("bybit", "BYBIT.ws.26.0", "BTCUSD",
         {"op": "subscribe", "args": ["orderbook.50.BTCUSD"], "req_id": "7"},
         {"success": True, "ret_msg": "subscribe", "op": "subscribe", "req_id": "7"},
         b'"topic":"orderBookL2_25.BTCUSD"'),
]


def expected_frames(case: Case) -> list[bytes]:
    frames = recorded(case.file, case.marker)
    if case.venue == "coinbase":  # snapshot and l2update only (not ticker / match)
        frames = [f for f in frames if b'"type":"snapshot"' in f or b'"type":"l2update"' in f]
    return frames


def check_binance(got: list[bytes], want: list[bytes]) -> None:
    # Raw /ws: the event alone, the recorded bytes of "data".
    for raw, wrapped in zip(got, want, strict=True):
        assert wrapped == b'{"stream":"nknusdt@depth@100ms","data":' + raw + b"}"


def check_native(got: list[bytes], want: list[bytes]) -> None:
    assert got == want  # byte for byte: checksums depend on it


BITSTAMP_STAMPS = re.compile(rb'"timestamp": ?"(\d+)", ?"microtimestamp": ?"(\d+)"')


def bitstamp_shift(got: bytes, want: bytes) -> int:
    """Return how far ``got``'s stamps are moved from ``want``'s; the rest must be equal."""
    new_s, new_us = map(int, BITSTAMP_STAMPS.search(got).groups())  # type: ignore[union-attr]
    old_s, old_us = map(int, BITSTAMP_STAMPS.search(want).groups())  # type: ignore[union-attr]
    assert new_s == new_us // 1_000_000 and old_s == old_us // 1_000_000
    assert BITSTAMP_STAMPS.sub(b"", got) == BITSTAMP_STAMPS.sub(b"", want)
    return new_us - old_us


def check_bitstamp(got: list[bytes], want: list[bytes]) -> None:
    # The recorded bytes, but for both stamps, moved on by one shift that makes
    # the first read as now (a client dates Bitstamp's data by microtimestamp).
    shifts = {bitstamp_shift(frame, old) for frame, old in zip(got, want, strict=True)}
    assert len(shifts) == 1
    assert abs(int(BITSTAMP_STAMPS.search(got[0]).group(2)) / 1e6 - time.time()) < 60  # type: ignore[union-attr]


def check_coinbase(got: list[bytes], want: list[bytes]) -> None:
    sides = {"buy": "bid", "sell": "offer"}
    for number, (frame, old_bytes) in enumerate(zip(got, want, strict=True), start=1):
        message = json.loads(frame)
        old = json.loads(old_bytes)
        assert message["channel"] == "l2_data" and message["client_id"] == ""
        assert message["sequence_num"] == number  # the ack was 0
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", message["timestamp"])
        (event,) = message["events"]
        assert event["product_id"] == "SKL-USD"
        levels = [(u["side"], u["price_level"], u["new_quantity"]) for u in event["updates"]]
        if old["type"] == "snapshot":
            assert event["type"] == "snapshot"
            assert levels == ([("bid", p, q) for p, q in old["bids"]]
                              + [("offer", p, q) for p, q in old["asks"]])
        else:
            assert event["type"] == "update"
            assert levels == [(sides[s], p, q) for s, p, q in old["changes"]]
            assert {u["event_time"] for u in event["updates"]} == {old["time"]}


def check_bybit(got: list[bytes], want: list[bytes]) -> None:
    prices: dict[int, str] = {}
    for number, (frame, old_bytes) in enumerate(zip(got, want, strict=True), start=1):
        message = json.loads(frame)
        old = json.loads(old_bytes, parse_float=str, parse_int=str)
        assert set(message) == {"topic", "type", "ts", "data", "cts"}
        assert message["topic"] == "orderbook.50.BTCUSD"
        assert message["type"] == old["type"]
        data = message["data"]
        assert data["s"] == "BTCUSD" and data["u"] == number and data["seq"] == int(old["cross_seq"])
        assert message["ts"] == message["cts"] == int(old["timestamp_e6"]) // 1000
        if old["type"] == "snapshot":
            assert number == 1
            bids = [[e["price"], e["size"]] for e in old["data"] if e["side"] == "Buy"]
            asks = [[e["price"], e["size"]] for e in old["data"] if e["side"] == "Sell"]
            assert data["b"] == sorted(bids, key=lambda pq: -float(pq[0]))
            assert data["a"] == sorted(asks, key=lambda pq: float(pq[0]))
            prices = {int(e["id"]): e["price"] for e in old["data"]}
            continue
        changes: dict[tuple[str, str], str] = {}
        for op in ("delete", "update", "insert"):
            for e in old["data"][op]:
                side = "b" if e["side"] == "Buy" else "a"
                price = e.get("price", prices.get(int(e["id"])))
                changes[(side, price)] = "0" if op == "delete" else e["size"]
        sent = {("b", p): s for p, s in data["b"]} | {("a", p): s for p, s in data["a"]}
        assert sent == changes
        for p, s in data["b"] + data["a"]:
            assert isinstance(p, str) and isinstance(s, str)


CHECKS: dict[str, Callable[[list[bytes], list[bytes]], None]] = {
    "binance": check_binance, "bitstamp": check_bitstamp, "kraken": check_native, "okx": check_native,
    "coinbase": check_coinbase, "bybit": check_bybit,
}
BOOK_MARKS = {"binance": b'"depthUpdate"', "bitstamp": b'"diff_order_book_', "kraken": b'"book-',
              "okx": b'"action"', "coinbase": b'"l2_data"', "bybit": b'"orderbook.50.'}


@pytest.mark.parametrize(("replay", "case"), [(c.venue, c) for c in CASES], indirect=["replay"],
                         ids=[c.venue for c in CASES])
async def test_probe_gets_ack_then_every_recorded_book_frame_in_order(
        replay: ReplaySimulator, case: Case) -> None:
    conn = replay.connection(case.file)
    assert case.symbol in conn.symbols
    want = expected_frames(case)
    assert want, "no frames found in the recording"

    def is_book(frame: bytes) -> bool:
        return BOOK_MARKS[case.venue] in frame

    probe = await connect(conn.ws_url)
    probe.send(case.subscribe)
    ack = await probe.wait_json({k: case.ack[k] for k in case.ack if not isinstance(case.ack[k], dict)})
    for key, value in case.ack.items():
        assert ack[key] == value, key
    got = await book_frames(probe, len(want), is_book)
    CHECKS[case.venue](got, want)
    await asyncio.wait_for(conn.done.wait(), 2.0)
    assert conn.frames_sent == len(want) == conn.frame_count(case.symbol)
    await assert_nothing_more(probe, is_book)
    await probe.close()


# -- the symbols and counts of every shared connection ---------------------------------------


SYMBOLS = {
    "BINANCE.ws.1.0": ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"],
    "BITSTAMP.ws.1.0": ["sgbeur", "ethusd", "xrpeur", "bateur", "usdteur", "usdtusd", "xlmgbp",
                        "adaeur", "batbtc", "galaeur"],
    "KRAKEN.ws.50.0": ["WAVES/EUR", "XMR/USD", "KSM/XBT", "GRT/ETH", "SC/EUR", "ETH/CHF", "OCEAN/XBT",
                       "OMG/USD", "XBT/CHF", "ADA/XBT"],
    "OKX.ws.1.0": ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"],
    "COINBASE.ws.28.0": ["SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC", "DASH-BTC",
                         "NU-GBP", "CRV-EUR", "SKL-GBP"],
    "BYBIT.ws.25.0": ["BCHUSDT", "XTZUSDT", "UNIUSDT", "LTCUSDT", "DOTUSDT", "LINKUSDT", "ADAUSDT",
                      "ETHUSDT"],
    "BYBIT.ws.26.0": ["EOSUSD", "BTCUSD"],
}
PATHS = {"binance": "/ws", "bitstamp": "/", "kraken": "/", "okx": "/ws/v5/public", "coinbase": "/",
         "bybit": "/v5/public/spot"}


async def test_every_connection_is_served_on_its_own_port_with_its_symbols() -> None:
    assert RECORDINGS is not None
    async with ReplaySimulator(RECORDINGS) as replay:
        assert replay.errors == []
        conns = replay.connections
        assert [c.name for c in conns] == list(SYMBOLS)
        assert len({c.ws_url.split("/")[2] for c in conns}) == len(conns)
        for conn in conns:
            assert conn.symbols == SYMBOLS[conn.name], conn.name
            host_port = conn.ws_url.split("/")[2]
            assert conn.ws_url == f"ws://{host_port}{PATHS[conn.venue]}"
            # REST on a port of its own (where REST faults apply), and on the WebSocket port.
            assert conn.rest_url == f"http://127.0.0.1:{conn.rest_port}" != f"http://{host_port}"
            assert conn.rest_url_on_ws == f"http://{host_port}"
            assert not conn.done.is_set() and conn.frames_sent == 0
            assert conn.book_depth == (1000 if conn.venue == "kraken" else None)
        counts = {c.name: len(c.frames) for c in conns}
        assert counts == {
            "BINANCE.ws.1.0": len(recorded("BINANCE.ws.1.0", b"@depth@100ms")),
            "BITSTAMP.ws.1.0": len(recorded("BITSTAMP.ws.1.0", b'"event":"data"')),
            "KRAKEN.ws.50.0": len(recorded("KRAKEN.ws.50.0", b',"book-1000","')),
            "OKX.ws.1.0": len(recorded("OKX.ws.1.0", b'{"arg":{"channel":"books"')),
            "COINBASE.ws.28.0": len(recorded("COINBASE.ws.28.0", b'"type":"l2update"'))
            + len(recorded("COINBASE.ws.28.0", b'"type":"snapshot"')),
            "BYBIT.ws.25.0": len(recorded("BYBIT.ws.25.0", b'{"topic":"orderBookL2_25.')),
            "BYBIT.ws.26.0": len(recorded("BYBIT.ws.26.0", b'{"topic":"orderBookL2_25.')),
        }


# -- more than one symbol; combined streams ----------------------------------------------------


@pytest.mark.parametrize("replay", ["binance"], indirect=True)
async def test_binance_combined_stream_sends_the_recorded_wrappers(replay: ReplaySimulator) -> None:
    conn = replay.connection("binance")
    streams = "lrcbtc@depth@100ms/blzeth@depth@100ms"
    probe = await connect(conn.ws_url.replace("/ws", f"/stream?streams={streams}"))
    want = [f for f in recorded("BINANCE.ws.1.0", b"@depth@100ms")
            if b'"stream":"lrcbtc@' in f or b'"stream":"blzeth@' in f]
    got = await book_frames(probe, len(want), lambda f: b"depthUpdate" in f)
    assert got == want  # both symbols, interleaved in recorded order
    probe.send({"method": "LIST_SUBSCRIPTIONS", "id": 6})
    reply = await probe.wait_json({"id": 6})
    assert reply == {"result": ["lrcbtc@depth@100ms", "blzeth@depth@100ms"], "id": 6}
    await probe.close()


@pytest.mark.parametrize("replay", ["binance"], indirect=True)
async def test_a_symbol_subscribed_later_catches_up_in_its_own_order(replay: ReplaySimulator) -> None:
    conn = replay.connection("binance")
    probe = await connect(conn.ws_url)
    probe.send({"method": "SUBSCRIBE", "params": ["nknusdt@depth@100ms"], "id": 1})
    nkn = await book_frames(probe, 20, lambda f: b"depthUpdate" in f)
    probe.send({"method": "SET_PROPERTY", "params": ["combined", True], "id": 2})
    probe.send({"method": "SUBSCRIBE", "params": ["runeeur@depth@100ms"], "id": 3})
    frames = await book_frames(probe, 150 - 20 + 2, lambda f: b"depthUpdate" in f)
    wrapped = [f for f in frames if f.startswith(b'{"stream"')]
    raw = [f for f in frames if not f.startswith(b'{"stream"')]
    got = {s: [f for f in nkn + raw + wrapped if f'"s":"{s}"'.encode() in f]
           for s in ("NKNUSDT", "RUNEEUR")}
    for symbol, frames_of in got.items():
        want = recorded("BINANCE.ws.1.0", f'"stream":"{symbol.lower()}@depth@100ms"'.encode())
        assert len(frames_of) == len(want)
        for frame, recorded_frame in zip(frames_of, want, strict=True):
            assert frame in recorded_frame  # the bare event, or the recorded wrapper itself
    await asyncio.wait_for(conn.done.wait(), 2.0)
    await probe.close()


@pytest.mark.parametrize("replay", ["kraken"], indirect=True)
async def test_kraken_connect_status_and_multi_pair_subscribe(replay: ReplaySimulator) -> None:
    conn = replay.connection("kraken")
    probe = await connect(conn.ws_url)
    status = await probe.recv_json()
    assert status["event"] == "systemStatus" and status["status"] == "online"
    probe.send({"event": "subscribe", "pair": ["GRT/ETH", "OCEAN/XBT"], "reqid": 9,
                "subscription": {"name": "book", "depth": 1000}})
    acks = [await probe.wait_json({"event": "subscriptionStatus"}) for _ in range(2)]
    assert [(a["pair"], a["channelID"], a["reqid"]) for a in acks] == [
        ("GRT/ETH", 4528, 9), ("OCEAN/XBT", 5104, 9)]
    want = [f for f in recorded("KRAKEN.ws.50.0", b'"book-1000"')
            if f.endswith((b'"GRT/ETH"]', b'"OCEAN/XBT"]'))]
    got = await book_frames(probe, len(want), lambda f: b'"book-1000"' in f)
    assert got == want
    probe.send({"event": "ping", "reqid": 3})
    assert await probe.wait_json({"event": "pong"}) == {"event": "pong", "reqid": 3}
    await probe.close()


# -- unknown symbols get the venue's error ---------------------------------------------------------


ERRORS = [
    ("bitstamp", {"event": "bts:subscribe", "data": {"channel": "diff_order_book_xyzabc"}},
     {"event": "bts:error", "channel": "", "data": {"code": None, "message": "Bad subscription string."}}),
    ("kraken", {"event": "subscribe", "pair": ["XYZ/ABC"], "subscription": {"name": "book", "depth": 1000}},
     {"errorMessage": "Currency pair not supported XYZ/ABC", "event": "subscriptionStatus",
      "pair": "XYZ/ABC", "status": "error", "subscription": {"depth": 1000, "name": "book"}}),
    ("okx", {"op": "subscribe", "args": [{"channel": "books", "instId": "XYZ-ABC"}]},
     {"event": "error", "code": "60018", "msg": "Wrong URL or channel:books,instId:XYZ-ABC doesn't exist."}),
    ("coinbase", {"type": "subscribe", "channel": "level2", "product_ids": ["XYZ-ABC"]},
     {"type": "error", "message": "Failed to subscribe: unknown product_ids ['XYZ-ABC']"}),
    ("bybit", {"op": "subscribe", "args": ["orderbook.50.XYZABC"], "req_id": "1"},
     {"success": False, "ret_msg": "Invalid symbol :[orderbook.50.XYZABC]", "req_id": "1",
      "op": "subscribe"}),
]


@pytest.mark.parametrize(("replay", "request_", "reply"), ERRORS, indirect=["replay"],
                         ids=[e[0] for e in ERRORS])
async def test_unknown_symbol_gets_the_venue_error(replay: ReplaySimulator, request_: dict[str, Any],
                                                   reply: dict[str, Any]) -> None:
    conn = replay.connections[0]
    probe = await connect(conn.ws_url)
    probe.send(request_)
    match = {k: v for k, v in reply.items() if not isinstance(v, dict)}
    got = await probe.wait_json(match)
    for key, value in reply.items():
        assert got[key] == value, key
    await assert_nothing_more(probe, lambda f: True)
    assert conn.frames_sent == 0
    await probe.close()


@pytest.mark.parametrize("replay", ["kraken"], indirect=True)
async def test_kraken_serves_the_recorded_depth_to_any_served_depth(replay: ReplaySimulator) -> None:
    probe = await connect(replay.connection("kraken").ws_url)
    probe.send({"event": "subscribe", "pair": ["XBT/CHF"], "subscription": {"name": "book", "depth": 7}})
    reply = await probe.wait_json({"event": "subscriptionStatus"})
    assert reply["status"] == "error" and reply["errorMessage"] == "Subscription depth not supported"
    probe.send({"event": "subscribe", "pair": ["XBT/CHF"], "subscription": {"name": "book", "depth": 100}})
    reply = await probe.wait_json({"event": "subscriptionStatus"})
    assert (reply["status"], reply["channelName"], reply["subscription"]) == (
        "subscribed", "book-1000", {"depth": 1000, "name": "book"})
    (first,) = await book_frames(probe, 1, lambda f: f.startswith(b"["))
    first = json.loads(first)
    assert isinstance(first, list) and first[-2:] == ["book-1000", "XBT/CHF"] and "as" in first[1]
    await probe.close()


@pytest.mark.parametrize("replay", ["binance"], indirect=True)
async def test_binance_unrecorded_stream_is_acked_and_silent_like_the_venue(
        replay: ReplaySimulator) -> None:
    conn = replay.connection("binance")
    probe = await connect(conn.ws_url)
    probe.send({"method": "SUBSCRIBE", "params": ["ethbtc@depth@100ms", "nknusdt@trade"], "id": 1})
    assert await probe.wait_json({"id": 1}) == {"result": None, "id": 1}
    await assert_nothing_more(probe, lambda f: True)
    await probe.close()


# -- REST snapshots on the same port -------------------------------------------------------------


def recorded_rest(name: str) -> dict[str, bytes]:
    assert RECORDINGS is not None
    out = {}
    for line in (RECORDINGS / name).read_bytes().split(b"\n"):
        if b" -> " in line:
            url, _, rest = line.partition(b" -> ")
            out[url.decode()] = rest.partition(b": ")[2]
    return out


@pytest.mark.parametrize("replay", ["binance"], indirect=True)
async def test_binance_rest_snapshots_and_errors(replay: ReplaySimulator) -> None:
    conn = replay.connection("binance")
    snapshots = recorded_rest("BINANCE.http.0.0")
    for symbol in conn.symbols:
        body = snapshots[f"https://api.binance.com/api/v3/depth?symbol={symbol}&limit=1000"]
        reply = await http_get(f"{conn.rest_url}/api/v3/depth?symbol={symbol}&limit=1000")
        assert (reply.status, reply.body) == (200, body)
    old = await http_get(f"{conn.rest_url}/api/v1/depth?symbol=LRCBTC&limit=10")
    assert old.body == snapshots["https://api.binance.com/api/v3/depth?symbol=LRCBTC&limit=1000"]
    missing = await http_get(f"{conn.rest_url}/api/v3/depth?symbol=ETHBTC&limit=1000")
    assert (missing.status, missing.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
    info = await http_get(f"{conn.rest_url}/api/v3/exchangeInfo?symbol=NKNUSDT")
    assert info.status == 200
    (entry,) = info.json()["symbols"]
    assert entry["symbol"] == "NKNUSDT" and entry["status"] == "TRADING" and entry["baseAsset"] == "NKN"
    unknown = await http_get(f"{conn.rest_url}/api/v3/exchangeInfo?symbol=ETHBTC")
    assert (unknown.status, unknown.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})


@pytest.mark.parametrize("replay", ["bitstamp"], indirect=True)
async def test_bitstamp_rest_snapshots_and_errors(replay: ReplaySimulator) -> None:
    conn = replay.connection("bitstamp")
    snapshots = recorded_rest("BITSTAMP.http.0.0")
    shifts = set()
    for pair in conn.symbols:
        body = snapshots[f"https://www.bitstamp.net/api/v2/order_book/{pair}"]
        for path in (f"/api/v2/order_book/{pair}/", f"/api/v2/order_book/{pair}"):
            reply = await http_get(conn.rest_url + path)
            assert reply.status == 200
            # The recorded snapshot, its stamps moved to the replay's clock (one shift for all).
            shifts.add(bitstamp_shift(reply.body, body))
    assert len(shifts) == 1 and shifts.pop() > 0
    missing = await http_get(f"{conn.rest_url}/api/v2/order_book/xyzabc/")
    assert missing.status == 404
    assert (await http_get(f"{conn.rest_url}/nope")).status == 404
