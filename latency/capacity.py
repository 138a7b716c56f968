"""Capacity: the highest offered rate each system serves to 10 subscribers, found by search.

The issue's rule: capacity is the highest update rate at which 10 subscribers
(one of them slow, as in every 10-subscriber cell) still each receive >= 99%
of updates. A probe at rate R runs one cell (:func:`latency.cell.run_cell`)
and passes when every fast subscriber got >= 99% of the published updates
and >= 99% of the sent frames were reflected (so a system cannot pass by
publishing little). Between ``lo`` and ``hi`` the search bisects on a
geometric scale, keeping the highest passing and the lowest failing rate.
A rate passes only when ``confirm`` probes in a row pass there (one failure
fails it): near the threshold a single probe passed or failed by luck, and
two runs of the same search gave ratios of 0.81 and 1.00.

Both systems are probed in turn, round by round (alternating which goes
first), so the drift of the machine falls on both alike; the result is
stated as dragonfly's capacity over the relay's. The report lists every probe.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from latency.cell import CellSpec, run_cell
from latency.stats import CellStats, analyse

SYSTEMS = ("dragonfly", "relay")
SUBSCRIBERS = 10
SHARE = 0.99


def passes(st: CellStats) -> bool:
    """Whether a cell meets the capacity rule (see module doc)."""
    return not st.error and st.delivered_min >= SHARE and st.frames_reflected >= SHARE


@dataclass
class Search:
    """One system's search: its probes and the bracket they leave."""

    system: str
    lo: float
    hi: float
    confirm: int = 2  #: passing probes in a row that make a rate pass
    passed: float = 0.0  #: highest rate passed (0: none)
    failed: float = math.inf  #: lowest rate failed
    probes: list[tuple[float, CellStats]] = field(default_factory=list)
    _streak: tuple[float, int] = (0.0, 0)  # (rate, passing probes in a row there) awaiting confirmation

    def next_rate(self) -> float | None:
        """The rate to probe next, or ``None`` when the bracket is settled."""
        if self._streak[1]:
            return self._streak[0]  # confirm it first
        if not self.probes:
            return self.lo
        if not self.passed:
            return None  # fails at lo already: below the searched range
        if math.isinf(self.failed):
            return None if self.passed >= self.hi else self.hi
        return math.sqrt(self.passed * self.failed)

    def record(self, rate: float, st: CellStats) -> None:
        """Take a probe's result into the bracket."""
        self.probes.append((rate, st))
        if not passes(st):
            self.failed = min(self.failed, rate)
            self._streak = (0.0, 0)
            return
        streak = self._streak[1] + 1 if self._streak[0] == rate else 1
        if streak >= self.confirm:
            self.passed = max(self.passed, rate)
            self._streak = (0.0, 0)
        else:
            self._streak = (rate, streak)

    def describe(self) -> str:
        """The result in words: a rate, or the side of the range it fell out of."""
        if not self.passed:
            return f"below {self.lo:.0f}/s"
        if math.isinf(self.failed):
            return f"at least {self.passed:.0f}/s (the top of the range)"
        return f"{self.passed:.0f}/s (fails at {self.failed:.0f}/s)"


#: Run one cell and analyse it.
Probe = Callable[[CellSpec, Path], Awaitable[CellStats]]


async def probe_cell(spec: CellSpec, workdir: Path) -> CellStats:
    """The real probe: run the cell over loopback and analyse it."""
    return analyse(await run_cell(spec, workdir))


async def search(
    workdir: Path,
    lo: float,
    hi: float,
    steps: int,
    *,
    window_s: float = 3.0,
    warmup_s: float = 1.0,
    confirm: int = 2,
    probe: Probe = probe_cell,
) -> dict[str, Search]:
    """Probe both systems ``steps`` times each (fewer once settled); return their searches."""
    if not 0 < lo < hi:
        raise ValueError(f"capacity range must satisfy 0 < lo < hi, got {lo}..{hi}")
    if confirm < 1:
        raise ValueError(f"confirm must be at least 1, got {confirm}")
    searches = {system: Search(system, lo, hi, confirm) for system in SYSTEMS}
    for step in range(steps):
        order = SYSTEMS if step % 2 == 0 else SYSTEMS[::-1]
        for system in order:
            s = searches[system]
            rate = s.next_rate()
            if rate is None:
                continue
            rate = round(rate)
            # grpc's own window: the question is whether every update gets
            # through, which a small window would trade for freshness.
            spec = CellSpec(
                system, rate, SUBSCRIBERS, 1, warmup_s=warmup_s, window_s=window_s, sub_window=None
            )
            st = await probe(spec, workdir)
            s.record(rate, st)
            verdict = "pass" if passes(st) else "fail"
            print(
                f"  capacity {system:9} {rate:>7.0f}/s: {verdict} (deliv {100 * st.delivered_min:.1f}%, "
                f"frames {100 * st.frames_reflected:.1f}%{', ' + st.error if st.error else ''})",
                file=sys.stderr,
                flush=True,
            )
    return searches


def summary(searches: dict[str, Search]) -> str:
    """Markdown: the result, the ratio and every probe."""
    d, r = searches["dragonfly"], searches["relay"]
    lines = [
        f"Capacity, {SUBSCRIBERS} subscribers (one slow), every fast one >= {SHARE:.0%} of updates "
        f"and of frames ({d.confirm} passing probes in a row), searched between {d.lo:.0f} and "
        f"{d.hi:.0f} msg/s: dragonfly {d.describe()}, "
        f"relay {r.describe()}" + (f"; ratio {d.passed / r.passed:.2f}." if d.passed and r.passed else "."),
        "",
        "| system | rate/s | result | deliv% | frames% | e2e p50 µs | e2e p99 µs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in (d, r):
        for rate, st in s.probes:
            e = st.e2e
            lines.append(
                f"| {s.system} | {rate:.0f} | {'pass' if passes(st) else 'fail'} | "
                f"{100 * st.delivered_min:.1f} | {100 * st.frames_reflected:.1f} | "
                f"{e.p50 if e else float('nan'):.0f} | {e.p99 if e else float('nan'):.0f} |"
            )
    return "\n".join(lines)
