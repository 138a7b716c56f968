"""The capacity search, on a fake probe with a known threshold per system."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from latency.capacity import passes, search, summary
from latency.cell import CellSpec
from latency.stats import CellStats

LIMITS = {"dragonfly": 1100.0, "relay": 1300.0}


def _cell(spec: CellSpec, delivered: float, reflected: float = 1.0, error: str = "") -> CellStats:
    st = CellStats(spec.system, spec.rate, spec.subscribers, spec.slow, error)
    st.delivered_min, st.frames_reflected = delivered, reflected
    return st


async def test_the_search_brackets_each_systems_limit(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []

    async def probe(spec: CellSpec, workdir: Path) -> CellStats:
        assert spec.subscribers == 10 and spec.slow == 1
        seen.append((spec.system, spec.rate))
        return _cell(spec, 1.0 if spec.rate <= LIMITS[spec.system] else 0.9)

    result = await search(tmp_path, 250, 8000, 12, confirm=1, probe=probe)
    for system, limit in LIMITS.items():
        s = result[system]
        assert s.passed <= limit < s.failed
        assert s.failed / s.passed < 1.1  # twelve probes narrow 250..8000 to within 10%
    # Round by round, alternating which system goes first.
    assert [system for system, _ in seen[:4]] == ["dragonfly", "relay", "relay", "dragonfly"]
    text = summary(result)
    assert f"ratio {result['dragonfly'].passed / result['relay'].passed:.2f}" in text
    assert text.count("| dragonfly |") == 12


async def test_out_of_range_results_are_said_as_such(tmp_path: Path) -> None:
    async def probe(spec: CellSpec, workdir: Path) -> CellStats:
        return _cell(spec, 1.0 if spec.system == "relay" else 0.5)

    result = await search(tmp_path, 250, 8000, 6, probe=probe)
    assert result["dragonfly"].describe() == "below 250/s" and len(result["dragonfly"].probes) == 1
    # Passing needs two probes in a row: 250 twice, then 8000 twice.
    assert result["relay"].describe().startswith("at least 8000/s") and len(result["relay"].probes) == 4
    assert "ratio" not in summary(result).splitlines()[0]


async def test_a_rate_passes_only_when_confirmed(tmp_path: Path) -> None:
    luck = {"dragonfly": iter([1.0, 0.9, 1.0, 1.0]), "relay": iter([1.0, 1.0, 1.0, 1.0])}

    async def probe(spec: CellSpec, workdir: Path) -> CellStats:
        return _cell(spec, next(luck[spec.system]))

    result = await search(tmp_path, 250, 8000, 4, probe=probe)
    d, r = result["dragonfly"], result["relay"]
    # dragonfly passed 250 once, then failed it: 250 is a failure, the search stops.
    assert [rate for rate, _ in d.probes] == [250, 250] and d.describe() == "below 250/s"
    assert [rate for rate, _ in r.probes] == [250, 250, 8000, 8000] and r.passed == 8000


def test_a_probe_passes_only_with_both_shares_and_no_error() -> None:
    spec = CellSpec("dragonfly", 1000, 10, 1)
    assert passes(_cell(spec, 0.995, 0.999))
    assert not passes(_cell(spec, 0.98, 1.0))
    assert not passes(_cell(spec, 1.0, 0.5))  # publishing little is not delivering
    assert not passes(_cell(spec, 1.0, 1.0, error="server died"))
    with pytest.raises(ValueError, match="lo < hi"):
        asyncio.run(search(Path("."), 100, 50, 1))
