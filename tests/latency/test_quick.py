"""Smoke test of the latency harness: ``python -m latency --quick`` end to end, each path (no thresholds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    assert "error" not in table
