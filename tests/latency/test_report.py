"""The report's plot: which lines go in which panel, and in which colour."""

from __future__ import annotations

from pathlib import Path

import pytest

from latency.report import SYSTEM_STYLE, plot, plot_series, subscribers_label
from latency.stats import CellStats, _summarise, histogram, record


def _cell(system: str, rate: float, subs: int, slow: int, e2e_us: list[int], source: str = "") -> CellStats:
    st = CellStats(system, rate, subs, slow, "", source=source)
    st.hists = {key: histogram() for key in ("e2e", "t2q", "hop_in", "hop_out", "staleness")}
    for us in e2e_us:
        for h in st.hists.values():
            record(h, us * 1000)
    _summarise(st)
    return st


def _grid() -> list[CellStats]:
    cells = []
    for rate in (500.0, 1000.0):
        for subs, slow in ((1, 0), (10, 1), (10, 0)):
            for system, base in (("dragonfly", 300), ("relay", 290)):
                us = [base + subs + 50 * slow, base + 10 * subs + 50 * slow, base + 100 * subs]
                cells.append(_cell(system, rate, subs, slow, us))
    cells.append(_cell("dragonfly", 0.0, 1, 0, [250, 260], source="replay okx asap"))
    cells.append(_cell("relay", 0.0, 1, 0, [240, 245], source="replay okx asap"))
    cells.append(CellStats("dragonfly", 2000.0, 1, 0, "server died"))  # failed: drawn nowhere
    return cells


def test_subscriber_sets_are_named_with_their_slow_one() -> None:
    assert subscribers_label(1, 0) == "1 subscriber"
    assert subscribers_label(10, 1) == "10 subscribers (1 slow)"
    assert subscribers_label(10, 0) == "10 subscribers"


def test_each_panel_tells_every_line_apart_and_colours_mean_the_same_everywhere() -> None:
    panels = plot_series(_grid())
    assert list(panels) == [
        "p50 vs load", "p99 vs load", "CDF 500 frames/s", "CDF 1000 frames/s", "CDF replay okx asap",
    ]  # fmt: skip
    colour_of: dict[str, str] = {}
    for title, lines in panels.items():
        looks = [(colour, SYSTEM_STYLE[system]) for system, _, colour, _, _ in lines]
        assert len(set(looks)) == len(looks), f"{title}: two lines look the same"
        for _, label, colour, xs, ys in lines:
            assert colour_of.setdefault(label, colour) == colour, f"{label} changes colour in {title}"
            assert xs and len(xs) == len(ys)
    assert len(set(colour_of.values())) == len(colour_of) == 3
    # The load panels hold the offered-rate cells only, one point per rate, rates ascending.
    p50 = {(system, label): (xs, ys) for system, label, _, xs, ys in panels["p50 vs load"]}
    assert len(p50) == 6
    xs, ys = p50["dragonfly", "10 subscribers (1 slow)"]
    assert xs == [500.0, 1000.0] and all(abs(y - 450) < 1 for y in ys)
    # A CDF ends at 1 and never falls.
    for _, _, _, xs, ys in panels["CDF 500 frames/s"]:
        assert ys == sorted(ys) and abs(ys[-1] - 1.0) < 1e-9 and xs == sorted(xs)


def test_the_plot_is_written_even_when_no_cell_delivered(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot(_grid(), tmp_path / "grid.png")
    plot([CellStats("dragonfly", 500.0, 1, 0, "server died")], tmp_path / "none.png")
    for name in ("grid.png", "none.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
