"""What a chaos run found: verdicts classified against the fault log, recovery, resyncs, the report.

The checker (:mod:`latency.chaos_check`) states facts per update. Here each
wrong, stale or unknown fact is either *explained* by a fault the venue was
under, or not; an unexplained one is the server's:

* a wrong book is explained when every venue blamed for it was, at the
  update's publish time, under a fault that makes the venue's own frames
  wrong yet sound (:data:`~latency.chaos_faults.LIES`: ``absurd``, ``huge``,
  ``rest-future``) or loses its diffs without a trace
  (:data:`~latency.chaos_faults.LOSSES` on a channel with no sequence: a
  ``silence`` on Bitstamp's diffs). Such a fault taints the venue from its
  start until, on a snapshot channel, the venue is first seen right again
  after the fault's end, and at the latest ``stale_after`` + 1 s after it
  (whole frames have replaced the book by then); on a diff channel until the
  venue is seen rebuilding its book (SYNCING, CONNECTING, BAD_DATA; on a
  channel that cannot prove continuity also STALE), since a wrong level
  stays in a diff book until a change or a rebuild replaces it, and may sit
  below the levels an update shows for a while. (So a second, unrelated
  wrong book on that venue before the rebuild would be taken for the
  fault's: the tables say which fault explained what, to judge by.)
* a stale book is explained when a ``delay`` on the venue could have made
  its frames that late: from the delay's start to its end plus its delay
  plus ``stale_after`` + 1 s;
* an unknown position is explained by the same taints as a wrong book
  (``rest-future`` stamps a snapshot with a position the book reaches only
  later, or never);
* nothing explains a book with a level of a venue not in the merge, a merge
  that is wrong although every venue's levels are right, an ``age_ns`` over
  the limit, or two subscribers receiving different copies of one update.
"""

from __future__ import annotations

import argparse
import bisect
import math
import pickle
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dragonfly.serve import orderbook_pb2
from dragonfly.sim.faults import parse_fault
from latency.chaos_check import MERGE, Verdict
from latency.chaos_faults import LATE, LIES, LOSSES, FaultEvent

if TYPE_CHECKING:
    from latency.chaos import ChaosSpec, PhaseResult

#: Venues whose diff channel has neither sequence numbers nor checksums.
UNSEQUENCED_DIFFS = frozenset({"bitstamp"})
STATUS_NAMES: dict[int, str] = {value: name.removeprefix("VENUE_STATUS_")
                for name, value in orderbook_pb2.VenueStatus.items()}
_REBUILT = frozenset({orderbook_pb2.VENUE_STATUS_SYNCING, orderbook_pb2.VENUE_STATUS_CONNECTING,
                      orderbook_pb2.VENUE_STATUS_BAD_DATA})
_SLACK_NS = 1_000_000_000
#: Server log lines counted per venue (logs are rate-limited: lower bounds).
LOG_PATTERNS = {
    "resync": re.compile(r"book withdrawn and resynchronising"),
    "disconnect": re.compile(r": disconnected \("),
    "bad frame": re.compile(r"dropped a malformed frame|unreadable book frame"),
    "stale": re.compile(r"book withdrawn: no book frame|nothing proved it current"),
    "snapshot failed": re.compile(r"snapshot of \S+ failed"),
    "connect failed": re.compile(r"cannot connect to"),
}
_LOG_VENUE = re.compile(r"dragonfly\.venue\.(\w+):")


@dataclass(frozen=True)
class Taint:
    """A stretch of time in which a fault can explain a venue's wrong (or late) book."""

    kind: str
    start_ns: int
    end_ns: int

    def covers(self, t_ns: int) -> bool:
        """Whether ``t_ns`` falls in the stretch."""
        return self.start_ns <= t_ns <= self.end_ns


@dataclass(frozen=True)
class Finding:
    """One wrong, stale or unknown update (or a broken claim), and what explains it if anything."""

    phase: int
    sequence: int
    publish_ns: int
    what: str  #: wrong, stale, claim, unknown
    venues: tuple[str, ...]
    explained_by: str  #: the fault kinds that explain it; "" when nothing does
    detail: str

    @property
    def explained(self) -> bool:
        """Whether a venue fault explains it."""
        return bool(self.explained_by)


@dataclass
class Recovery:
    """One fault's end and when its venue was back in the merge with a correct, fresh book.

    Back means: the first such update after the fault's end and after the
    last update without it that the fault can have caused (up to
    ``stale_after`` + the tolerance + 1 s after its end).
    """

    event: FaultEvent
    recovered_s: float | None  #: None: not back before the phase ended


@dataclass
class ChaosReport:
    """Everything the report says, as numbers (see :func:`markdown`)."""

    spec: ChaosSpec
    phases: list[PhaseResult]
    wall_s: float
    fault_s: float = 0.0
    checked: int = 0  #: distinct updates checked
    verifiable: int = 0  #: ... whose every venue in the merge named a known position
    received: int = 0  #: updates read, all subscribers together
    findings: list[Finding] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    resyncs: dict[tuple[int, str], int] = field(default_factory=dict)  #: transitions to SYNCING
    departures: dict[tuple[int, str], int] = field(default_factory=dict)  #: times it left the merge
    log_counts: dict[tuple[int, str, str], int] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)
    inconsistent: int = 0
    max_staleness_ms: dict[str, float] = field(default_factory=dict)  #: of books in the merge
    outlier_wrong: int = 0  #: explained wrong books whose blamed venue was flagged OUTLIER

    def count(self, what: str, explained: bool | None = None) -> int:
        """How many findings of ``what`` (explained, unexplained, or both for None)."""
        return sum(1 for f in self.findings
                   if f.what == what and (explained is None or f.explained == explained))

    @property
    def ok(self) -> bool:
        """No wrong or stale book, broken claim or inconsistent copy the venues' faults do not explain."""
        return (not any(p.error for p in self.phases) and self.inconsistent == 0
                and not any(not f.explained for f in self.findings if f.what != "unknown")
                and self.checked > 0)


def _taints(phase: PhaseResult, timeline: list[Verdict], stale_after_ns: int
            ) -> tuple[dict[str, list[Taint]], dict[str, list[Taint]]]:
    """Per venue: the stretches that explain a wrong book, and those that explain a late one."""
    wrong: dict[str, list[Taint]] = {}
    late: dict[str, list[Taint]] = {}
    publish = [v.publish_ns for v in timeline]
    for event in phase.events:
        if event.error:
            continue
        venue = event.venue
        diff = event.channel == "diff"
        kinds = set(event.tags & LIES)
        if diff and venue in UNSEQUENCED_DIFFS:
            kinds |= event.tags & LOSSES
        if kinds:
            # Snapshot channel: tainted until the venue is seen right again,
            # or its next whole frames must have replaced the wrong one. Diff
            # channel: until the venue is seen rebuilding its book; being seen
            # right proves little there, since an update shows only the
            # venue's levels that won places in the merge, and a wrong level
            # below them surfaces later (a rest-future run showed it for 23 s).
            end = phase.end_ns
            if not diff:
                end = min(end, event.end_ns + stale_after_ns + _SLACK_NS)
            rebuilt = _REBUILT | ({orderbook_pb2.VENUE_STATUS_STALE} if venue in UNSEQUENCED_DIFFS
                                  else frozenset())
            for verdict in timeline[bisect.bisect_right(publish, event.end_ns):]:
                if verdict.publish_ns >= end:
                    break
                view = verdict.view(venue)
                if (verdict.ok(venue) if not diff else view is not None and view.status in rebuilt):
                    end = verdict.publish_ns
                    break
            wrong.setdefault(venue, []).append(Taint("+".join(sorted(kinds)), event.start_ns, end))
        if event.tags & LATE:
            ms = max(float(parse_fault(s).get("ms")) for s in event.specs if s.startswith("delay"))
            end = event.end_ns + round(ms * 1e6) + stale_after_ns + _SLACK_NS
            late.setdefault(venue, []).append(Taint("delay", event.start_ns, end))
    return wrong, late


def _explain(venues: tuple[str, ...], taints: dict[str, list[Taint]], t_ns: int) -> str:
    """The kinds that explain the finding for every one of ``venues``, or "" if some venue has none."""
    kinds: set[str] = set()
    for venue in venues:
        found = [t.kind for t in taints.get(venue, []) if t.covers(t_ns)]
        if not found:
            return ""
        kinds.update(found)
    return "+".join(sorted(kinds))


def _faults_near(phase: PhaseResult, venue: str, t_ns: int, before_s: float = 15.0) -> str:
    """The venue's faults in force or ended shortly before ``t_ns``, for a finding's detail."""
    near = [e for e in phase.events if e.venue == venue and e.start_ns <= t_ns
            and (not e.end_ns or e.end_ns >= t_ns - before_s * 1e9)]
    return "; ".join(f"{', '.join(e.specs)} at {(e.start_ns - t_ns) / 1e9:+.1f} s" for e in near) or "none"


def _classify(report: ChaosReport, phase: PhaseResult, timeline: list[Verdict]) -> None:
    stale_after_ns = round(report.spec.stale_after * 1e9)
    wrong_taints, late_taints = _taints(phase, timeline, stale_after_ns)
    n = phase.index + 1
    for verdict in timeline:
        t = verdict.publish_ns
        if verdict.wrong:
            venues = verdict.blamed if not verdict.foreign else (*verdict.blamed, "<foreign>")
            explained = "" if verdict.foreign or MERGE in venues else _explain(venues, wrong_taints, t)
            if explained and any((view := verdict.view(v)) is not None
                                 and view.status == orderbook_pb2.VENUE_STATUS_OUTLIER for v in venues):
                report.outlier_wrong += 1
            faults = " | ".join(
                f"{v} faults: {_faults_near(phase, v, t)}" for v in venues if not v.startswith("<")
            )
            report.findings.append(Finding(n, verdict.sequence, t, "wrong", venues, explained,
                                           f"{verdict.detail} [{faults}]"))
        if verdict.stale:
            parts = []
            for venue in verdict.stale:
                view = verdict.view(venue)
                assert view is not None and view.staleness_ns is not None
                parts.append(f"{venue} seq {view.seq}: top shown stopped being true "
                             f"{view.staleness_ns / 1e9:.3f} s before the publish (age_ns claims "
                             f"{view.age_ns / 1e9:.3f} s) [faults: {_faults_near(phase, venue, t)}]")
            report.findings.append(Finding(n, verdict.sequence, t, "stale", verdict.stale,
                                           _explain(verdict.stale, late_taints, t), "; ".join(parts)))
        if verdict.claim_violations:
            parts = []
            for venue in verdict.claim_violations:
                view = verdict.view(venue)
                assert view is not None
                parts.append(f"{venue}: age {view.age_ns / 1e9:.3f} s, status "
                             f"{STATUS_NAMES.get(view.status, str(view.status))}")
            report.findings.append(Finding(n, verdict.sequence, t, "claim", verdict.claim_violations, "",
                                           "; ".join(parts)))
        if verdict.unknown:
            parts = []
            for venue in verdict.unknown:
                view = verdict.view(venue)
                assert view is not None
                known = "a later state" if view.future else "never a state"
                parts.append(f"{venue} seq {view.seq} ({known}) [faults: {_faults_near(phase, venue, t)}]")
            report.findings.append(Finding(n, verdict.sequence, t, "unknown", verdict.unknown,
                                           _explain(verdict.unknown, wrong_taints, t), "; ".join(parts)))


def _recoveries(report: ChaosReport, phase: PhaseResult, timeline: list[Verdict]) -> None:
    """Time each fault's recovery: its end to the venue back (see :data:`Recovery`)."""
    publish = [v.publish_ns for v in timeline]
    spec = report.spec
    settle_ns = round((spec.stale_after + spec.tolerance) * 1e9) + _SLACK_NS
    for event in phase.events:
        if event.error or event.cut_short:
            continue
        venue = event.venue
        # A fault may take effect after it ends (a connection wedged by its
        # last frame shows as a stale book only stale_after later): the venue
        # is back at the first good update after the last bad one that the
        # fault can still have caused.
        last_bad = 0
        for verdict in timeline[bisect.bisect_left(publish, event.start_ns):]:
            if verdict.publish_ns > event.end_ns + settle_ns:
                break
            if not verdict.ok(venue):
                last_bad = verdict.publish_ns
        after = max(event.end_ns, last_bad)
        recovered: float | None = None
        for verdict in timeline[bisect.bisect_right(publish, after) if last_bad >= event.end_ns
                                else bisect.bisect_left(publish, after):]:
            if verdict.ok(venue):
                recovered = (verdict.publish_ns - event.end_ns) / 1e9
                break
        report.recoveries.append(Recovery(event, recovered))


def _transitions(report: ChaosReport, phase: PhaseResult, timeline: list[Verdict]) -> None:
    last: dict[str, tuple[int, bool]] = {}
    staleness: dict[str, float] = report.max_staleness_ms
    for verdict in timeline:
        for view in verdict.views:
            before = last.get(view.venue)
            key = (phase.index + 1, view.venue)
            if before is not None:
                if view.status == orderbook_pb2.VENUE_STATUS_SYNCING and before[0] != view.status:
                    report.resyncs[key] = report.resyncs.get(key, 0) + 1
                if before[1] and not view.in_merge:
                    report.departures[key] = report.departures.get(key, 0) + 1
            last[view.venue] = (view.status, view.in_merge)
            if view.in_merge and view.staleness_ns is not None:
                staleness[view.venue] = max(staleness.get(view.venue, 0.0), view.staleness_ns / 1e6)


def _logs(report: ChaosReport, phase: PhaseResult) -> None:
    lines = phase.log_text.splitlines()
    for number, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            block = [line]
            for follow in lines[number + 1:number + 40]:
                block.append(follow)
                if follow and not follow.startswith((" ", "\t", "Traceback")):
                    break
            report.tracebacks.append(f"phase {phase.index + 1}:\n" + "\n".join(block))
        match = _LOG_VENUE.search(line)
        if match is None:
            continue
        for name, pattern in LOG_PATTERNS.items():
            if pattern.search(line):
                key = (phase.index + 1, match.group(1), name)
                report.log_counts[key] = report.log_counts.get(key, 0) + 1


def analyse(spec: ChaosSpec, phases: list[PhaseResult], wall_s: float) -> ChaosReport:
    """Classify every phase's verdicts, measure recoveries and resyncs, read the server logs."""
    report = ChaosReport(spec, phases, wall_s)
    for phase in phases:
        timeline = [phase.verdicts[s] for s in sorted(phase.verdicts)]
        report.fault_s += max(0, phase.end_ns - phase.start_ns) / 1e9
        report.checked += len(timeline)
        report.verifiable += sum(1 for v in timeline if not v.unverifiable)
        report.received += phase.received
        report.inconsistent += phase.inconsistent
        _classify(report, phase, timeline)
        _recoveries(report, phase, timeline)
        _transitions(report, phase, timeline)
        _logs(report, phase)
    return report


# -- the report -------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _mb(value: int) -> str:
    return f"{value / 2**20:.1f}"


def headline(report: ChaosReport) -> list[tuple[str, str]]:
    """The run's figures, one (name, value) pair a line (what stdout shows)."""
    spec = report.spec
    events = [e for p in report.phases for e in p.events if not e.error]
    recovered = [r.recovered_s for r in report.recoveries if r.recovered_s is not None]
    never = sum(1 for r in report.recoveries if r.recovered_s is None)
    minutes = report.fault_s / 60 or math.nan
    conns = Counter[str]()
    for phase in report.phases:
        conns.update(phase.connections)
    rows = [
        ("run", f"{report.fault_s:.0f} s of faults in {len(report.phases)} phase(s), {report.wall_s:.0f} s "
         f"wall; {spec.subs} subscribers; stale_after {spec.stale_after:g} s + {spec.tolerance:g} s "
         f"tolerance; depth {spec.depth}; seed {spec.seed}"),
        ("layouts", "; ".join(f"phase {p.index + 1}: " + ", ".join(f"{v} {c}" for v, c in p.layout.items())
                              for p in report.phases)),
        ("faults injected", f"{len(events)} ({sum(1 for e in events if not e.hit)} without effect on the "
         f"wire, {sum(1 for e in events if e.cancelled and not e.cut_short)} cancelled at their cap, "
         f"{sum(1 for e in events if e.cut_short)} cut short by the phase end)"),
        ("updates checked", f"{report.checked} distinct ({report.verifiable} fully verifiable), "
         f"{report.received} reads by the subscribers"),
        ("wrong books published", f"{report.count('wrong', False)} unexplained; "
         f"{report.count('wrong', True)} while a venue sent wrong-but-sound data "
         f"({report.outlier_wrong} of them flagged OUTLIER)"),
        ("stale books published as fresh", f"{report.count('stale', False)} unexplained; "
         f"{report.count('stale', True)} under a delay fault"),
        ("wire claim broken (age_ns > stale_after, or in merge but not LIVE/OUTLIER)",
         f"{report.count('claim')}"),
        ("unknown positions (seq)", f"{report.count('unknown', False)} unexplained; "
         f"{report.count('unknown', True)} under rest-future/absurd/huge/loss"),
        ("copies of one update that differed", f"{report.inconsistent}"),
        ("resyncs (VenueState -> SYNCING)", ", ".join(
            f"phase {p} {v} {n}" for (p, v), n in sorted(report.resyncs.items())) or "0"),
        ("recovery after a fault's end",
         f"p50 {_s(_pct(recovered, 0.5))} s, p90 {_s(_pct(recovered, 0.9))} s, "
         f"max {_s(max(recovered) if recovered else None)} s over {len(recovered)} faults; "
         f"{never} not back before the phase ended"),
        ("connections opened per minute of faults",
         ", ".join(f"{v} {n / minutes:.1f}" for v, n in sorted(conns.items()))),
        ("server RSS", "; ".join(f"phase {p.index + 1}: start {_mb(p.rss_start)} MB, end {_mb(p.rss_end)} "
                                 f"MB, peak {_mb(p.rss_peak)} MB" for p in report.phases)),
        ("server tracebacks", f"{len(report.tracebacks)}"),
        ("max staleness of a book in the merge", ", ".join(
            f"{v} {ms / 1000:.3f} s" for v, ms in sorted(report.max_staleness_ms.items()))),
    ]
    lags = [lag for p in report.phases for lag in p.loop_lag_ns]
    if lags:
        rows.append(("harness loop lateness", f"p99 {_pct([x / 1e6 for x in lags], 0.99):.1f} ms, "
                     f"max {max(lags) / 1e6:.1f} ms"))
    errors = [f"phase {p.index + 1}: {p.error}" for p in report.phases if p.error]
    errors += [f"phase {p.index + 1}: the server exited with {p.server_exit} on SIGTERM"
               for p in report.phases if p.server_exit]
    if errors:
        rows.append(("errors", "; ".join(errors)))
    rows.append(("verdict", "PASS" if report.ok else "FAIL"))
    return rows


def markdown(report: ChaosReport) -> str:
    """The report as Markdown."""
    out = ["# Chaos run", "", "| | |", "| --- | --- |"]
    out += [f"| {name} | {value} |" for name, value in headline(report)]
    out += ["", "## Faults by kind", "",
            "Recovery: from the fault's end (its last spec ended) to the first update with the venue back in "
            "the merge with a correct, fresh book, after the last update without it that the fault can have "
            "caused (up to stale_after + tolerance + 1 s after its end: a wedged connection shows only as a "
            "stale book). No effect: the fault's main spec hit nothing (e.g. a connection fault while the "
            "venue was reconnecting).", "",
            "| venue | channel | kind | injected | no effect | cancelled | recovery p50 s | max s "
            "| not back |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups: dict[tuple[str, str, str], list[Recovery]] = {}
    for rec in report.recoveries:
        groups.setdefault((rec.event.venue, rec.event.channel, rec.event.kind), []).append(rec)
    for (venue, channel, kind), recs in sorted(groups.items()):
        times = [r.recovered_s for r in recs if r.recovered_s is not None]
        no_effect = sum(1 for r in recs if not r.event.hit)
        cancelled = sum(1 for r in recs if r.event.cancelled)
        never = sum(1 for r in recs if r.recovered_s is None)
        p50 = _s(statistics.median(times) if times else None)
        out.append(f"| {venue} | {channel} | {kind} | {len(recs)} | {no_effect} | {cancelled} | {p50} | "
                   f"{_s(max(times) if times else None)} | {never} |")
    refused = [e for p in report.phases for e in p.events if e.error]
    if refused:
        out += ["", "Refused by the simulator: "
                + "; ".join(f"{e.venue} {e.specs}: {e.error}" for e in refused)]
    out += ["", "## Venue transitions and server log", "",
            "| phase | venue | left the merge | -> SYNCING | "
            + " | ".join(f"log: {n}" for n in LOG_PATTERNS) + " |",
            "| --- | --- | --- | --- | " + " | ".join("---" for _ in LOG_PATTERNS) + " |"]
    for phase in report.phases:
        for venue in sorted(phase.layout):
            key = (phase.index + 1, venue)
            logs = " | ".join(str(report.log_counts.get((*key, n), 0)) for n in LOG_PATTERNS)
            out.append(f"| {key[0]} | {venue} {phase.layout[venue]} | {report.departures.get(key, 0)} | "
                       f"{report.resyncs.get(key, 0)} | {logs} |")
    out += ["", "Log counts are lower bounds: the server rate-limits repeated warnings."]
    out += ["", "## Subscribers", "",
            "| phase | reads | skipped (conflated) | lag p50 ms | lag p99 ms | errors |",
            "| --- | --- | --- | --- | --- | --- |"]
    for phase in report.phases:
        lags = [x / 1e6 for st in phase.subscribers for x in st.lags_ns]
        errs = sorted({st.error for st in phase.subscribers if st.error})
        out.append(f"| {phase.index + 1} | {sum(st.received for st in phase.subscribers)} | "
                   f"{sum(st.skipped for st in phase.subscribers)} | {_s(_pct(lags, 0.5))} | "
                   f"{_s(_pct(lags, 0.99))} | {'; '.join(errs) or '-'} |")
    if report.findings:
        counts = Counter((f.phase, f.what, f.explained_by or "UNEXPLAINED", f.venues)
                         for f in report.findings)
        out += ["", "## Findings by kind", "", "| phase | finding | venues | explained by | updates |",
                "| --- | --- | --- | --- | --- |"]
        out += [f"| {p} | {what} | {', '.join(venues)} | {by} | {n} |"
                for (p, what, by, venues), n in sorted(counts.items())]
    out += ["", "## Findings", ""]
    if not report.findings:
        out.append("None: every update checked was the truth's merge, fresh, and as the wire claimed.")
    for what in ("wrong", "stale", "claim", "unknown"):
        for explained in (False, True):
            found = [f for f in report.findings if f.what == what and f.explained == explained]
            if not found:
                continue
            label = "explained by a venue fault" if explained else "UNEXPLAINED"
            out += [f"### {what}: {len(found)} {label}", ""]
            out += [f"- phase {f.phase} update {f.sequence} ({', '.join(f.venues)})"
                    f"{' [' + f.explained_by + ']' if f.explained else ''}: {f.detail}" for f in found[:8]]
            out.append("")
    out.append("")
    if report.tracebacks:
        out += ["## Server tracebacks", ""]
        for block in report.tracebacks[:5]:
            out += ["```", block, "```", ""]
    out += ["## Faults injected", "", "| phase | t s | venue | specs | applied | to end s | recovered s |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for rec in report.recoveries:
        event = rec.event
        phase = report.phases[event.phase]
        out.append(f"| {event.phase + 1} | {(event.start_ns - phase.start_ns) / 1e9:.1f} | {event.venue} | "
                   f"`{' + '.join(event.specs)}` | {'/'.join(map(str, event.applied))}"
                   f"{' (cancelled)' if event.cancelled else ''} | "
                   f"{(event.end_ns - event.start_ns) / 1e9:.1f} | {_s(rec.recovered_s)} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Analyse a chaos run again from its ``chaos.pickle``; print the report (exit 1 on FAIL)."""
    p = argparse.ArgumentParser(prog="python -m latency.chaos_report", description=main.__doc__)
    p.add_argument("directory", type=Path, help="the --out of a chaos run")
    args = p.parse_args(argv)
    with open(args.directory / "chaos.pickle", "rb") as fh:
        spec, phases, wall_s = pickle.load(fh)
    report = analyse(spec, phases, wall_s)
    print(markdown(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
