"""Scale: many instruments and views on shared venue connections, cost per frame and memory.

    python -m latency.scale [--venues binance,bitstamp,...] [--instruments 20] [--rate 20000]
        [--seconds 20] [--warmup 3] [--scenarios a,b,c] [--rounds N] [--a-rate FRAMES_PER_S]
        [--source replay|sim] [--cache-dir DIR] [--gen-procs N] [--sim-procs N]
        [--profile] [--profile-top N] [--no-pin] [--out results/scale.json] [--quick]

The frame source runs in a child process (its CPU is not counted) with every
instrument listed and one publish period for every stream, chosen so that
venues x instruments streams give ``--rate`` frames/s in all. It is, with
``--source replay`` (the default), :mod:`latency.scale_source`: the
synthetic market pre-generated (the simulator's own venue servers and
encoders, every venue's diff channel, the subscribe/ack/snapshot flow
intact) and served from pre-encoded bytes, which reaches 20k frames/s on one
core; generation costs ~0.5 ms per book and round, once (``--cache-dir``
keeps it for the next run), and a fresh source serves each scenario (a
channel's stream starts at its first subscription). ``--source sim`` is the
live simulator (:mod:`dragonfly.sim`), shared by the scenarios, which steps
its market as it serves (a few thousand frames/s at most). Each scenario
runs a :class:`~dragonfly.topology.hub.Hub` in a fresh child process of its
own on uvloop (a clean RSS and CPU account; with two cores or more the
source and the hub are pinned to different cores), one after the other:

- ``a``: 1 instrument x the venues, one ``book`` aggregator (depth 10), a sink on it;
- ``b``: every instrument x the venues, ``book`` (depth 10), ``bbo`` and
  ``liquidity`` (depth 50, 4 bands, 3 quantities), a sink on each;
- ``c``: the hub of ``b`` with only the ``book`` sink attached (the
  others are declared but unread, hence detached);
- ``d`` and ``e`` (not run by default): ``b`` with ``book`` and ``bbo``
  only, and with ``book`` and ``liquidity`` only: ``b``'s cost split by kind;
- ``f`` (not run by default): the hub of ``b`` with no view read: the
  layers below the aggregators alone (every frame decoded into its book, the
  top N of each changed book read for its tee, which keeps it for on-demand
  reads), the part of ``b``'s cost that no aggregator can take back.
- ``n`` (not run by default, a probe): the hub of ``b`` with every view
  read, but each aggregator's view replaced by a null one, which computes
  nothing and publishes a two-field view (receipt and publish times) on every
  recompute; the liquidity view reads no levels. Everything else is ``b``'s
  own code: the listeners' top-N reads for the views, the tees, the slot
  queues and their wake-ups, each recompute's drain, freshness and sanity
  rule, the pacing and the sink calls. Its cost per frame is what ``b``
  costs before any view computes anything: a floor for ``b`` that no faster
  view can go below. (It publishes on every book recompute, where the book
  kind skips those that change nothing, ~1 in 5 in ``b``: ~0.2 more sink
  calls a frame, under 1% of ``a``'s cost at 8k frames/s.)

Scenario ``a`` reads one stream per venue at the same period as every
stream of ``b``: each book updates as often in both, ``a`` just has 1/N of
the streams (so 1/N of the frame rate). With ``--a-rate R`` it reads a
simulator of its own instead, listing that one instrument at ``R`` frames/s
in all, so that its cost per frame is taken at a frame rate like ``b``'s
(at a low rate the loop's fixed cost per wake-up is spread over few frames).

``--rounds N`` runs the scenarios N times in turn (a, b, a, b, ...: each
round's scenarios minutes apart at most) and adds, over the rounds, each
scenario's CPU µs per frame and each cost ratio (taken per round) as min,
median and max (``summary`` in the JSON, every round under ``rounds``; the
table's rows are the last round's). This VM's speed drifts up to 2x within
minutes, so one round's ratio can be far from the median: the issue's
target ratio is read from a median of rounds, e.g. ``--rate 8000 --a-rate
8000 --scenarios a,b --rounds 8``.

Compare ``frames_per_s`` with ``target_frames_per_s`` and look at
``sim_cpu_util``, the source's share of a core (near 1.0: the source is the
limit, as the live simulator is beyond a few thousand frames/s).
``--sim-procs N`` deals the venues among N source processes.

Per scenario, over a window of ``--seconds`` after the books are synced
and ``--warmup`` more seconds: frames/s received (the listeners' ``frames``
counters, per venue too), process CPU (``time.process_time``) per frame in
µs and as a share of one core, tick-to-queue (``publish_ns - recv_ns`` of
every view a sink got) p50/p99 per aggregator kind, views/s per kind, RSS
before the hub is built and after warm-up, MB per book; the diff books'
counters (snapshots, gaps, resyncs, bad checksums, ...) over the window and
since the start (``sync_window``, ``sync_total``); and the source
process's share of a core over the same window. ``--profile`` adds a
profiled run of ``b`` and prints its top functions by own time (its numbers
are not in the table).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import psutil

from latency.stats import Summary, histogram, record

if TYPE_CHECKING:
    from dragonfly.core.aggregator import BaseAggregator

PROG = "python -m latency.scale"
VENUES = ("binance", "bitstamp", "kraken", "okx", "coinbase", "bybit")
#: Names the simulator lists (the first three from its table, the rest by its generic quoting).
INSTRUMENTS = (
    "ethbtc", "btcusdt", "ethusdt", "solusdt", "xrpusdt", "adausdt", "dogeusdt", "ltcusdt",
    "dotusdt", "linkusdt", "avaxusdt", "bnbusdt", "trxusdt", "atomusdt", "nearusdt", "uniusdt",
    "aptusdt", "filusdt", "arbusdt", "opusdt", "xlmusdt", "etcusdt", "bchusdt", "icpusdt",
)
SCENARIOS = ("a", "b", "c")
KINDS = ("book", "bbo", "liquidity")
SOURCES = ("replay", "sim")
#: Diff-book counters reported per scenario (summed over every book): over the window and in all.
SYNC_COUNTERS = ("snapshots", "gaps", "resyncs", "checksums_bad", "stale", "malformed", "crossed")
#: Seconds of frames a replay source holds beyond ``--warmup`` + ``--seconds``: the hub's
#: start and its books' sync (a channel's frames start when it is subscribed).
REPLAY_SLACK_S = 12.0
#: A hub's share of a core from which it is taken to be saturated (see ``_derive``).
SATURATED = 0.9
LIQUIDITY_BANDS_BPS = (10.0, 25.0, 50.0, 100.0)
LIQUIDITY_QUANTITIES = (1.0, 10.0, 100.0)
_MB = 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    """What one scenario's hub reads and which of its views have a sink."""

    name: str
    all_instruments: bool  #: every instrument (else the first)
    declared: tuple[str, ...]  #: aggregator kinds declared
    sinks: tuple[str, ...]  #: kinds with a sink attached
    null_views: bool = False  #: every view replaced by a null one (the ``n`` probe)

    def describe(self, instruments: int, venues: int) -> str:
        n = instruments if self.all_instruments else 1
        unread = [k for k in self.declared if k not in self.sinks]
        return (
            f"{n} instr x {venues} venues, {'+'.join(self.declared)}"
            + (f" ({'+'.join(unread)} unread)" if unread else "")
            + (" (null views)" if self.null_views else "")
        )


SCENARIO = {
    "a": Scenario("a", False, ("book",), ("book",)),
    "b": Scenario("b", True, KINDS, KINDS),
    "c": Scenario("c", True, KINDS, ("book",)),
    # Not run by default: b's cost split by kind.
    "d": Scenario("d", True, ("book", "bbo"), ("book", "bbo")),
    "e": Scenario("e", True, ("book", "liquidity"), ("book", "liquidity")),
    "f": Scenario("f", True, KINDS, ()),
    # Not run by default: b's plumbing with views that compute nothing (a floor for b).
    "n": Scenario("n", True, KINDS, KINDS, null_views=True),
}


# -- the hub side (a child process per scenario) ---------------------------------------


class _Sink:
    """A view sink on the hot path: keep ``publish_ns - recv_ns`` while ``on``."""

    __slots__ = ("buf", "on")

    def __init__(self) -> None:
        self.on = False
        self.buf: array[int] = array("q")

    def __call__(self, view: Any) -> None:
        if self.on:
            self.buf.append(view.publish_ns - view.recv_ns)


class NullView(NamedTuple):
    """What a null view publishes: the two times a sink reads."""

    recv_ns: int
    publish_ns: int


def _null_view(self: Any, bid_runs: Any, ask_runs: Any, members: int, now: int, recv_ns: int,
               source: Any) -> Any:  # a NullView, where the kind's own view type is declared
    return NullView(recv_ns or now, now)


def null_kinds() -> dict[str, type[BaseAggregator[Any]]]:
    """The three aggregator kinds with their views made null (scenario ``n``; module doc).

    Each is the product's class with only its ``_view`` replaced (the
    liquidity view's readers ignored too), so the rest of its recompute runs
    as shipped.
    """
    from dragonfly.core.aggregator import Aggregator
    from dragonfly.core.bbo import BboAggregator
    from dragonfly.core.liquidity_agg import LiquidityAggregator

    class NullBook(Aggregator):
        __slots__ = ()
        _view = _null_view

    class NullBbo(BboAggregator):
        __slots__ = ()
        _view = _null_view

    class NullLiquidity(LiquidityAggregator):
        __slots__ = ()
        _view = _null_view

        def read_with(self, venue: str, reader: Any) -> None:
            """Read no levels: the forwarded book is never replaced (the view ignores it anyway)."""

    return {"Aggregator": NullBook, "BboAggregator": NullBbo, "LiquidityAggregator": NullLiquidity}


def _aggregators(kinds: Sequence[str]) -> list[Any]:
    from dragonfly.topology.hub import AggregatorSpec

    specs = {
        "book": AggregatorSpec("book", "book", depth=10),
        "bbo": AggregatorSpec("bbo", "bbo"),
        "liquidity": AggregatorSpec(
            "liquidity", "liquidity", depth=50, bands_bps=LIQUIDITY_BANDS_BPS, quantities=LIQUIDITY_QUANTITIES
        ),
    }
    return [specs[k] for k in kinds]


def _rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / _MB


async def _scenario(args: argparse.Namespace) -> dict[str, Any]:
    from dragonfly.topology.hub import Hub, VenueEndpoint
    from dragonfly.venues import get_venue

    sc = SCENARIO[args.worker]
    urls: dict[str, tuple[str, str]] = json.loads(args.urls)
    venues = list(urls)
    instruments = list(args.instrument_names) if sc.all_instruments else list(args.instrument_names[:1])
    me = psutil.Process()
    sims = [psutil.Process(pid) for pid in args.sim_pids]

    def sim_cpu() -> float:
        return sum(sum(p.cpu_times()[:2]) for p in sims)

    if sc.null_views:
        # This child process runs the one scenario: the hub builds the null kinds.
        from dragonfly.topology import hub as hub_module

        for name, cls in null_kinds().items():
            setattr(hub_module, name, cls)
    rss_before = _rss_mb(me)
    hub = Hub(
        instruments,
        [VenueEndpoint(get_venue(v), ws, rest) for v, (ws, rest) in urls.items()],
        aggregators=_aggregators(sc.declared),
        channels={v: "diff" for v in venues},
    )
    sinks = {k: _Sink() for k in sc.sinks}
    for kind, sink in sinks.items():
        for instrument in instruments:
            hub.on_view(sink, instrument, kind)
    report = await hub.start(wait=20.0)
    problems = {f"{i}@{v}": why for i, row in report.items() for v, why in row.items() if why is not None}
    try:
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            missing = [k for k, tee in hub.tees.items() if tee.latest is None]
            if not missing:
                break
            await asyncio.sleep(0.05)
        unsynced = [f"{i}@{v}" for (i, v), tee in hub.tees.items() if tee.latest is None]
        await asyncio.sleep(args.warmup)
        rss_warm = _rss_mb(me)
        feeds = [(v, f) for v in venues for f in hub.connections.get(v, [])]

        def frames() -> dict[str, int]:
            out = dict.fromkeys(venues, 0)
            for v, f in feeds:
                out[v] += f.listener.frames
            return out

        def disconnects() -> int:
            return sum(f.stats.disconnects for _, f in feeds)

        def sync_counts() -> dict[str, int]:
            out = dict.fromkeys(SYNC_COUNTERS, 0)
            for _, f in feeds:
                for sync in getattr(f.listener, "syms", {}).values():
                    for name in SYNC_COUNTERS:
                        out[name] += getattr(sync.stats, name)
            return out

        profiler = cProfile.Profile() if args.profile_run else None
        d0, s0 = disconnects(), sync_counts()
        for sink in sinks.values():
            sink.on = True
        sim_cpu0 = sim_cpu()
        f0, c0, t0 = frames(), time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(args.seconds)
        if profiler is not None:
            profiler.disable()
        f1, c1, t1 = frames(), time.process_time(), time.perf_counter()
        sim_cpu1 = sim_cpu()
        for sink in sinks.values():
            sink.on = False
        d1, s1 = disconnects(), sync_counts()
        rss_end = _rss_mb(me)
    finally:
        await hub.stop()
    window = t1 - t0
    by_venue = {v: (f1[v] - f0[v]) / window for v in venues}
    n_frames = sum(f1[v] - f0[v] for v in venues)
    cpu = c1 - c0
    kinds: dict[str, Any] = {}
    for kind, sink in sinks.items():
        h = histogram()
        for value in sink.buf:
            record(h, value)
        s = Summary.of(h)
        kinds[kind] = {
            "views": len(sink.buf),
            "views_per_s": len(sink.buf) / window,
            "t2q_us": {"p50": s.p50, "p90": s.p90, "p99": s.p99, "p999": s.p999, "max": s.max},
        }
    books = len(instruments) * len(venues)
    out: dict[str, Any] = {
        "scenario": sc.name,
        "description": sc.describe(len(args.instrument_names), len(venues)),
        "venues": venues,
        "instruments": instruments,
        "books": books,
        "aggregators_declared": list(sc.declared),
        "aggregators_read": list(sc.sinks),
        "aggregators": len(instruments) * len(sc.declared),
        "window_s": window,
        "frames": n_frames,
        "frames_per_s": n_frames / window,
        "frames_per_s_by_venue": by_venue,
        "target_frames_per_s": books / args.period,
        "cpu_s": cpu,
        "cpu_util": cpu / window,
        "cpu_us_per_frame": 1e6 * cpu / n_frames if n_frames else float("nan"),
        "sim_cpu_util": (sim_cpu1 - sim_cpu0) / window if sims else float("nan"),
        "sim_processes": len(sims),
        "loadavg_1m_end": os.getloadavg()[0],
        "kinds": kinds,
        "rss_before_mb": rss_before,
        "rss_warm_mb": rss_warm,
        "rss_end_mb": rss_end,
        "rss_delta_mb": rss_warm - rss_before,
        "mb_per_book": (rss_warm - rss_before) / books,
        "disconnects": d1 - d0,
        "sync_window": {k: s1[k] - s0[k] for k in SYNC_COUNTERS},
        "sync_total": s1,
        "rejected": problems,
        "unsynced": unsynced,
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.profile_top)
        out["profile"] = text.getvalue()
    return out


def _run_worker(args: argparse.Namespace) -> int:
    if args.cpu is not None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, {args.cpu})
    runner: Any = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    result = runner(_scenario(args))
    Path(args.worker_out).write_text(json.dumps(result))
    return 0


# -- the parent: simulator process, one worker per scenario, the table -----------------------


def _source_cmd(args: argparse.Namespace, venues: Sequence[str], instruments: Sequence[str],
                period: float) -> list[str]:
    """The command line of one frame source process serving ``venues``."""
    common = ["--venues", ",".join(venues), "--instruments", ",".join(instruments),
              "--period", repr(period), "--seed", str(args.seed)]
    if args.source == "sim":
        return [sys.executable, "-m", "dragonfly.sim", *common]
    rounds = math.ceil((args.seconds + args.warmup + REPLAY_SLACK_S) / period)
    key = hashlib.sha256(repr((list(venues), list(instruments), period, args.seed)).encode())
    cache = args.cache_dir / f"source-{key.hexdigest()[:16]}.pkl"
    return [sys.executable, "-m", "latency.scale_source", *common, "--rounds", str(rounds),
            "--cache", str(cache), "--procs", str(args.gen_procs)]


def _start_sim(cmd: Sequence[str],
               log_path: Path) -> tuple[subprocess.Popen[str], dict[str, tuple[str, str]]]:
    """Start a frame source (``cmd``) on free ports; return it and {venue: (ws, rest)}."""
    log = log_path.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    urls: dict[str, tuple[str, str]] = {}
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait(5)
            raise RuntimeError(f"frame source exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        parts = line.split()
        if parts and parts[0] == "instruments:":
            break
        if len(parts) == 5 and parts[1] == "ws" and parts[3] == "rest":
            urls[parts[0]] = (parts[2], parts[4])
    return proc, urls


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _worker(name: str, args: argparse.Namespace, urls: dict[str, tuple[str, str]], period: float,
            sims: Sequence[subprocess.Popen[str]], workdir: Path, cpu: int | None,
            profile: bool) -> dict[str, Any]:
    out = workdir / f"{name}{'-profile' if profile else ''}.json"
    cmd = [
        sys.executable, "-m", "latency.scale", "--worker", name, "--urls", json.dumps(urls),
        "--instrument-names", ",".join(args.instrument_names), "--period", repr(period),
        "--seconds", repr(args.seconds), "--warmup", repr(args.warmup),
        "--sim-pids", ",".join(str(s.pid) for s in sims),
        "--worker-out", str(out),
    ]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if profile:
        cmd += ["--profile-run", "--profile-top", str(args.profile_top)]

    timeout = args.seconds + args.warmup + 120
    done = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        return {"scenario": name, "error": (done.stderr or done.stdout)[-3000:]}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _pins() -> tuple[set[int] | None, int | None]:
    """(simulator cores, hub core): the hub alone on the last core, the simulators on the others.

    No pinning with fewer than two cores.
    """
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    return (set(cores[:-1]), cores[-1]) if len(cores) >= 2 else (None, None)


def _split(venues: Sequence[str], parts: int) -> list[list[str]]:
    """``venues`` dealt round-robin into ``parts`` non-empty groups (fewer if too few venues)."""
    groups: list[list[str]] = [[] for _ in range(min(parts, len(venues)))]
    for i, venue in enumerate(venues):
        groups[i % len(groups)].append(venue)
    return groups


def _f(value: float, digits: int = 1) -> str:
    return "nan" if value != value else f"{value:,.{digits}f}"


def table(result: dict[str, Any]) -> str:
    """The scenarios side by side, one row a scenario, readable in a terminal or markdown."""
    kinds = [k for k in KINDS if any(k in s.get("kinds", {}) for s in result["scenarios"].values())]
    head = ["scen", "books", "aggs", "frames/s (target)", "CPU µs/frame", "core", "sim core"]
    for k in kinds:
        head += [f"{k} t2q p50/p99 µs", f"{k} views/s"]
    head += ["RSS before/warm MB", "MB/book"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, s in result["scenarios"].items():
        if "error" in s:
            lines.append(f"| {name} | error: {s['error'].splitlines()[-1] if s['error'] else '?'} |")
            continue
        row = [
            f"{name}: {s['description']}", str(s["books"]), str(s["aggregators"]),
            f"{_f(s['frames_per_s'], 0)} ({_f(s['target_frames_per_s'], 0)})",
            _f(s["cpu_us_per_frame"], 2), _f(s["cpu_util"], 2), _f(s["sim_cpu_util"], 2),
        ]
        for k in kinds:
            d = s["kinds"].get(k)
            if d is None:
                row += ["-", "-"]
            else:
                row += [f"{_f(d['t2q_us']['p50'])} / {_f(d['t2q_us']['p99'])}", _f(d["views_per_s"], 0)]
        row += [f"{_f(s['rss_before_mb'])} / {_f(s['rss_warm_mb'])}", _f(s["mb_per_book"], 3)]
        lines.append("| " + " | ".join(row) + " |")
    derived = result.get("derived", {})
    lines.append("")
    summary = result.get("summary")
    if summary:
        lines.append(f"over {summary['rounds']} rounds (the rows above: the last), min / median / max:")
        for name, d in summary["cpu_us_per_frame"].items():
            spread = f"{_f(d['min'], 2)} / {_f(d['median'], 2)} / {_f(d['max'], 2)}"
            lines.append(f"  {name} CPU µs/frame: {spread}")
        for key, d in summary["cost_ratios"].items():
            each = ", ".join(_f(v, 2) for v in d["values"])
            lines.append(f"  {key}: {_f(d['min'], 3)} / {_f(d['median'], 3)} / {_f(d['max'], 3)} ({each})")
        lines.append("last round:")
    for key, value in derived.items():
        lines.append(f"{key}: {_f(value, 3) if isinstance(value, float) else value}")
    for name, s in result["scenarios"].items():
        window = s.get("sync_window")
        if window is not None:
            counts = ", ".join(f"{k} {v}" for k, v in window.items())
            lines.append(f"{name} books over the window: {counts} (since start: snapshots "
                         f"{s['sync_total']['snapshots']}, gaps {s['sync_total']['gaps']}, "
                         f"resyncs {s['sync_total']['resyncs']})")
        if s.get("rejected") or s.get("unsynced") or s.get("disconnects"):
            lines.append(
                f"{name}: rejected {s.get('rejected')}, unsynced {s.get('unsynced')}, "
                f"disconnects {s.get('disconnects')}"
            )
        by_venue = s.get("frames_per_s_by_venue")
        if by_venue:
            rates = ", ".join(f"{v} {r:,.0f}" for v, r in by_venue.items())
            lines.append(f"{name} frames/s by venue: {rates}")
    return "\n".join(lines)


def _derive(scenarios: dict[str, Any]) -> dict[str, Any]:
    a, b, c = (scenarios.get(n, {}) for n in SCENARIOS)
    out: dict[str, Any] = {}

    def ok(s: dict[str, Any]) -> bool:
        return bool(s) and "error" not in s

    if ok(a) and ok(b):
        out["cost_ratio_b_over_a"] = b["cpu_us_per_frame"] / a["cpu_us_per_frame"]
        out["target_ratio"] = 1.3
        if b["books"] != a["books"]:
            grown = b["rss_warm_mb"] - a["rss_warm_mb"]
            out["marginal_mb_per_book_b_vs_a"] = grown / (b["books"] - a["books"])
    if ok(a) and ok(c):
        out["cost_ratio_c_over_a"] = c["cpu_us_per_frame"] / a["cpu_us_per_frame"]
    if ok(b) and ok(c):
        out["cost_ratio_c_over_b"] = c["cpu_us_per_frame"] / b["cpu_us_per_frame"]
    for name in ("f", "n"):
        other = scenarios.get(name, {})
        if ok(a) and ok(other):
            out[f"cost_ratio_{name}_over_a"] = other["cpu_us_per_frame"] / a["cpu_us_per_frame"]
    full = [name for name, s in scenarios.items() if ok(s) and s["cpu_util"] >= SATURATED]
    if full:
        out["saturated"] = (
            f"{', '.join(full)}: the hub used {SATURATED:g} of a core or more, so its reads "
            "carried bigger bursts, which conflate into fewer views: its CPU per frame is "
            "understated against a scenario that keeps up; compare at a --rate it keeps up with"
        )
    return out


def summarize(rounds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each scenario's CPU µs per frame and each derived ratio over the rounds: every value, min, median, max.

    A round whose scenario failed, or that lacks a ratio, adds nothing to it.
    The ratios are taken per round (scenarios run minutes apart drift less
    than rounds do), then summarized.
    """
    def spread(values: list[float]) -> dict[str, Any]:
        return {"values": values, "min": min(values), "median": statistics.median(values), "max": max(values)}

    cpu: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    for one in rounds:
        for name, s in one["scenarios"].items():
            if s and "error" not in s:
                cpu.setdefault(name, []).append(s["cpu_us_per_frame"])
        for key, value in one["derived"].items():
            if key.startswith("cost_ratio_"):
                ratios.setdefault(key, []).append(value)
    return {
        "rounds": len(rounds),
        "cpu_us_per_frame": {name: spread(v) for name, v in cpu.items()},
        "cost_ratios": {key: spread(v) for key, v in ratios.items()},
    }


def _start_sims(args: argparse.Namespace, names: Sequence[str], period: float, workdir: Path, tag: str,
                cores: set[int] | None) -> tuple[list[subprocess.Popen[str]], dict[str, tuple[str, str]]]:
    """Start ``--sim-procs`` simulators listing ``names``, the venues dealt among them."""
    sims: list[subprocess.Popen[str]] = []
    urls: dict[str, tuple[str, str]] = {}
    try:
        # Same seed in each: a venue's books do not depend on which process serves it
        # (each process steps its own copy of the market).
        for i, group in enumerate(_split(args.venues, args.sim_procs)):
            sim, got = _start_sim(_source_cmd(args, group, names, period), workdir / f"{tag}{i}.log")
            sims.append(sim)
            urls.update(got)
            if cores is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(sim.pid, cores)
    except BaseException:
        for sim in sims:
            _stop(sim)
        raise
    return sims, {v: urls[v] for v in args.venues}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the simulator and every scenario; return the result (also written to ``--out``)."""
    venues, names = list(args.venues), list(args.instrument_names)
    period = len(venues) * len(names) / args.rate
    load0 = os.getloadavg()[0]
    sim_cores, hub_core = (None, None) if args.no_pin else _pins()
    sims: list[subprocess.Popen[str]] = []
    # A replay source serves one hub: its channels' rounds start at their first subscription.
    fresh = args.source == "replay"
    alive = True
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        workdir = Path(tmp)
        if args.cache_dir is None:
            args.cache_dir = workdir
        args.cache_dir.mkdir(parents=True, exist_ok=True)

        def own(name: str, profile: bool) -> dict[str, Any]:
            """Run scenario ``name`` against a source of its own."""
            nonlocal alive
            own_names, own_period = names, period
            if name == "a" and args.a_rate:
                # The first instrument only, at the frame rate asked for.
                own_names, own_period = names[:1], len(venues) / args.a_rate
            tag = f"{'sim-a' if own_names is not names else 'sim'}-{name}{'-profile' if profile else ''}-"
            own_sims, own_urls = _start_sims(args, own_names, own_period, workdir, tag, sim_cores)
            try:
                return _worker(name, args, own_urls, own_period, own_sims, workdir, hub_core, profile)
            finally:
                alive = alive and all(sim.poll() is None for sim in own_sims)
                for sim in own_sims:
                    _stop(sim)

        try:
            if not fresh:
                sims, urls = _start_sims(args, names, period, workdir, "sim", sim_cores)
            rounds: list[dict[str, Any]] = []
            for number in range(1, args.rounds + 1):
                scenarios: dict[str, Any] = {}
                for name in args.scenarios:
                    of = f", round {number} of {args.rounds}" if args.rounds > 1 else ""
                    print(f"{PROG}: scenario {name} ({args.seconds:g} s window{of})...", file=sys.stderr,
                          flush=True)
                    if fresh or (name == "a" and args.a_rate):
                        scenarios[name] = own(name, False)
                    else:
                        scenarios[name] = _worker(name, args, urls, period, sims, workdir, hub_core, False)
                rounds.append({"scenarios": scenarios, "derived": _derive(scenarios)})
            profile = None
            if args.profile:
                print(f"{PROG}: profiled run of b...", file=sys.stderr, flush=True)
                prof = (own("b", True) if fresh
                        else _worker("b", args, urls, period, sims, workdir, hub_core, True))
                profile = prof.get("profile") or prof.get("error")
            alive = alive and all(sim.poll() is None for sim in sims)
        finally:
            for sim in sims:
                _stop(sim)
        sim_log = "".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted(workdir.glob("sim*.log")))
    result: dict[str, Any] = {
        "command": " ".join([PROG, *args.argv]),
        "params": {
            "venues": venues, "instruments": names, "rate": args.rate, "period_s": period,
            "source": args.source,
            "a_rate": args.a_rate,
            "seconds": args.seconds, "warmup_s": args.warmup, "seed": args.seed, "rounds": args.rounds,
            "sim_processes": len(sims), "sim_cores": sorted(sim_cores) if sim_cores else None,
            "hub_core": hub_core, "cores": os.cpu_count(), "loadavg_1m_start": load0,
            "python": sys.version.split()[0],
        },
        "sim_alive_at_end": alive,
        "sim_log_tail": sim_log,
        "scenarios": scenarios,
        "derived": _derive(scenarios),
    }
    if args.rounds > 1:
        result["rounds"] = rounds
        result["summary"] = summarize(rounds)
    if profile is not None:
        result["profile_b"] = profile
    return result


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module doc)."""
    p = argparse.ArgumentParser(prog=PROG, description="Scale benchmark: many instruments x venues x views.")
    p.add_argument("--venues", type=_csv, default=list(VENUES), help="comma-separated (default: all six)")
    p.add_argument("--instruments", type=int, default=20, help=f"how many (1..{len(INSTRUMENTS)}; 20)")
    p.add_argument("--rate", type=float, default=20_000.0, help="total frames/s to offer (default 20000)")
    p.add_argument("--seconds", type=float, default=20.0, help="measurement window per scenario")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds after every book is synced")
    p.add_argument("--scenarios", type=_csv, default=list(SCENARIOS),
                   help="of a,b,c,d,e,f (default a,b,c; d: book+bbo, e: book+liquidity: b split by kind; "
                   "f: b's hub with no view read)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the scenarios this many times, in turn (a, b, a, b, ...), and report "
                   "each one's CPU per frame and each ratio per round: min, median, max (default 1)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--a-rate", type=float, default=None,
                   help="frames/s for scenario a from a simulator of its own (default: every "
                   "stream at b's period, so a gets 1/N of b's frames)")
    p.add_argument("--sim-procs", type=int, default=1,
                   help="source processes, the venues dealt among them (default 1)")
    p.add_argument("--source", choices=SOURCES, default="replay",
                   help="replay: the synthetic market pre-generated, then served fast "
                   "(latency.scale_source; a fresh one per scenario); sim: the live simulator, "
                   "shared by the scenarios (default replay)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="keep the replay source's pre-generated frames here for the next run "
                   "(default: a temporary folder)")
    p.add_argument("--gen-procs", type=int, default=2,
                   help="processes generating the replay source's frames (default 2)")
    p.add_argument("--profile", action="store_true", help="add a cProfile'd run of b; print top functions")
    p.add_argument("--no-pin", action="store_true", help="do not pin the simulator and the hub to cores")
    p.add_argument("--out", type=Path, default=Path("results/scale.json"))
    p.add_argument("--quick", action="store_true", help="2 venues x 2 instruments, 2 s windows (a smoke run)")
    # Internal: one scenario in this process.
    p.add_argument("--worker", choices=list(SCENARIO), help=argparse.SUPPRESS)
    p.add_argument("--urls", help=argparse.SUPPRESS)
    p.add_argument("--instrument-names", type=_csv, help=argparse.SUPPRESS)
    p.add_argument("--period", type=float, help=argparse.SUPPRESS)
    p.add_argument("--sim-pids", type=lambda t: [int(x) for x in _csv(t)], default=[], help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    p.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--profile-run", action="store_true", help=argparse.SUPPRESS)

    p.add_argument("--profile-top", type=int, default=25, help="functions --profile prints (default 25)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, internally, one scenario); print the table; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return _run_worker(args)
    args.argv = argv
    if args.quick:
        args.venues = args.venues if "--venues" in argv else ["binance", "bitstamp"]
        args.instruments = args.instruments if "--instruments" in argv else 2
        args.rate = args.rate if "--rate" in argv else 400.0
        args.seconds = args.seconds if "--seconds" in argv else 2.0
        args.warmup = args.warmup if "--warmup" in argv else 0.3
    unknown = [v for v in args.venues if v not in VENUES]
    if unknown:
        parser.error(f"--venues: unknown venue {unknown[0]!r} (choose from {', '.join(VENUES)})")
    if not 1 <= args.instruments <= len(INSTRUMENTS):
        parser.error(f"--instruments: must be 1..{len(INSTRUMENTS)}")
    bad = [s for s in args.scenarios if s not in SCENARIO]
    if bad or not args.scenarios:
        parser.error(f"--scenarios: choose from {', '.join(SCENARIO)}")
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds: must be 1..100, got {args.rounds}")
    if not args.rate > 0 or not args.seconds > 0 or args.warmup < 0:
        parser.error("--rate and --seconds must be positive, --warmup >= 0")
    args.instrument_names = list(INSTRUMENTS[: args.instruments])
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    print(table(result))
    if "profile_b" in result:
        print("\nscenario b, cProfile top functions by tottime:\n" + str(result["profile_b"]))
    print(f"\nwritten: {args.out}")
    every = [r["scenarios"] for r in result.get("rounds", [])] or [result["scenarios"]]
    return 0 if all("error" not in s for scenarios in every for s in scenarios.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
