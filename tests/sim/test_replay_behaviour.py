"""Replay behaviour on small recordings written here: pace, resubscribe, reconnect, snapshots, CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dragonfly.recording import RecordingWriter
from dragonfly.sim.probe import Probe, connect, http_get
from dragonfly.sim.replay import ReplaySimulator
from dragonfly.sim.replay.cli import main
from dragonfly.sim.replay.coinbase import CoinbaseReplay

BITSTAMP_URL = "wss://ws.bitstamp.net/"


def bitstamp_event(pair: str, n: int) -> bytes:
    return (b'{"data":{"timestamp":"0","microtimestamp":"%d","bids":[["1.0","%d.5"]],"asks":[]},'
            b'"channel":"diff_order_book_%s","event":"data"}' % (n, n, pair.encode()))


def write_bitstamp(directory: Path, times: list[float], pair: str = "abcusd") -> list[bytes]:
    """A Bitstamp connection with one diff event of ``pair`` at each time; return the events."""
    events = [bitstamp_event(pair, n) for n in range(len(times))]
    with RecordingWriter(directory / "BITSTAMP.ws.1.0") as writer:
        writer.opened(BITSTAMP_URL, 0.5)
        writer.sent(BITSTAMP_URL, 0.6, json.dumps(
            {"event": "bts:subscribe", "data": {"channel": f"diff_order_book_{pair}"}}))
        writer.received(0.7, b'{"event":"bts:subscription_succeeded","channel":"diff_order_book_%s",'
                        b'"data":{}}' % pair.encode())
        writer.received(0.8, b'{"data":{},"channel":"live_trades_abcusd","event":"trade"}')
        for ts, event in zip(times, events, strict=True):
            writer.received(ts, event)
    return events


async def bts(probe: Probe, event: str, pair: str = "abcusd") -> None:
    probe.send({"event": f"bts:{event}", "data": {"channel": f"diff_order_book_{pair}"}})
    reply = "bts:subscription_succeeded" if event == "subscribe" else "bts:unsubscription_succeeded"
    assert await probe.recv_json() == {"event": reply, "channel": f"diff_order_book_{pair}", "data": {}}


async def test_resubscribe_continues_from_the_current_position(tmp_path: Path) -> None:
    # Three frames at once, then (pace 1000) three more 0.4 s later.
    events = write_bitstamp(tmp_path, [1.0, 1.001, 1.002, 400.0, 400.001, 400.002])
    async with ReplaySimulator(tmp_path, recorded_clock=True, pace=1000) as replay:
        conn = replay.connection("bitstamp")
        assert conn.symbols == ["abcusd"]
        probe = await connect(conn.ws_url)
        await bts(probe, "subscribe")
        assert [await probe.recv() for _ in range(3)] == events[:3]
        await bts(probe, "unsubscribe")
        await bts(probe, "subscribe")  # ack, then on from where the stream stood
        assert [await probe.recv() for _ in range(3)] == events[3:]
        await asyncio.wait_for(conn.done.wait(), 1.0)
        assert conn.frames_sent == 6
        await probe.close()


async def test_a_reconnecting_client_continues_where_the_replay_is(tmp_path: Path) -> None:
    events = write_bitstamp(tmp_path, [1.0, 1.001, 1.002, 400.0, 400.001, 400.002])
    async with ReplaySimulator(tmp_path, recorded_clock=True, pace=1000) as replay:
        conn = replay.connection("bitstamp")
        first = await connect(conn.ws_url)
        await bts(first, "subscribe")
        assert [await first.recv() for _ in range(3)] == events[:3]
        await first.close()
        second = await connect(conn.ws_url)
        await bts(second, "subscribe")
        assert [await second.recv() for _ in range(3)] == events[3:]
        await second.close()


async def test_pace_follows_the_recorded_gaps(tmp_path: Path) -> None:
    events = write_bitstamp(tmp_path, [10.0, 10.5, 11.0])
    async with ReplaySimulator(tmp_path, recorded_clock=True, pace=5.0) as replay:  # 0.1 s apart
        probe = await connect(replay.connection("bitstamp").ws_url)
        await bts(probe, "subscribe")
        arrivals = []
        for event in events:
            assert await probe.recv() == event
            arrivals.append(time.monotonic())
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert all(0.07 < gap < 0.3 for gap in gaps), gaps
        await probe.close()
    async with ReplaySimulator(tmp_path, recorded_clock=True) as replay:  # as fast as possible
        probe = await connect(replay.connection("bitstamp").ws_url)
        await bts(probe, "subscribe")
        start = time.monotonic()
        assert [await probe.recv() for _ in events] == events
        assert time.monotonic() - start < 0.1
        await probe.close()


async def test_rest_snapshot_is_the_earliest_at_or_after_the_replay_position(tmp_path: Path) -> None:
    url = "wss://stream.binance.com:9443/stream?streams=abcusdt@depth@100ms"
    events = [b'{"e":"depthUpdate","E":%d,"s":"ABCUSDT","U":%d,"u":%d,"b":[],"a":[]}' % (n, n, n)
              for n in (1, 2, 3)]
    with RecordingWriter(tmp_path / "BINANCE.ws.1.0") as writer:
        writer.opened(url, 1.0)
        for ts, event in zip((10.0, 30.0, 10000.0), events, strict=True):
            writer.received(ts, b'{"stream":"abcusdt@depth@100ms","data":%s}' % event)
    bodies = {ts: b'{"lastUpdateId":%d,"bids":[],"asks":[]}' % ts for ts in (5, 20, 25)}
    with RecordingWriter(tmp_path / "BINANCE.http.0.0") as writer:
        for ts in (25, 5, 20):  # recorded order need not be time order
            writer.rest("https://api.binance.com/api/v3/depth?symbol=ABCUSDT&limit=1000", ts,
                        bodies[ts])
    async with ReplaySimulator(tmp_path, pace=100) as replay:  # frames 0.2 s apart, then 100 s
        conn = replay.connection("binance")
        depth = f"{conn.rest_url}/api/v3/depth?symbol=ABCUSDT&limit=5"
        assert (await http_get(depth)).body == bodies[5]  # nothing sent yet: the earliest
        probe = await connect(conn.ws_url)
        probe.send({"method": "SUBSCRIBE", "params": ["abcusdt@depth@100ms"], "id": 1})
        assert await probe.recv_json() == {"result": None, "id": 1}
        assert await probe.recv() == events[0]
        assert (await http_get(depth)).body == bodies[20]  # position 10
        assert await probe.recv() == events[1]
        assert (await http_get(depth)).body == bodies[25]  # position 30: none after, the last
        await probe.close()


async def test_coinbase_sequence_numbers_count_acks_heartbeats_and_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CoinbaseReplay, "heartbeat_s", 0.02)
    url = "wss://ws-feed.pro.coinbase.com"
    with RecordingWriter(tmp_path / "COINBASE.ws.1.0") as writer:
        writer.opened(url, 1.0)
        writer.sent(url, 1.1, b'{"type":"subscribe","product_ids":["AB-CD"],"channels":["level2"]}')
        writer.received(2.0, b'{"type":"snapshot","product_id":"AB-CD","asks":[["2.5","1"]],'
                        b'"bids":[["2.0","3.10"],["1.9","4"]]}')
        for n in range(5):
            writer.received(200.0 + n, b'{"type":"l2update","product_id":"AB-CD","changes":'
                            b'[["sell","2.5","%d.0"]],"time":"2021-04-17T16:43:37.07%dZ"}' % (n, n))
    async with ReplaySimulator(tmp_path, pace=1000) as replay:
        conn = replay.connection("coinbase")
        probe = await connect(conn.ws_url)
        probe.send({"type": "subscribe", "channel": "heartbeats"})
        probe.send({"type": "subscribe", "channel": "level2", "product_ids": ["AB-CD"]})
        messages: list[dict[str, Any]] = []
        while sum(m["channel"] == "l2_data" for m in messages) < 6:
            messages.append(await probe.recv_json())
        assert [m["sequence_num"] for m in messages] == list(range(len(messages)))
        acks = [m for m in messages if m["channel"] == "subscriptions"]
        assert messages[0] == acks[0] and len(acks) == 2
        assert acks[1]["events"] == [{"subscriptions": {"level2": ["AB-CD"], "heartbeats": ["heartbeats"]}}]
        assert any(m["channel"] == "heartbeats" for m in messages)
        data = [m for m in messages if m["channel"] == "l2_data"]
        assert data[0]["events"][0]["updates"] == [
            {"side": "bid", "event_time": data[0]["timestamp"], "price_level": "2.0", "new_quantity": "3.10"},
            {"side": "bid", "event_time": data[0]["timestamp"], "price_level": "1.9", "new_quantity": "4"},
            {"side": "offer", "event_time": data[0]["timestamp"], "price_level": "2.5", "new_quantity": "1"},
        ]
        assert [m["events"][0]["updates"] for m in data[1:]] == [
            [{"side": "offer", "event_time": f"2021-04-17T16:43:37.07{n}Z", "price_level": "2.5",
              "new_quantity": f"{n}.0"}] for n in range(5)]
        await probe.close()


async def test_bybit_entries_without_a_price_take_it_from_the_level_id(tmp_path: Path) -> None:
    url = "wss://stream.bybit.com/realtime"
    with RecordingWriter(tmp_path / "BYBIT.ws.1.0") as writer:
        writer.opened(url, 1.0)
        writer.sent(url, 1.1, b'{"op":"subscribe","args":["orderBookL2_25.ABUSD"]}')
        writer.received(1.5, b'{"topic":"orderBookL2_25.ABUSD","type":"delta","data":{"delete":[],'
                        b'"update":[],"insert":[]},"cross_seq":1,"timestamp_e6":1000000}')
        writer.received(2.0, b'{"topic":"orderBookL2_25.ABUSD","type":"snapshot","data":['
                        b'{"price":"1.5","symbol":"ABUSD","id":15,"side":"Buy","size":10},'
                        b'{"price":"1.7","symbol":"ABUSD","id":17,"side":"Buy","size":1e-05},'
                        b'{"price":"2.5","symbol":"ABUSD","id":25,"side":"Sell","size":0.30}],'
                        b'"cross_seq":2,"timestamp_e6":2000000}')
        writer.received(3.0, b'{"topic":"orderBookL2_25.ABUSD","type":"delta","data":{"delete":'
                        b'[{"symbol":"ABUSD","id":15,"side":"Buy"}],"update":[{"symbol":"ABUSD",'
                        b'"id":25,"side":"Sell","size":7}],"insert":[{"price":"2.6","symbol":"ABUSD",'
                        b'"id":26,"side":"Sell","size":2.25}]},"cross_seq":3,"timestamp_e6":3000999}')
    async with ReplaySimulator(tmp_path) as replay:
        conn = replay.connection("bybit")
        probe = await connect(conn.ws_url)
        probe.send({"op": "subscribe", "args": ["orderbook.50.ABUSD"]})
        ack = await probe.recv_json()
        assert ack["success"] is True and ack["op"] == "subscribe" and "req_id" not in ack
        snapshot, delta = await probe.recv(), await probe.recv()
        assert snapshot == (b'{"topic":"orderbook.50.ABUSD","type":"snapshot","ts":2000,"data":{"s":"ABUSD",'
                            b'"b":[["1.7","1e-05"],["1.5","10"]],"a":[["2.5","0.30"]],"u":1,"seq":2},'
                            b'"cts":2000}')
        assert delta == (b'{"topic":"orderbook.50.ABUSD","type":"delta","ts":3000,"data":{"s":"ABUSD",'
                         b'"b":[["1.5","0"]],"a":[["2.5","7"],["2.6","2.25"]],"u":2,"seq":3},"cts":3000}')
        probe.send({"op": "ping", "req_id": "p"})
        pong = await probe.recv_json()
        assert (pong["success"], pong["ret_msg"], pong["op"], pong["req_id"]) == (True, "pong", "ping", "p")
        await probe.close()


async def test_okx_and_bitstamp_keepalives(tmp_path: Path) -> None:
    write_bitstamp(tmp_path, [1.0])
    okx_url = "wss://ws.okx.com:8443/ws/v5/public"
    with RecordingWriter(tmp_path / "OKX.ws.1.0") as writer:
        writer.opened(okx_url, 1.0)
        writer.received(2.0, b'{"arg":{"channel":"books","instId":"A-B"},"action":"snapshot",'
                        b'"data":[{"asks":[],"bids":[],"ts":"1","checksum":0}]}')
    async with ReplaySimulator(tmp_path, recorded_clock=True, venues=["okx", "bitstamp"]) as replay:
        okx = await connect(replay.connection("okx").ws_url)
        okx.send("ping")
        assert await okx.recv() == b"pong"
        okx.send({"op": "subscribe", "args": [{"channel": "books5", "instId": "A-B"}]})
        assert (await okx.recv_json())["code"] == "60018"  # only the recorded channel
        await okx.close()
        bitstamp = await connect(replay.connection("bitstamp").ws_url)
        bitstamp.send({"event": "bts:heartbeat"})
        assert (await bitstamp.recv_json())["event"] == "bts:heartbeat"
        await bitstamp.close()


async def test_a_bad_line_is_reported_and_the_rest_replayed(tmp_path: Path) -> None:
    events = write_bitstamp(tmp_path, [1.0, 2.0])
    path = tmp_path / "BITSTAMP.ws.1.0"
    path.write_bytes(path.read_bytes() + b"garbage line\n3.0: {not json, \"diff_order_book_abcusd\"}\n")
    (tmp_path / "FTX.ws.1.0").write_bytes(b"")
    replay = ReplaySimulator(tmp_path, recorded_clock=True)
    async with replay:
        assert [str(e) for e in replay.errors] == [
            f"{tmp_path / 'FTX.ws.1.0'}: unknown venue 'FTX' (expected one of BINANCE, BITSTAMP, KRAKEN, "
            "OKX, COINBASE, BYBIT)",
            "BITSTAMP.ws.1.0:7: unknown direction 'line' after the URL (expected '<->', '<-' or '->')",
            "BITSTAMP.ws.1.0:8: not JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ]
        probe = await connect(replay.connection("bitstamp").ws_url)
        await bts(probe, "subscribe")
        assert [await probe.recv(), await probe.recv()] == events
        await probe.close()


def test_simulator_rejects_bad_arguments_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown venue 'ftx'"):
        ReplaySimulator(tmp_path, venues=["ftx"])
    with pytest.raises(ValueError, match="pace"):
        ReplaySimulator(tmp_path, pace=0)
    from dragonfly.recording import RecordingError

    with pytest.raises(RecordingError, match="no recorded WebSocket connection"):
        ReplaySimulator(tmp_path).load()


# -- CLI --------------------------------------------------------------------------------------------


def test_cli_bad_directory_is_one_error_line_and_exit_2(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("python -m dragonfly.sim.replay: error: ") and "no such directory" in err
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path), "--pace", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--venues", "ftx"])
    assert capsys.readouterr().err.count("\n") == 2


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    write_bitstamp(tmp_path, [1.0])
    proc = subprocess.Popen([sys.executable, "-m", "dragonfly.sim.replay", str(tmp_path), "--pace", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("bitstamp  BITSTAMP.ws.1.0") and "ws ws://127.0.0.1:" in line
        assert "rest http://127.0.0.1:" in line and line.rstrip().endswith("symbols abcusd")
        assert proc.stdout.readline().startswith("Ctrl-C")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("recorded_clock", [False, True])
async def test_bitstamp_stamps_read_as_now_unless_the_recorded_clock_is_asked_for(
        tmp_path: Path, recorded_clock: bool) -> None:
    # A client dates Bitstamp's data by microtimestamp (a 2022 capture would
    # read as years stale): the replay moves the stamps to its present, one
    # shift for frames and snapshots alike; --recorded-clock keeps every byte.
    events = write_bitstamp(tmp_path, [1.0, 1.5])
    args = [sys.executable, "-m", "dragonfly.sim.replay", str(tmp_path)]
    if recorded_clock:
        args.append("--recorded-clock")
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        ws_url = line.split("ws ", 1)[1].split()[0]
        probe = await connect(ws_url)
        await bts(probe, "subscribe")
        got = [await probe.recv(), await probe.recv()]
        if recorded_clock:
            assert got == events
        else:
            stamps = [json.loads(frame)["data"] for frame in got]
            micros = [int(stamp["microtimestamp"]) for stamp in stamps]
            assert abs(micros[0] / 1e6 - time.time()) < 30 and micros[1] - micros[0] == 1
            assert [int(stamp["timestamp"]) for stamp in stamps] == [m // 1_000_000 for m in micros]
            bids = [json.loads(frame)["data"]["bids"] for frame in got]
            assert bids == [[["1.0", "0.5"]], [["1.0", "1.5"]]]
        await probe.close()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 10)
