"""Write the results: a table on stdout, a Markdown report and a PNG plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from latency.capacity import passes
from latency.cell import FLOOR, PATH
from latency.peers import TABLE_HEAD, PeerResult, caption, table_rows
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


#: The columns of :func:`ratios`.
RATIO_COLUMNS = (
    "path", "rate", "subs", "e2e p50 ratio", "e2e p99 ratio", "upd/s ratio", "cpu/msg ratio",
    "dragonfly deliv%", "relay deliv%",
)


def ratios(stats: Sequence[CellStats]) -> list[list[str]]:
    """dragonfly / its null relay (the same transport: gRPC or FIX) for each (rate, subscribers) measured
    for both; the first column is the path."""
    relay = {(s.system, *_key(s)): s for s in stats if s.system in FLOOR.values() and not s.error}
    out = []
    for s in stats:
        floor = FLOOR.get(s.system)
        r = relay.get((floor, *_key(s))) if floor else None
        if s.error or r is None or not (s.e2e and r.e2e):
            continue
        out.append([
            PATH[s.system], _rate(s), f"{s.subscribers}{'*' if s.slow else ''}",
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
    """Per-message processing rows, venue by venue, with the per-round ratio to dragonfly
    (columns: :data:`latency.peers.TABLE_HEAD`)."""
    return table_rows(peers)


#: Line style of each system in the plot: the floors dashed, the FIX path dotted.
SYSTEM_STYLE: dict[str, Literal["-", "--", ":", "-."]] = {
    "dragonfly": "-", "relay": "--", "dragonfly-fix": ":", "relay-fix": "-.",
    "relay-decode": ":", "relay-fix-decode": ":",
}
#: One line of a plot panel: system, subscriber set, colour, xs, ys.
Line = tuple[str, str, str, list[float], list[float]]


def subscribers_label(subscribers: int, slow: int) -> str:
    """``10 subscribers (1 slow)``: a subscriber set as the plot's legend names it."""
    text = f"{subscribers} subscriber{'' if subscribers == 1 else 's'}"
    return f"{text} ({slow} slow)" if slow else text


def _where(st: CellStats) -> tuple[int, float, str]:
    """Sort key and title of the traffic a cell carried: offered rates first, then replays."""
    return (0, st.rate, f"{st.rate:g} frames/s") if not st.source else (1, 0.0, st.source)


def plot_series(stats: Sequence[CellStats]) -> dict[str, list[Line]]:
    """What :func:`plot` draws: panel title -> its :data:`Line` s.

    Panels: ``p50 vs load`` and ``p99 vs load`` (offered-rate cells only; x: offered frames/s,
    y: e2e µs) and one ``CDF <traffic>`` per offered rate or replay (x: e2e µs, y: fraction).
    A subscriber set has one colour in every panel; :data:`SYSTEM_STYLE` tells the systems apart.
    """
    cells = [s for s in stats if not s.error and s.e2e is not None and s.e2e.count]
    sets = sorted({(s.subscribers, s.slow) for s in cells})
    colour = {key: f"C{i % 10}" for i, key in enumerate(sets)}
    panels: dict[str, list[Line]] = {}
    by_line: dict[tuple[str, int, int], list[CellStats]] = {}
    for s in cells:
        if not s.source:  # replays have no offered rate
            by_line.setdefault((s.system, s.subscribers, s.slow), []).append(s)
    for line in by_line.values():
        line.sort(key=lambda c: c.rate)
    for attr in ("p50", "p99"):
        for (system, subs, slow), line in sorted(by_line.items()):
            ys = [float(getattr(c.e2e, attr)) for c in line]
            panels.setdefault(f"{attr} vs load", []).append(
                (system, subscribers_label(subs, slow), colour[subs, slow], [c.rate for c in line], ys)
            )
    for s in sorted(cells, key=lambda c: (_where(c), c.subscribers, c.slow, c.system)):
        h = s.hists.get("e2e")
        if h is None or h.get_total_count() == 0:
            continue
        xs, ys = [], []
        for item in h.get_recorded_iterator():
            xs.append(item.value_iterated_to / 1e3)
            ys.append(item.total_count_to_this_value / h.get_total_count())
        panels.setdefault(f"CDF {_where(s)[2]}", []).append(
            (s.system, subscribers_label(s.subscribers, s.slow), colour[s.subscribers, s.slow], xs, ys)
        )
    return panels


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis ``200``, ``500``, ``1000`` (not ``2x10^2``); minor ticks as the span allows."""
    from matplotlib.ticker import FuncFormatter

    def major(value: float, _: object) -> str:
        return f"{value:g}"

    def minor(value: float, _: object) -> str:
        lo, hi = sorted(axis.get_view_interval())
        if lo <= 0 or hi / lo > 30 or value <= 0:  # wide enough for the decades alone
            return ""
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return f"{value:g}" if hi / lo <= 3 or mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(major))
    axis.set_minor_formatter(FuncFormatter(minor))


def plot(stats: Sequence[CellStats], path: Path) -> None:
    """Latency percentiles against offered load, and the e2e CDFs, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = plot_series(stats)
    load = [t for t in panels if t.endswith("vs load")]
    cdfs = [t for t in panels if t.startswith("CDF ")]
    cols = min(max(len(cdfs), 2), 3)
    rows = (1 if load else 0) + max(1, -(-len(cdfs) // cols))
    fig = plt.figure(figsize=(5.2 * cols, 4.2 * rows + 0.8))
    grid = fig.add_gridspec(rows, 6)  # 6 columns: 2 load panels of 3, CDFs of 6 // cols
    for i, title in enumerate(load):
        ax = fig.add_subplot(grid[0, 3 * i : 3 * i + 3])
        for system, _, colour, xs, ys in panels[title]:
            ax.plot(xs, ys, SYSTEM_STYLE.get(system, ":"), color=colour, marker="o", markersize=4)
        ax.set(xscale="log", yscale="log", title=f"e2e {title}",
               xlabel="offered venue frames/s (all venues)", ylabel="end-to-end latency (µs)")  # fmt: skip
        _plain_log_ticks(ax.xaxis)
        _plain_log_ticks(ax.yaxis)
        ax.grid(True, which="both", alpha=0.3)
    span = 6 // cols
    for i, title in enumerate(cdfs):
        r, c = (1 if load else 0) + i // cols, i % cols
        ax = fig.add_subplot(grid[r, span * c : span * c + span])
        for system, _, colour, xs, ys in panels[title]:
            ax.plot(xs, ys, SYSTEM_STYLE.get(system, ":"), color=colour)
        ax.set(xscale="log", title=f"e2e {title}", xlabel="end-to-end latency (µs)",
               ylabel="fraction of updates")  # fmt: skip
        _plain_log_ticks(ax.xaxis)
        ax.grid(True, which="both", alpha=0.3)
    if not panels:
        fig.text(0.5, 0.5, "no cell delivered any update", ha="center", va="center")
    ran = {s.system for s in stats}
    handles = [
        Line2D([], [], color="0.3", linestyle=ls, label=system)
        for system, ls in SYSTEM_STYLE.items()
        if system in ran
    ]
    seen: dict[str, str] = {}
    for lines in panels.values():
        for _, label, colour, _, _ in lines:
            seen.setdefault(label, colour)
    handles += [Line2D([], [], color=colour, linewidth=3, label=label) for label, colour in seen.items()]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (4.2 * rows + 0.8)))
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
        "subscriber's share of published updates; cpu: share of one core over the window. "
        "`-fix` systems: dragonfly's FIX gateway and the null FIX relay, read by FIX clients; there "
        "dragonfly's `publish_ns` is the view's DFPublishNs (20002), stamped as the aggregator starts "
        "the merge, so its `t2q` leaves out the merge, the sinks before the gateway's and the W's "
        "encoding: they land in `out` (gRPC's is stamped as the Summary is encoded).",
        "",
        "## dragonfly / relay (the transport floor), same run, alternating",
        "",
        "Each path against its own null relay: gRPC (`latency.relay`) and FIX (`latency.fix_relay`).",
        "",
        markdown_table(RATIO_COLUMNS, ratios(stats)),
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
        parts += ["", f"## Per-message diff processing, every venue ({n_frames} recorded update frames)", ""]
        parts.append(markdown_table(TABLE_HEAD, peers_rows(peers)))
        parts += ["", *(f"- {line}" for line in caption())]
    if soak:
        parts += ["", "## Soak", "", soak]
    parts += ["", "![latency](latency.png)", ""]
    return "\n".join(parts)


def percentiles_line(name: str, s: Summary | None) -> str:
    """One line of percentiles."""
    if s is None:
        return f"{name}: -"
    return f"{name}: p50 {s.p50:.1f} p90 {s.p90:.1f} p99 {s.p99:.1f} p99.9 {s.p999:.1f} max {s.max:.1f} µs"
