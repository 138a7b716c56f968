"""``python -m latency``: where the time goes, dragonfly against the transport floor.

    python -m latency [--quick] [--out results/] [--rates 500,1000,10000] [--subs 1,10,100] [--paths grpc,fix]
    python -m latency --replay DIR [--pace X | --asap] [--replay-venues okx,kraken]
    python -m latency --soak            # RSS of the server over 10 minutes at 10k msg/s
    python -m latency --chaos [--minutes 5] [--subs 10] [--fault-every 3] [--seed 1] [--stale-after 2]

For every offered rate and subscriber count (the synthetic market), or every
recorded venue of a recording directory (``--replay``), it runs dragonfly and
the null relay one after the other (alternating which goes first), over loopback
sockets, each in its own process, for each path (``--paths``: gRPC subscribers
against ``latency.relay``, FIX subscribers of the FIX gateway against
``latency.fix_relay``; ``--paths grpc-decode`` or ``fix-decode``: a probe of
the floor instead, that relay decoding every frame with dragonfly's decoder
against the relay as it is), and reports HDR percentiles, throughput,
CPU and RSS (:mod:`latency.cell`, :mod:`latency.stats`); then the per-message
processing of every venue's recorded diffs against cryptofeed (and a naive
baseline on Binance; :mod:`latency.peers`). Writes ``report.md``, ``latency.png`` and
``table.txt`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import sys
import time
from pathlib import Path

from dragonfly.client.__main__ import parse_window
from dragonfly.client.stream import DEFAULT_WINDOW_BYTES
from dragonfly.recording import RecordedConnection, discover
from dragonfly.sim.replay.simulator import CONNECTIONS
from latency import capacity
from latency.cell import FLOOR, PATH, CellSpec, run_cell
from latency.chaos import LAYOUTS, ChaosSpec, run_chaos
from latency.chaos import VENUES as CHAOS_VENUES
from latency.chaos_report import headline
from latency.peers import PeerResult, failures, run_peers
from latency.peers import text_table as peers_table
from latency.replay_source import ReplaySpec
from latency.report import markdown, peers_rows, plot, ratios, text_table
from latency.stats import CellStats, analyse, pool

#: The longest replay cell (the shared recordings last 11-31 s at their recorded pace).
REPLAY_MAX_S = 60.0


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def _rate_range(text: str) -> tuple[float, float]:
    """``LO,HI`` msg/s with 0 < LO < HI, for argparse."""
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI in msg/s, got {text!r}") from None
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"expected 0 < LO < HI, got {text!r}")
    return lo, hi


def _count(text: str) -> int:
    """A whole number >= 0, for argparse."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return n


def _positive_count(text: str) -> int:
    """A whole number >= 1, for argparse."""
    n = _count(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The harness's arguments."""
    p = argparse.ArgumentParser(prog="python -m latency", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run (< 1 minute)")
    p.add_argument("--out", default="results", help="results folder (default results/)")
    p.add_argument("--rates", default="500,1000,10000,50000,100000", help="offered frames/s, all venues")
    p.add_argument("--subs", default="1,10,100", help="subscriber counts (one is slow when > 1)")
    p.add_argument("--paths", type=_paths, default=DEFAULT_PATHS, metavar="grpc,fix",
                   help="the transports to measure, each against its own null relay: grpc "
                   "(BookSummary) and fix (the FIX gateway, MarketDepth 0); default both. "
                   "grpc-decode and fix-decode probe a floor instead: the null relay that decodes "
                   "every frame with dragonfly's decoder, against the null relay")
    p.add_argument("--window", type=float, default=4.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--max-subs-rate", type=float, default=10_000,
                   help="skip cells with more than 10 subscribers above this rate (grpc.aio cost)")
    p.add_argument("--peer-runs", type=_count, default=30,
                   help="interleaved rounds of each venue's recorded diffs (default 30; 0 skips the peer "
                   "comparison)")
    p.add_argument("--capacity-range", type=_rate_range, default=(250.0, 8000.0), metavar="LO,HI",
                   help="msg/s range of the capacity search (gRPC path; default 250,8000)")
    p.add_argument("--capacity-steps", type=_count, default=10, metavar="N",
                   help="capacity probes per system (default 10; a rate passes on 2 passing probes in a "
                   "row; 0 skips the search; --quick skips it)")
    p.add_argument("--replay", metavar="DIR", default=None,
                   help="replay a recording directory (../shared/recordings format) instead of the synthetic "
                   "market: one cell per venue and subscriber count, as long as the replay (60 s at most)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--pace", type=float, default=1.0, metavar="X",
                      help="with --replay: X times the recorded pace (default 1: as recorded)")
    pace.add_argument("--asap", action="store_true", help="with --replay: as fast as possible")
    p.add_argument("--replay-venues", default=None, metavar="V1,V2",
                   help="with --replay: these venues only (default: every recorded venue)")
    p.add_argument("--sub-window", type=parse_window, default=DEFAULT_WINDOW_BYTES, metavar="N|grpc",
                   help="each subscriber's HTTP/2 window in bytes (default dragonfly.client's, "
                   f"{DEFAULT_WINDOW_BYTES}; 'grpc': grpc's auto-tuned window). The capacity search "
                   "always uses grpc's: it asks for every update")
    p.add_argument("--alternations", type=_positive_count, default=1, metavar="K",
                   help="run each dragonfly/relay pair K times, alternating, the window cut in K, "
                   "and pool each system's samples (default 1)")
    p.add_argument("--soak", action="store_true",
                   help="only a 10-minute RSS soak at 10k msg/s, gRPC path (not in CI)")
    p.add_argument("--soak-seconds", type=float, default=600.0)
    chaos = p.add_argument_group(
        "chaos (--chaos)",
        "random venue faults while subscribers check every book against the simulator's truth "
        "(latency/chaos.py); writes chaos.md to --out. --subs is then one count (default 10)",
    )
    chaos.add_argument("--chaos", action="store_true", help="only the chaos run (minutes long, not in CI)")
    chaos.add_argument("--minutes", type=_positive_float, default=5.0, help="minutes of faults (default 5)")
    chaos.add_argument("--fault-every", type=_positive_float, default=3.0, metavar="S",
                       help="mean seconds between a fault's recovery and the venue's next fault (default 3)")
    chaos.add_argument("--seed", type=int, default=1, help="seed of the market and the faults (default 1)")
    chaos.add_argument("--stale-after", type=_positive_float, default=2.0, metavar="S",
                       help="the server's --stale-after for every venue, seconds (default 2)")
    chaos.add_argument("--tolerance", type=float, default=0.5, metavar="S",
                       help="delivery allowance on top of stale_after when judging staleness (default 0.5)")
    chaos.add_argument("--phases", type=_positive_count, default=2, metavar="N",
                       help="phases, each a fresh server with the channel layout in turn: binance diff + "
                       "bitstamp snapshot, then the other way round (default 2)")
    chaos.add_argument("--layout", action="append", type=_layout, metavar="binance=KIND,bitstamp=KIND",
                       help="the phases' channel layouts in turn, KIND snapshot or diff (repeatable; default "
                       "binance=diff,bitstamp=snapshot then binance=snapshot,bitstamp=diff)")
    chaos.add_argument("--fault-kinds", default="", metavar="K1,K2",
                       help="only these fault kinds (default: every kind that applies to the channel)")
    chaos.add_argument("--recover-timeout", type=_positive_float, default=30.0, metavar="S",
                       help="longest wait for a venue's recovery before its next fault (default 30)")
    return p


#: Every path the harness measures (:data:`latency.cell.PATH`): the two transports, and
#: two probes of their floors (the null relay decoding every frame, against the null relay).
PATHS = ("grpc", "fix", "grpc-decode", "fix-decode")
#: What ``--paths`` runs unless told.
DEFAULT_PATHS = ("grpc", "fix")


def _paths(text: str) -> tuple[str, ...]:
    """``grpc,fix``, for argparse."""
    paths = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    unknown = [x for x in paths if x not in PATHS]
    if unknown or not paths:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(PATHS)}, got {text!r}")
    return paths


def systems(path: str) -> tuple[str, str]:
    """dragonfly and its null relay on ``path``."""
    return next((d, r) for d, r in FLOOR.items() if PATH[d] == path)


def _positive_float(text: str) -> float:
    """A number > 0, for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _layout(text: str) -> dict[str, str]:
    """``binance=diff,bitstamp=snapshot``, for argparse."""
    layout = {}
    for item in text.split(","):
        venue, _, kind = item.partition("=")
        if kind not in ("snapshot", "diff"):
            raise argparse.ArgumentTypeError(f"expected VENUE=snapshot|diff, got {item!r}")
        layout[venue.strip()] = kind
    if set(layout) != set(CHAOS_VENUES):
        raise argparse.ArgumentTypeError(f"give a channel to each of {', '.join(CHAOS_VENUES)}")
    return layout


def chaos_spec(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ChaosSpec:
    """The chaos run the arguments ask for (``--subs`` is one count there, default 10)."""
    subs_text = str(args.subs)
    if subs_text == parser.get_default("subs"):
        subs = 10
    else:
        try:
            subs = int(subs_text)
        except ValueError:
            parser.error(f"--chaos: --subs is one count, got {subs_text!r}")
        if subs < 1:
            parser.error("--chaos: --subs must be at least 1")
    try:
        return ChaosSpec(
            minutes=args.minutes, subs=subs, fault_every=args.fault_every, seed=args.seed,
            stale_after=args.stale_after, tolerance=args.tolerance, phases=args.phases,
            recover_timeout=args.recover_timeout, out=Path(args.out),
            layouts=tuple(args.layout) if args.layout else LAYOUTS,
            kinds=tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip()),
        )
    except ValueError as exc:
        parser.error(f"--chaos: {exc}")


async def _chaos(spec: ChaosSpec) -> int:
    report = await run_chaos(spec)
    width = max(len(name) for name, _ in headline(report))
    for name, value in headline(report):
        print(f"{name:<{width}}  {value}")
    return 0 if report.ok else 1


def plan(args: argparse.Namespace) -> list[CellSpec]:
    """The cells to run, dragonfly and relay alternating which goes first.

    With ``--alternations K`` each pair runs K times, its window cut in K,
    the order flipping every time (A B B A A B ...): :func:`pooled` merges
    each system's segments, so both see the same drift of the machine.
    """
    if args.replay:
        return replay_plan(args)
    if args.quick:
        rates, subs, window, warmup, turns = [1000], [1, 2], 1.5, 0.5, 1
    else:
        rates, subs, window, warmup = _ints(args.rates), _ints(args.subs), args.window, args.warmup
        turns = args.alternations
    cell = functools.partial(CellSpec, warmup_s=warmup, window_s=window / turns, sub_window=args.sub_window)
    # One slow subscriber among several; no 100-subscriber cells above --max-subs-rate.
    pairs = [(rate, k, int(k > 1)) for rate in rates for k in subs if k <= 10 or rate <= args.max_subs_rate]
    if not args.quick and 10 in subs and rates:
        # The same 10 subscribers without the slow one: it must not move the others.
        pairs.append((rates[0], 10, 0))
    cells = []
    flip = False
    for path in args.paths:
        pair = systems(path)
        for rate, k, slow in pairs:
            for _ in range(turns):
                order = pair[::-1] if flip else pair
                flip = not flip
                cells += [cell(system, rate, k, slow) for system in order]
            if turns % 2 == 0:
                flip = not flip  # the next pair starts with the other system
    return cells


def pooled(stats: list[CellStats]) -> list[CellStats]:
    """Merge the segments of each system, rate and subscriber count (see :func:`plan`), in first-run order."""
    groups: dict[tuple[str, str, float, int, int], list[CellStats]] = {}
    for st in stats:
        groups.setdefault((st.system, st.source, st.rate, st.subscribers, st.slow), []).append(st)
    return [group[0] if len(group) == 1 else pool(group) for group in groups.values()]


def replay_plan(args: argparse.Namespace) -> list[CellSpec]:
    """One cell per recorded venue and subscriber count, per system, for ``--replay``."""
    if not Path(args.replay).is_dir():
        raise SystemExit(f"python -m latency: error: --replay {args.replay}: not a directory")
    if args.replay_venues:
        venues = [v.strip().lower() for v in args.replay_venues.split(",") if v.strip()]
        unknown = [v for v in venues if v not in CONNECTIONS]
        if unknown:
            raise SystemExit(f"python -m latency: error: --replay-venues: unknown {', '.join(unknown)}")
    else:
        venues = recorded_venues(Path(args.replay))
    if args.asap:
        pace = None
    elif args.pace > 0:
        pace = args.pace
    else:
        raise SystemExit("python -m latency: error: --pace must be positive")
    cells, flip = [], False
    for venue, path in ((v, p) for v in venues for p in args.paths):
        for k in _ints(args.subs):
            pair = systems(path)
            order = pair[::-1] if flip else pair
            flip = not flip
            replay = ReplaySpec(str(args.replay), venue, pace)
            slow = 1 if k > 1 else 0
            cells += [
                CellSpec(
                    system, 0, k, slow, venues=(venue,), window_s=REPLAY_MAX_S, replay=replay,
                    sub_window=args.sub_window,
                )
                for system in order
            ]
    return cells


def recorded_venues(directory: Path) -> list[str]:
    """The venues with a recorded WebSocket connection in ``directory``, in replay order."""
    found = {f.venue for f in discover(directory, lambda error: None) if isinstance(f, RecordedConnection)}
    return [v for v in CONNECTIONS if v in found]


def context(sub_window: int | None = DEFAULT_WINDOW_BYTES, alternations: int = 1) -> str:
    """Where and how this ran."""
    window = "grpc's auto-tuned window" if sub_window is None else f"a {sub_window}-byte window"
    turns = (
        f" Each dragonfly/relay pair ran {alternations} times in turns (A B B A ...), each system's "
        "segments pooled into one row."
        if alternations > 1
        else ""
    )
    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S')} on {platform.node()} "
        f"({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores), Python {platform.python_version()}. Generator, server and subscribers "
        "are three processes sharing these cores: read CPU columns with that in mind. "
        f"gRPC subscribers of the cells read with {window} (HTTP/2 flow control), those of the capacity "
        f"search with grpc's.{turns}"
    )


async def _run_cells(cells: list[CellSpec], workdir: Path) -> list[CellStats]:
    out = []
    for spec in cells:
        raw = await run_cell(spec, workdir)
        st = analyse(raw)
        e = st.e2e
        what = st.error or (
            f"e2e p50 {e.p50:.0f} p99 {e.p99:.0f} µs, deliv {100 * st.delivered_min:.1f}%" if e else ""
        )
        where = f"{spec.system:13} {spec.rate:>8.0f}/s {spec.subscribers:>3} subs"
        print(f"  {where}: {what}", file=sys.stderr, flush=True)
        out.append(st)
    return out


async def _soak(args: argparse.Namespace, workdir: Path) -> str:
    spec = CellSpec("dragonfly", 10_000, 1, 0, warmup_s=2.0, window_s=args.soak_seconds)
    raw = await run_cell(spec, workdir, soak_sample_s=5.0)
    if raw.error or not raw.rss_samples:
        return f"soak failed: {raw.error}"
    first = raw.rss_samples[min(1, len(raw.rss_samples) - 1)][1]
    last = raw.rss_samples[-1][1]
    peak = max(r for _, r in raw.rss_samples)
    lines = [
        f"{spec.window_s:.0f} s at {spec.rate:.0f} msg/s: RSS start {first / 2**20:.1f} MB, "
        f"end {last / 2**20:.1f} MB ({100 * (last - first) / first:+.1f}%), peak {peak / 2**20:.1f} MB",
        "",
    ]
    step = max(1, len(raw.rss_samples) // 20)
    lines += [f"- t={t:.0f}s rss={r / 2**20:.1f} MB" for t, r in raw.rss_samples[::step]]
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> int:
    """Run everything and write the results."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "logs"
    if args.soak:
        # The soak alone: a grid around it would only disturb its RSS curve.
        soak = await _soak(args, workdir)
        print(soak)
        (out / "soak.md").write_text(f"# Soak\n\n{soak}\n")
        return 1 if soak.startswith("soak failed") else 0
    cells = plan(args)
    print(f"running {len(cells)} cells", file=sys.stderr, flush=True)
    stats = pooled(await _run_cells(cells, workdir))
    capacity_md = ""
    if args.capacity_steps > 0 and not args.quick and not args.replay:
        lo, hi = args.capacity_range
        print(f"capacity search, {lo:.0f}..{hi:.0f} msg/s", file=sys.stderr, flush=True)
        searches = await capacity.search(workdir, lo, hi, args.capacity_steps, window_s=args.window)
        capacity_md = capacity.summary(searches)
    peer_runs = min(5, args.peer_runs) if args.quick else args.peer_runs
    peers: list[PeerResult] = []
    n_frames = 0
    if peer_runs:
        print("peers: per-message processing of every venue's recorded diffs", file=sys.stderr, flush=True)
        # In a thread: cryptofeed's handler needs an event loop of its own.
        loop = asyncio.get_running_loop()
        peers, n_frames = await loop.run_in_executor(None, run_peers, peer_runs)
    table = text_table(stats)
    ratio_rows = ratios(stats)
    lines = [table, "", "dragonfly / relay: path rate subs e2e-p50 e2e-p99 upd/s cpu/msg deliv%(d) deliv%(r)"]
    lines += ["  " + "  ".join(r) for r in ratio_rows]
    if peers:
        lines += ["", f"per-message diff processing, every venue ({n_frames} recorded update frames):"]
        lines += ["  " + line for line in peers_table(peers_rows(peers)).splitlines()]
        lines += ["  " + line for line in failures(peers)]  # final books that differ: never silent
    if capacity_md:
        lines += ["", capacity_md.split("\n\n")[0]]
    text = "\n".join(lines)
    print(text)
    (out / "table.txt").write_text(text + "\n")
    turns = 1 if args.quick or args.replay else args.alternations
    report = markdown(stats, peers, n_frames, context(args.sub_window, turns), capacity=capacity_md)
    (out / "report.md").write_text(report)
    plot(stats, out / "latency.png")
    print(f"wrote {out / 'report.md'}, {out / 'latency.png'}", file=sys.stderr)
    return 0 if all(not s.error for s in stats) else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import uvloop

    if args.chaos:
        return int(uvloop.run(_chaos(chaos_spec(args, parser))))

    return int(uvloop.run(amain(args)))


if __name__ == "__main__":
    sys.exit(main())
