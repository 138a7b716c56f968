"""Smoke test of the latency harness: ``python -m latency --quick`` end to end (no thresholds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(110)
def test_quick_run_writes_report_plot_and_table(tmp_path: Path) -> None:
    pytest.importorskip("hdrh")
    pytest.importorskip("matplotlib")
    pytest.importorskip("psutil")
    proc = subprocess.run(
        [sys.executable, "-m", "latency", "--quick", "--out", str(tmp_path)],
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
    assert "Per-message diff processing, every venue" in report
    rows = {}
    for line in table.splitlines():
        cols = line.split()
        if cols and cols[0] in ("dragonfly", "relay") and len(cols) >= 20:
            rows[(cols[0], cols[2])] = cols
    assert {system for system, _ in rows} == {"dragonfly", "relay"}, table
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
