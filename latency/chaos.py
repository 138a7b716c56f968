"""``python -m latency --chaos``: random venue faults while subscribers check every book against the truth.

The question it answers: under faults, does the server ever publish a wrong
book, or a stale book presented as fresh? Processes, on a 2-core machine:

* this (the harness) process runs the venue simulator (Binance and Bitstamp,
  ``ethbtc``, live cadence) with its truth record on
  (:mod:`dragonfly.sim.truth`), the fault schedulers, and the subscribers:
  ``--subs`` grpc.aio streams, each its own channel and HTTP/2 connection,
  with ``dragonfly.client``'s flow-control window. They run in this process
  so that each book they read can be checked against the simulator's truth
  the moment it arrives; at ~20 updates a second the reads and checks cost
  little (an update is checked once, its copies to the other subscribers are
  compared with it), and a third process would only add a core's worth of
  contention to two cores;
* the server, ``python -m dragonfly.serve`` on the simulator's endpoints, in
  its own process, as in production.

The run is cut into ``--phases`` phases (default 2) of equal length, each
with a fresh server and a channel layout in turn, so both sync machineries
run on both venues: phase 1 Binance on its ``diff`` channel (REST snapshot
plus sequenced diffs) and Bitstamp on its ``snapshot`` channel (whole top-N
frames); phase 2 the other way round (Bitstamp diffs carry no sequence
numbers). In each phase every venue gets faults drawn from every kind that
applies to its channel (:mod:`latency.chaos_faults`), one at a time per
venue: a fault, its end, the venue's recovery (back in the merge with a
correct book, ``--recover-timeout`` at most), then an exponential pause of
mean ``--fault-every`` seconds. The two venues' faults overlap freely.

Every update a subscriber reads is checked (:mod:`latency.chaos_check`), and
the report (:mod:`latency.chaos_report`) says what it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pickle
import random
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import psutil

from dragonfly.client.stream import DEFAULT_WINDOW_BYTES, channel_options
from dragonfly.serve import orderbook_pb2
from dragonfly.sim import Simulator
from dragonfly.sim.faults import parse_fault
from dragonfly.sim.truth import DEFAULT_DEPTH
from latency.cell import wait_for_text
from latency.chaos_check import TruthChecker, Verdict
from latency.chaos_faults import FaultDeck, FaultEvent, catalogue
from latency.chaos_report import ChaosReport, analyse, markdown
from latency.ports import free_port

METHOD = "/orderbook.OrderbookAggregator/BookSummary"
VENUES = ("binance", "bitstamp")
#: The channel layout of each phase, in turn (module doc).
LAYOUTS: tuple[Mapping[str, str], ...] = (
    {"binance": "diff", "bitstamp": "snapshot"},
    {"binance": "snapshot", "bitstamp": "diff"},
)
#: Seconds the truth record keeps a replaced state: far longer than any book
#: the server may show (its stale_after), so a miss means a position never shown.
TRUTH_KEEP_S = 120.0
#: Updates whose full content is kept to compare each subscriber's copy with.
KEEP_SUMMARIES = 4096


@dataclass(frozen=True)
class ChaosSpec:
    """What to run (the command-line options of ``python -m latency --chaos``)."""

    minutes: float = 5.0  #: fault time, all phases together
    subs: int = 10  #: subscribers
    fault_every: float = 3.0  #: mean seconds between one fault's recovery and the venue's next fault
    seed: int = 1
    stale_after: float = 2.0  #: the server's --stale-after for every venue, seconds
    tolerance: float = 0.5  #: delivery allowance on top of stale_after, seconds
    depth: int = 10  #: merged levels per side (the server's --depth)
    phases: int = 2  #: phases, each a fresh server and the next channel layout
    recover_timeout: float = 30.0  #: seconds to wait for a venue's recovery before its next fault
    instrument: str = "ethbtc"
    out: Path = Path("results/chaos")
    period_s: float = 0.1  #: the simulated venues' publish cadence (the live one)
    server_args: tuple[str, ...] = ()  #: extra server arguments
    #: The channel layouts the phases take in turn (venue -> snapshot or diff).
    layouts: tuple[Mapping[str, str], ...] = LAYOUTS
    #: Only these fault kinds (empty: every kind that applies); to chase one finding.
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject values that cannot run."""
        if not self.minutes > 0 or self.subs < 1 or self.phases < 1 or not self.fault_every > 0:
            raise ValueError("need minutes > 0, subs >= 1, phases >= 1 and fault_every > 0")
        if not self.stale_after > 0 or self.tolerance < 0 or self.depth < 1:
            raise ValueError("need stale_after > 0, tolerance >= 0 and depth >= 1")
        channels = {"snapshot", "diff"}
        if not self.layouts or any(set(layout) != set(VENUES) or not set(layout.values()) <= channels
                                   for layout in self.layouts):
            raise ValueError(f"a layout gives every venue of {VENUES} a channel, snapshot or diff")
        known = {kind for venue in VENUES for channel in channels for kind in catalogue(venue, channel)}
        unknown = sorted(set(self.kinds) - known)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: expected some of {', '.join(sorted(known))}")


@dataclass
class SubscriberStats:
    """What one subscriber read in one phase."""

    received: int = 0
    skipped: int = 0  #: updates conflated away for it (gaps in ``sequence``)
    lags_ns: list[int] = field(default_factory=list)  #: receive time minus publish_ns, sampled
    error: str = ""
    last_sequence: int = 0  #: of the last update it read


@dataclass
class PhaseResult:
    """Everything one phase observed."""

    index: int
    layout: Mapping[str, str]
    start_ns: int = 0  #: faults start
    end_ns: int = 0  #: faults stop (and every fault is cleared)
    verdicts: dict[int, Verdict] = field(default_factory=dict)  #: by update sequence
    events: list[FaultEvent] = field(default_factory=list)
    subscribers: list[SubscriberStats] = field(default_factory=list)
    inconsistent: int = 0  #: copies of one update that differed between subscribers
    received: int = 0  #: updates read, all subscribers together
    connections: dict[str, int] = field(default_factory=dict)  #: connections the venue accepted
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0
    loop_lag_ns: list[int] = field(default_factory=list)  #: the harness loop's lateness, sampled
    log_path: Path | None = None
    log_text: str = ""
    server_exit: int | None = None
    error: str = ""


class PhaseWatch:
    """The subscribers' shared view of one phase: check each update once, note who recovered."""

    def __init__(self, checker: TruthChecker, result: PhaseResult) -> None:
        """Check with ``checker``; collect into ``result``."""
        self.checker = checker
        self.result = result
        self._summaries: dict[int, orderbook_pb2.Summary] = {}
        #: Per venue: publish_ns of the newest update in which it was back (``Verdict.ok``).
        self.last_ok_ns: dict[str, int] = {}

    def on_payload(self, payload: bytes, recv_ns: int, stats: SubscriberStats) -> None:
        """Read one update as one subscriber received it."""
        summary = orderbook_pb2.Summary.FromString(payload)
        self.result.received += 1
        stats.received += 1
        if stats.last_sequence and summary.sequence > stats.last_sequence + 1:
            stats.skipped += summary.sequence - stats.last_sequence - 1
        stats.last_sequence = summary.sequence
        if stats.received % 4 == 1:  # a sample is enough for the delivery lag
            stats.lags_ns.append(recv_ns - summary.publish_ns)
        seen = self._summaries.get(summary.sequence)
        if seen is not None:
            # The same update reached another subscriber: it must be the same book.
            if (seen.bids != summary.bids or seen.asks != summary.asks or seen.venues != summary.venues
                    or seen.publish_ns != summary.publish_ns):
                self.result.inconsistent += 1
            return
        if summary.sequence in self.result.verdicts:
            return  # checked long ago; its content is no longer kept
        self._summaries[summary.sequence] = summary
        if len(self._summaries) > KEEP_SUMMARIES:
            for old in sorted(self._summaries)[: KEEP_SUMMARIES // 2]:
                del self._summaries[old]
        verdict = self.checker.check(summary)
        self.result.verdicts[summary.sequence] = verdict
        for view in verdict.views:
            if verdict.ok(view.venue):
                self.last_ok_ns[view.venue] = max(self.last_ok_ns.get(view.venue, 0), verdict.publish_ns)


async def _subscribe(target: str, watch: PhaseWatch, stats: SubscriberStats, opened: asyncio.Event) -> None:
    """One subscriber: read every update of the stream until cancelled or the stream ends."""
    options = (*channel_options(DEFAULT_WINDOW_BYTES), ("grpc.use_local_subchannel_pool", 1))
    time_ns = time.time_ns
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call = channel.unary_stream(METHOD, request_serializer=None, response_deserializer=None)(b"")
        try:
            await call.initial_metadata()
            opened.set()
            while True:
                payload: object = await call.read()
                if not isinstance(payload, bytes):  # grpc.aio.EOF: the server ended the stream
                    break
                watch.on_payload(payload, time_ns(), stats)
        except grpc.aio.AioRpcError as exc:
            stats.error = f"{exc.code().name}: {exc.details()}"
        finally:
            call.cancel()


def server_command(spec: ChaosSpec, sim: Simulator, layout: Mapping[str, str], port: int) -> list[str]:
    """The server's command line: the simulator's endpoints, the phase's channels."""
    cmd = [
        sys.executable, "-m", "dragonfly.serve", spec.instrument, "--venues", ",".join(VENUES),
        "--host", "127.0.0.1", "--port", str(port), "--depth", str(spec.depth),
        "--stale-after", f"{spec.stale_after:g}", "--start-timeout", "20", "--log-level", "info",
    ]
    for venue in VENUES:
        cmd += ["--endpoint", f"{venue}={sim.ws_url(venue)}",
                "--rest-endpoint", f"{venue}={sim.rest_url(venue)}",
                "--channel", f"{venue}={layout[venue]}"]
    return [*cmd, *spec.server_args]


def _cap_s(specs: tuple[str, ...], default: float) -> float:
    """Seconds to let a plan run before cancelling it: its longest window or grace, plus slack."""
    longest = 0.0
    for text in specs:
        fault = parse_fault(text)
        for name in ("for", "grace"):
            value = fault.params.get(name)
            if isinstance(value, (int, float)):
                longest = max(longest, float(value))
    return longest + 10.0 if longest else default


async def _inject(sim: Simulator, venue: str, channel: str, deck: FaultDeck, phase: int,
                  watch: PhaseWatch, spec: ChaosSpec, rng: random.Random, last_start: float,
                  stop_at: float) -> None:
    """Inject ``venue``'s faults one at a time until ``last_start`` (monotonic), logging each."""
    events = watch.result.events
    await asyncio.sleep(rng.expovariate(1 / spec.fault_every))
    while time.monotonic() < last_start:
        plan = deck.draw()
        event = FaultEvent(phase, venue, channel, plan.kind, plan.specs, time.time_ns(),
                           tags=frozenset(s.split(",", 1)[0] for s in plan.specs))
        events.append(event)
        ends: list[int] = []
        actives = []

        def ended(_: object, ends: list[int] = ends) -> None:
            ends.append(time.time_ns())

        try:
            for text in plan.specs:
                active = sim.fault(venue, text)
                active.on_end(ended)
                actives.append(active)
        except ValueError as exc:
            event.error = str(exc)
            for active in actives:
                active.cancel()
            continue
        deadline = min(time.monotonic() + _cap_s(plan.specs, plan.cap_s), stop_at)
        try:
            while any(a.active for a in actives) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            # The phase ended meanwhile: log what it did (the phase clears it).
            event.applied = tuple(a.applied for a in actives)
            raise
        event.applied = tuple(a.applied for a in actives)
        if any(a.active for a in actives):
            event.cancelled = True
            event.cut_short = time.monotonic() >= stop_at
            for active in actives:
                active.cancel()
        event.end_ns = max(ends) if ends else time.time_ns()
        # The next fault waits for this one's recovery (bounded), then a random
        # pause. Recovered: right in an update published once the fault can
        # no longer show (a wedged connection shows only as a stale book).
        settled_ns = event.end_ns + round((spec.stale_after + spec.tolerance) * 1e9)
        recover_by = min(time.monotonic() + spec.recover_timeout, stop_at)
        while watch.last_ok_ns.get(venue, 0) <= settled_ns and time.monotonic() < recover_by:
            await asyncio.sleep(0.05)
        await asyncio.sleep(max(0.0, min(rng.expovariate(1 / spec.fault_every), stop_at - time.monotonic())))


async def _sample(result: PhaseResult, proc: psutil.Process, stop: asyncio.Event) -> None:
    """Sample the harness loop's lateness (every 0.1 s) and the server's RSS (every 2 s)."""
    loop = asyncio.get_running_loop()
    next_rss = 0.0
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.1)
        result.loop_lag_ns.append(round((loop.time() - before - 0.1) * 1e9))
        if loop.time() >= next_rss:
            next_rss = loop.time() + 2.0
            with contextlib.suppress(psutil.Error):
                result.rss_peak = max(result.rss_peak, proc.memory_info().rss)


async def _wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


def _rss(proc: psutil.Process) -> int:
    with contextlib.suppress(psutil.Error):
        return int(proc.memory_info().rss)
    return 0


async def _stop_process(proc: asyncio.subprocess.Process) -> int | None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


async def run_phase(index: int, sim: Simulator, spec: ChaosSpec, checker: TruthChecker,
                    rng: random.Random, phase_s: float, log: Callable[[str], None]) -> PhaseResult:
    """Run one phase: a fresh server on the phase's layout, faults, subscribers (module doc)."""
    layout = spec.layouts[index % len(spec.layouts)]
    result = PhaseResult(index, layout)
    watch = PhaseWatch(checker, result)
    workdir = spec.out / "logs"
    workdir.mkdir(parents=True, exist_ok=True)
    result.log_path = workdir / f"chaos-phase{index + 1}.server.log"
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(result.log_path, "wb") as log_fh:
        server = await asyncio.create_subprocess_exec(
            *server_command(spec, sim, layout, port), stdout=log_fh, stderr=log_fh, env=env
        )
    proc = psutil.Process(server.pid)
    tasks: list[asyncio.Task[None]] = []
    stop_sampling = asyncio.Event()
    try:
        await wait_for_text(result.log_path, "serving", server, 60)
        result.subscribers = [SubscriberStats() for _ in range(spec.subs)]
        opens = [asyncio.Event() for _ in result.subscribers]
        target = f"127.0.0.1:{port}"
        tasks += [asyncio.create_task(_subscribe(target, watch, st, op))
                  for st, op in zip(result.subscribers, opens, strict=True)]
        await _wait_until(lambda: all(op.is_set() for op in opens), 30, "every subscriber's stream")
        started = time.time_ns()
        await _wait_until(lambda: all(watch.last_ok_ns.get(v, 0) > started for v in VENUES), 30,
                          "both venues in the merge with a correct book")
        result.rss_start = _rss(proc)
        tasks.append(asyncio.create_task(_sample(result, proc, stop_sampling)))
        log(f"phase {index + 1}: {', '.join(f'{v} {c}' for v, c in layout.items())}; "
            f"{phase_s:.0f} s of faults, {spec.subs} subscribers")
        result.start_ns = time.time_ns()
        connections0 = {v: sim.connections(v) for v in VENUES}
        now = time.monotonic()
        stop_at = now + phase_s
        # The last stretch injects nothing new, so the last faults' recovery is seen.
        last_start = stop_at - min(10.0, 0.25 * phase_s)
        decks = {v: FaultDeck(v, layout[v], random.Random(rng.random()), spec.kinds) for v in VENUES}
        injectors = [
            asyncio.create_task(_inject(sim, venue, layout[venue], deck, index, watch, spec,
                                        random.Random(rng.random()), last_start, stop_at))
            for venue, deck in decks.items() if deck.builders
        ]
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        for task in injectors:
            task.cancel()
        await asyncio.gather(*injectors, return_exceptions=True)
        for venue in VENUES:
            sim.clear_faults(venue)
        result.end_ns = time.time_ns()
        for event in result.events:
            if not event.end_ns:  # still in force at the phase end
                event.end_ns, event.cancelled, event.cut_short = result.end_ns, True, True
        result.connections = {v: sim.connections(v) - connections0[v] for v in VENUES}
        result.rss_end = _rss(proc)
        result.rss_peak = max(result.rss_peak, result.rss_end)
    except RuntimeError as exc:
        result.error = str(exc)
    finally:
        stop_sampling.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result.server_exit = await _stop_process(server)
        result.log_text = result.log_path.read_text(errors="replace")
    return result


async def run_chaos(spec: ChaosSpec, log: Callable[[str], None] | None = None) -> ChaosReport:
    """Run the whole chaos run; write ``chaos.md`` to ``spec.out``; return what it found."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    spec.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    stale_ns = {v: round(spec.stale_after * 1e9) for v in VENUES}
    phase_s = spec.minutes * 60.0 / spec.phases
    phases: list[PhaseResult] = []
    t0 = time.monotonic()
    async with Simulator(list(VENUES), [spec.instrument], seed=spec.seed, period_s=spec.period_s,
                         truth_s=TRUTH_KEEP_S, truth_depth=max(DEFAULT_DEPTH, spec.depth)) as sim:
        assert sim.truth_record is not None
        checker = TruthChecker(sim.truth_record, spec.instrument, spec.depth, stale_ns,
                               round(spec.tolerance * 1e9))
        for index in range(spec.phases):
            phases.append(await run_phase(index, sim, spec, checker, rng, phase_s, say))
            if phases[-1].error:
                say(f"phase {index + 1} failed: {phases[-1].error}")
                break
    report = analyse(spec, phases, time.monotonic() - t0)
    text = markdown(report)
    (spec.out / "chaos.md").write_text(text)
    # Everything observed, to analyse again (python -m latency.chaos_report DIR).
    with open(spec.out / "chaos.pickle", "wb") as raw:
        pickle.dump((spec, phases, time.monotonic() - t0), raw)
    # Every finding and fault, one JSON object a line, for a post-mortem.
    with open(spec.out / "chaos.jsonl", "w") as fh:
        for finding in report.findings:
            fh.write(json.dumps({"type": "finding", **dataclasses.asdict(finding)}) + "\n")
        recovered = {id(rec.event): rec.recovered_s for rec in report.recoveries}
        for phase in phases:
            for event in phase.events:
                fields = dataclasses.asdict(event) | {"tags": sorted(event.tags),
                                                      "recovered_s": recovered.get(id(event))}
                fh.write(json.dumps({"type": "fault", **fields}) + "\n")
    say(f"wrote {spec.out / 'chaos.md'} and {spec.out / 'chaos.jsonl'}")
    return report

