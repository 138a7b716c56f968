"""Smoke test of ``python -m latency --chaos``: a short run end to end, and what earlier runs found.

The smoke run is one phase (Binance on its diff channel, Bitstamp on its
snapshot channel: both sync machineries) of 12 s of random faults on both
venues, a server subprocess and 10 checking subscribers. It asserts what the
run exists to show, with generous timing: the delivery tolerance on top of
``stale_after`` is 2 s here (0.5 s in the real run), so a loaded machine
cannot turn a slow delivery into a stale book.

The other tests replay, in-process and in a few seconds, server bugs that
chaos runs found (``latency/chaos_repro.py``), so they stay fixed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from latency.chaos import LAYOUTS, ChaosSpec, run_chaos
from latency.chaos_report import headline
from latency.chaos_report import main as reanalyse


@pytest.mark.timeout(90)
async def test_short_chaos_run_publishes_no_wrong_or_stale_book(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    spec = ChaosSpec(minutes=0.2, subs=10, fault_every=1.0, seed=7, phases=1, layouts=LAYOUTS[:1],
                     tolerance=2.0, out=tmp_path)
    lines: list[str] = []
    report = await run_chaos(spec, lines.append)
    figures = dict(headline(report))
    assert not any(p.error for p in report.phases), figures
    assert report.checked > 20 and report.received >= report.checked, figures
    assert report.phases[0].events, "no fault was injected"
    assert report.count("wrong", explained=False) == 0, figures["wrong books published"]
    assert report.count("stale", explained=False) == 0, figures["stale books published as fresh"]
    assert report.count("claim") == 0 and report.inconsistent == 0, figures
    assert report.ok and figures["verdict"] == "PASS"
    assert (tmp_path / "chaos.md").read_text().startswith("# Chaos run")
    assert (tmp_path / "logs" / "chaos-phase1.server.log").exists()
    assert '"type": "fault"' in (tmp_path / "chaos.jsonl").read_text()
    assert reanalyse([str(tmp_path)]) == 0  # chaos.pickle holds all it needs


@pytest.mark.timeout(60)
async def test_bitstamp_diff_book_is_right_after_a_stale_rest_snapshot() -> None:
    """A REST snapshot older than the diff stream is refused, not published (the chaos run found it)."""
    from latency.chaos_repro import bitstamp_rest_stale

    said: list[str] = []  # what the repro saw, wrong books first: the message if it fails
    assert await bitstamp_rest_stale(said.append) == 0, "\n".join(said)


@pytest.mark.timeout(60)
async def test_bitstamp_diff_book_refuses_a_negative_amount() -> None:
    """A diff level with a negative amount resynchronises the book (the chaos run found it published)."""
    from latency.chaos_repro import bitstamp_diff_fault

    said: list[str] = []
    assert await bitstamp_diff_fault("negative,field=amount,count=3", said.append) == 0, "\n".join(said)
