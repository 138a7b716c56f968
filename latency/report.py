"""Write the results: a table on stdout, a Markdown report and a PNG plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from latency.capacity import passes
from latency.peers import PeerResult
from latency.stats import CellStats, Summary

COLUMNS = (
    "system", "rate", "subs", "sent/s", "upd/s", "e2e p50", "p90", "p99", "p99.9", "max",
    "t2q p50", "t2q p99", "in p50", "out p50", "stale p99", "deliv%", "srv cpu", "sub cpu",
    "cpu us/msg", "rss MB",
)


def _f(x: float, digits: int = 0) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def row(st: CellStats) -> list[str]:
    """The table row of one cell (latencies in µs)."""
    if st.error:
        return [st.system, _rate(st), f"{st.subscribers}", "error: " + st.error[:60]]
    e, t, hi, ho, sl = st.e2e, st.t2q, st.hop_in, st.hop_out, st.staleness
    assert e and t and hi and ho and sl
    return [
        st.system, _rate(st), f"{st.subscribers}{'*' if st.slow else ''}", _f(st.achieved_rate),
        _f(st.updates_per_s), _f(e.p50), _f(e.p90), _f(e.p99), _f(e.p999), _f(e.max),
        _f(t.p50, 1), _f(t.p99, 1), _f(hi.p50), _f(ho.p50), _f(sl.p99), _f(100 * st.delivered_min, 1),
        _f(100 * st.cpu.get("server", 0.0)) + "%", _f(100 * st.cpu.get("subscribers", 0.0)) + "%",
        _f(st.cpu_us_per_msg, 1), _f(st.peak_rss_mb, 1),
    ]


def text_table(stats: Sequence[CellStats]) -> str:
    """A fixed-width table of every cell."""
    rows = [list(COLUMNS)] + [row(s) for s in stats]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _key(st: CellStats) -> tuple[str, float, int, int]:
    return (st.source, st.rate, st.subscribers, st.slow)


def _rate(st: CellStats) -> str:
    """The offered rate, or what was replayed."""
    return st.source or _f(st.rate)


def ratios(stats: Sequence[CellStats]) -> list[list[str]]:
    """dragonfly / relay for each (rate, subscribers) measured for both."""
    relay = {_key(s): s for s in stats if s.system == "relay" and not s.error}
    out = []
    for s in stats:
        r = relay.get(_key(s))
        if s.system != "dragonfly" or s.error or r is None or not (s.e2e and r.e2e):
            continue
        out.append([
            _rate(s), f"{s.subscribers}{'*' if s.slow else ''}",
            _f(s.e2e.p50 / r.e2e.p50, 2), _f(s.e2e.p99 / r.e2e.p99, 2),
            _f(s.updates_per_s / r.updates_per_s, 2) if r.updates_per_s else "-",
            _f(s.cpu_us_per_msg / r.cpu_us_per_msg, 2) if r.cpu_us_per_msg else "-",
            _f(100 * s.delivered_min, 1), _f(100 * r.delivered_min, 1),
        ])
    return out


def grid_capacity(stats: Sequence[CellStats], system: str, subscribers: int = 10) -> float:
    """The highest rate of the grid that meets the capacity rule (:func:`latency.capacity.passes`)."""
    best = 0.0
    for s in stats:
        if s.system == system and s.subscribers == subscribers and passes(s):
            best = max(best, s.rate)
    return best


def peers_rows(peers: Sequence[PeerResult]) -> list[list[str]]:
    """Per-message processing rows, with the ratio to dragonfly."""
    base = next((p.us_per_msg for p in peers if p.name.startswith("dragonfly")), float("nan"))
    return [
        [p.name, _f(p.us_per_msg, 1), "-" if math.isnan(p.us_per_msg) else _f(p.us_per_msg / base, 2), p.note]
        for p in peers
    ]


def plot(stats: Sequence[CellStats], path: Path) -> None:
    """Latency percentiles against offered load, and the e2e CDFs, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    groups: dict[tuple[str, int, int], list[CellStats]] = {}
    for s in stats:
        if not s.error and s.e2e and s.e2e.count and not s.source:  # replays have no offered rate
            groups.setdefault((s.system, s.subscribers, s.slow), []).append(s)
    for (system, subs, _), cells in sorted(groups.items()):
        cells.sort(key=lambda c: c.rate)
        rates = [c.rate for c in cells]
        for attr, style in (("p50", "-o"), ("p99", "--s")):
            ys = [getattr(c.e2e, attr) for c in cells]
            ax1.plot(rates, ys, style, label=f"{system} {subs} subs {attr}")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("offered venue frames/s (all venues)")
    ax1.set_ylabel("end-to-end latency (µs)")
    ax1.set_title("e2e latency vs offered load")
    if groups:
        ax1.legend(fontsize=7)
    for s in stats:
        h = s.hists.get("e2e")
        if s.error or h is None or h.get_total_count() == 0:
            continue
        xs, ys = [], []
        for item in h.get_recorded_iterator():
            xs.append(item.value_iterated_to / 1e3)
            ys.append(item.total_count_to_this_value / h.get_total_count())
        where = s.source or f"{s.rate:.0f}/s"
        ax2.plot(xs, ys, label=f"{s.system} {where} {s.subscribers} subs")
    ax2.set_xscale("log")
    ax2.set_xlabel("end-to-end latency (µs)")
    ax2.set_ylabel("fraction of updates")
    ax2.set_title("e2e latency CDF")
    ax2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(
    stats: Sequence[CellStats],
    peers: Sequence[PeerResult],
    n_frames: int,
    context: str,
    soak: str = "",
    capacity: str = "",
) -> str:
    """The whole report."""
    parts = ["# dragonfly latency report", "", context, "", "## Cells", ""]
    parts.append(markdown_table(COLUMNS, [row(s) for s in stats]))
    parts += [
        "",
        "Latencies in µs. `subs` with `*`: one of them is the slow subscriber (excluded from the "
        "percentiles). `t2q`: engine receive -> merged bytes queued (`publish_ns - recv_ns`); `in`: "
        "generator send -> server receive; `out`: server publish -> subscriber receive; `stale p99`: "
        "time until each sent frame is reflected at a fast subscriber; `deliv%`: worst fast "
        "subscriber's share of published updates; cpu: share of one core over the window.",
        "",
        "## dragonfly / relay (the transport floor), same run, alternating",
        "",
        markdown_table(
            ("rate", "subs", "e2e p50 ratio", "e2e p99 ratio", "upd/s ratio", "cpu/msg ratio",
             "dragonfly deliv%", "relay deliv%"),
            ratios(stats),
        ),
        "",
    ]
    cap_d, cap_r = grid_capacity(stats, "dragonfly"), grid_capacity(stats, "relay")
    parts.append(
        f"Capacity (highest tested rate, 10 subscribers, all fast ones >= 99% of updates and frames): "
        f"dragonfly {cap_d:.0f}/s, relay {cap_r:.0f}/s"
        + (f", ratio {cap_d / cap_r:.2f}" if cap_r else "")
        + "."
    )
    if capacity:
        parts += ["", "## Capacity (search)", "", capacity]
    if peers:
        parts += ["", f"## Per-message Binance diff processing ({n_frames} recorded depthUpdate frames)", ""]
        parts.append(markdown_table(("implementation", "µs/msg", "x dragonfly", "note"), peers_rows(peers)))
    if soak:
        parts += ["", "## Soak", "", soak]
    parts += ["", "![latency](latency.png)", ""]
    return "\n".join(parts)


def percentiles_line(name: str, s: Summary | None) -> str:
    """One line of percentiles."""
    if s is None:
        return f"{name}: -"
    return f"{name}: p50 {s.p50:.1f} p90 {s.p90:.1f} p99 {s.p99:.1f} p99.9 {s.p999:.1f} max {s.max:.1f} µs"
