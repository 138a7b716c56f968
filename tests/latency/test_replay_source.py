"""The replay source of the latency harness: recorded frames, stamped as the client counts them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import picows
import pytest

from dragonfly.recording import shared_recordings
from dragonfly.venues import get_venue
from latency.replay_source import ReplaySource, ReplaySpec, instrument_of

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = shared_recordings()
needs_recordings = pytest.mark.skipif(
    RECORDINGS is None, reason="../shared/recordings (or $DRAGONFLY_RECORDINGS) not found"
)


@pytest.mark.parametrize(
    ("venue", "symbol", "instrument"),
    [
        ("binance", "NKNUSDT", "nknusdt"),
        ("kraken", "XBT/USD", "btcusd"),
        ("coinbase", "BTC-USD", "btcusd"),
        ("okx", "BTC-USDT", "btcusdt"),
    ],
)
def test_a_recorded_symbol_maps_back_to_its_instrument(venue: str, symbol: str, instrument: str) -> None:
    assert instrument_of(venue, symbol) == instrument
    assert get_venue(venue).venue_symbol(instrument) == symbol


def test_a_symbol_no_instrument_spells_is_refused() -> None:
    assert instrument_of("kraken", "XBTUSD") is None  # Kraken spells it XBT/USD


@needs_recordings
async def test_frames_wait_for_the_gate_and_every_send_is_logged() -> None:
    assert RECORDINGS is not None
    source = ReplaySource(ReplaySpec(str(RECORDINGS), "binance", None))
    await source.start()
    got: list[bytes] = []

    class Client(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            got.append(frame.get_payload_as_bytes())

    try:
        url = source.ws_urls()["binance"]
        transport, _ = await picows.ws_connect(Client, url)
        channel = get_venue("binance").diff
        assert channel is not None
        for frame in channel.subscribe([source.symbol]):
            transport.send(picows.WSMsgType.TEXT, frame)
        for _ in range(200):
            if source.subscribed():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert len(got) == 1  # the ack only: the frames are held
        source.go()
        await asyncio.wait_for(source.done.wait(), 10)
        await asyncio.sleep(0.2)
        log = source.send_log("binance")
        assert len(got) == 1 + source.frames == len(log) - 1  # log[k]: frame k, from 1
        assert list(log[1:]) == sorted(log[1:]) and log[1] > 0
        transport.disconnect()
    finally:
        await source.stop()


@needs_recordings
@pytest.mark.timeout(120)
def test_a_replay_run_reports_both_systems(tmp_path: Path) -> None:
    pytest.importorskip("hdrh")
    pytest.importorskip("matplotlib")
    proc = subprocess.run(
        [sys.executable, "-m", "latency", "--replay", str(RECORDINGS), "--replay-venues", "okx",
         "--asap", "--subs", "1", "--peer-runs", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "table.txt").read_text()
    rows = [line.split() for line in table.splitlines() if "replay okx asap" in line]
    systems = {r[0] for r in rows}
    assert {"dragonfly", "relay"} <= systems, table
    assert "error" not in table
