"""``python -m dragonfly.replay`` and ``python -m dragonfly.record`` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reference import recordings_dir, reference_books

from dragonfly.recording import Received, Rest, Sent, read_recording
from dragonfly.replay.run import replay
from dragonfly.sim import Simulator

RECORDINGS = recordings_dir()
needs_recordings = pytest.mark.skipif(
    RECORDINGS is None,
    reason="no recordings: set DRAGONFLY_RECORDINGS or put ../shared/recordings beside the repo",
)
REPLAY = [sys.executable, "-m", "dragonfly.replay"]


@needs_recordings
def test_final_books_as_json_lines() -> None:
    assert RECORDINGS is not None
    proc = subprocess.run(
        [*REPLAY, str(RECORDINGS), "--venue", "okx", "--depth", "5", "--final-books"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    books = [json.loads(line) for line in proc.stdout.splitlines()]
    expected, _ = reference_books(RECORDINGS, "okx")
    assert {b["symbol"] for b in books} == set(expected)
    for book in books:
        assert book["venue"] == "okx"
        ref = expected[book["symbol"]]
        assert book["bids"] == [list(lv) for lv in ref.bids[:5]]
        assert book["asks"] == [list(lv) for lv in ref.asks[:5]]
    assert "okx: messages=" in proc.stderr and "checksums_ok=290 checksums_bad=0" in proc.stderr
    assert "msg/s" in proc.stderr


@needs_recordings
def test_bad_lines_and_unknown_venues_are_reported_and_the_rest_replays(tmp_path: Path) -> None:
    assert RECORDINGS is not None
    for f in RECORDINGS.glob("BITSTAMP.*"):
        shutil.copy(f, tmp_path / f.name)
    with (tmp_path / "BITSTAMP.ws.1.0").open("a") as fh:
        fh.write("this is not a recording line\n")
    (tmp_path / "NOWHERE.ws.1.0").write_text("wss://x <-> 1.0\n")
    proc = subprocess.run(
        [*REPLAY, str(tmp_path), "--final-books"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "NOWHERE.ws.1.0" in proc.stderr and "unknown venue" in proc.stderr
    assert "BITSTAMP.ws.1.0:" in proc.stderr  # file:line of the bad line
    assert len(proc.stdout.splitlines()) == 10  # every Bitstamp book still synchronised


def test_missing_directory_is_one_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([*REPLAY, str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "error: not a directory" in proc.stderr and "Traceback" not in proc.stderr


async def test_recorder_captures_a_session_that_replays(tmp_path: Path) -> None:
    """Record the simulator's Bitstamp diff feed, then replay the capture."""
    async with Simulator(venues=["bitstamp"], instruments=["ethbtc"], seed=5, period_s=0.02) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dragonfly.record", str(tmp_path), "--venue", "bitstamp",
            "--instrument", "ethbtc", "--endpoint", sim.ws_url("bitstamp"), "--duration", "1.5",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
    ws = tmp_path / "BITSTAMP.ws.1.0"
    http = tmp_path / "BITSTAMP.http.1.0"
    records = list(read_recording(ws))
    assert any(isinstance(r, Sent) and b"diff_order_book_ethbtc" in r.payload for r in records)
    assert sum(isinstance(r, Received) for r in records) > 10
    assert [r for r in read_recording(http) if isinstance(r, Rest)], "the REST snapshot was not recorded"
    result = await replay(tmp_path)
    (book,) = [sync for venue, sync in result.books if venue == "bitstamp"]
    assert book.symbol == "ethbtc" and len(book.book) > 0
    assert result.venues["bitstamp"].gaps == 0


@needs_recordings
async def test_older_binance_v1_snapshot_urls_replay_the_same(tmp_path: Path) -> None:
    assert RECORDINGS is not None
    for f in RECORDINGS.glob("BINANCE.*"):
        text = f.read_text().replace("/api/v3/depth", "/api/v1/depth")
        (tmp_path / f.name).write_text(text)
    expected, _ = reference_books(tmp_path, "binance")
    result = await replay(tmp_path)
    got = {sync.symbol: sync.book.top(len(sync.book)) for _, sync in result.books}
    as_floats = {
        s: tuple(tuple((float(p), float(a)) for p, a in side) for side in (b.bids, b.asks))
        for s, b in expected.items()
    }
    assert got == as_floats


@needs_recordings
def test_a_capture_of_a_channel_the_adapter_does_not_use_ends_with_a_clear_error(tmp_path: Path) -> None:
    """It used to log each rejection and then wait until killed."""
    assert RECORDINGS is not None
    capture = (RECORDINGS / "OKX.ws.1.0").read_text().replace('"books"', '"books-l2-tbt"')
    (tmp_path / "OKX.ws.1.0").write_text(capture)
    proc = subprocess.run(
        [*REPLAY, str(tmp_path), "--final-books"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the replay server refused every recorded book: okx rejected")
    assert "books" in last and proc.stdout == ""
