"""Faults on the replay server: checksums, OKX's notice, and frame faults of every venue.

Run against the shared recordings, each venue's real protocol on loopback.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from picows import WSCloseCode
from test_replay import BOOK_MARKS, CASES, Case, book_frames, expected_frames

from dragonfly.recording import shared_recordings
from dragonfly.sim.probe import Probe, connect, http_get
from dragonfly.sim.replay import ReplaySimulator

RECORDINGS = shared_recordings()
pytestmark = pytest.mark.skipif(
    RECORDINGS is None,
    reason="shared recordings not found: set DRAGONFLY_RECORDINGS or put them in ../shared/recordings",
)
CASE = {case.venue: case for case in CASES}


@pytest.fixture
async def replay(request: pytest.FixtureRequest) -> AsyncIterator[ReplaySimulator]:
    """The replay server of the venue named by the test's ``replay`` parameter."""
    assert RECORDINGS is not None
    simulator = ReplaySimulator(RECORDINGS, venues=[request.param], recorded_clock=True)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def subscribed(replay: ReplaySimulator, case: Case) -> Probe:
    probe = await connect(replay.connection(case.file).ws_url)
    probe.send(case.subscribe)
    await probe.wait_json({k: v for k, v in case.ack.items() if not isinstance(v, dict)})
    return probe


def is_book(venue: str) -> Any:
    return lambda frame: BOOK_MARKS[venue] in frame


# -- checksums ----------------------------------------------------------------------------


def kraken_crc(bids: dict[str, str], asks: dict[str, str]) -> int:
    """Kraken's CRC32 of the top 10 asks then bids: digits only, leading zeros stripped."""
    def part(levels: list[tuple[str, str]]) -> str:
        return "".join(p.replace(".", "").lstrip("0") + a.replace(".", "").lstrip("0") for p, a in levels)
    top_asks = sorted(asks.items(), key=lambda pa: float(pa[0]))[:10]
    top_bids = sorted(bids.items(), key=lambda pa: -float(pa[0]))[:10]
    return zlib.crc32((part(top_asks) + part(top_bids)).encode())


def kraken_apply(book: tuple[dict[str, str], dict[str, str]], message: list[Any]) -> str | None:
    """Apply one book message to (bids, asks); return its checksum field, if any."""
    checksum = None
    for part in message[1:-2]:
        for key, levels in part.items():
            if key == "c":
                checksum = levels
                continue
            side = book[0] if key in ("b", "bs") else book[1]
            for price, amount, *_ in levels:
                if float(amount) == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
    return checksum


@pytest.mark.parametrize("replay", ["kraken"], indirect=True)
async def test_kraken_checksum_fault_breaks_the_check_and_keeps_the_checksum(
        replay: ReplaySimulator) -> None:
    case = CASE["kraken"]
    fault = replay.fault("kraken", "checksum")  # before subscribing: frames go out at once
    probe = await subscribed(replay, case)
    want = expected_frames(case)
    got = await book_frames(probe, len(want), is_book("kraken"))
    changed = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    assert len(changed) == 1 and fault.applied == 1
    book: tuple[dict[str, str], dict[str, str]] = ({}, {})
    for frame in got:
        checksum = kraken_apply(book, json.loads(frame))
        if checksum is None:
            continue
        if frame == changed[0][0]:
            assert checksum == json.loads(changed[0][1])[-3]["c"]  # the recorded checksum, kept
            assert kraken_crc(*book) != int(checksum)  # ... which the changed book fails
            break
        assert kraken_crc(*book) == int(checksum)  # every frame before verifies
    await probe.close()


@pytest.mark.parametrize("replay", ["okx"], indirect=True)
async def test_okx_checksum_fault_changes_one_amount_of_an_update(replay: ReplaySimulator) -> None:
    case = CASE["okx"]
    replay.fault("okx", "checksum")
    probe = await subscribed(replay, case)
    want = expected_frames(case)
    got = await book_frames(probe, len(want), is_book("okx"))
    ((new, old),) = [(json.loads(g), json.loads(w)) for g, w in zip(got, want, strict=True) if g != w]
    assert new["action"] == "update" and new["data"][0]["checksum"] == old["data"][0]["checksum"]
    diffs = [(a, b) for side in ("bids", "asks")
             for a, b in zip(new["data"][0][side], old["data"][0][side], strict=True) if a != b]
    ((mine, theirs),) = diffs
    assert mine[0] == theirs[0] and mine[1] != theirs[1] and mine[2:] == theirs[2:]
    await probe.close()


# -- notices --------------------------------------------------------------------------


@pytest.mark.parametrize("replay", ["okx"], indirect=True)
async def test_okx_notice_then_close(replay: ReplaySimulator) -> None:
    probe = await connect(replay.connection("okx").ws_url)
    probe.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
    ack = await probe.wait_json({"event": "subscribe"})
    assert replay.fault("okx", "notice,grace=0.1").applied == 1
    notice = await probe.wait_json({"event": "notice"})
    assert notice == {"event": "notice", "code": "64008", "connId": ack["connId"],
                      "msg": "The connection will soon be closed for a service upgrade. Please reconnect."}
    await asyncio.wait_for(probe.disconnected.wait(), 1.0)
    assert probe.close_code == WSCloseCode.SERVICE_RESTART


@pytest.mark.parametrize("replay", ["kraken"], indirect=True)
async def test_a_venue_without_a_notice_refuses_one(replay: ReplaySimulator) -> None:
    with pytest.raises(ValueError, match="kraken has no reconnect notice"):
        replay.fault("kraken", "notice")
    with pytest.raises(ValueError, match="kraken diff events carry no sequence numbers"):
        replay.fault("kraken", "skip")
    with pytest.raises(ValueError, match="no replayed connection of 'okx'"):
        replay.fault("okx", "drop")


# -- frame faults on every venue's frame shape ----------------------------------------


def levels_of(venue: str, message: Any) -> list[tuple[str, Any, Any]]:
    """(side, price, amount) of every level of a book message, per venue."""
    if venue == "kraken":
        return [("bid" if k.startswith("b") else "ask", lv[0], lv[1])
                for part in message[1:-2] for k, lvs in part.items() if k != "c" for lv in lvs]
    if venue == "okx":
        data = message["data"][0]
        return [(s, lv[0], lv[1]) for s, key in (("bid", "bids"), ("ask", "asks")) for lv in data[key]]
    if venue == "coinbase":
        return [("bid" if u["side"] == "bid" else "ask", u["price_level"], u["new_quantity"])
                for u in message["events"][0]["updates"]]
    data = message["data"]
    return [(s, lv[0], lv[1]) for s, key in (("bid", "b"), ("ask", "a")) for lv in data[key]]


@pytest.mark.parametrize("replay", ["kraken", "okx", "coinbase", "bybit"], indirect=True)
async def test_nan_and_absurd_on_every_frame_shape(replay: ReplaySimulator) -> None:
    venue = replay.venues[0]
    case = CASE[venue]
    nan = replay.fault(venue, "nan,side=bid")
    absurd = replay.fault(venue, "absurd,factor=1000")
    probe = await subscribed(replay, case)
    first, second = (json.loads(f) for f in await book_frames(probe, 2, is_book(venue)))
    bids = [price for side, price, _ in levels_of(venue, first) if side == "bid"]
    assert bids[0] == "NaN" and nan.applied == 1 and absurd.applied == 1
    assert all(float(p) > 0 for p in bids[1:])
    prices = [float(p) for _, p, _ in levels_of(venue, second)]
    assert prices and all(p > 0 for p in prices)
    want = [json.loads(f) for f in expected_frames(case)[1:2]]
    if venue in ("kraken", "okx"):  # native bytes: compare with the recording
        recorded = [float(p) for _, p, _ in levels_of(venue, want[0])]
        assert prices == pytest.approx([p * 1000 for p in recorded])
    await probe.close()


@pytest.mark.parametrize("replay", ["coinbase"], indirect=True)
async def test_coinbase_skip_jumps_sequence_num(replay: ReplaySimulator) -> None:
    replay.fault("coinbase", "skip,count=2")
    probe = await subscribed(replay, CASE["coinbase"])
    frames = [json.loads(f) for f in await book_frames(probe, 5, is_book("coinbase"))]
    numbers = [f["sequence_num"] for f in frames]
    assert numbers == [3, 4, 5, 6, 7]  # the ack was 0; data 1 and 2 were lost in transit
    await probe.close()


@pytest.mark.parametrize("replay", ["bybit"], indirect=True)
async def test_bybit_zero_amount_in_the_snapshot(replay: ReplaySimulator) -> None:
    replay.fault(CASE["bybit"].file, "zero")
    probe = await subscribed(replay, CASE["bybit"])
    snapshot = json.loads((await book_frames(probe, 1, is_book("bybit")))[0])
    assert snapshot["type"] == "snapshot" and snapshot["data"]["b"][0][1] == "0"
    await probe.close()


@pytest.mark.parametrize("replay", ["bybit"], indirect=True)
async def test_bybit_skip_then_repeat(replay: ReplaySimulator) -> None:
    replay.fault(CASE["bybit"].file, "skip")
    replay.fault(CASE["bybit"].file, "repeat")
    probe = await subscribed(replay, CASE["bybit"])
    frames = [json.loads(f) for f in await book_frames(probe, 3, is_book("bybit"))]
    assert [f["data"]["u"] for f in frames] == [2, 2, 3]  # u=1 lost in transit, u=2 twice
    await probe.close()


@pytest.mark.parametrize("replay", ["bitstamp"], indirect=True)
async def test_replay_pause_holds_frames_and_loses_none(replay: ReplaySimulator) -> None:
    case = CASE["bitstamp"]
    replay.fault("bitstamp", "pause,for=0.3")
    probe = await subscribed(replay, case)
    probe.send({"event": "bts:heartbeat"})
    assert (await probe.recv_json())["event"] == "bts:heartbeat"  # answered while paused
    with pytest.raises(TimeoutError):
        await probe.recv(timeout=0.15)
    want = expected_frames(case)
    assert await book_frames(probe, len(want), is_book("bitstamp")) == want
    await probe.close()


@pytest.mark.parametrize("replay", ["binance"], indirect=True)
async def test_replay_rest_faults_on_the_rest_port_only(replay: ReplaySimulator) -> None:
    conn = replay.connection("binance")
    path = "/api/v3/depth?symbol=NKNUSDT&limit=1000"
    recorded = (await http_get(conn.rest_url + path)).json()["lastUpdateId"]
    replay.fault("binance", "rest-future,ahead=7,for=5")
    assert (await http_get(conn.rest_url + path)).json()["lastUpdateId"] == recorded + 7
    assert (await http_get(conn.rest_url_on_ws + path)).json()["lastUpdateId"] == recorded
    replay.clear_faults("binance")
    replay.fault("binance", "rest-error,status=418")
    teapot = await http_get(conn.rest_url + path)
    assert teapot.status == 418 and teapot.json()["code"] == -1003
