"""latency.scale --quick: a smoke run (2 venues x 2 instruments, 2 s windows) gives every field.

Timing is not judged here: only that each scenario ran, received frames,
published views of the kinds it reads and measured CPU and memory.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from dragonfly.core.aggregator import Aggregator, BaseAggregator
from dragonfly.core.bbo import BboAggregator
from dragonfly.core.liquidity_agg import LiquidityAggregator
from dragonfly.core.types import VenueBook
from latency.scale import KINDS, SCENARIO, SCENARIOS, NullView, _derive, main, null_kinds, summarize

SCENARIO_FIELDS = {
    "scenario", "description", "venues", "instruments", "books", "aggregators_declared",
    "aggregators_read", "aggregators", "window_s", "frames", "frames_per_s", "frames_per_s_by_venue",
    "target_frames_per_s", "cpu_s", "cpu_util", "cpu_us_per_frame", "sim_cpu_util", "sim_processes",
    "kinds", "rss_before_mb", "rss_warm_mb", "rss_end_mb", "rss_delta_mb", "mb_per_book",
    "disconnects", "rejected", "unsynced", "loadavg_1m_end",
}
T2Q_FIELDS = {"p50", "p90", "p99", "p999", "max"}


def test_quick_run_reports_every_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "scale.json"
    # f and n, not defaults: b's hub with no view read (the layers below the
    # aggregators alone), and with every view read but null (b's plumbing).
    assert main(["--quick", "--out", str(out), "--scenarios", ",".join((*SCENARIOS, "f", "n"))]) == 0
    result = json.loads(out.read_text())
    assert result["params"]["venues"] == ["binance", "bitstamp"]
    assert result["params"]["instruments"] == ["ethbtc", "btcusdt"]
    assert set(result["scenarios"]) == {*SCENARIOS, "f", "n"}
    assert result["scenarios"]["f"]["kinds"] == {} and result["scenarios"]["f"]["aggregators_read"] == []
    assert result["scenarios"]["n"]["description"].endswith("(null views)")
    for name, s in result["scenarios"].items():
        assert "error" not in s, s.get("error")
        assert set(s) >= SCENARIO_FIELDS, SCENARIO_FIELDS - set(s)
        sc = SCENARIO[name]
        assert s["books"] == (2 if sc.all_instruments else 1) * 2
        assert s["frames"] > 0 and s["frames_per_s"] > 0
        assert all(rate > 0 for rate in s["frames_per_s_by_venue"].values())
        assert s["cpu_s"] > 0 and 0 < s["cpu_us_per_frame"] < 1e6
        assert s["rss_before_mb"] > 0 and s["rss_warm_mb"] > 0
        assert math.isfinite(s["mb_per_book"])
        assert s["rejected"] == {} and s["unsynced"] == []
        assert s["sync_window"]["gaps"] == s["sync_window"]["resyncs"] == 0, s["sync_window"]
        assert s["sync_total"]["snapshots"] >= s["books"]
        assert set(s["kinds"]) == set(sc.sinks) and set(sc.sinks) <= set(KINDS)
        for kind in s["kinds"].values():
            assert kind["views"] > 0 and kind["views_per_s"] > 0
            assert set(kind["t2q_us"]) == T2Q_FIELDS
            assert 0 < kind["t2q_us"]["p50"] <= kind["t2q_us"]["p99"] <= kind["t2q_us"]["max"]
    derived = result["derived"]
    assert derived["cost_ratio_b_over_a"] > 0 and derived["cost_ratio_c_over_a"] > 0
    assert derived["cost_ratio_f_over_a"] > 0 and derived["cost_ratio_n_over_a"] > 0
    assert math.isfinite(derived["marginal_mb_per_book_b_vs_a"])  # RSS noise may make it <= 0
    assert "| scen |" in capsys.readouterr().out


async def test_null_views_publish_their_times_and_leave_the_rest_of_the_recompute_as_shipped() -> None:
    kinds = null_kinds()
    products: dict[str, type[BaseAggregator[Any]]] = {
        "Aggregator": Aggregator, "BboAggregator": BboAggregator, "LiquidityAggregator": LiquidityAggregator,
    }
    assert set(kinds) == set(products)
    for name, cls in kinds.items():
        assert issubclass(cls, products[name])
        # Only the view (and the liquidity view's reads) differ from the product's class.
        assert {k for k in vars(cls) if not k.startswith("__")} <= {"_view", "read_with"}
        agg = cls("ethbtc", ["binance", "bitstamp"], min_interval=0.0)
        if agg.on_demand:
            agg.read_with("binance", lambda depth: pytest.fail("a null liquidity view read a book"))
        got: list[NullView] = []
        agg.add_sink(got.append)
        producer = agg.producers["binance"]
        producer.put(VenueBook("binance", ((100.0, 1.0),), ((101.0, 1.0),), 123))
        producer.end_burst()
        await asyncio.sleep(0)  # the liquidity kind is deferred: one loop hop
        assert [type(v) for v in got] == [NullView], name
        assert got[0].recv_ns == 123 and got[0].publish_ns >= got[0].recv_ns
        # The recompute around the view runs as shipped: a withdrawal is published too.
        producer.withdraw()
        await asyncio.sleep(0)
        assert len(got) == 2 and agg.last is got[-1], name


def test_a_saturated_hub_is_named_in_the_derived_figures() -> None:
    def scenario(util: float, us: float) -> dict[str, object]:
        return {"cpu_util": util, "cpu_us_per_frame": us, "books": 6, "rss_warm_mb": 50.0}

    calm = _derive({"a": scenario(0.3, 20.0), "b": scenario(0.6, 60.0)})
    assert "saturated" not in calm and calm["cost_ratio_b_over_a"] == 3.0
    full = _derive({"a": scenario(0.3, 20.0), "b": scenario(0.97, 50.0), "c": {"error": "x"}})
    assert full["saturated"].startswith("b: the hub used 0.9 of a core or more")


def test_rounds_report_each_scenario_and_ratio_over_the_rounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scale.json"
    args = ["--quick", "--out", str(out), "--scenarios", "a,b", "--rounds", "2", "--seconds", "0.5"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["params"]["rounds"] == 2 and len(result["rounds"]) == 2
    assert result["scenarios"] == result["rounds"][-1]["scenarios"]  # the table's rows: the last round
    summary = result["summary"]
    assert summary["rounds"] == 2
    per_round = [r["scenarios"]["b"]["cpu_us_per_frame"] for r in result["rounds"]]
    assert summary["cpu_us_per_frame"]["b"]["values"] == per_round
    ratios = [r["derived"]["cost_ratio_b_over_a"] for r in result["rounds"]]
    b_over_a = summary["cost_ratios"]["cost_ratio_b_over_a"]
    assert b_over_a["values"] == ratios
    assert b_over_a["min"] == min(ratios) and b_over_a["max"] == max(ratios)
    text = capsys.readouterr().out
    assert "over 2 rounds" in text and "cost_ratio_b_over_a:" in text


def test_summary_takes_ratios_per_round_and_skips_failed_scenarios() -> None:
    def scenario(us: float) -> dict[str, object]:
        return {"cpu_util": 0.5, "cpu_us_per_frame": us, "books": 6, "rss_warm_mb": 50.0}

    rounds = []
    for a, b in ((20.0, 40.0), (30.0, 45.0), (25.0, 75.0)):
        scenarios: dict[str, Any] = {"a": scenario(a), "b": scenario(b)}
        rounds.append({"scenarios": scenarios, "derived": _derive(scenarios)})
    failed: dict[str, Any] = {"a": scenario(10.0), "b": {"error": "boom"}}
    rounds.append({"scenarios": failed, "derived": _derive(failed)})
    summary = summarize(rounds)
    assert summary["rounds"] == 4
    assert summary["cpu_us_per_frame"]["a"]["values"] == [20.0, 30.0, 25.0, 10.0]
    assert summary["cpu_us_per_frame"]["b"]["values"] == [40.0, 45.0, 75.0]  # the failed round adds none
    ratio = summary["cost_ratios"]["cost_ratio_b_over_a"]
    assert ratio["values"] == [2.0, 1.5, 3.0]  # per round, not a ratio of medians (45/25 = 1.8)
    assert (ratio["min"], ratio["median"], ratio["max"]) == (1.5, 2.0, 3.0)


def test_rounds_out_of_range_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "101"):
        with pytest.raises(SystemExit) as exit_:
            main(["--quick", "--rounds", bad])
        assert exit_.value.code == 2
        assert "--rounds: must be 1..100" in capsys.readouterr().err


def test_a_failed_scenario_in_any_round_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import latency.scale as scale

    calls = []

    def fake_run(args: Any) -> dict[str, Any]:
        calls.append(args.rounds)
        ok = {"scenario": "a", "description": "a", "books": 6, "aggregators": 1, "frames_per_s": 1.0,
              "target_frames_per_s": 1.0, "cpu_us_per_frame": 1.0, "cpu_util": 0.1, "sim_cpu_util": 0.1,
              "kinds": {}, "rss_before_mb": 1.0, "rss_warm_mb": 1.0, "mb_per_book": 0.0}  # fmt: skip
        rounds: list[dict[str, Any]] = [{"scenarios": {"a": {"error": "the hub died"}}, "derived": {}},
                                         {"scenarios": {"a": ok}, "derived": {}}]  # fmt: skip
        return {"scenarios": rounds[-1]["scenarios"], "derived": {}, "rounds": rounds,
                "summary": summarize(rounds)}  # fmt: skip

    monkeypatch.setattr(scale, "run", fake_run)
    assert main(["--quick", "--scenarios", "a", "--rounds", "2", "--out", str(tmp_path / "s.json")]) == 1
    assert calls == [2]
    capsys.readouterr()

