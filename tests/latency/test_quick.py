"""Smoke test of the latency harness: ``python -m latency --quick`` end to end, each path (no thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


#: Each path's systems: dragonfly and its null relay (latency.cell.FLOOR).
SYSTEMS = {"grpc": ("dragonfly", "relay"), "fix": ("dragonfly-fix", "relay-fix")}


@pytest.mark.timeout(110)
@pytest.mark.parametrize("path", ["grpc", "fix"])
def test_quick_run_writes_report_plot_and_table(tmp_path: Path, path: str) -> None:
    pytest.importorskip("hdrh")
    pytest.importorskip("matplotlib")
    pytest.importorskip("psutil")
    # The peer comparison once is enough: with the gRPC path.
    peers = [] if path == "grpc" else ["--peer-runs", "0"]
    proc = subprocess.run(
        [sys.executable, "-m", "latency", "--quick", "--paths", path, *peers, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    png = (tmp_path / "latency.png").read_bytes()
    table = (tmp_path / "table.txt").read_text()
    assert png.startswith(b"\x89PNG")
    assert "dragonfly / relay" in report
    assert ("Per-message diff processing, every venue" in report) == (path == "grpc")
    rows = {}
    for line in table.splitlines():
        cols = line.split()
        if cols and cols[0] in (*SYSTEMS["grpc"], *SYSTEMS["fix"]) and len(cols) >= 20:
            rows[(cols[0], cols[2])] = cols
    assert {system for system, _ in rows} == set(SYSTEMS[path]), table
    ratio_rows = [line.split() for line in table.splitlines() if line.startswith(f"  {path} ")]
    assert len(ratio_rows) == 2, table  # dragonfly / relay at 1 and 2 subscribers
    for cols in rows.values():
        sent_per_s, updates_per_s = float(cols[3]), float(cols[4])
        p50, p99, latency_max = float(cols[5]), float(cols[7]), float(cols[9])
        delivered = float(cols[15])
        assert 500 <= sent_per_s <= 1500  # offered 1000/s
        assert 0 < updates_per_s <= sent_per_s * 1.05
        assert 0 < p50 <= p99 <= latency_max
        assert 0 < delivered <= 100
        assert float(cols[19]) > 5  # peak RSS of the server, MB
    for (system, _), cols in rows.items():
        if system.startswith("dragonfly"):
            # Both venues in the merge: every frame (either venue's) moves the top of the book.
            # A venue kept out (stale stamps: it was Bitstamp) halves this.
            assert float(cols[4]) > 0.7 * float(cols[3]), table
    assert "error" not in table


def test_the_generator_stamps_bitstamp_frames_with_the_time_they_leave() -> None:
    from latency.frames import bitstamp_order_book
    from latency.generator import VenueServer, restamp_bitstamp

    frame = bitstamp_order_book(1)[0]
    now = 1_796_000_000_123_456_789
    out = restamp_bitstamp(frame, now)
    data, was = json.loads(out)["data"], json.loads(frame)["data"]
    assert (data["timestamp"], data["microtimestamp"]) == ("1796000000", "1796000000123456")
    assert {**data, "timestamp": was["timestamp"], "microtimestamp": was["microtimestamp"]} == was
    sent: list[bytes] = []
    server = VenueServer("bitstamp", [frame])
    server.streams = [SimpleNamespace(subscribed=True, transport=object(), send=sent.append)]  # type: ignore[list-item]
    before = time.time_ns() // 1000
    server.send_next()
    assert before <= int(json.loads(sent[0])["data"]["microtimestamp"]) <= time.time_ns() // 1000
