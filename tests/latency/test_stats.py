"""Pooling the segments of a cell measured in turns."""

from __future__ import annotations

from latency.__main__ import pooled
from latency.stats import CellStats, _summarise, histogram, pool, record


def _segment(system: str, e2e_us: list[int], delivered: float, cpu: float, error: str = "") -> CellStats:
    st = CellStats(system, 500.0, 10, 1, error)
    if error:
        return st
    st.hists = {key: histogram() for key in ("e2e", "t2q", "hop_in", "hop_out", "staleness")}
    for us in e2e_us:
        for key in st.hists:
            record(st.hists[key], us * 1000)
    _summarise(st)
    st.delivered_min, st.frames_reflected = delivered, delivered
    st.achieved_rate = st.updates_per_s = 500.0
    st.cpu = {"server": cpu}
    st.cpu_us_per_msg = cpu * 1000
    st.peak_rss_mb = 40 + cpu
    return st


def test_pool_takes_percentiles_of_all_samples_and_the_worst_shares() -> None:
    fast = _segment("dragonfly", [100] * 60, 1.0, 0.2)
    slow = _segment("dragonfly", [1000] * 40, 0.95, 0.4)
    st = pool([fast, slow])
    assert st.segments == 2 and not st.error
    assert st.e2e is not None and st.e2e.count == 100
    assert abs(st.e2e.p50 - 100) < 1 and abs(st.e2e.p90 - 1000) < 2  # not a mean of the two p50s
    assert st.delivered_min == st.frames_reflected == 0.95
    assert abs(st.cpu["server"] - 0.3) < 1e-9 and st.peak_rss_mb == 40.4
    assert fast.e2e is not None and fast.e2e.count == 60  # the segments are left as they were


def test_a_failed_segment_fails_the_pooled_cell() -> None:
    st = pool([_segment("relay", [100], 1.0, 0.1), _segment("relay", [], 0.0, 0.0, error="server died")])
    assert st.error == "1 of 2 segments failed: server died"


def test_pooled_groups_by_system_and_keeps_single_cells() -> None:
    a1, b1 = _segment("dragonfly", [100], 1.0, 0.1), _segment("relay", [90], 1.0, 0.1)
    b2, a2 = _segment("relay", [95], 1.0, 0.1), _segment("dragonfly", [110], 1.0, 0.1)
    solo = CellStats("dragonfly", 1000.0, 1, 0, "")
    out = pooled([a1, b1, b2, a2, solo])
    assert [(s.system, s.segments) for s in out] == [("dragonfly", 2), ("relay", 2), ("dragonfly", 1)]
    assert out[2] is solo
